//! Sentinel: a real-time safety gateway between autonomous agents and what they can break.
//!
//! # Layout
//!
//! The flow of an intent follows the modules:
//! `grpc` -> `gateway` (`domain` + `policy` + `scoring`) -> `store` -> `escalation` ->
//! `webhook` -> `gateway` -> `store` -> `grpc`. The gateway is the only door to the store.
//!
//! - [`domain`]: intents, the state machine, decisions and reasons. Pure; no I/O.
//! - [`policy`]: policy packs (TOML + CEL), the built-in pack.
//! - [`decision`]: the pure decision function and the corpus harness that replays it.
//! - [`scoring`]: the scorer trait, the deterministic fallback, the combination rule.
//! - [`gateway`]: the pipeline (validate, idempotency, policy, score, decide, persist),
//!   the operator's actions (resolve, cancel, expiry) and what channels may do (`channels`).
//! - [`store`]: one `Store` trait; the in-memory store (and Redis).
//! - [`receipt`]: the signing keys and the sealing of approved intents (approval receipts).
//! - [`escalation`]: getting a human to decide a pending intent.
//! - [`grpc`]: the tonic adapter: authentication, conversion, error mapping.
//! - [`webhook`]: the axum sidecar: health, readiness, provider webhooks.
//! - [`console`]: the operator console on the HTTP listener (pages, sessions, SSE).
//! - [`cli`]: the client subcommands.
//! - [`mcp`]: `sentinel mcp`, the MCP proxy: tool calls become intents (a gateway client).
//! - [`net`]: the listeners' accept loops: connection caps, handshake deadline, TLS/mTLS.
//! - [`outbound`]: the one policy of every outbound call (deadline, retries with jitter,
//!   `Retry-After`, circuit breaker), below every client that uses it.
//! - [`config`], [`auth`], [`telemetry`], [`metrics`], [`app`]: configuration, API keys,
//!   tracing, Prometheus counters, wiring.
#![forbid(unsafe_code)]

pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod console;
pub mod decision;
pub mod domain;
pub mod escalation;
pub mod gateway;
pub mod grpc;
mod macros;
pub mod mcp;
pub mod metrics;
pub mod net;
pub mod outbound;
pub mod policy;
pub mod receipt;
pub mod scoring;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod webhook;
