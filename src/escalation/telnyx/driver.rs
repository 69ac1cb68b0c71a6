//! The ladder's moves: claim, dial the approvers one by one, text them, give up, stop.
//!
//! Every move is a compare-and-set on the intent's ladder in the shared [`TelnyxState`], so
//! replicas racing on one intent make each move once; every step is a progress line on the
//! intent. Decisions go through the gateway's compare-and-set ([`Telnyx::decide`]); when no
//! step ever reached anyone the intent is declined (`escalation_failed`), never approved.
//!
//! [`TelnyxState`]: super::state::TelnyxState

use std::sync::Arc;

use tracing::{info, warn, Instrument};

use super::client::Dial;
use super::ladder::{self, Next};
use super::speech;
use super::state::{Call, Ladder, Mode, Stage, StateError, WatchdogKind};
use super::wire::ClientState;
use super::{Telnyx, CALL_TIME_LIMIT_SECS, CAS_TRIES, LADDER_TTL, RING_GRACE};
use crate::domain::{Channel, Intent, IntentId, IntentState};
use crate::gateway::channels::Rejected;
use crate::gateway::GatewayError;
use crate::metrics;

impl Telnyx {
    /// Records a progress line on the intent. A line that cannot be recorded is logged: it
    /// never holds up the ladder.
    pub(super) async fn progress(&self, id: &IntentId, line: &str) {
        if let Err(e) = self.gateway.progress(id, line).await {
            warn!(intent_id = %id, error = %e, line, "cannot record escalation progress");
        }
    }

    /// Loads, changes and stores a ladder with a compare-and-set, retrying lost races.
    /// `None` when there is no ladder for the intent.
    pub(super) async fn update<R>(
        &self,
        id: &IntentId,
        mut change: impl FnMut(&mut Ladder) -> R,
    ) -> Result<Option<(Ladder, R)>, StateError> {
        for _ in 0..CAS_TRIES {
            let Some(mut ladder) = self.state.load(id).await? else {
                return Ok(None);
            };
            let result = change(&mut ladder);
            ladder.version += 1;
            if self.state.save(&ladder, LADDER_TTL).await? {
                return Ok(Some((ladder, result)));
            }
        }
        Err(StateError::Unavailable(format!(
            "ladder of {id} keeps changing concurrently"
        )))
    }

    /// The intent, if it still waits for a human.
    pub(super) async fn pending(&self, id: &IntentId) -> Option<Intent> {
        match self.gateway.pending(id).await {
            Ok(pending) => pending,
            Err(e) => {
                warn!(intent_id = %id, error = %e, "cannot read intent during escalation");
                None
            }
        }
    }

    /// Claims the intent's escalation and starts its ladder; another replica's claim wins.
    pub(super) async fn begin(self: Arc<Self>, intent: Intent) {
        match self.claim(&intent.id).await {
            Ok(true) => {}
            Ok(false) => return, // another replica escalates it
            Err(e) => {
                warn!(intent_id = %intent.id, error = %e, "cannot claim escalation; the operator channel remains");
                self.progress(&intent.id, &format!("phone escalation unavailable: {e}"))
                    .await;
                return;
            }
        }
        self.start_ladder(&intent).await;
    }

    /// Builds the intent's ladder and makes its first move (the claim is held).
    pub(super) async fn start_ladder(&self, intent: &Intent) {
        let approvers = self.roster.for_intent(intent);
        let pin_required = intent.risk_score.get() >= self.pin_min_risk;
        let mut ladder = ladder::new(intent.id.clone(), approvers, pin_required);
        let next = ladder::first(&mut ladder);
        if let Err(e) = self.state.save(&ladder, LADDER_TTL).await {
            self.progress(&intent.id, &format!("phone escalation unavailable: {e}"))
                .await;
            return;
        }
        if next == Next::Exhausted {
            self.progress(
                &intent.id,
                &format!(
                    "no approver in the roster takes module {} at risk {}; waiting for the operator",
                    intent.module, intent.risk_score
                ),
            )
            .await;
            return;
        }
        self.run(&intent.id, next).await;
    }

