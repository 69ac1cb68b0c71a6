//! Escalation state that must be shared by every replica: the ladder of each pending intent
//! (its calls and SMS code), the call and code indexes, and the webhook dedupe set.
//!
//! One record per intent, replaced with a compare-and-set on its `version`, so two replicas
//! handling webhooks of the same call cannot both act on the same step. The in-memory
//! implementation is the embedded default; a Redis one needs (see docs/telnyx.md):
//! `first_delivery` = `SET sentinel:{wh}:<id> <body> NX EX <ttl>`; `claim` = `SET NX EX`;
//! `save` = a Lua CAS on the JSON's version under `sentinel:{<intent>}:ladder`; the indexes
//! = plain keys with the ladder's TTL.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::roster::Approver;
use crate::domain::{now_millis, IntentId, Millis};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("escalation state unavailable: {0}")]
    Unavailable(String),
}

/// Where a call is in the conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Dialled; not answered, or answered and waiting for machine detection.
    Ringing,
    /// The menu is being played / a key is awaited.
    Menu,
    /// Listening for the approver's question, or answering it.
    Question,
    /// Waiting for the PIN that makes an approval count.
    Pin,
    /// Saying goodbye; hang up when the speech ends. Nothing said now decides.
    Closing,
    /// Hung up.
    Ended,
}

/// Answering-machine detection's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Amd {
    Pending,
    Human,
    Machine,
}

/// One phone call of the ladder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    pub call_control_id: String,
    /// The ladder step that placed it (the approver's position).
    pub attempt: usize,
    pub approver: Approver,
    pub answered: bool,
    pub amd: Amd,
    pub mode: Mode,
    /// Menus that ended without a key.
    pub misses: u8,
    pub pin_failures: u8,
    /// Question mode is listening through `transcription_start` (no `gather_using_ai`).
    #[serde(default)]
    pub transcribing: bool,
    /// A key was pressed on this call: a person is there, whatever detection says later.
    #[serde(default)]
    pub keyed: bool,
    /// Gathers sent on this call so far (their sequence numbers are 1, 2, ...).
    #[serde(default)]
    pub prompts: u32,
    /// The sequence number of the gather whose answer is awaited; 0 when none is.
    #[serde(default)]
    pub awaiting: u32,
}

impl Call {
    /// A call just dialled: ringing, nothing known yet.
    pub fn ringing(call_control_id: String, attempt: usize, approver: Approver) -> Call {
        Call {
            call_control_id,
            attempt,
            approver,
            answered: false,
            amd: Amd::Pending,
            mode: Mode::Ringing,
            misses: 0,
            pin_failures: 0,
            transcribing: false,
            keyed: false,
            prompts: 0,
            awaiting: 0,
        }
    }
}

/// What the ladder is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Calling `approvers[step]`.
    Calling,
    /// Calls are over; waiting for an SMS reply, the operator or the deadline.
    Waiting,
    /// Decided (here or elsewhere): nothing more to do.
    Done,
}

/// The escalation of one pending intent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ladder {
    pub intent_id: IntentId,
    pub version: u64,
    pub approvers: Vec<Approver>,
    /// The intent is at or above the PIN tier.
    pub pin_required: bool,
    pub step: usize,
    pub stage: Stage,
    pub calls: Vec<Call>,
    pub sms_code: Option<String>,
    /// Channel steps that failed at Telnyx (dial errors, SMS send errors).
    pub failures: usize,
    /// Channel steps that reached Telnyx and went out (calls placed, SMS sent).
    pub delivered: usize,
    /// Wrong SMS codes from the approvers this intent was texted to.
    #[serde(default)]
    pub bad_codes: u8,
    /// Wrong or missing PINs for this intent, by phone and by SMS together.
    #[serde(default)]
    pub bad_pins: u8,
    /// Those failures by sender number (bounds the replies Sentinel texts back).
    #[serde(default)]
    pub failures_by_sender: BTreeMap<String, u8>,
    /// Too many failures: the SMS code is retired and no PIN is accepted for this intent;
    /// it waits for the operator or the deadline.
    #[serde(default)]
    pub locked: bool,
}

impl Ladder {
    pub fn call_mut(&mut self, call_control_id: &str) -> Option<&mut Call> {
        self.calls
            .iter_mut()
            .find(|c| c.call_control_id == call_control_id)
    }
}

/// Which timer of the call state machine a [`Watchdog`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WatchdogKind {
    /// The ring timeout (plus grace) passed since the dial without Telnyx ending the ringing.
    Ring,
    /// Answered a while ago and machine detection never reported.
    Detection,
}

impl WatchdogKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WatchdogKind::Ring => "ring",
            WatchdogKind::Detection => "detection",
        }
    }
}

/// A timer of one call, kept in the shared state so that any replica fires it when it falls
/// due, whichever replica armed it and whether or not that one still lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Watchdog {
    pub kind: WatchdogKind,
    pub intent: IntentId,
    pub call_control_id: String,
}

