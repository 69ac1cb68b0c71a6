//! The in-memory store: the zero-setup default.
//!
//! Intents live in hash-sharded maps, so submissions on different intents never wait on one
//! lock. Each intent keeps a lazily created broadcast channel for its watchers; subscribing
//! happens under the same shard lock as reading the current state, so no transition can slip
//! between the two. Deadlines live in one ordered set that only pending intents touch.
//!
//! Each shard also keeps the list indexes of its own intents ([`IndexKey`]: per state and per
//! agent and state, ordered by id) under the same lock as the intents, so an index never
//! disagrees with the record; a listing reads the indexes the filter names in every shard.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::hash::{BuildHasher, Hash, RandomState};
use std::ops::Bound;
use std::sync::{Arc, Mutex};

use crate::sync::lock;

use async_trait::async_trait;
use tokio::sync::broadcast;

use super::index::IndexKey;
use super::{
    newest, AuditRecord, Created, Cursor, EventStream, Filter, Page, Store, StoreError, WatchError,
};
use crate::domain::{
    slim, Channel, Clock, DecisionEvent, Intent, IntentId, IntentState, Millis, SystemClock,
};

const SHARDS: usize = 64;
/// Events buffered per watched intent: a handful of transitions and progress lines.
const INTENT_CHANNEL: usize = 16;
/// Events buffered for `watch_all` subscribers before a slow one is told it lagged.
const ALL_CHANNEL: usize = 8192;
/// Audit records kept in memory (the Redis store keeps a durable stream).
const AUDIT_PER_SHARD: usize = 4096;
/// How long decided intents (and their idempotency keys) are kept by default.
pub const DEFAULT_RETENTION: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
/// A shard sweeps out expired decided intents once every this many creations.
const SWEEP_EVERY: u32 = 1024;

struct Entry {
    intent: Intent,
    watchers: Option<broadcast::Sender<Arc<DecisionEvent>>>,
}

#[derive(Default)]
struct Shard {
    intents: HashMap<IntentId, Entry>,
    /// This shard's list indexes ([`IndexKey`]), newest last: by state, and by agent and
    /// state. Keyed by `&str` lookups, so maintaining them allocates no key.
    by_state: [BTreeSet<IntentId>; STATES],
    by_agent: HashMap<String, [BTreeSet<IntentId>; STATES]>,
    audit: VecDeque<AuditRecord>,
    creations: u32,
}

const STATES: usize = IntentState::ALL.len();

fn slot(state: IntentState) -> usize {
    IntentState::ALL
        .iter()
        .position(|s| *s == state)
        .unwrap_or_default()
}

impl Shard {
    fn set(&self, key: &IndexKey) -> Option<&BTreeSet<IntentId>> {
        match &key.agent {
            None => Some(&self.by_state[slot(key.state)]),
            Some(agent) => self
                .by_agent
                .get(agent.as_str())
                .map(|s| &s[slot(key.state)]),
        }
    }

    fn index_add(&mut self, intent: &Intent) {
        let i = slot(intent.state);
        self.by_state[i].insert(intent.id.clone());
        let sets = match self.by_agent.get_mut(intent.agent_id.as_str()) {
            Some(sets) => sets,
            None => self.by_agent.entry(intent.agent_id.clone()).or_default(),
        };
        sets[i].insert(intent.id.clone());
    }

    /// Removes the intent from its sets and drops an agent's sets once all are empty, so
    /// agents that stop submitting leave nothing behind.
    fn index_remove(&mut self, intent: &Intent) {
        let i = slot(intent.state);
        self.by_state[i].remove(&intent.id);
        if let Some(sets) = self.by_agent.get_mut(intent.agent_id.as_str()) {
            sets[i].remove(&intent.id);
            if sets.iter().all(BTreeSet::is_empty) {
                self.by_agent.remove(intent.agent_id.as_str());
            }
        }
    }

