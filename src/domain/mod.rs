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
pub use clock::{now_millis, Clock, ManualClock, Millis, Sleep, SystemClock};
pub use event::{slim, DecisionEvent, EventKind};
pub use intent::{
    canonical_json, DecidedBy, DeciderKind, IllegalTransition, Intent, IntentDraft, IntentId,
    Reason, ReasonSource, RiskLevel, RiskScore, ScorerInfo,
};
pub use known::KnownValues;
pub use state::IntentState;
