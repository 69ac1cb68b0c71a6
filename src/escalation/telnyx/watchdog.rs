//! What keeps an escalation moving when the replica running it dies.
//!
//! - **Watchdogs** (the ring timeout, the wait for machine detection) are not in-process
//!   timers: they are entries of a due-time index in the shared [`TelnyxState`]. Every replica
//!   polls it; a due watchdog is leased to one poller, fed to the call state machine (which
//!   ignores it if the call was answered, ended or decided meanwhile) and then disarmed. A
//!   poller that dies before disarming leaves the lease to run out, and another fires it.
//! - **Claims**: the replica that starts an intent's ladder claims it for [`CLAIM_TTL`] and
//!   renews the claim every [`HEARTBEAT`] while it lives. A claim nobody renewed is taken over
//!   by exactly one other replica (the store's claim is a compare-and-set), which resumes
//!   the ladder where the dead one left it.
//!
//! Nothing here decides an intent: a watchdog moves a ladder on or starts a menu, and a
//! takeover re-dials (with the same `command_id`, so Telnyx does not ring twice) or waits.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use tokio::time::MissedTickBehavior;
use tracing::{info, warn, Instrument};

use super::ladder::{self, Next};
use super::state::{Mode, Stage, StateError, Watchdog, WatchdogKind};
use super::voice::CallEvent;
use super::{Telnyx, RING_GRACE};
use crate::domain::IntentId;

/// How long a claim lasts without renewal: a dead replica's escalations are taken over this
/// long after its last heartbeat.
pub const CLAIM_TTL: Duration = Duration::from_secs(15);
/// How often a live replica renews its claims (a third of their life: two heartbeats may
/// fail before a claim lapses).
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// How often every replica looks for due watchdogs and lapsed claims.
pub const POLL: Duration = Duration::from_secs(1);
/// A fired watchdog not disarmed within this long (its firer died) is handed out again.
const LEASE: Duration = Duration::from_secs(30);
/// Claim renewals in flight at once during a heartbeat.
const RENEW_IN_FLIGHT: usize = 64;
/// At most this many watchdogs or takeovers per poll.
const BATCH: usize = 100;