    /// The shard's offer for the page at `at`: up to `at.want()` ids from the union of
    /// `sets`, newest first, that match the parts of `filter` the index does not answer.
    fn newest_ids(&self, sets: &[IndexKey], filter: &Filter, at: Cursor<'_>) -> Vec<IntentId> {
        let upper = at.after.map_or(Bound::Unbounded, Bound::Excluded);
        let want = at.want();
        let check = filter.beyond_index();
        let mut found = Vec::new();
        for set in sets.iter().filter_map(|k| self.set(k)) {
            found.extend(
                set.range((Bound::Unbounded, upper))
                    .rev()
                    .filter(|id| {
                        !check
                            || self
                                .intents
                                .get(*id)
                                .is_some_and(|e| filter.matches(&e.intent))
                    })
                    .take(want)
                    .cloned(),
            );
        }
        newest(found, want)
    }
}

/// `(agent_id, key) -> intent` for idempotency.
type KeyShard = HashMap<(String, String), IntentId>;

struct Inner {
    shards: Vec<Mutex<Shard>>,
    keys: Vec<Mutex<KeyShard>>,
    hasher: RandomState,
    deadlines: Mutex<BTreeSet<(Millis, IntentId)>>,
    /// Events are shared (`Arc`): one allocation per event however many channels hold it.
    all: broadcast::Sender<Arc<DecisionEvent>>,
    retention_ms: Millis,
    /// Stamps events and audit records and decides what retention drops.
    clock: Arc<dyn Clock>,
}

#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::with_retention(DEFAULT_RETENTION)
    }

    /// Decided intents older than `retention` (by decision time) are dropped, with their
    /// idempotency keys, so a long-running embedded gateway does not grow without bound.
    /// Pending intents are never dropped.
    pub fn with_retention(retention: std::time::Duration) -> Self {
        Self::with_clock(retention, SystemClock::shared())
    }

    /// Like [`MemoryStore::with_retention`], reading the time from `clock`.
    pub fn with_clock(retention: std::time::Duration, clock: Arc<dyn Clock>) -> Self {
        let (all, _) = broadcast::channel(ALL_CHANNEL);
        MemoryStore {
            inner: Arc::new(Inner {
                shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
                keys: (0..SHARDS).map(|_| Mutex::new(KeyShard::new())).collect(),
                hasher: RandomState::new(),
                deadlines: Mutex::new(BTreeSet::new()),
                all,
                retention_ms: retention.as_millis().min(i64::MAX as u128) as Millis,
                clock,
            }),
        }
    }
}

impl Inner {
    fn shard_of<K: Hash + ?Sized>(&self, key: &K) -> &Mutex<Shard> {
        &self.shards[self.hasher.hash_one(key) as usize % SHARDS]
    }

    fn key_shard_of(&self, key: &(String, String)) -> &Mutex<KeyShard> {
        &self.keys[self.hasher.hash_one(key) as usize % SHARDS]
    }

    fn publish(&self, entry: &mut Entry, event: DecisionEvent) {
        let event = Arc::new(event);
        if let Some(tx) = &entry.watchers {
            // No receivers is fine: nobody is watching.
            let _ = tx.send(event.clone());
            if event.is_terminal() {
                // Dropping the sender ends every watcher once it has read the terminal event.
                entry.watchers = None;
            }
        }
        let _ = self.all.send(event);
    }

    /// The kept audit records `keep` accepts, oldest first, at most `limit`. Records another
    /// part wrote through `audit` may sit in any shard, so every shard is read.
    fn audit_where(&self, keep: impl Fn(&AuditRecord) -> bool, limit: usize) -> Vec<AuditRecord> {
        let mut out = Vec::new();
        for shard in &self.shards {
            out.extend(lock(shard).audit.iter().filter(|r| keep(r)).cloned());
        }
        // A stable sort keeps a shard's append order for records of the same millisecond.
        out.sort_by_key(|r| r.at);
        out.truncate(limit);
        out
    }

    fn audit_into(shard: &mut Shard, record: AuditRecord) {
        if shard.audit.len() >= AUDIT_PER_SHARD {
            shard.audit.pop_front();
        }
        shard.audit.push_back(record);
    }