impl Watchdog {
    /// `<kind>|<intent>|<call_control_id>`: one member of the due-time index.
    pub fn encode(&self) -> String {
        format!(
            "{}|{}|{}",
            self.kind.as_str(),
            self.intent,
            self.call_control_id
        )
    }

    /// `None` for anything [`Watchdog::encode`] did not write.
    pub fn decode(text: &str) -> Option<Watchdog> {
        let mut parts = text.splitn(3, '|');
        let kind = match parts.next()? {
            "ring" => WatchdogKind::Ring,
            "detection" => WatchdogKind::Detection,
            _ => return None,
        };
        let intent = IntentId::parse(parts.next()?)?;
        let call_control_id = parts.next().filter(|c| !c.is_empty())?.to_string();
        Some(Watchdog {
            kind,
            intent,
            call_control_id,
        })
    }
}

#[async_trait]
pub trait TelnyxState: Send + Sync + 'static {
    /// Records a verified webhook delivery and keeps its body until it is settled; `false`
    /// when `event_id` was seen within `ttl`.
    async fn first_delivery(
        &self,
        event_id: &str,
        body: &[u8],
        ttl: Duration,
    ) -> Result<bool, StateError>;

    /// Ends a delivery. `processed`: its id stays seen (a redelivery is a duplicate) and the
    /// body is dropped. Not processed (nothing was changed): the id is forgotten so Telnyx's
    /// redelivery is processed.
    async fn settle_delivery(&self, event_id: &str, processed: bool) -> Result<(), StateError>;

    /// Makes `owner` (a replica) the one that escalates `intent` for `ttl`; `false` when a
    /// live claim exists, even `owner`'s own (so one replica never starts an intent twice).
    /// A claim whose `ttl` passed without renewal can be taken this way by exactly one caller.
    async fn claim(
        &self,
        intent: &IntentId,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, StateError>;

    /// Extends `owner`'s claim by `ttl`; `false` when the claim expired or is someone else's.
    async fn renew_claim(
        &self,
        intent: &IntentId,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, StateError>;

    /// Intents whose claim was not renewed in time (by `now`): candidates for a takeover.
    async fn expired_claims(&self, now: Millis, limit: usize) -> Result<Vec<IntentId>, StateError>;

    /// The escalation is over: the claim and its index entry go.
    async fn release_claim(&self, intent: &IntentId) -> Result<(), StateError>;

    /// Schedules `watchdog` at `due`; an entry already armed earlier keeps its earlier time.
    async fn arm_watchdog(&self, watchdog: &Watchdog, due: Millis) -> Result<(), StateError>;

    /// Watchdogs due by `now`, each leased to this caller: no other caller gets it again until
    /// `lease` passes, so a watchdog fires once unless its firer dies before disarming it.
    async fn due_watchdogs(
        &self,
        now: Millis,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Watchdog>, StateError>;

    async fn disarm_watchdog(&self, watchdog: &Watchdog) -> Result<(), StateError>;

    async fn load(&self, intent: &IntentId) -> Result<Option<Ladder>, StateError>;

    /// Stores `ladder` if the stored one is at `ladder.version - 1` (or absent when
    /// `ladder.version == 1`); `false` when it lost a race.
    async fn save(&self, ladder: &Ladder, ttl: Duration) -> Result<bool, StateError>;

    async fn index_call(
        &self,
        call_control_id: &str,
        intent: &IntentId,
        ttl: Duration,
    ) -> Result<(), StateError>;
    async fn call_intent(&self, call_control_id: &str) -> Result<Option<IntentId>, StateError>;

    /// Reserves an SMS code for `intent`; `false` when the code is taken.
    async fn index_code(
        &self,
        code: &str,
        intent: &IntentId,
        ttl: Duration,
    ) -> Result<bool, StateError>;
    async fn code_intent(&self, code: &str) -> Result<Option<IntentId>, StateError>;
    async fn drop_code(&self, code: &str) -> Result<(), StateError>;

    /// Notes that `phone` was texted the code of `intent`: a wrong code from that number
    /// counts against the intents it was texted about.
    async fn note_texted(
        &self,
        phone: &str,
        intent: &IntentId,
        ttl: Duration,
    ) -> Result<(), StateError>;
    async fn texted_intents(&self, phone: &str) -> Result<Vec<IntentId>, StateError>;
}

/// A duration in milliseconds, saturating.
pub fn millis(d: Duration) -> Millis {
    i64::try_from(d.as_millis()).unwrap_or(Millis::MAX)
}

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
        Ladder {
            intent_id: IntentId::parse("0190f2d2-0000-7000-8000-000000000001").unwrap(),
            version,
            approvers: vec![],
            pin_required: false,
            step: 0,
            stage: Stage::Calling,
            calls: vec![],
            sms_code: None,
            failures: 0,
            delivered: 0,
            bad_codes: 0,
            bad_pins: 0,
            failures_by_sender: Default::default(),
            locked: false,
        }
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
