//! `sentinel serve`: the gateway in the foreground until SIGTERM or SIGINT.

use std::process::ExitCode;

use crate::config::Config;

pub(super) async fn serve() -> anyhow::Result<ExitCode> {
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("configuration error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    // Listen for signals before anything binds: a SIGTERM that arrives while the app starts
    // must still mean a graceful stop, not the default instant death.
    let mut signals = Signals::install()?;
    let _telemetry = crate::telemetry::init(&config.telemetry)?;
    let app = crate::app::App::build(config).await?;
    let shutdown = app.shutdown_token();
    tokio::spawn(async move {
        signals.next().await;
        tracing::info!("shutting down: finishing in-flight requests (signal again to force)");
        shutdown.cancel();
        signals.next().await;
        tracing::warn!("second signal: exiting now");
        std::process::exit(130);
    });
    app.run().await?;
    Ok(ExitCode::SUCCESS)
}

/// SIGINT and SIGTERM, registered once.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Signals {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Signals {})
        }
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => {}
                _ = self.int.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
