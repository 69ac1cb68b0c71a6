//! `sentinel mcp`: starts the upstream, then serves the proxy on stdio or streamable HTTP
//! until the client leaves (stdio) or a signal arrives (HTTP).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::ServiceExt as _;
use tokio_util::sync::CancellationToken;

use super::gateway::{Credential, Gateway};
use super::options::McpArgs;
use super::proxy::{Proxy, Settings};
use super::upstream::{self, Upstream, UpstreamClient};
use crate::policy::PolicyPack;

pub async fn run(args: McpArgs) -> anyhow::Result<ExitCode> {
    init_logging();
    let upstream = match (args.upstream_url, args.command.is_empty()) {
        (Some(url), true) => Upstream::Url(url),
        (None, false) => Upstream::Command(args.command),
        (None, true) => anyhow::bail!(
            "give the upstream MCP server: `sentinel mcp -- COMMAND [ARGS...]` or --upstream-url URL"
        ),
        (Some(_), false) => anyhow::bail!("give either --upstream-url or a command, not both"),
    };
    if args.wait_secs == 0 {
        anyhow::bail!("--wait-secs must be at least 1");
    }
    let pack = match &args.policy {
        Some(path) => PolicyPack::load(path)?,
        None => PolicyPack::builtin(),
    };
    let settings = Settings {
        agent: args.agent,
        wait: Duration::from_secs(args.wait_secs),
        pack: Arc::new(pack),
        credential: Credential::from_key(args.client.api_key.as_deref())?,
    };
    let gateway = Gateway::connect_lazy(&args.client)?;
    let client = UpstreamClient::default();
    let downstream = client.downstream.clone();
    let upstream_service = upstream::connect(&upstream, client).await?;
    let proxy = Proxy::new(
        upstream_service.peer().clone(),
        gateway,
        settings,
        downstream,
    );
    match args.listen {
        None => {
            let server = proxy
                // Non-blocking pipes when the client started the proxy with pipes (as MCP
                // clients do): tokio's stdin/stdout would hand every read and write to a
                // blocking thread. Anything else falls back to those.
                .serve(rmcp::transport::stdio_pipes())
                .await
                .context("the MCP client did not initialize")?;
            server.waiting().await?;
        }
        Some(addr) => serve_http(proxy, addr, args.allowed_hosts).await?,
    }
    upstream_service.cancel().await?;
    Ok(ExitCode::SUCCESS)
}

/// Logs go to stderr (stdout carries the MCP session on stdio), `RUST_LOG` filtered, warnings
/// by default.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

async fn serve_http(
    proxy: Proxy,
    addr: std::net::SocketAddr,
    allowed_hosts: Vec<String>,
) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let mut config =
        StreamableHttpServerConfig::default().with_cancellation_token(shutdown.child_token());
    if !allowed_hosts.is_empty() {
        config = config.with_allowed_hosts(allowed_hosts);
    }
    let service = StreamableHttpService::new(
        move || Ok(proxy.clone()),
        LocalSessionManager::default().into(),
        config,
    );
    let router = axum::Router::new().nest_service("/mcp", service);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("--listen {addr}: cannot bind"))?;
    let local = listener.local_addr()?;
    // The one line on stdout: scripts (and tests) learn the port of `--listen host:0`.
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{local}/mcp")?;
        out.flush()?;
    }
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            terminated().await;
            shutdown.cancel();
        })
        .await?;
    Ok(())
}

/// SIGINT or SIGTERM.
async fn terminated() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
