//! The [`TelnyxState`] contract both implementations keep.

use std::time::Duration;

use async_trait::async_trait;

use super::{Ladder, Watchdog};
use crate::domain::{IntentId, Millis};

/// What every [`TelnyxState`] call answers.
pub type StateResult<T> = Result<T, StateError>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("escalation state unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait TelnyxState: Send + Sync + 'static {
    /// Records a verified webhook delivery and keeps its body until it is settled; `false`
    /// when `event_id` was seen within `ttl`.
    async fn first_delivery(&self, event_id: &str, body: &[u8], ttl: Duration)
        -> StateResult<bool>;

    /// Ends a delivery. `processed`: its id stays seen (a redelivery is a duplicate) and the
    /// body is dropped. Not processed (nothing was changed): the id is forgotten so Telnyx's
    /// redelivery is processed.
    async fn settle_delivery(&self, event_id: &str, processed: bool) -> StateResult<()>;

    /// Makes `owner` (a replica) the one that escalates `intent` for `ttl`; `false` when a
    /// live claim exists, even `owner`'s own (so one replica never starts an intent twice).
    /// A claim whose `ttl` passed without renewal can be taken this way by exactly one caller.
    async fn claim(&self, intent: &IntentId, owner: &str, ttl: Duration) -> StateResult<bool>;

    /// Extends `owner`'s claim by `ttl`; `false` when the claim expired or is someone else's.
    async fn renew_claim(&self, intent: &IntentId, owner: &str, ttl: Duration)
        -> StateResult<bool>;

    /// Intents whose claim was not renewed in time (by `now`): candidates for a takeover.
    async fn expired_claims(&self, now: Millis, limit: usize) -> StateResult<Vec<IntentId>>;

    /// The escalation is over: the claim and its index entry go.
    async fn release_claim(&self, intent: &IntentId) -> StateResult<()>;

    /// Schedules `watchdog` at `due`; an entry already armed earlier keeps its earlier time.
    async fn arm_watchdog(&self, watchdog: &Watchdog, due: Millis) -> StateResult<()>;

    /// Watchdogs due by `now`, each leased to this caller: no other caller gets it again until
    /// `lease` passes, so a watchdog fires once unless its firer dies before disarming it.
    async fn due_watchdogs(
        &self,
        now: Millis,
        lease: Duration,
        limit: usize,
    ) -> StateResult<Vec<Watchdog>>;

    async fn disarm_watchdog(&self, watchdog: &Watchdog) -> StateResult<()>;

    async fn load(&self, intent: &IntentId) -> StateResult<Option<Ladder>>;

    /// Stores `ladder` if the stored one is at `ladder.version - 1` (or absent when
    /// `ladder.version == 1`); `false` when it lost a race.
    async fn save(&self, ladder: &Ladder, ttl: Duration) -> StateResult<bool>;

    async fn index_call(
        &self,
        call_control_id: &str,
        intent: &IntentId,
        ttl: Duration,
    ) -> StateResult<()>;
    async fn call_intent(&self, call_control_id: &str) -> StateResult<Option<IntentId>>;

    /// Reserves an SMS code for `intent`; `false` when the code is taken.
    async fn index_code(&self, code: &str, intent: &IntentId, ttl: Duration) -> StateResult<bool>;
    async fn code_intent(&self, code: &str) -> StateResult<Option<IntentId>>;
    async fn drop_code(&self, code: &str) -> StateResult<()>;

    /// Notes that `phone` was texted the code of `intent`: a wrong code from that number
    /// counts against the intents it was texted about.
    async fn note_texted(&self, phone: &str, intent: &IntentId, ttl: Duration) -> StateResult<()>;
    async fn texted_intents(&self, phone: &str) -> StateResult<Vec<IntentId>>;
}
