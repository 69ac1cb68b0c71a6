//! The [`Store`] contract every backend keeps, and the values that cross it.

use std::pin::Pin;

use async_trait::async_trait;
use futures::Stream;
use serde::{Deserialize, Serialize};

use super::{Cursor, Filter, Page};
use crate::domain::{DecisionEvent, Intent, IntentId, IntentState, Millis};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The compare-and-set lost: the intent is no longer at the expected version.
    #[error("intent {} changed concurrently; it is now {} at version {}", .current.id, .current.state, .current.version)]
    Conflict { current: Box<Intent> },
    #[error("intent {0} not found")]
    NotFound(IntentId),
    /// The backing service cannot be reached or did not answer in time.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store data corrupt: {0}")]
    Corrupt(String),
}

/// The outcome of creating an intent under an idempotency key.
#[derive(Debug, Clone)]
pub enum Created {
    /// A new intent was stored.
    New(Intent),
    /// The same agent already submitted the same body under this key.
    Replayed(Intent),
    /// The same agent already used this key for a different body.
    KeyConflict { existing: IntentId },
}

/// A watch on one intent or on all of them. Items are `Err` when the watcher fell too far
/// behind to be told every event (it should re-read and re-subscribe) or the store failed.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<DecisionEvent, WatchError>> + Send>>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum WatchError {
    #[error("watcher fell behind and missed {0} events")]
    Lagged(u64),
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

/// One append-only audit record: who or what decided or tried to, through what, when, why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub at: Millis,
    pub intent_id: Option<IntentId>,
    /// `created`, `transition`, `rejected`, `progress`, ...
    pub event: String,
    pub actor: String,
    pub channel: String,
    pub state: Option<IntentState>,
    pub version: Option<u64>,
    pub detail: String,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores a new intent (version 1) in one atomic step, together with its idempotency key
    /// and, when it is pending, its deadline; publishes its first event.
    async fn create(&self, intent: Intent) -> Result<Created, StoreError>;

    /// Looks up an earlier submission under `(agent_id, key)`: lets the pipeline skip paying
    /// for policy and scoring on a replay. `create` remains the authority.
    async fn find_idempotent(
        &self,
        agent_id: &str,
        key: &str,
    ) -> Result<Option<Intent>, StoreError>;

    async fn get(&self, id: &IntentId) -> Result<Option<Intent>, StoreError>;

    /// Newest first, at most `at.limit`, starting after `at.after`.
    async fn list(&self, filter: &Filter, at: Cursor<'_>) -> Result<Page, StoreError>;

    /// How many intents the store holds in `state` (all replicas' intents, decided ones only
    /// while retention keeps them): read from the state's index, never by listing.
    async fn count_in(&self, state: IntentState) -> Result<u64, StoreError>;

    /// Replaces the intent with `next` if it is still at `next.version - 1` and its state may
    /// become `next.state`; publishes the transition and appends it to the audit log.
    /// A lost race is `StoreError::Conflict` carrying the current intent.
    async fn transition(&self, next: Intent) -> Result<Intent, StoreError>;

    /// Publishes a progress line for an intent (no state change) and audits it.
    async fn progress(&self, id: &IntentId, detail: &str) -> Result<(), StoreError>;

    /// The intent's current state first, then every later event. Ends after the terminal event.
    async fn watch(&self, id: &IntentId) -> Result<EventStream, StoreError>;

    /// Every event of every intent from now on. Never ends by itself.
    async fn watch_all(&self) -> Result<EventStream, StoreError>;

    /// Pending intents whose deadline is at or before `now`, oldest first, at most `limit`.
    async fn due(&self, now: Millis, limit: usize) -> Result<Vec<IntentId>, StoreError>;

    /// The earliest pending deadline, if any: lets the expiry loop sleep until then.
    async fn next_deadline(&self) -> Result<Option<Millis>, StoreError>;

    async fn audit(&self, record: AuditRecord) -> Result<(), StoreError>;

    /// Audit records with `since <= at < until`, oldest first.
    async fn audit_range(
        &self,
        since: Millis,
        until: Millis,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError>;

    /// One intent's audit records, oldest first, at most `limit`: the story
    /// `GetIntentHistory` tells. `since` is the intent's creation time: a store may skip
    /// reading what was written well before it (Redis reads from a minute earlier, for
    /// replicas whose clocks differ).
    async fn audit_of(
        &self,
        id: &IntentId,
        since: Millis,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError>;

    /// Cheap liveness check for readiness probes.
    async fn ping(&self) -> Result<(), StoreError>;
}
