//! The application service: the decision pipeline and the operator's actions.
//!
//! validate -> idempotency -> policy -> scorer (only when policy left the case open) ->
//! decide -> persist -> publish. Transport-free: the gRPC adapter calls it with a
//! [`Principal`](crate::auth::Principal) and plain inputs, and maps [`GatewayError`] to
//! status codes in one place.
//!
//! `service.rs` holds the [`Gateway`] itself, `error.rs` its errors; `submit.rs` the pipeline,
//! `read.rs` get and list, `resolve.rs` the operator's actions, `watch.rs` the streams,
//! `expiry.rs` the approval deadlines, `history.rs` an intent's story and the numbers at a
//! glance.

pub mod channels;
mod error;
mod expiry;
mod history;
pub mod limits;
mod read;
mod resolve;
mod service;
mod submit;
mod timing;
mod watch;

pub use error::GatewayError;
pub use history::{Glance, GLANCE_SAMPLE, HISTORY_LIMIT};
pub use service::{Gateway, Resolution, Settings};

/// What the transport sees of the store: a list filter, the event stream of a watch and an
/// intent's audit records, named as the gateway hands them out.
pub use crate::store::{
    AuditRecord as HistoryRecord, EventStream as IntentEvents, Filter as IntentFilter, WatchError,
};

use error::parse_id;
use service::counted;

#[cfg(test)]
mod tests;
