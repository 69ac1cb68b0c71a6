//! `sentinel mcp`'s flags.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use crate::cli::ClientOpts;

#[derive(Debug, Args)]
pub struct McpArgs {
    #[command(flatten)]
    pub client: ClientOpts,
    /// The agent id tool calls are submitted as (default: the API key's agent).
    #[arg(long, default_value = "")]
    pub agent: String,
    /// How long one tools/call waits for a human before answering "awaiting human approval";
    /// calling again with the same arguments resumes the same intent.
    #[arg(long, default_value_t = 120)]
    pub wait_secs: u64,
    /// The policy pack whose `[[mcp.tools]]` maps tools to actions (default: SENTINEL_POLICY,
    /// else the built-in pack). Give the proxy the pack the gateway runs.
    #[arg(long, env = "SENTINEL_POLICY")]
    pub policy: Option<PathBuf>,
    /// Serve MCP over streamable HTTP at this address (path /mcp) instead of stdio; each
    /// client's `Authorization: Bearer <key>` is its Sentinel API key.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// The upstream MCP server's streamable HTTP URL, instead of a command.
    #[arg(long, conflicts_with = "command")]
    pub upstream_url: Option<String>,
    /// A Host header the HTTP listener accepts (repeatable; default: loopback names only).
    #[arg(long = "allowed-host", requires = "listen")]
    pub allowed_hosts: Vec<String>,
    /// The upstream MCP server's command and arguments, after `--`.
    #[arg(last = true)]
    pub command: Vec<String>,
}