    /// Removes decided intents past retention from one shard; returns their idempotency keys,
    /// which the caller removes after releasing the shard (lock order: keys before intents).
    fn sweep(&self, shard: &mut Shard, now: Millis) -> Vec<(String, String)> {
        let cutoff = now.saturating_sub(self.retention_ms);
        let expired: Vec<IntentId> = shard
            .intents
            .values()
            .filter(|e| e.intent.is_terminal() && e.intent.decided_at.is_some_and(|d| d < cutoff))
            .map(|e| e.intent.id.clone())
            .collect();
        let mut keys = Vec::new();
        for id in expired {
            if let Some(e) = shard.intents.remove(&id) {
                shard.index_remove(&e.intent);
                if let Some(k) = e.intent.idempotency_key {
                    keys.push((e.intent.agent_id, k));
                }
            }
        }
        keys
    }

    fn current(&self, id: &IntentId) -> Option<Intent> {
        lock(self.shard_of(id))
            .intents
            .get(id)
            .map(|e| e.intent.clone())
    }

    /// The intent as events carry it, without copying its payload.
    fn current_slim(&self, id: &IntentId) -> Option<Intent> {
        lock(self.shard_of(id))
            .intents
            .get(id)
            .map(|e| slim(&e.intent))
    }
}

/// The audit record of an intent's creation or change; the Redis store writes the same shape.
pub(super) fn record_for(intent: &Intent, event: &str, at: Millis) -> AuditRecord {
    let (actor, channel) = match &intent.decided_by {
        Some(by) if intent.is_terminal() => (
            if by.approver.is_empty() {
                by.kind.as_str().to_string()
            } else {
                by.approver.clone()
            },
            by.channel.as_str().to_string(),
        ),
        _ => (intent.agent_id.clone(), Channel::Grpc.as_str().to_string()),
    };
    AuditRecord {
        at,
        intent_id: Some(intent.id.clone()),
        event: event.to_string(),
        actor,
        channel,
        state: Some(intent.state),
        version: Some(intent.version),
        detail: intent.decision_reason.clone(),
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn create(&self, intent: Intent) -> Result<Created, StoreError> {
        let inner = &self.inner;
        let key = intent
            .idempotency_key
            .clone()
            .map(|k| (intent.agent_id.clone(), k));
        // Lock order: a key shard, then an intent shard, never the reverse. The key shard is
        // held until the intent is stored, so a racing submission with the same key either
        // finds nothing (and waits) or finds the complete intent.
        let mut keys = key.as_ref().map(|k| lock(inner.key_shard_of(k)));
        if let (Some(keys), Some(k)) = (keys.as_mut(), key.as_ref()) {
            // A key whose intent was swept out by retention is free again.
            if let Some(existing) = keys.get(k).and_then(|id| inner.current(id)) {
                return Ok(if existing.body_hash == intent.body_hash {
                    Created::Replayed(existing)
                } else {
                    Created::KeyConflict {
                        existing: existing.id,
                    }
                });
            }
            keys.insert(k.clone(), intent.id.clone());
        }
        let now = inner.clock.now();
        if let (false, Some(deadline)) = (intent.is_terminal(), intent.expires_at) {
            lock(&inner.deadlines).insert((deadline, intent.id.clone()));
        }
        let mut shard = lock(inner.shard_of(&intent.id));
        Inner::audit_into(&mut shard, record_for(&intent, "created", now));
        let mut entry = Entry {
            intent: intent.clone(),
            watchers: None,
        };
        inner.publish(&mut entry, DecisionEvent::transition(&intent, now));
        shard.index_add(&intent);
        shard.intents.insert(intent.id.clone(), entry);
        shard.creations = shard.creations.wrapping_add(1);
        let swept = if shard.creations.is_multiple_of(SWEEP_EVERY) {
            inner.sweep(&mut shard, now)
        } else {
            Vec::new()
        };
        drop(shard);
        drop(keys);
        for k in swept {
            let mut keys = lock(inner.key_shard_of(&k));
            // Only if it still points at a swept intent (not a newer one).
            if keys.get(&k).is_some_and(|id| inner.current(id).is_none()) {
                keys.remove(&k);
            }
        }
        Ok(Created::New(intent))
    }

    async fn find_idempotent(
        &self,
        agent_id: &str,
        key: &str,
    ) -> Result<Option<Intent>, StoreError> {
        let k = (agent_id.to_string(), key.to_string());
        let id = lock(self.inner.key_shard_of(&k)).get(&k).cloned();
        Ok(id.and_then(|id| self.inner.current(&id)))
    }

    async fn get(&self, id: &IntentId) -> Result<Option<Intent>, StoreError> {
        Ok(self.inner.current(id))
    }

    async fn list(&self, filter: &Filter, at: Cursor<'_>) -> Result<Page, StoreError> {
        // Only the page's intents are copied.
        let sets = IndexKey::for_filter(filter).unwrap_or_else(|| {
            IntentState::ALL
                .into_iter()
                .map(|state| IndexKey { agent: None, state })
                .collect()
        });
        let mut ids: Vec<IntentId> = Vec::new();
        for shard in &self.inner.shards {
            ids.extend(lock(shard).newest_ids(&sets, filter, at));
        }
        // An intent swept out by retention between the two steps is simply not listed.
        let matched = newest(ids, at.want())
            .iter()
            .filter_map(|id| self.inner.current(id))
            .collect();
        Ok(Page::newest_first(matched, at.limit))
    }

    async fn count_in(&self, state: IntentState) -> Result<u64, StoreError> {
        let i = slot(state);
        Ok(self
            .inner
            .shards
            .iter()
            .map(|shard| lock(shard).by_state[i].len() as u64)
            .sum())
    }

    async fn transition(&self, next: Intent) -> Result<Intent, StoreError> {
        let inner = &self.inner;
        let now = inner.clock.now();
        let mut shard = lock(inner.shard_of(&next.id));
        let entry = shard
            .intents
            .get_mut(&next.id)
            .ok_or_else(|| StoreError::NotFound(next.id.clone()))?;
        let current = &entry.intent;
        // Past its deadline a pending intent can only expire, whoever decides and whenever the
        // expiry loop gets to it.
        let overdue = current.state == IntentState::PendingApproval
            && next.state != IntentState::Expired
            && current.expires_at.is_some_and(|d| d <= now);
        if overdue || current.version + 1 != next.version || !current.state.can_become(next.state) {
            let current = Box::new(current.clone());
            let mut rejected = record_for(&next, "rejected", now);
            rejected.detail = format!(
                "lost race: wanted {} from version {}, found {} at version {}",
                next.state,
                next.version.saturating_sub(1),
                current.state,
                current.version
            );
            Inner::audit_into(&mut shard, rejected);
            return Err(StoreError::Conflict { current });
        }
        let previous_deadline = current.expires_at;
        let previous = std::mem::replace(&mut entry.intent, next.clone());
        inner.publish(entry, DecisionEvent::transition(&next, now));
        if previous.state != next.state {
            shard.index_remove(&previous);
            shard.index_add(&next);
        }
        Inner::audit_into(&mut shard, record_for(&next, "transition", now));
        // Still under the shard lock (order: shard, then deadlines; nothing takes them the
        // other way round), so racing transitions cannot leave a stale deadline behind.
        if previous_deadline != next.expires_at || next.is_terminal() {
            let mut deadlines = lock(&inner.deadlines);
            if let Some(d) = previous_deadline {
                deadlines.remove(&(d, next.id.clone()));
            }
            if let (false, Some(d)) = (next.is_terminal(), next.expires_at) {
                deadlines.insert((d, next.id.clone()));
            }
        }
        drop(shard);
        Ok(next)
    }

    async fn progress(&self, id: &IntentId, detail: &str) -> Result<(), StoreError> {
        let inner = &self.inner;
        let now = inner.clock.now();
        let mut shard = lock(inner.shard_of(id));
        let entry = shard
            .intents
            .get_mut(id)
            .ok_or_else(|| StoreError::NotFound(id.clone()))?;
        let event = DecisionEvent::progress(&entry.intent, detail, now);
        let mut record = record_for(&entry.intent, "progress", now);
        record.detail = detail.to_string();
        inner.publish(entry, event);
        Inner::audit_into(&mut shard, record);
        Ok(())
    }

    async fn watch(&self, id: &IntentId) -> Result<EventStream, StoreError> {
        let inner = self.inner.clone();
        let (snapshot, rx) = {
            let mut shard = lock(inner.shard_of(id));
            let entry = shard
                .intents
                .get_mut(id)
                .ok_or_else(|| StoreError::NotFound(id.clone()))?;
            let rx = (!entry.intent.is_terminal()).then(|| {
                entry
                    .watchers
                    .get_or_insert_with(|| broadcast::channel(INTENT_CHANNEL).0)
                    .subscribe()
            });
            (slim(&entry.intent), rx)
        };
        let id = id.clone();
        Ok(Box::pin(async_stream::stream! {
            let mut seen = snapshot.version;
            yield Ok(DecisionEvent::snapshot(&snapshot, inner.clock.now()));
            let Some(mut rx) = rx else { return };
            loop {
                match rx.recv().await {
                    Ok(event) => {
                        if event.version() < seen {
                            continue;
                        }
                        seen = event.version();
                        let terminal = event.is_terminal();
                        yield Ok(Arc::unwrap_or_clone(event));
                        if terminal {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // Missed some events: the current state is what matters; send it.
                        let Some(current) = inner.current_slim(&id) else { return };
                        if current.version > seen {
                            seen = current.version;
                            let terminal = current.is_terminal();
                            yield Ok(DecisionEvent::snapshot(&current, inner.clock.now()));
                            if terminal {
                                return;
                            }
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        // The sender is dropped after the terminal event was sent and read; if we
                        // got here without it, tell the final state from the record.
                        if let Some(current) = inner.current_slim(&id) {
                            if current.version > seen {
                                yield Ok(DecisionEvent::snapshot(&current, inner.clock.now()));
                            }
                        }
                        return;
                    }
                }
            }
        }))
    }

    async fn watch_all(&self) -> Result<EventStream, StoreError> {
        let mut rx = self.inner.all.subscribe();
        Ok(Box::pin(async_stream::stream! {
            loop {
                match rx.recv().await {
                    Ok(event) => yield Ok(Arc::unwrap_or_clone(event)),
                    Err(broadcast::error::RecvError::Lagged(n)) => yield Err(WatchError::Lagged(n)),
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        }))
    }

    async fn due(&self, now: Millis, limit: usize) -> Result<Vec<IntentId>, StoreError> {
        let deadlines = lock(&self.inner.deadlines);
        Ok(deadlines
            .iter()
            .take_while(|(d, _)| *d <= now)
            .take(limit)
            .map(|(_, id)| id.clone())
            .collect())
    }

    async fn next_deadline(&self) -> Result<Option<Millis>, StoreError> {
        Ok(lock(&self.inner.deadlines).first().map(|(d, _)| *d))
    }

    async fn audit(&self, record: AuditRecord) -> Result<(), StoreError> {
        let key = record
            .intent_id
            .as_ref()
            .map(|i| i.as_str().to_string())
            .unwrap_or_default();
        Inner::audit_into(&mut lock(self.inner.shard_of(&key)), record);
        Ok(())
    }

    async fn audit_range(
        &self,
        since: Millis,
        until: Millis,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        Ok(self
            .inner
            .audit_where(|r| r.at >= since && r.at < until, limit))
    }

    async fn audit_of(
        &self,
        id: &IntentId,
        _since: Millis,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        Ok(self
            .inner
            .audit_where(|r| r.intent_id.as_ref() == Some(id), limit))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
