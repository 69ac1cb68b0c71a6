//! Escalation state that must be shared by every replica: the ladder of each pending intent
//! (its calls and SMS code), the call and code indexes, and the webhook dedupe set.
//!
//! One record per intent, replaced with a compare-and-set on its `version`, so two replicas
//! handling webhooks of the same call cannot both act on the same step. Two implementations
//! pass the same contract suite: [`memory::MemoryState`] (the embedded default) and
//! [`redis::RedisTelnyxState`] (shared by every replica on one Redis, docs/telnyx.md).
mod contract;
pub mod memory;
mod model;
pub mod redis;

pub use contract::{StateError, StateResult, TelnyxState};
pub use memory::MemoryState;
pub use model::{millis, Amd, Call, Ladder, Mode, Stage, Watchdog, WatchdogKind};
