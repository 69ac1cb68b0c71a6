//! The label values of the metrics, as enums with fixed positions so recording can index
//! handle arrays instead of hashing label sets.

use crate::domain::{DeciderKind, IntentState};

pub(super) const DECIDERS: [(Option<DeciderKind>, &str); 7] = [
    (None, "none"),
    (Some(DeciderKind::Policy), "policy"),
    (Some(DeciderKind::Scorer), "scorer"),
    (Some(DeciderKind::Human), "human"),
    (Some(DeciderKind::Timeout), "timeout"),
    (Some(DeciderKind::Agent), "agent"),
    (Some(DeciderKind::System), "system"),
];

/// The position of a decider kind in [`DECIDERS`] (`none` for an unknown one).
pub(super) fn decider_slot(decider: Option<DeciderKind>) -> usize {
    DECIDERS
        .iter()
        .position(|(k, _)| *k == decider)
        .unwrap_or_default()
}

/// A store operation the gateway makes (`op` label of `sentinel_store_op_duration_seconds`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOp {
    Create,
    FindIdempotent,
    Get,
    List,
    CountIn,
    Transition,
    Progress,
    Watch,
    WatchAll,
    Due,
    NextDeadline,
    Audit,
    AuditOf,
    Ping,
}

impl StoreOp {
    pub(super) const COUNT: usize = StoreOp::Ping as usize + 1;

    pub fn as_str(self) -> &'static str {
        match self {
            StoreOp::Create => "create",
            StoreOp::FindIdempotent => "find_idempotent",
            StoreOp::Get => "get",
            StoreOp::List => "list",
            StoreOp::CountIn => "count_in",
            StoreOp::Transition => "transition",
            StoreOp::Progress => "progress",
            StoreOp::Watch => "watch",
            StoreOp::WatchAll => "watch_all",
            StoreOp::Due => "due",
            StoreOp::NextDeadline => "next_deadline",
            StoreOp::Audit => "audit",
            StoreOp::AuditOf => "audit_of",
            StoreOp::Ping => "ping",
        }
    }
}

/// Labels of the counters touched at webhook and escalation rates, in call order.
pub(super) type Labels = Vec<(&'static str, String)>;
/// A single label, e.g. `{op="create"}`.
pub(super) type One = [(&'static str, &'static str); 1];
pub(super) type Two = [(&'static str, &'static str); 2];

/// The position of a (state, decider) pair in the `sentinel_intents_total` handles.
pub(super) fn intent_slot(state: IntentState, decider: Option<DeciderKind>) -> usize {
    let s = IntentState::ALL
        .iter()
        .position(|x| *x == state)
        .unwrap_or_default();
    s * DECIDERS.len() + decider_slot(decider)
}

/// A listener whose connections are counted (`listener` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Grpc,
    Http,
}

impl Listener {
    pub(super) const ALL: [Listener; 2] = [Listener::Grpc, Listener::Http];

    pub fn as_str(self) -> &'static str {
        match self {
            Listener::Grpc => "grpc",
            Listener::Http => "http",
        }
    }
}

/// Why the connection limits closed a connection (`reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A new connection found every slot held by connections that had sent a request.
    Full,
    /// A connection that had not yet sent a complete request was closed to make room.
    Evicted,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Full => "full",
            Refusal::Evicted => "evicted",
        }
    }
}
