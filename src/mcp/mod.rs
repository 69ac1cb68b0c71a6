//! `sentinel mcp`: an MCP proxy that puts Sentinel in front of any MCP server's tools.
//!
//! The proxy is a client of the gateway like the CLI (gRPC, `SENTINEL_ADDR`,
//! `SENTINEL_API_KEY`, the TLS variables); it never touches the store. Every `tools/call`
//! becomes an intent; the upstream sees the call only once the intent is approved.
//! Everything else passes through.
//!
//! - `options.rs`: the flags; `serve.rs`: stdio or streamable HTTP serving.
//! - `proxy.rs`: the `ServerHandler` forwarding to the upstream peer.
//! - `intent.rs`: tool call -> intent (action mapping, canonical-arguments idempotency key).
//! - `wait.rs`: waiting for a human, with progress notifications and `--wait-secs`.
//! - `answer.rs`: the results the client sees; `gateway.rs`: the gRPC client.
//! - `upstream.rs`: the upstream server (child process or streamable HTTP).

mod answer;
mod gateway;
mod intent;
mod options;
mod proxy;
mod serve;
mod upstream;
mod wait;

pub use options::McpArgs;
pub use serve::run;
