//! The listeners' defences, between the kernel's accept queue and the HTTP servers.
//!
//! [`accept`] owns each listener's accept loop: a connection cap derived from the process's
//! descriptor limit ([`budget`]), eviction of connections that never proved themselves,
//! refusal when the cap is full, and an accept loop that survives `EMFILE`. [`conn`] wraps
//! every accepted socket so a connection that has not delivered its first complete request
//! ([`first_request`]) within the handshake window is closed. [`tls`] (built by `config`)
//! is the gRPC listener's rustls configuration (TLS, optionally mutual).

pub mod accept;
pub mod budget;
pub mod conn;
pub mod first_request;
pub mod listen;

/// The gRPC listener's TLS, built once from PEM files by the configuration.
pub use crate::config::tls;
pub use accept::{spawn_accept_loop, Incoming, ListenerLimits};
pub use budget::Budget;
pub use listen::{grpc_server, listen};
