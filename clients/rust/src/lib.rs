//! `sentinel-client`: one call for an agent to ask Sentinel, wait for the decision, and
//! carry the proof that it was allowed.
//!
//! ```ignore
//! let client = sentinel_client::Client::connect("http://127.0.0.1:50051").await?;
//! let decision = client
//!     .require_approval(GuardRequest::new("billing-bot", "PAY_INVOICE", json!({"amount": 420, "vendor": "AWS"})))
//!     .await?;
//! pay(decision.receipt.as_deref());
//! ```
//!
//! `guard` submits the intent (with a generated idempotency key unless one is given) and
//! follows `WatchDecision` to a terminal state. A dropped stream or a restarted replica is
//! followed by a resubscribe, and a submit whose outcome is unknown by a resubmit with the
//! same key: never a second intent. Errors are [`Error`] variants, never raw statuses.
//!
//! # Layout
//!
//! - `client.rs`: [`Client`], connection options (API key, TLS, timeouts)
//! - `guard.rs`: [`GuardRequest`], the submit-and-follow loop, retry rules
//! - `decision.rs`: [`Decision`] and its parts
//! - `error.rs`: [`Error`], the one mapping from `tonic::Status`
//! - [`proto`]: the generated gRPC types, from the repository's `proto/`
//!
//! Receipts are verified with [`verify_receipt`] (the `sentinel-receipt` crate, also used by
//! the gateway and `sentinel receipt verify`).

#![forbid(unsafe_code)]

mod client;
mod decision;
mod error;
mod guard;

/// The generated types and client of `sentinel.v1`.
pub mod proto {
    tonic::include_proto!("sentinel.v1");
}

pub use client::{Client, ClientOptions, TlsOptions};
pub use decision::{DecidedBy, Decision, Reason, State};
pub use error::Error;
pub use guard::GuardRequest;
pub use sentinel_receipt::{
    fetch_jwks, json_to_struct, payload_hash, verify_receipt, verify_receipt_with, Claims,
    Expected, InvalidReceipt, Jwk, Jwks, Options as VerifyOptions, Reason as ReceiptReason,
    ReceiptCache, Verified,
};