    /// Carries out ladder moves until one waits for the outside world.
    pub(super) async fn run(&self, id: &IntentId, mut next: Next) {
        loop {
            let Some(intent) = self.pending(id).await else {
                let _ = self.update(id, |l| l.stage = Stage::Done).await;
                return;
            };
            next = match next {
                Next::Dial(step) => self.dial(&intent, step).await,
                Next::Sms => self.send_sms(&intent).await,
                Next::Exhausted => {
                    self.exhausted(&intent).await;
                    return;
                }
                Next::Nothing => return,
            };
        }
    }

    async fn dial(&self, intent: &Intent, step: usize) -> Next {
        let Ok(Some(ladder)) = self.state.load(&intent.id).await else {
            return Next::Nothing;
        };
        let Some(approver) = ladder.approvers.get(step).cloned() else {
            return Next::Nothing;
        };
        let who = format!("approver {} ({})", step + 1, approver.name);
        self.progress(&intent.id, &format!("calling {who}")).await;
        let span = tracing::info_span!("telnyx.dial", intent_id = %intent.id, step = step as i64);
        let client_state = ClientState {
            intent_id: intent.id.to_string(),
            attempt: step,
            traceparent: span.in_scope(crate::telemetry::current_traceparent),
            prompt: None,
        }
        .encode();
        let command_id = format!("dial-{}-{step}", intent.id);
        let result = self
            .client
            .dial(&Dial {
                connection_id: &self.connection_id,
                to: &approver.phone,
                from: &self.from,
                webhook_url: self.webhook_url.as_deref(),
                client_state: &client_state,
                command_id: &command_id,
                timeout_secs: self.ring_timeout.as_secs(),
                time_limit_secs: CALL_TIME_LIMIT_SECS,
            })
            .instrument(span)
            .await;
        match result {
            Ok(dialled) => {
                metrics::inc(
                    "sentinel_escalation_steps_total",
                    &[("step", "call"), ("outcome", "dialled")],
                );
                let ccid = dialled.call_control_id;
                let call = Call::ringing(ccid.clone(), step, approver);
                let stored = self
                    .update(&intent.id, |l| {
                        l.delivered += 1;
                        l.calls.push(call.clone());
                        l.stage
                    })
                    .await;
                // Indexed only once the ladder holds the call: a webhook that finds the index
                // finds the call (one that comes earlier waits for it, see `call_intent`).
                if let Err(e) = self.state.index_call(&ccid, &intent.id, LADDER_TTL).await {
                    warn!(error = %e, "cannot index call");
                }
                // Decided while we dialled: the stop pass may have missed this call.
                if !matches!(stored, Ok(Some((_, Stage::Calling))))
                    || self.pending(&intent.id).await.is_none()
                {
                    self.hangup(&ccid, step, &format!("dial-{step}-stop")).await;
                    return Next::Nothing;
                }
                self.arm(
                    WatchdogKind::Ring,
                    &intent.id,
                    &ccid,
                    self.ring_timeout + RING_GRACE,
                )
                .await;
                Next::Nothing
            }
            Err(e) => {
                metrics::inc(
                    "sentinel_escalation_steps_total",
                    &[("step", "call"), ("outcome", "failed")],
                );
                self.progress(&intent.id, &format!("could not call {who}: {e}"))
                    .await;
                let sms = self.sms_enabled;
                match self
                    .update(&intent.id, |l| {
                        l.failures += 1;
                        ladder::advance(l, step, sms)
                    })
                    .await
                {
                    Ok(Some((_, next))) => next,
                    _ => Next::Nothing,
                }
            }
        }
    }

    /// Nothing left to try: wait for the operator, an SMS reply or the deadline; or, when no
    /// Telnyx step ever went out, decline with `escalation_failed`.
    async fn exhausted(&self, intent: &Intent) {
        let Ok(Some(ladder)) = self.state.load(&intent.id).await else {
            return;
        };
        if !ladder::every_channel_failed(&ladder) {
            let tail = if ladder.sms_code.is_some() {
                "an SMS reply, "
            } else {
                ""
            };
            self.progress(
                &intent.id,
                &format!(
                    "every approver was tried; waiting for {tail}the operator or the deadline"
                ),
            )
            .await;
            return;
        }
        metrics::inc(
            "sentinel_escalation_steps_total",
            &[("step", "escalation"), ("outcome", "failed")],
        );
        let result = self
            .gateway
            .decline_unescalated(intent.clone(), Channel::Telnyx)
            .await;
        if let Err(e) = result {
            info!(intent_id = %intent.id, error = %e, "escalation_failed not recorded (decided meanwhile?)");
        }
    }