impl Telnyx {
    /// Starts the watchdog poller and the claim heartbeat; both end at shutdown. Without a
    /// tokio runtime (a unit test building the channel) there is nothing to start.
    pub(super) fn spawn_background(self: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let me = Arc::downgrade(self);
        let shutdown = self.shutdown.clone();
        self.tasks.spawn_on(
            async move {
                let mut poll = tokio::time::interval(POLL);
                poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
                let mut heartbeat = tokio::time::interval(HEARTBEAT);
                heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
                loop {
                    let Some(this) = me.upgrade() else { return };
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = heartbeat.tick() => this.renew_claims().await,
                        _ = poll.tick() => {
                            this.fire_due().await;
                            this.take_over().await;
                        }
                        _ = this.wake.notified() => this.fire_due().await,
                    }
                }
            },
            &runtime,
        );
    }

    /// Arms a watchdog of `kind` on the call `ccid`, due after `wait`. Stored where every
    /// replica sees it; this replica also wakes its poller at the due time.
    pub(super) async fn arm(
        &self,
        kind: WatchdogKind,
        intent: &IntentId,
        ccid: &str,
        wait: Duration,
    ) {
        let watchdog = Watchdog {
            kind,
            intent: intent.clone(),
            call_control_id: ccid.to_string(),
        };
        let clock = self.gateway.clock().clone();
        let due = clock.now().saturating_add(super::state::millis(wait));
        if let Err(e) = self.state.arm_watchdog(&watchdog, due).await {
            // Telnyx's own events (the hang-up after `timeout_secs`) still move the ladder.
            warn!(intent_id = %intent, error = %e, kind = kind.as_str(), "cannot arm a call watchdog");
            return;
        }
        let Some(me) = self.self_arc() else { return };
        self.spawn(async move {
            tokio::select! {
                _ = me.shutdown.cancelled() => {}
                _ = clock.reach(due) => me.wake.notify_one(),
            }
        });
    }

    /// Fires every watchdog that is due (leased to this replica), each in its own task.
    async fn fire_due(&self) {
        let now = self.gateway.clock().now();
        let due = match self.state.due_watchdogs(now, LEASE, BATCH).await {
            Ok(due) => due,
            Err(e) => {
                warn!(error = %e, "cannot read due call watchdogs; retrying");
                return;
            }
        };
        for watchdog in due {
            let Some(me) = self.self_arc() else { return };
            let span = tracing::info_span!("telnyx.watchdog", intent_id = %watchdog.intent, kind = watchdog.kind.as_str());
            self.spawn(async move { me.fire(watchdog).await }.instrument(span));
        }
    }

    /// Feeds one watchdog to its call; disarmed once its effect is stored. If the state could
    /// not be stored, the lease runs out and a poller fires it again.
    async fn fire(&self, watchdog: Watchdog) {
        let event = match watchdog.kind {
            WatchdogKind::Ring => CallEvent::RingTimeout,
            WatchdogKind::Detection => CallEvent::DetectionTimeout,
        };
        let id = format!("watchdog-{}", uuid::Uuid::new_v4());
        let fired = self
            .on_call_event(&watchdog.intent, &watchdog.call_control_id, &event, &id)
            .await;
        if fired.is_ok() {
            if let Err(e) = self.state.disarm_watchdog(&watchdog).await {
                warn!(error = %e, "cannot disarm a fired watchdog; it fires again, harmlessly");
            }
        }
    }

    /// Claims `intent` for this replica (see [`CLAIM_TTL`]).
    pub(super) async fn claim(&self, intent: &IntentId) -> Result<bool, StateError> {
        let claimed = self.state.claim(intent, &self.replica, CLAIM_TTL).await?;
        if claimed {
            self.held_mut().insert(intent.clone());
        }
        Ok(claimed)
    }

    /// The escalation of `intent` is over: the claim goes if this replica holds it. (A lapsed
    /// claim of a dead replica is taken over, found decided, and released then.)
    pub(super) async fn release(&self, intent: &IntentId) {
        if !self.held_mut().remove(intent) {
            return;
        }
        if let Err(e) = self.state.release_claim(intent).await {
            warn!(intent_id = %intent, error = %e, "cannot release an escalation claim; it lapses");
        }
    }

    fn held_mut(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<IntentId>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Renews every claim this replica holds, [`RENEW_IN_FLIGHT`] at a time. A claim that
    /// lapsed (another replica may have taken it over) is dropped from the set; a store error
    /// keeps it for the next beat.
    async fn renew_claims(&self) {
        let held: Vec<IntentId> = self.held_mut().iter().cloned().collect();
        let lost: Vec<IntentId> = futures::stream::iter(held)
            .map(|intent| async move {
                match self
                    .state
                    .renew_claim(&intent, &self.replica, CLAIM_TTL)
                    .await
                {
                    Ok(true) => None,
                    Ok(false) => Some(intent),
                    Err(e) => {
                        warn!(intent_id = %intent, error = %e, "cannot renew an escalation claim");
                        None
                    }
                }
            })
            .buffer_unordered(RENEW_IN_FLIGHT)
            .filter_map(|lost| async move { lost })
            .collect()
            .await;
        let mut held = self.held_mut();
        for intent in lost {
            held.remove(&intent);
        }
    }

    /// Takes over the escalations whose claim nobody renewed, then resumes them.
    async fn take_over(&self) {
        let now = self.gateway.clock().now();
        let lapsed = match self.state.expired_claims(now, BATCH).await {
            Ok(lapsed) => lapsed,
            Err(e) => {
                warn!(error = %e, "cannot look for lapsed escalation claims; retrying");
                return;
            }
        };
        for intent in lapsed {
            match self.claim(&intent).await {
                Ok(true) => {
                    let Some(me) = self.self_arc() else { return };
                    let span = tracing::info_span!("escalation.takeover", intent_id = %intent);
                    self.spawn(async move { me.resume(intent).await }.instrument(span));
                }
                Ok(false) => {} // renewed meanwhile, or another replica was first
                Err(e) => warn!(intent_id = %intent, error = %e, "cannot take over an escalation"),
            }
        }
    }

    /// Picks up an escalation whose replica stopped renewing its claim, where it was left.
    async fn resume(self: Arc<Self>, id: IntentId) {
        let intent = match self.gateway.pending(&id).await {
            Ok(Some(intent)) => intent,
            Ok(None) => {
                // Decided (or gone) while nobody held the claim: nothing to resume.
                self.release(&id).await;
                return;
            }
            Err(e) => {
                // Not resumed: let the claim lapse again so this is retried.
                warn!(intent_id = %id, error = %e, "cannot read an intent to take over");
                self.held_mut().remove(&id);
                return;
            }
        };
        let ladder = match self.state.load(&id).await {
            Ok(ladder) => ladder,
            Err(e) => {
                // Not resumed: let the claim lapse again so this is retried.
                warn!(intent_id = %id, error = %e, "cannot read a ladder to take over");
                self.held_mut().remove(&id);
                return;
            }
        };
        info!(intent_id = %id, "taking over an escalation whose replica stopped renewing its claim");
        self.progress(
            &id,
            "phone escalation taken over: the replica running it stopped renewing its claim",
        )
        .await;
        let Some(ladder) = ladder else {
            // Claimed, but the ladder was never stored: start it.
            return self.start_ladder(&intent).await;
        };
        if ladder.stage != Stage::Calling {
            // Waiting for an SMS reply, the operator or the deadline; or already done.
            return;
        }
        let step = ladder.step;
        let Some(call) = ladder.calls.iter().find(|c| c.attempt == step) else {
            // The dial may or may not have reached Telnyx: dial again with the same
            // command_id, which Telnyx deduplicates.
            return self.run(&id, Next::Dial(step)).await;
        };
        match call.mode {
            // The call ended but the ladder never moved past it.
            Mode::Ended => {
                let sms = self.sms_enabled;
                if let Ok(Some((_, next))) =
                    self.update(&id, |l| ladder::advance(l, step, sms)).await
                {
                    self.run(&id, next).await;
                }
            }
            // Still ringing: make sure a ring watchdog exists (an armed one keeps its time).
            Mode::Ringing => {
                let ccid = call.call_control_id.clone();
                self.arm(
                    WatchdogKind::Ring,
                    &id,
                    &ccid,
                    self.ring_timeout + RING_GRACE,
                )
                .await;
            }
            // In conversation: the call's webhooks move it, on whichever replica they land.
            _ => {}
        }
    }
}
