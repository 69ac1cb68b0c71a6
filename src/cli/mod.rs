//! The `sentinel` command line: `serve`, the gRPC client subcommands, and the policy tools.
//!
//! Human-readable output by default, `--json` for scripts. Exit codes: 0 success, 1 failure,
//! 2 bad usage or a policy test mismatch.

pub mod client;
mod health;
mod output;
mod receipt;

use output::outln;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::Config;

#[derive(Debug, Parser)]
#[command(
    name = "sentinel",
    version,
    about = "A safety gateway between autonomous agents and what they can break"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct ClientOpts {
    /// The gateway's gRPC address.
    #[arg(
        long,
        env = "SENTINEL_ADDR",
        default_value = "http://127.0.0.1:50051",
        global = true
    )]
    pub addr: String,
    /// API key (sent as `authorization: Bearer`).
    #[arg(long, env = "SENTINEL_API_KEY", hide_env_values = true, global = true)]
    pub api_key: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// PEM CA certificate that signed the gateway's TLS certificate (https addresses; default:
    /// the system's roots).
    #[arg(long, env = "SENTINEL_CA_CERT", global = true)]
    pub ca_cert: Option<PathBuf>,
    /// PEM client certificate for a gateway that requires mutual TLS.
    #[arg(long, env = "SENTINEL_CLIENT_CERT", global = true)]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of the client certificate.
    #[arg(
        long,
        env = "SENTINEL_CLIENT_KEY",
        hide_env_values = true,
        global = true
    )]
    pub client_key: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (configuration from SENTINEL_* variables and SENTINEL_CONFIG).
    Serve,
    /// Submit an intent.
    Submit {
        #[command(flatten)]
        client: ClientOpts,
        #[arg(long)]
        agent: String,
        #[arg(long)]
        action: String,
        /// The payload as a JSON object.
        #[arg(long, default_value = "{}")]
        payload: String,
        #[arg(long, default_value = "")]
        reasoning: String,
        #[arg(long, default_value = "")]
        idempotency_key: String,
        #[arg(long, default_value = "")]
        module: String,
        /// A label as key=value; repeatable.
        #[arg(long = "label", value_parser = parse_label)]
        labels: Vec<(String, String)>,
        /// Stream the decision until the intent is decided.
        #[arg(long)]
        wait: bool,
    },
    /// Stream an intent's decision, or with --all every decision.
    Watch {
        #[command(flatten)]
        client: ClientOpts,
        intent_id: Option<String>,
        #[arg(long)]
        all: bool,
        #[arg(long, default_value = "")]
        agent: String,
        #[arg(long, default_value = "")]
        module: String,
        #[arg(long = "state")]
        states: Vec<String>,
        /// Also show progress lines (calls, SMS), not only state changes.
        #[arg(long)]
        progress: bool,
    },
    /// Show one intent.
    Get {
        #[command(flatten)]
        client: ClientOpts,
        intent_id: String,
    },
    /// Show one intent's story from the audit log: submitted, transitions, calls and SMS,
    /// refused attempts, the decision and who made it.
    History {
        #[command(flatten)]
        client: ClientOpts,
        intent_id: String,
    },
    /// List intents, newest first.
    List {
        #[command(flatten)]
        client: ClientOpts,
        #[arg(long = "state")]
        states: Vec<String>,
        #[arg(long, default_value = "")]
        agent: String,
        #[arg(long, default_value = "")]
        module: String,
        #[arg(long, default_value = "")]
        action: String,
        #[arg(long, default_value_t = 50)]
        page_size: u32,
        #[arg(long, default_value = "")]
        page_token: String,
    },
    /// Approve or decline a pending intent (operators).
    Resolve {
        #[command(flatten)]
        client: ClientOpts,
        intent_id: String,
        #[arg(long, conflicts_with = "decline", required_unless_present = "decline")]
        approve: bool,
        #[arg(long)]
        decline: bool,
        #[arg(long, default_value = "")]
        reason: String,
        #[arg(long, default_value = "")]
        approver: String,
    },
    /// Withdraw a pending intent.
    Cancel {
        #[command(flatten)]
        client: ClientOpts,
        intent_id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Policy pack tools.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// API key tools.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Exit 0 when the gateway is ready (`/readyz` answers 200), else 1: for container
    /// health checks.
    Health {
        /// The readiness URL; default: `/readyz` on SENTINEL_HTTP_ADDR (loopback when it binds
        /// every interface).
        #[arg(long)]
        url: Option<String>,
    },
    /// Approval receipt tools.
    Receipt {
        #[command(subcommand)]
        command: ReceiptCommand,
    },
    /// An MCP proxy: serve the upstream MCP server's tools with every tools/call an intent
    /// (`sentinel mcp -- COMMAND [ARGS...]`, or --listen ADDR --upstream-url URL).
    Mcp(crate::mcp::McpArgs),
    /// Audit log tools (read the store named by SENTINEL_REDIS_URL directly).
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReceiptCommand {
    /// Check a receipt's signature, expiry, agent, action and payload: exit 0 when it
    /// proves this approval, 1 with the reason when it does not, 2 when inputs are unreadable.
    Verify(receipt::VerifyArgs),
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Write the audit records with `since <= at < until` to stdout as JSON lines, oldest first.
    Export {
        /// RFC 3339 (`2026-11-28T08:00:00Z`) or milliseconds since the Unix epoch.
        #[arg(long)]
        since: String,
        /// Same forms; default: now.
        #[arg(long)]
        until: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Compile a pack (default: the built-in one) and print its version and modules.
    Check {
        file: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Replay a JSONL corpus of intents with expected outcomes; exit 2 on any mismatch.
    Test {
        corpus: PathBuf,
        /// The pack to test (default: SENTINEL_POLICY, else the built-in pack).
        #[arg(long, env = "SENTINEL_POLICY")]
        policy: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print the SHA-256 of a key, the form `[[auth.keys]] sha256` takes. Reads stdin.
    Hash,
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("label {s:?} must be key=value"))
}

pub async fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Serve => serve().await,
        Command::Policy { command } => policy(command).await,
        Command::Keys {
            command: KeysCommand::Hash,
        } => {
            let mut key = String::new();
            match std::io::stdin().read_line(&mut key) {
                Ok(_) => {
                    outln!("{}", crate::auth::hash_key(key.trim()));
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => Err(e.into()),
            }
        }
        Command::Health { url } => health::check(url.as_deref()).await,
        Command::Receipt {
            command: ReceiptCommand::Verify(args),
        } => receipt::verify(args).await,
        Command::Mcp(args) => crate::mcp::run(args).await,
        Command::Audit {
            command: AuditCommand::Export { since, until },
        } => audit_export(&since, until.as_deref()).await,
        other => client::run(other).await,
    };
    match result {
        Ok(code) => code,
        Err(e) if output::is_broken_pipe(&e) => ExitCode::from(output::CLOSED_STDOUT),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve() -> anyhow::Result<ExitCode> {
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

async fn policy(command: PolicyCommand) -> anyhow::Result<ExitCode> {
    use crate::policy::PolicyPack;
    let load = |path: Option<PathBuf>| -> anyhow::Result<PolicyPack> {
        Ok(match path {
            Some(p) => PolicyPack::load(&p)?,
            None => PolicyPack::builtin(),
        })
    };
    match command {
        PolicyCommand::Check { file, json } => {
            let pack = match load(file) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("invalid policy pack: {e:#}");
                    return Ok(ExitCode::from(2));
                }
            };
            if json {
                outln!(
                    "{}",
                    serde_json::json!({
                        "name": pack.name(),
                        "version": pack.version(),
                        "rules": pack.rule_count(),
                        "modules": pack.module_names().collect::<Vec<_>>(),
                    })
                );
            } else {
                outln!(
                    "ok: {} ({} rules; modules: {})",
                    pack.version(),
                    pack.rule_count(),
                    pack.module_names().collect::<Vec<_>>().join(", ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Test {
            corpus,
            policy,
            json,
        } => {
            let pack = load(policy)?;
            let text = std::fs::read_to_string(&corpus)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", corpus.display()))?;
            let results = crate::decision::corpus::run_corpus(&pack, &text).await;
            let failed = results.iter().filter(|r| !r.passed()).count();
            if json {
                for r in &results {
                    outln!(
                        "{}",
                        serde_json::json!({
                            "line": r.line, "name": r.name, "passed": r.passed(),
                            "state": r.state, "score": r.score.map(|s| s.get()),
                            "module": r.module, "mismatches": r.mismatches,
                        })
                    );
                }
            } else {
                outln!("policy {}", pack.version());
                output::write_stdout(format_args!(
                    "{}",
                    crate::decision::corpus::render_table(&results)
                ));
            }
            Ok(if failed == 0 && !results.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
    }
}

fn parse_time(flag: &str, value: &str) -> anyhow::Result<crate::domain::Millis> {
    if let Ok(ms) = value.trim().parse::<i64>() {
        return Ok(ms);
    }
    chrono::DateTime::parse_from_rfc3339(value.trim())
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            anyhow::anyhow!("{flag}: {value:?} is neither RFC 3339 nor epoch milliseconds")
        })
}

/// Pages through the store's audit log. Records sharing a millisecond keep a stable order, so
/// a page boundary inside one millisecond is resumed by skipping what was already written.
async fn audit_export(since: &str, until: Option<&str>) -> anyhow::Result<ExitCode> {
    use std::io::Write as _;
    const PAGE: usize = 5000;
    let mut cursor = parse_time("--since", since)?;
    let until = match until {
        Some(u) => parse_time("--until", u)?,
        // The operator's "until now" is the wall time: the export runs outside any gateway.
        None => crate::domain::now_millis(),
    };
    let config = Config::from_env().map_err(|e| anyhow::anyhow!("configuration error: {e}"))?;
    if config.store.redis_url().is_none() {
        anyhow::bail!("SENTINEL_REDIS_URL is not set: the in-memory store lives inside `sentinel serve`; there is no log to export");
    }
    let store = crate::app::open_store(&config).await?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut skip = 0;
    loop {
        let records = store.audit_range(cursor, until, PAGE + skip).await?;
        for record in records.iter().skip(skip) {
            serde_json::to_writer(&mut out, record)?;
            out.write_all(b"\n")?;
        }
        let Some(last) = records.last().filter(|_| records.len() == PAGE + skip) else {
            break;
        };
        cursor = last.at;
        skip = records.iter().filter(|r| r.at == cursor).count();
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