    /// The intent was decided (anywhere): hang up live calls, retire the SMS code, drop the
    /// escalation claim.
    pub(super) async fn end(&self, intent: &Intent) {
        self.release(&intent.id).await;
        let result = self
            .update(&intent.id, |l| {
                l.stage = Stage::Done;
                let mut live = Vec::new();
                for call in &mut l.calls {
                    // Closing calls were decided on (or are saying goodbye): let them finish.
                    if !matches!(call.mode, Mode::Ended | Mode::Closing) {
                        call.mode = Mode::Closing;
                        live.push(call.clone());
                    }
                }
                (live, l.sms_code.take())
            })
            .await;
        let Ok(Some((_, (live, code)))) = result else {
            return;
        };
        if let Some(code) = code {
            let _ = self.state.drop_code(&code).await;
        }
        let how = intent
            .decided_by
            .as_ref()
            .map(|b| format!(" via {}", b.channel))
            .unwrap_or_default();
        for call in live {
            self.progress(
                &intent.id,
                &format!(
                    "hanging up the call to approver {} ({}): intent {}{how}",
                    call.attempt + 1,
                    call.approver.name,
                    intent.state.as_str().to_lowercase()
                ),
            )
            .await;
            self.hangup(&call.call_control_id, call.attempt, "stop")
                .await;
        }
    }

    /// Records a human decision; returns what to tell the approver.
    pub(super) async fn decide(
        &self,
        id: &IntentId,
        approve: bool,
        approver: &str,
        channel: Channel,
    ) -> String {
        let (to, word) = if approve {
            (IntentState::Approved, "approved")
        } else {
            (IntentState::Declined, "declined")
        };
        let result = self
            .gateway
            .record_human_decision(id, approve, approver, channel)
            .await;
        match result {
            Ok(_) => {
                metrics::inc(
                    "sentinel_escalation_decisions_total",
                    &[("channel", channel.as_str()), ("decision", word)],
                );
                let _ = self.update(id, |l| l.stage = Stage::Done).await;
                speech::decided(word)
            }
            Err(GatewayError::NotFound(_)) => speech::NOT_READ.into(),
            // Decided first elsewhere, past the deadline, or not yet pending: too late.
            Err(
                e @ (GatewayError::AlreadyDecided { .. } | GatewayError::FailedPrecondition(_)),
            ) => {
                self.rejected(
                    Some(id),
                    approver,
                    channel,
                    Some(to),
                    format!("too late: {e}"),
                )
                .await;
                self.progress(
                    id,
                    &format!("{approver}'s {word} via {channel} came too late: {e}"),
                )
                .await;
                speech::TOO_LATE.into()
            }
            Err(e) => {
                warn!(intent_id = %id, error = %e, "cannot record a human decision");
                self.progress(
                    id,
                    &format!("{approver}'s decision via {channel} could not be recorded: {e}"),
                )
                .await;
                speech::NOT_RECORDED.into()
            }
        }
    }

    /// Audits input that was refused and changed nothing.
    pub(super) async fn rejected(
        &self,
        intent: Option<&IntentId>,
        actor: &str,
        channel: Channel,
        state: Option<IntentState>,
        why: String,
    ) {
        let rejected = Rejected {
            intent,
            channel,
            actor,
            state,
            why,
        };
        if let Err(e) = self.gateway.audit_rejected(rejected).await {
            warn!(error = %e, "cannot audit a refused input");
        }
    }

    /// Too many wrong codes or PINs: the code is retired (no more SMS replies count) and no PIN
    /// is taken; the intent stays pending for the operator or the deadline.
    pub(super) async fn lock_out(
        &self,
        id: &IntentId,
        code: Option<String>,
        why: &str,
        channel: Channel,
    ) {
        if let Some(code) = code {
            if let Err(e) = self.state.drop_code(&code).await {
                warn!(intent_id = %id, error = %e, "cannot retire an SMS code");
            }
        }
        metrics::inc(
            "sentinel_escalation_steps_total",
            &[("step", "lockout"), ("outcome", channel.as_str())],
        );
        self.rejected(Some(id), "telnyx", channel, None, format!("locked: {why}"))
            .await;
        self.progress(
            id,
            &format!("{why}; SMS code retired and PIN entry locked, waiting for the operator or the deadline"),
        )
        .await;
    }
}
