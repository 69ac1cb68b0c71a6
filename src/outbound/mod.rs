//! The one way out to the network: every outbound call (the LLM scorer and its prompt-attack
//! classifier, the Telnyx API, Redis) runs under the same policy: one overall deadline,
//! retries with exponential backoff and jitter (on `backon`), a server's `Retry-After`
//! honoured only while it fits, and a consecutive-failure circuit breaker for the callers that
//! want one.
//!
//! It sits below every client that uses it and imports nothing of the crate, so `scoring`,
//! `escalation` and `store` can all share it without a dependency pointing upward.

mod breaker;
mod retry;

pub use breaker::{Breaker, Permit};
pub use retry::{retry_after, Failure, GaveUp, RetryPolicy, MAX_RETRY_AFTER};
