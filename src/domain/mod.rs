//! The domain: intents, their state machine, decisions and reasons.
//!
//! Pure data and rules; no I/O. Nothing here knows about tonic, Redis, reqwest or axum:
//! adapters convert at the edges.

mod channel;
mod clock;
mod event;
mod intent;
mod known;
mod state;
pub mod validate;

pub use channel::Channel;
pub use clock::{Clock, ManualClock, Sleep, SystemClock};
pub use event::{slim, DecisionEvent, EventKind};
pub use intent::{
    canonical_json, DecidedBy, DeciderKind, IllegalTransition, Intent, IntentDraft, IntentId,
    Reason, ReasonSource, RiskLevel, RiskScore, ScorerInfo,
};
pub use known::KnownValues;
pub use state::IntentState;

/// Milliseconds since the Unix epoch: the one clock representation stored and compared.
pub type Millis = i64;

/// The wall time. Code on a path a test wants to control takes a [`Clock`] instead.
pub fn now_millis() -> Millis {
    chrono::Utc::now().timestamp_millis()
}
