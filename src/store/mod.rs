//! Durable state: one [`Store`] trait, two implementations that pass the same contract tests.
//!
//! - [`memory::MemoryStore`]: the embedded default, for `cargo run` with no setup and for tests.
//! - [`redis::RedisStore`]: the production store shared by many replicas.
//!
//! Every state change is a compare-and-set on the intent's `version`: racing deciders produce
//! exactly one winner, and the loser learns the current state. Watches never lose a transition
//! between "read the current state" and "subscribe".

pub mod index;
pub mod memory;
pub mod ratelimit;
pub mod redis;

use std::pin::Pin;

use async_trait::async_trait;
use futures::Stream;
use serde::{Deserialize, Serialize};

use crate::domain::{DecisionEvent, Intent, IntentId, IntentState, Millis};

pub use memory::MemoryStore;

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

/// Which intents a list or a watch covers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Filter {
    pub agent_id: Option<String>,
    pub module: Option<String>,
    pub action: Option<String>,
    /// Empty means all states.
    pub states: Vec<IntentState>,
    pub created_after: Option<Millis>,
    pub created_before: Option<Millis>,
}

impl Filter {
    pub fn matches(&self, intent: &Intent) -> bool {
        self.agent_id.as_ref().is_none_or(|a| *a == intent.agent_id)
            && self.module.as_ref().is_none_or(|m| *m == intent.module)
            && self.action.as_ref().is_none_or(|a| *a == intent.action)
            && (self.states.is_empty() || self.states.contains(&intent.state))
            && self.created_after.is_none_or(|t| intent.created_at >= t)
            && self.created_before.is_none_or(|t| intent.created_at < t)
    }
}

/// Where a page of a listing starts (after this id; newest first) and how many intents it
/// holds at most.
#[derive(Debug, Clone, Copy)]
pub struct Cursor<'a> {
    pub after: Option<&'a IntentId>,
    pub limit: usize,
}

impl Cursor<'_> {
    /// The first page, of at most `limit` intents.
    pub fn first(limit: usize) -> Cursor<'static> {
        Cursor { after: None, limit }
    }

    /// How many ids each shard or bucket offers: the newest overall are among them, and the
    /// one past the page tells whether another page follows.
    pub fn want(self) -> usize {
        self.limit.saturating_add(1)
    }
}

/// The newest `n` of `ids`, newest first, each once. Ids are UUIDv7, so sorting them sorts
/// by creation time.
pub fn newest(mut ids: Vec<IntentId>, n: usize) -> Vec<IntentId> {
    ids.sort_unstable_by(|a, b| b.cmp(a));
    ids.dedup();
    ids.truncate(n);
    ids
}

/// A page of intents, newest first.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub intents: Vec<Intent>,
    /// The id to continue after; `None` on the last page.
    pub next_after: Option<IntentId>,
}

impl Page {
    /// The first `limit` of `matched`, newest first, noting where the next page starts.
    /// Ids are UUIDv7, so sorting them sorts by creation time.
    pub fn newest_first(mut matched: Vec<Intent>, limit: usize) -> Page {
        matched.sort_unstable_by(|a, b| b.id.cmp(&a.id));
        let more = matched.len() > limit;
        matched.truncate(limit);
        let next_after = more.then(|| matched.last().map(|i| i.id.clone())).flatten();
        Page {
            intents: matched,
            next_after,
        }
    }
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
