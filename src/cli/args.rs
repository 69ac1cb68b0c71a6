//! The command line's grammar: every subcommand and flag, parsed by clap.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use super::receipt;

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
