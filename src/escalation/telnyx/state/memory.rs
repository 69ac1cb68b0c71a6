//! The embedded [`TelnyxState`]: one process, entries expire by TTL on the injected clock
//! (the gateway's), so a test that moves a manual clock moves claims and expiries too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::{millis, Ladder, StateResult, TelnyxState, Watchdog};
use crate::domain::{Clock, IntentId, Millis, SystemClock};

/// How long the in-memory state keeps an expired, unreleased claim listed.
const CLAIM_KEEP: Duration = Duration::from_secs(24 * 3600);

/// The embedded implementation: one process, entries expire by TTL.
pub struct MemoryState {
    inner: Mutex<Maps>,
    clock: Arc<dyn Clock>,
    /// Code look-ups that fail before the next one succeeds: a test's stand-in for an
    /// unreachable shared state.
    #[cfg(test)]
    failing_code_lookups: std::sync::atomic::AtomicU32,
}

impl Default for MemoryState {
    fn default() -> Self {
        Self::with_clock(SystemClock::shared())
    }
}

#[derive(Default)]
struct Maps {
    /// Event id -> (body while unprocessed, expiry).
    deliveries: HashMap<String, (Option<Vec<u8>>, Millis)>,
    /// Intent -> (owner, expiry); an expired claim stays listed until released or taken.
    claims: HashMap<IntentId, (String, Millis)>,
    /// Watchdog -> due time (ms since the epoch).
    watchdogs: HashMap<Watchdog, Millis>,
    ladders: HashMap<IntentId, (Ladder, Millis)>,
    calls: HashMap<String, (IntentId, Millis)>,
    codes: HashMap<String, (IntentId, Millis)>,
    texted: HashMap<String, Vec<(IntentId, Millis)>>,
    writes: u64,
}

impl Maps {
    /// Drops expired entries every so often so the maps stay bounded by what is live.
    fn sweep(&mut self, now: Millis) {
        self.writes += 1;
        if !self.writes.is_multiple_of(256) {
            return;
        }
        self.deliveries.retain(|_, (_, t)| *t > now);
        // Expired claims are kept (a takeover lists them) until a day has passed.
        self.claims
            .retain(|_, (_, t)| t.saturating_add(millis(CLAIM_KEEP)) > now);
        self.ladders.retain(|_, (_, t)| *t > now);
        self.calls.retain(|_, (_, t)| *t > now);
        self.codes.retain(|_, (_, t)| *t > now);
        for list in self.texted.values_mut() {
            list.retain(|(_, t)| *t > now);
        }
        self.texted.retain(|_, list| !list.is_empty());
    }
}

impl MemoryState {
    pub fn new() -> Self {
        Self::default()
    }

    /// A state whose entries expire on `clock`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        MemoryState {
            inner: Mutex::default(),
            clock,
            #[cfg(test)]
            failing_code_lookups: Default::default(),
        }
    }

    /// Makes the next `n` code look-ups fail as an unreachable state would.
    #[cfg(test)]
    pub(crate) fn fail_code_lookups(&self, n: u32) {
        use std::sync::atomic::Ordering;
        self.failing_code_lookups.store(n, Ordering::SeqCst);
    }

    fn maps(&self) -> std::sync::MutexGuard<'_, Maps> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current time and the time `ttl` from now.
    fn now_and_expiry(&self, ttl: Duration) -> (Millis, Millis) {
        let now = self.clock.now();
        (now, now.saturating_add(millis(ttl)))
    }

    /// The value of an entry that has not expired.
    fn live<T: Clone>(&self, entry: Option<&(T, Millis)>) -> Option<T> {
        let now = self.clock.now();
        entry.filter(|(_, t)| *t > now).map(|(v, _)| v.clone())
    }
}

/// Stores `entry` (a value and its expiry) under `key` unless a live entry is there; `true`
/// when it did.
fn first_wins<K: Eq + std::hash::Hash, V>(
    map: &mut HashMap<K, (V, Millis)>,
    key: K,
    entry: (V, Millis),
    now: Millis,
) -> bool {
    if map.get(&key).is_some_and(|(_, t)| *t > now) {
        return false;
    }
    map.insert(key, entry);
    true
}

