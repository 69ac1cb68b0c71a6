//! The embedded [`TelnyxState`]: one process, entries expire by TTL.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{millis, Ladder, StateError, TelnyxState, Watchdog};
use crate::domain::{now_millis, IntentId, Millis};

/// How long the in-memory state keeps an expired, unreleased claim listed.
const CLAIM_KEEP: Duration = Duration::from_secs(24 * 3600);

/// The embedded implementation: one process, entries expire by TTL.
#[derive(Default)]
pub struct MemoryState {
    inner: Mutex<Maps>,
}

#[derive(Default)]
struct Maps {
    /// Event id -> (body while unprocessed, expiry).
    deliveries: HashMap<String, (Option<Vec<u8>>, Instant)>,
    /// Intent -> (owner, expiry); an expired claim stays listed until released or taken.
    claims: HashMap<IntentId, (String, Millis)>,
    /// Watchdog -> due time (ms since the epoch).
    watchdogs: HashMap<Watchdog, Millis>,
    ladders: HashMap<IntentId, (Ladder, Instant)>,
    calls: HashMap<String, (IntentId, Instant)>,
    codes: HashMap<String, (IntentId, Instant)>,
    texted: HashMap<String, Vec<(IntentId, Instant)>>,
    writes: u64,
}

impl Maps {
    /// Drops expired entries every so often so the maps stay bounded by what is live.
    fn sweep(&mut self) {
        self.writes += 1;
        if !self.writes.is_multiple_of(256) {
            return;
        }
        let now = Instant::now();
        self.deliveries.retain(|_, (_, t)| *t > now);
        // Expired claims are kept (a takeover lists them) until a day has passed.
        let wall = now_millis();
        self.claims
            .retain(|_, (_, t)| t.saturating_add(millis(CLAIM_KEEP)) > wall);
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

    fn maps(&self) -> std::sync::MutexGuard<'_, Maps> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn live<T: Clone>(entry: Option<&(T, Instant)>) -> Option<T> {
    entry
        .filter(|(_, t)| *t > Instant::now())
        .map(|(v, _)| v.clone())
}

#[async_trait]
impl TelnyxState for MemoryState {
    async fn first_delivery(
        &self,
        event_id: &str,
        body: &[u8],
        ttl: Duration,
    ) -> Result<bool, StateError> {
        let mut m = self.maps();
        m.sweep();
        let now = Instant::now();
        match m.deliveries.get(event_id) {
            Some((_, t)) if *t > now => Ok(false),
            _ => {
                m.deliveries
                    .insert(event_id.to_string(), (Some(body.to_vec()), now + ttl));
                Ok(true)
            }
        }
    }

    async fn settle_delivery(&self, event_id: &str, processed: bool) -> Result<(), StateError> {
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

    async fn claim(
        &self,
        intent: &IntentId,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, StateError> {
        let mut m = self.maps();
        m.sweep();
        let now = now_millis();
        match m.claims.get(intent) {
            Some((_, t)) if *t > now => Ok(false),
            _ => {
                let until = now.saturating_add(millis(ttl));
                m.claims.insert(intent.clone(), (owner.to_string(), until));
                Ok(true)
            }
        }
    }

    async fn renew_claim(
        &self,
        intent: &IntentId,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, StateError> {
        let mut m = self.maps();
        let now = now_millis();
        match m.claims.get_mut(intent) {
            Some((held_by, t)) if *t > now && held_by == owner => {
                *t = now.saturating_add(millis(ttl));
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn expired_claims(&self, now: Millis, limit: usize) -> Result<Vec<IntentId>, StateError> {
        Ok(self
            .maps()
            .claims
            .iter()
            .filter(|(_, (_, t))| *t <= now)
            .map(|(i, _)| i.clone())
            .take(limit)
            .collect())
    }

    async fn release_claim(&self, intent: &IntentId) -> Result<(), StateError> {
        self.maps().claims.remove(intent);
        Ok(())
    }

    async fn arm_watchdog(&self, watchdog: &Watchdog, due: Millis) -> Result<(), StateError> {
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
    ) -> Result<Vec<Watchdog>, StateError> {
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

    async fn disarm_watchdog(&self, watchdog: &Watchdog) -> Result<(), StateError> {
        self.maps().watchdogs.remove(watchdog);
        Ok(())
    }

    async fn load(&self, intent: &IntentId) -> Result<Option<Ladder>, StateError> {
        Ok(live(self.maps().ladders.get(intent)))
    }

    async fn save(&self, ladder: &Ladder, ttl: Duration) -> Result<bool, StateError> {
        let mut m = self.maps();
        m.sweep();
        let current = live(m.ladders.get(&ladder.intent_id)).map(|l| l.version);
        let expected = ladder.version.checked_sub(1).filter(|v| *v > 0);
        if current != expected {
            return Ok(false);
        }
        m.ladders.insert(
            ladder.intent_id.clone(),
            (ladder.clone(), Instant::now() + ttl),
        );
        Ok(true)
    }

    async fn index_call(
        &self,
        call_control_id: &str,
        intent: &IntentId,
        ttl: Duration,
    ) -> Result<(), StateError> {
        let mut m = self.maps();
        m.calls.insert(
            call_control_id.to_string(),
            (intent.clone(), Instant::now() + ttl),
        );
        Ok(())
    }

    async fn call_intent(&self, call_control_id: &str) -> Result<Option<IntentId>, StateError> {
        Ok(live(self.maps().calls.get(call_control_id)))
    }

    async fn index_code(
        &self,
        code: &str,
        intent: &IntentId,
        ttl: Duration,
    ) -> Result<bool, StateError> {
        let mut m = self.maps();
        if live(m.codes.get(code)).is_some() {
            return Ok(false);
        }
        m.codes
            .insert(code.to_string(), (intent.clone(), Instant::now() + ttl));
        Ok(true)
    }

    async fn code_intent(&self, code: &str) -> Result<Option<IntentId>, StateError> {
        Ok(live(self.maps().codes.get(code)))
    }

    async fn drop_code(&self, code: &str) -> Result<(), StateError> {
        self.maps().codes.remove(code);
        Ok(())
    }

    async fn note_texted(
        &self,
        phone: &str,
        intent: &IntentId,
        ttl: Duration,
    ) -> Result<(), StateError> {
        let mut m = self.maps();
        m.sweep();
        let list = m.texted.entry(phone.to_string()).or_default();
        list.retain(|(i, _)| i != intent);
        list.push((intent.clone(), Instant::now() + ttl));
        Ok(())
    }

    async fn texted_intents(&self, phone: &str) -> Result<Vec<IntentId>, StateError> {
        let now = Instant::now();
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
}