#[async_trait]
impl TelnyxState for MemoryState {
    async fn first_delivery(
        &self,
        event_id: &str,
        body: &[u8],
        ttl: Duration,
    ) -> StateResult<bool> {
        let (now, expiry) = self.now_and_expiry(ttl);
        let mut m = self.maps();
        m.sweep(now);
        let entry = (Some(body.to_vec()), expiry);
        Ok(first_wins(
            &mut m.deliveries,
            event_id.to_string(),
            entry,
            now,
        ))
    }

    async fn settle_delivery(&self, event_id: &str, processed: bool) -> StateResult<()> {
        let mut m = self.maps();
        if processed {
            if let Some((body, _)) = m.deliveries.get_mut(event_id) {
                *body = None;
            }
        } else {
            m.deliveries.remove(event_id);
        }
        Ok(())
    }

    async fn claim(&self, intent: &IntentId, owner: &str, ttl: Duration) -> StateResult<bool> {
        let (now, until) = self.now_and_expiry(ttl);
        let mut m = self.maps();
        m.sweep(now);
        let entry = (owner.to_string(), until);
        Ok(first_wins(&mut m.claims, intent.clone(), entry, now))
    }

    async fn renew_claim(
        &self,
        intent: &IntentId,
        owner: &str,
        ttl: Duration,
    ) -> StateResult<bool> {
        let (now, until) = self.now_and_expiry(ttl);
        match self.maps().claims.get_mut(intent) {
            Some((held_by, t)) if *t > now && held_by == owner => {
                *t = until;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn expired_claims(&self, now: Millis, limit: usize) -> StateResult<Vec<IntentId>> {
        Ok(self
            .maps()
            .claims
            .iter()
            .filter(|(_, (_, t))| *t <= now)
            .map(|(i, _)| i.clone())
            .take(limit)
            .collect())
    }

    async fn release_claim(&self, intent: &IntentId) -> StateResult<()> {
        self.maps().claims.remove(intent);
        Ok(())
    }

    async fn arm_watchdog(&self, watchdog: &Watchdog, due: Millis) -> StateResult<()> {
        let mut m = self.maps();
        let at = m.watchdogs.entry(watchdog.clone()).or_insert(due);
        *at = (*at).min(due);
        Ok(())
    }

    async fn due_watchdogs(
        &self,
        now: Millis,
        lease: Duration,
        limit: usize,
    ) -> StateResult<Vec<Watchdog>> {
        let until = now.saturating_add(millis(lease));
        let mut m = self.maps();
        let mut due: Vec<(Millis, Watchdog)> = m
            .watchdogs
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(w, at)| (*at, w.clone()))
            .collect();
        due.sort_by_key(|(at, _)| *at);
        due.truncate(limit);
        for (_, w) in &due {
            m.watchdogs.insert(w.clone(), until);
        }
        Ok(due.into_iter().map(|(_, w)| w).collect())
    }

    async fn disarm_watchdog(&self, watchdog: &Watchdog) -> StateResult<()> {
        self.maps().watchdogs.remove(watchdog);
        Ok(())
    }

    async fn load(&self, intent: &IntentId) -> StateResult<Option<Ladder>> {
        Ok(self.live(self.maps().ladders.get(intent)))
    }

    async fn save(&self, ladder: &Ladder, ttl: Duration) -> StateResult<bool> {
        let (now, expiry) = self.now_and_expiry(ttl);
        let mut m = self.maps();
        m.sweep(now);
        let current = self
            .live(m.ladders.get(&ladder.intent_id))
            .map(|l| l.version);
        let expected = ladder.version.checked_sub(1).filter(|v| *v > 0);
        if current != expected {
            return Ok(false);
        }
        m.ladders
            .insert(ladder.intent_id.clone(), (ladder.clone(), expiry));
        Ok(true)
    }

    async fn index_call(
        &self,
        call_control_id: &str,
        intent: &IntentId,
        ttl: Duration,
    ) -> StateResult<()> {
        let (_, expiry) = self.now_and_expiry(ttl);
        self.maps()
            .calls
            .insert(call_control_id.to_string(), (intent.clone(), expiry));
        Ok(())
    }

    async fn call_intent(&self, call_control_id: &str) -> StateResult<Option<IntentId>> {
        Ok(self.live(self.maps().calls.get(call_control_id)))
    }

    async fn index_code(&self, code: &str, intent: &IntentId, ttl: Duration) -> StateResult<bool> {
        let (now, expiry) = self.now_and_expiry(ttl);
        let entry = (intent.clone(), expiry);
        Ok(first_wins(
            &mut self.maps().codes,
            code.to_string(),
            entry,
            now,
        ))
    }

    async fn code_intent(&self, code: &str) -> StateResult<Option<IntentId>> {
        #[cfg(test)]
        {
            use std::sync::atomic::Ordering;
            let failing = &self.failing_code_lookups;
            if failing
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(super::StateError::Unavailable("injected".into()));
            }
        }
        Ok(self.live(self.maps().codes.get(code)))
    }

    async fn drop_code(&self, code: &str) -> StateResult<()> {
        self.maps().codes.remove(code);
        Ok(())
    }

    async fn note_texted(&self, phone: &str, intent: &IntentId, ttl: Duration) -> StateResult<()> {
        let (now, expiry) = self.now_and_expiry(ttl);
        let mut m = self.maps();
        m.sweep(now);
        let list = m.texted.entry(phone.to_string()).or_default();
        list.retain(|(i, _)| i != intent);
        list.push((intent.clone(), expiry));
        Ok(())
    }

    async fn texted_intents(&self, phone: &str) -> StateResult<Vec<IntentId>> {
        let now = self.clock.now();
        Ok(self
            .maps()
            .texted
            .get(phone)
            .map(|list| {
                list.iter()
                    .filter(|(_, t)| *t > now)
                    .map(|(i, _)| i.clone())
                    .collect()
            })
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ladder(version: u64) -> Ladder {
        let id = IntentId::parse("0190f2d2-0000-7000-8000-000000000001").unwrap();
        let mut ladder = crate::escalation::telnyx::ladder::new(id, vec![], false);
        ladder.version = version;
        ladder
    }

    #[tokio::test]
    async fn saves_are_compare_and_set() {
        let s = MemoryState::new();
        let ttl = Duration::from_secs(60);
        assert!(
            !s.save(&ladder(2), ttl).await.unwrap(),
            "nothing to follow yet"
        );
        assert!(s.save(&ladder(1), ttl).await.unwrap());
        assert!(
            !s.save(&ladder(1), ttl).await.unwrap(),
            "create twice loses"
        );
        assert!(s.save(&ladder(2), ttl).await.unwrap());
        assert!(
            !s.save(&ladder(2), ttl).await.unwrap(),
            "same version twice loses"
        );
    }

    #[tokio::test]
    async fn deliveries_and_claims_are_first_wins() {
        let s = MemoryState::new();
        let ttl = Duration::from_secs(60);
        assert!(s.first_delivery("e1", b"{}", ttl).await.unwrap());
        assert!(!s.first_delivery("e1", b"{}", ttl).await.unwrap());
        // A delivery that was not processed is forgotten: the redelivery counts.
        s.settle_delivery("e1", false).await.unwrap();
        assert!(s.first_delivery("e1", b"{}", ttl).await.unwrap());
        s.settle_delivery("e1", true).await.unwrap();
        assert!(!s.first_delivery("e1", b"{}", ttl).await.unwrap());
        let id = IntentId::generate();
        assert!(s.claim(&id, "r1", ttl).await.unwrap());
        assert!(!s.claim(&id, "r1", ttl).await.unwrap());
        assert!(!s.claim(&id, "r2", ttl).await.unwrap());
    }

    #[tokio::test]
    async fn claims_lapse_when_the_clock_passes_them() {
        let clock = Arc::new(crate::domain::ManualClock::new(1_000));
        let s = MemoryState::with_clock(clock.clone());
        let id = IntentId::generate();
        let ttl = Duration::from_secs(15);
        assert!(s.claim(&id, "r1", ttl).await.unwrap());
        assert!(s.expired_claims(clock.now(), 10).await.unwrap().is_empty());
        clock.advance(ttl);
        let lapsed = s.expired_claims(clock.now(), 10).await.unwrap();
        assert_eq!(lapsed, std::slice::from_ref(&id));
        assert!(!s.renew_claim(&id, "r1", ttl).await.unwrap(), "lapsed");
        assert!(s.claim(&id, "r2", ttl).await.unwrap(), "taken over");
    }
}
