//! Telnyx escalation: phone the approvers one by one, then text them a one-time code.
//!
//! - [`client`]: the Telnyx API (dial, call commands, SMS).
//! - [`roster`]: who is called for which intent; PIN checks.
//! - [`ladder`]: the order of steps (approvers, then SMS, then the deadline).
//! - [`voice`]: the call state machine (pure), event parsing, what is spoken.
//! - [`sms`]: one-time codes and replies.
//! - [`state`]: what every replica must share (ladders, indexes, webhook dedupe, claims,
//!   watchdogs).
//! - [`watchdog`]: the shared timers, claim renewal and the takeover of a dead replica's
//!   escalations.
//!
//! [`Telnyx`] drives them: the escalation loop calls [`Channel::start`]/[`Channel::stop`],
//! the webhook sidecar hands it verified, deduplicated events. Every step is a progress line
//! on the intent (a `DecisionEvent.detail` and an audit record). Decisions go through the
//! gateway's compare-and-set, so a key press racing the CLI produces exactly one decision and
//! the loser is told so. Nothing here approves on its own: errors decline or wait.

pub mod client;
pub mod ladder;
pub mod roster;
pub mod sms;
pub mod state;
pub mod voice;
pub mod watchdog;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn, Instrument};

use super::Channel;
use crate::config::TelnyxConfig;
use crate::domain::{
    now_millis, DecidedBy, DeciderKind, Intent, IntentId, IntentState, Reason, ReasonSource,
};
use crate::gateway::{Gateway, GatewayError};
use crate::metrics;
use crate::scoring::Scorer;
use crate::store::{AuditRecord, Store};
use client::{Client, ClientError, CommandOutcome, Dial};
use ladder::{Failure, Next, Strike};
use roster::Roster;
use state::{Call, Ladder, Mode, Stage, StateError, TelnyxState, WatchdogKind};
use voice::{CallEvent, ClientState, Effect, EventData};

/// How long ladders, call indexes and SMS codes are kept.
const LADDER_TTL: Duration = Duration::from_secs(24 * 3600);
/// Extra time after the ring timeout before the watchdog stops waiting for Telnyx's hang-up.
const RING_GRACE: Duration = Duration::from_secs(10);
/// Machine detection normally reports within ~4 s of the answer; past this, the approver
/// hears the menu anyway (a machine cannot press keys, so nothing is lost).
const AMD_WAIT: Duration = Duration::from_secs(6);
/// The longest an answered call may last.
const CALL_TIME_LIMIT_SECS: u64 = 600;
/// The approver waits on the line for the answer: keep it short.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Webhooks can race the dial's response (we learn the call id from it): wait this long.
const UNKNOWN_CALL_WAIT: Duration = Duration::from_millis(200);
const UNKNOWN_CALL_TRIES: u32 = 15;
const CAS_TRIES: u32 = 16;

#[derive(Debug, thiserror::Error)]
pub enum TelnyxError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("shutting down")]
    ShuttingDown,
}

/// The Telnyx voice + SMS channel.
pub struct Telnyx {
    client: Client,
    connection_id: String,
    from: String,
    webhook_url: Option<String>,
    ring_timeout: Duration,
    pin_min_risk: u8,
    voice: String,
    sms_enabled: bool,
    roster: Roster,
    gateway: Arc<Gateway>,
    scorer: Arc<dyn Scorer>,
    state: Arc<dyn TelnyxState>,
    shutdown: CancellationToken,
    me: Weak<Telnyx>,
    /// This replica's token in escalation claims.
    replica: String,
    /// The claims this replica holds and renews.
    held: Mutex<HashSet<IntentId>>,
    /// Nudges the watchdog poller when a watchdog armed here falls due.
    wake: tokio::sync::Notify,
}

impl std::fmt::Debug for Telnyx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telnyx")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl Telnyx {
    pub fn new(
        config: &TelnyxConfig,
        gateway: Arc<Gateway>,
        scorer: Arc<dyn Scorer>,
        state: Arc<dyn TelnyxState>,
        shutdown: CancellationToken,
    ) -> Result<Arc<Telnyx>, TelnyxError> {
        let missing = |name: &str| {
            TelnyxError::Config(format!("{name} is required when TELNYX_API_KEY is set"))
        };
        let key = config
            .api_key
            .clone()
            .ok_or_else(|| missing("TELNYX_API_KEY"))?;
        let client = Client::new(&config.base_url, key)?;
        let connection_id = config
            .connection_id
            .clone()
            .ok_or_else(|| missing("TELNYX_CONNECTION_ID"))?;
        let from = config
            .phone_number
            .clone()
            .ok_or_else(|| missing("TELNYX_PHONE_NUMBER"))?;
        let telnyx = Arc::new_cyclic(|me| Telnyx {
            client,
            connection_id,
            from,
            webhook_url: config
                .public_url
                .as_ref()
                .map(|u| format!("{u}/telnyx/webhook")),
            ring_timeout: config.escalation.ring_timeout,
            pin_min_risk: config.escalation.pin_tier(&config.roster),
            voice: config.escalation.voice.clone(),
            sms_enabled: config.escalation.sms,
            roster: Roster::new(config.roster.clone()),
            gateway,
            scorer,
            state,
            shutdown,
            me: me.clone(),
            replica: uuid::Uuid::new_v4().to_string(),
            held: Mutex::new(HashSet::new()),
            wake: tokio::sync::Notify::new(),
        });
        telnyx.spawn_background();
        Ok(telnyx)
    }

    pub fn state(&self) -> &Arc<dyn TelnyxState> {
        &self.state
    }

    fn store(&self) -> &Arc<dyn Store> {
        self.gateway.store()
    }

    async fn progress(&self, id: &IntentId, line: &str) {
        if let Err(e) = self.store().progress(id, line).await {
            warn!(intent_id = %id, error = %e, line, "cannot record escalation progress");
        }
    }

    /// Loads, changes and stores a ladder with a compare-and-set, retrying lost races.
    /// `None` when there is no ladder for the intent.
    async fn update<R>(
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
    async fn pending(&self, id: &IntentId) -> Option<Intent> {
        match self.store().get(id).await {
            Ok(Some(intent)) if intent.state == IntentState::PendingApproval => Some(intent),
            Ok(_) => None,
            Err(e) => {
                warn!(intent_id = %id, error = %e, "cannot read intent during escalation");
                None
            }
        }
    }

    // ------------------------------------------------------------------ the ladder

    async fn begin(self: Arc<Self>, intent: Intent) {
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
    async fn start_ladder(&self, intent: &Intent) {
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
    async fn run(&self, id: &IntentId, mut next: Next) {
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
        let span = tracing::info_span!("telnyx.dial", intent_id = %intent.id, step);
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
                    self.command(
                        &ccid,
                        step,
                        "hangup",
                        json!({}),
                        &format!("dial-{step}-stop"),
                    )
                    .await;
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

    async fn send_sms(&self, intent: &Intent) -> Next {
        let Ok(Some(ladder)) = self.state.load(&intent.id).await else {
            return Next::Nothing;
        };
        let mut code = None;
        for _ in 0..5 {
            let candidate = sms::new_code();
            match self
                .state
                .index_code(&candidate, &intent.id, LADDER_TTL)
                .await
            {
                Ok(true) => {
                    code = Some(candidate);
                    break;
                }
                Ok(false) => continue,
                Err(e) => {
                    warn!(error = %e, "cannot store SMS code");
                    break;
                }
            }
        }
        let Some(code) = code else {
            self.progress(
                &intent.id,
                "SMS step failed: no one-time code could be stored",
            )
            .await;
            let _ = self.update(&intent.id, |l| l.failures += 1).await;
            return Next::Exhausted;
        };
        let _ = self
            .update(&intent.id, |l| l.sms_code = Some(code.clone()))
            .await;
        let text = sms::message(intent, &code, ladder.pin_required);
        let (mut sent, mut failed) = (0, 0);
        for (i, approver) in ladder.approvers.iter().enumerate() {
            match self
                .client
                .send_sms(
                    &self.from,
                    &approver.phone,
                    &text,
                    self.webhook_url.as_deref(),
                )
                .await
            {
                Ok(_) => {
                    sent += 1;
                    if let Err(e) = self
                        .state
                        .note_texted(&approver.phone, &intent.id, LADDER_TTL)
                        .await
                    {
                        warn!(error = %e, "cannot note an SMS recipient");
                    }
                }
                Err(e) => {
                    failed += 1;
                    self.progress(
                        &intent.id,
                        &format!("SMS to approver {} ({}) failed: {e}", i + 1, approver.name),
                    )
                    .await;
                }
            }
        }
        metrics::inc(
            "sentinel_escalation_steps_total",
            &[
                ("step", "sms"),
                ("outcome", if sent > 0 { "sent" } else { "failed" }),
            ],
        );
        if sent > 0 {
            self.progress(
                &intent.id,
                &format!(
                    "SMS with a one-time code sent to {sent} approver{}",
                    if sent == 1 { "" } else { "s" }
                ),
            )
            .await;
        }
        let _ = self
            .update(&intent.id, |l| {
                l.delivered += usize::from(sent > 0);
                l.failures += usize::from(sent == 0 && failed > 0);
            })
            .await;
        Next::Exhausted
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
            .decide_pending(
                intent.clone(),
                IntentState::Declined,
                DecidedBy::new(DeciderKind::System, "", "telnyx"),
                Reason::system(
                    "escalation_failed",
                    "every escalation channel failed; declined so nothing runs unapproved",
                ),
                "escalation failed".into(),
            )
            .await;
        if let Err(e) = result {
            info!(intent_id = %intent.id, error = %e, "escalation_failed not recorded (decided meanwhile?)");
        }
    }

    /// The intent was decided (anywhere): hang up live calls, retire the SMS code, drop the
    /// escalation claim.
    async fn end(&self, intent: &Intent) {
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
            self.command(
                &call.call_control_id,
                call.attempt,
                "hangup",
                json!({}),
                "stop",
            )
            .await;
        }
    }

    // ------------------------------------------------------------------ webhooks

    /// Processes one verified, first-seen event. Unknown calls and numbers are ignored.
    ///
    /// An error means nothing was changed (the state could not be read or written, or the
    /// process is shutting down): the caller forgets the event id so a redelivery is processed.
    /// Once the state change is stored the event counts as processed, so a redelivery is a
    /// duplicate and the effects are never carried out twice.
    pub async fn handle(self: Arc<Self>, data: EventData) -> Result<(), TelnyxError> {
        if self.shutdown.is_cancelled() {
            return Err(TelnyxError::ShuttingDown);
        }
        let parent = data.client_state().and_then(|s| s.traceparent);
        let span = tracing::info_span!("telnyx.webhook", event_type = %data.event_type, event_id = %data.id);
        if let Some(tp) = parent {
            crate::telemetry::adopt_traceparent(&span, &tp);
        }
        async {
            if data.event_type == "message.received" {
                return self.on_sms(&data).await;
            }
            let Some(ccid) = data.call_control_id() else {
                return Ok(());
            };
            let Some(intent) = self.call_intent(ccid, &data).await? else {
                metrics::inc("sentinel_webhooks_total", &[("outcome", "unknown_call")]);
                return Ok(());
            };
            // The call decides which intent an event is about; a client_state naming another
            // intent is not ours (or was tampered with before signing): ignored.
            if let Some(cs) = data.client_state() {
                if cs.intent_id != intent.as_str() {
                    metrics::inc("sentinel_webhooks_total", &[("outcome", "state_mismatch")]);
                    let detail = format!(
                        "{} on this intent's call names another intent; ignored",
                        data.event_type
                    );
                    self.rejected(Some(&intent), "telnyx-webhook", "voice", None, detail)
                        .await;
                    return Ok(());
                }
            }
            let event = CallEvent::parse(&data);
            if event != CallEvent::Other {
                self.on_call_event(&intent, ccid, &event, &data.id).await?;
            }
            if event == CallEvent::Answered {
                self.arm(WatchdogKind::Detection, &intent, ccid, AMD_WAIT)
                    .await;
            }
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// Which intent a call belongs to. A webhook can overtake the dial's response, so a call
    /// the ladder is about to record is waited for briefly.
    async fn call_intent(
        &self,
        ccid: &str,
        data: &EventData,
    ) -> Result<Option<IntentId>, StateError> {
        for _ in 0..UNKNOWN_CALL_TRIES {
            if let Some(id) = self.state.call_intent(ccid).await? {
                return Ok(Some(id));
            }
            let Some(cs) = data.client_state() else {
                return Ok(None);
            };
            let Some(id) = IntentId::parse(&cs.intent_id) else {
                return Ok(None);
            };
            let Some(ladder) = self.state.load(&id).await? else {
                return Ok(None);
            };
            let expected = ladder.stage == Stage::Calling
                && ladder.step == cs.attempt
                && !ladder.calls.iter().any(|c| c.attempt == cs.attempt);
            if !expected {
                return Ok(None);
            }
            tokio::time::sleep(UNKNOWN_CALL_WAIT).await;
        }
        Ok(None)
    }

    /// Applies a call event; `Err` when the new state could not be stored (nothing changed).
    async fn on_call_event(
        &self,
        intent: &IntentId,
        ccid: &str,
        event: &CallEvent,
        event_id: &str,
    ) -> Result<(), StateError> {
        let roster = &self.roster;
        let result = self
            .update(intent, |l| voice::on_event(l, roster, ccid, event))
            .await;
        let (ladder, effects) = match result {
            Ok(Some(done)) => done,
            Ok(None) => return Ok(()),
            Err(e) => {
                warn!(intent_id = %intent, error = %e, "cannot update call state");
                return Err(e);
            }
        };
        let attempt = ladder
            .calls
            .iter()
            .find(|c| c.call_control_id == ccid)
            .map(|c| c.attempt)
            .unwrap_or(0);
        for (i, effect) in effects.into_iter().enumerate() {
            self.apply(intent, attempt, effect, &format!("{event_id}-{i}"))
                .await;
        }
        Ok(())
    }

    async fn apply(&self, id: &IntentId, attempt: usize, effect: Effect, command_id: &str) {
        match effect {
            Effect::Progress(line) => self.progress(id, &line).await,
            Effect::Rejected {
                actor,
                line,
                reason,
            } => {
                metrics::inc("sentinel_webhooks_total", &[("outcome", "keys_rejected")]);
                self.rejected(Some(id), &actor, "voice", None, reason).await;
                self.progress(id, &line).await;
            }
            Effect::Locked { code, why } => self.lock_out(id, code, &why, "voice").await,
            Effect::Menu {
                ccid,
                lead,
                summary,
                prompt,
            } => {
                let mut text = lead;
                if summary {
                    match self.store().get(id).await {
                        Ok(Some(intent)) => push_sentence(&mut text, &voice::summary(&intent)),
                        _ => push_sentence(
                            &mut text,
                            "Sentinel needs your decision on a pending intent.",
                        ),
                    }
                }
                push_sentence(&mut text, voice::MENU);
                self.menu(&ccid, attempt, &text, command_id, prompt).await;
            }
            Effect::AskQuestion { ccid } => {
                let body = json!({
                    "greeting": voice::QUESTION_PROMPT,
                    "parameters": {
                        "type": "object",
                        "properties": {
                            "question": {"type": "string", "description": "The caller's question or request, word for word."}
                        },
                        "required": ["question"]
                    },
                    "voice": self.voice,
                    "user_response_timeout_ms": 10000,
                });
                let asked = self
                    .try_command(&ccid, attempt, "gather_using_ai", body, command_id, None)
                    .await;
                if let Err(e) = asked {
                    // No hosted assistant on this account: listen with plain transcription.
                    self.progress(
                        id,
                        &format!(
                            "gather_using_ai unavailable ({e}); listening with transcription_start"
                        ),
                    )
                    .await;
                    let _ = self
                        .update(id, |l| {
                            if let Some(c) = l.call_mut(&ccid) {
                                c.transcribing = true;
                            }
                        })
                        .await;
                    self.speak(
                        &ccid,
                        attempt,
                        "What would you like to know? Ask your question now.",
                        command_id,
                    )
                    .await;
                    let body = json!({ "transcription_tracks": "inbound" });
                    self.command(&ccid, attempt, "transcription_start", body, command_id)
                        .await;
                }
            }
            Effect::StopListening { ccid } => {
                // Best effort: the transcription ends with the call anyway.
                let _ = self
                    .try_command(
                        &ccid,
                        attempt,
                        "transcription_stop",
                        json!({}),
                        command_id,
                        None,
                    )
                    .await;
            }
            Effect::Answer { ccid, question } => {
                let answer = match self.store().get(id).await {
                    Ok(Some(intent)) => {
                        match tokio::time::timeout(
                            ANSWER_TIMEOUT,
                            self.scorer.answer_question(&intent, &question),
                        )
                        .await
                        {
                            Ok(Ok(answer)) => answer,
                            Ok(Err(e)) => {
                                warn!(error = %e, "answer_question failed");
                                "I could not get an answer right now.".to_string()
                            }
                            Err(_) => "I could not get an answer in time.".to_string(),
                        }
                    }
                    _ => "I could not read this intent right now.".to_string(),
                };
                // Only if the approver is still waiting for this answer.
                let still = self
                    .update(id, |l| match l.call_mut(&ccid) {
                        Some(c) if c.mode == Mode::Question => {
                            c.mode = Mode::Menu;
                            Some(voice::next_prompt(c))
                        }
                        _ => None,
                    })
                    .await;
                if let Ok(Some((_, Some(prompt)))) = still {
                    self.progress(id, &format!("answer spoken: {}", voice::clip(&answer, 300)))
                        .await;
                    let mut text = voice::clip(&answer, 2000);
                    push_sentence(&mut text, voice::MENU);
                    self.menu(&ccid, attempt, &text, command_id, prompt).await;
                }
            }
            Effect::AskPin { ccid, lead, prompt } => {
                let mut text = lead;
                push_sentence(&mut text, "Enter your PIN, then press pound.");
                let body = json!({
                    "payload": text,
                    "voice": self.voice,
                    "valid_digits": "0123456789#",
                    "minimum_digits": 1,
                    "maximum_digits": 12,
                    "terminating_digit": "#",
                    "timeout_millis": 10000,
                    "maximum_tries": 2,
                });
                self.command_with(
                    &ccid,
                    attempt,
                    "gather_using_speak",
                    body,
                    command_id,
                    Some(prompt),
                )
                .await;
            }
            Effect::Decide {
                ccid,
                approve,
                approver,
            } => {
                let mut goodbye = self.decide(id, approve, &approver.name, "voice").await;
                push_sentence(&mut goodbye, "Goodbye.");
                self.speak(&ccid, attempt, &goodbye, command_id).await;
            }
            Effect::Goodbye { ccid, text } => self.speak(&ccid, attempt, &text, command_id).await,
            Effect::Hangup { ccid } => {
                self.command(&ccid, attempt, "hangup", json!({}), command_id)
                    .await;
            }
            Effect::Advance { from } => {
                let sms = self.sms_enabled;
                if let Ok(Some((_, next))) =
                    self.update(id, |l| ladder::advance(l, from, sms)).await
                {
                    self.run(id, next).await;
                }
            }
        }
    }

    /// Records a human decision; returns what to tell the approver.
    async fn decide(&self, id: &IntentId, approve: bool, approver: &str, channel: &str) -> String {
        let current = match self.store().get(id).await {
            Ok(Some(intent)) => intent,
            _ => return "Sentinel could not read this intent. Nothing was changed. Please use the operator console.".into(),
        };
        let (to, code, word) = if approve {
            (IntentState::Approved, "human_approved", "approved")
        } else {
            (IntentState::Declined, "human_declined", "declined")
        };
        let result = self
            .gateway
            .decide_pending(
                current,
                to,
                DecidedBy::new(DeciderKind::Human, approver, channel),
                Reason::new(
                    ReasonSource::Human,
                    code,
                    format!("{word} by {approver} via {channel}"),
                ),
                format!("{word} by {approver} via {channel}"),
            )
            .await;
        match result {
            Ok(_) => {
                metrics::inc(
                    "sentinel_escalation_decisions_total",
                    &[("channel", channel), ("decision", word)],
                );
                let _ = self.update(id, |l| l.stage = Stage::Done).await;
                format!("The intent is {word}. Thank you.")
            }
            Err(GatewayError::FailedPrecondition(why)) => {
                self.rejected(
                    Some(id),
                    approver,
                    channel,
                    Some(to),
                    format!("too late: {why}"),
                )
                .await;
                self.progress(
                    id,
                    &format!("{approver}'s {word} via {channel} came too late: {why}"),
                )
                .await;
                "This intent was already decided. Your answer changed nothing.".into()
            }
            Err(e) => {
                warn!(intent_id = %id, error = %e, "cannot record a human decision");
                self.progress(
                    id,
                    &format!("{approver}'s decision via {channel} could not be recorded: {e}"),
                )
                .await;
                "Sentinel could not record your decision. Nothing was approved. Please use the operator console.".into()
            }
        }
    }

    /// Reads an SMS reply; `Err` only when the state could not be read (nothing changed).
    async fn on_sms(&self, data: &EventData) -> Result<(), TelnyxError> {
        // `from` is an object on inbound messages; accept a bare number as well.
        let from = data
            .payload
            .pointer("/from/phone_number")
            .or_else(|| data.payload.get("from"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let text = data.str("text").unwrap_or_default();
        // Only replies to our own number: another number on the same messaging profile is
        // not this channel.
        let to_us = match data.payload.get("to") {
            Some(Value::Array(to)) => to
                .iter()
                .any(|t| t.get("phone_number").and_then(Value::as_str) == Some(self.from.as_str())),
            Some(Value::String(to)) => *to == self.from,
            _ => false,
        };
        if !to_us {
            metrics::inc("sentinel_webhooks_total", &[("outcome", "not_our_number")]);
            return Ok(());
        }
        let Some(approver) = self.roster.by_phone(from) else {
            // Not a roster number: ignored, but the attempt is on record (last digits only).
            metrics::inc("sentinel_webhooks_total", &[("outcome", "unknown_number")]);
            let tail: String = from
                .chars()
                .rev()
                .take(4)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            self.rejected(
                None,
                "unknown",
                "sms",
                None,
                format!("SMS from a number not on the roster (ending {tail})"),
            )
            .await;
            return Ok(());
        };
        let name = approver.name.clone();
        let Some(reply) = sms::parse_reply(text) else {
            self.rejected(
                None,
                &name,
                "sms",
                None,
                "SMS reply is not APPROVE <code> or DECLINE <code>".into(),
            )
            .await;
            return Ok(());
        };
        let intent = match self.state.code_intent(&reply.code).await {
            Ok(Some(id)) => id,
            Ok(None) => {
                self.rejected(
                    None,
                    &name,
                    "sms",
                    None,
                    "SMS reply with an unknown or retired code".into(),
                )
                .await;
                self.bad_code(from, &name).await;
                return Ok(());
            }
            Err(e) => {
                warn!(error = %e, "cannot look up an SMS code");
                return Err(e.into());
            }
        };
        let Some(ladder) = self.state.load(&intent).await? else {
            return Ok(());
        };
        if !ladder.approvers.iter().any(|a| a.phone == from) {
            self.rejected(
                Some(&intent),
                &name,
                "sms",
                None,
                "SMS reply from an approver this intent was not routed to".into(),
            )
            .await;
            // A live code for someone else's intent is still a guess from this number.
            self.bad_code(from, &name).await;
            return Ok(());
        }
        if ladder.locked {
            self.rejected(
                Some(&intent),
                &name,
                "sms",
                None,
                "SMS reply for an intent locked after too many wrong codes or PINs".into(),
            )
            .await;
            return Ok(());
        }
        if reply.approve
            && ladder.pin_required
            && !reply
                .pin
                .as_deref()
                .is_some_and(|p| self.roster.check_pin(from, p))
        {
            self.rejected(
                Some(&intent),
                &name,
                "sms",
                None,
                "SMS approval without a valid PIN".into(),
            )
            .await;
            let strike = self
                .update(&intent, |l| ladder::strike(l, from, Failure::Pin))
                .await;
            let why = format!("{name}'s SMS approval was refused: PIN missing or wrong");
            let reply_text = match strike {
                Ok(Some((
                    _,
                    Strike::Counted {
                        count,
                        max,
                        by_sender,
                    },
                ))) => {
                    self.progress(&intent, &format!("{why} ({count} of {max})"))
                        .await;
                    // One hint per sender: a guesser gets no stream of texts to bill us for.
                    (by_sender == 1).then_some(
                        "Sentinel: this intent needs APPROVE <code> <PIN>. Nothing was approved.",
                    )
                }
                Ok(Some((_, Strike::Locked { max, code }))) => {
                    self.lock_out(&intent, code, &format!("{why} ({max} of {max})"), "sms")
                        .await;
                    Some("Sentinel: too many wrong PINs; this intent can no longer be approved by SMS. Nothing was approved.")
                }
                _ => None,
            };
            if let Some(text) = reply_text {
                let _ = self.client.send_sms(&self.from, from, text, None).await;
            }
            return Ok(());
        }
        self.progress(
            &intent,
            &format!(
                "{name} replied {} by SMS",
                if reply.approve { "APPROVE" } else { "DECLINE" }
            ),
        )
        .await;
        let outcome = self.decide(&intent, reply.approve, &name, "sms").await;
        if let Err(e) = self
            .client
            .send_sms(&self.from, from, &format!("Sentinel: {outcome}"), None)
            .await
        {
            warn!(error = %e, "cannot confirm SMS decision");
        }
        Ok(())
    }

    /// Audits input that was refused and changed nothing.
    async fn rejected(
        &self,
        intent: Option<&IntentId>,
        actor: &str,
        channel: &str,
        state: Option<IntentState>,
        detail: String,
    ) {
        let record = AuditRecord {
            at: now_millis(),
            intent_id: intent.cloned(),
            event: "rejected".into(),
            actor: actor.to_string(),
            channel: channel.to_string(),
            state,
            version: None,
            detail,
        };
        if let Err(e) = self.store().audit(record).await {
            warn!(error = %e, "cannot audit a refused input");
        }
    }

    /// A wrong (or foreign) SMS code from `from`: counted against every intent that number was
    /// texted about and that still takes SMS replies.
    async fn bad_code(&self, from: &str, name: &str) {
        let intents = match self.state.texted_intents(from).await {
            Ok(intents) => intents,
            Err(e) => {
                warn!(error = %e, "cannot count a wrong SMS code");
                return;
            }
        };
        for id in intents {
            let counted = self
                .update(&id, |l| {
                    if l.sms_code.is_none() {
                        return Strike::AlreadyLocked;
                    }
                    ladder::strike(l, from, Failure::Code)
                })
                .await;
            let why = format!("{name} sent a wrong SMS code");
            match counted {
                Ok(Some((_, Strike::Counted { count, max, .. }))) => {
                    self.progress(&id, &format!("{why} ({count} of {max})"))
                        .await;
                }
                Ok(Some((_, Strike::Locked { max, code }))) => {
                    self.lock_out(&id, code, &format!("{why} ({max} of {max})"), "sms")
                        .await;
                }
                _ => {}
            }
        }
    }

    /// Too many wrong codes or PINs: the code is retired (no more SMS replies count) and no PIN
    /// is taken; the intent stays pending for the operator or the deadline.
    async fn lock_out(&self, id: &IntentId, code: Option<String>, why: &str, channel: &str) {
        if let Some(code) = code {
            if let Err(e) = self.state.drop_code(&code).await {
                warn!(intent_id = %id, error = %e, "cannot retire an SMS code");
            }
        }
        metrics::inc(
            "sentinel_escalation_steps_total",
            &[("step", "lockout"), ("outcome", channel)],
        );
        self.rejected(Some(id), "telnyx", channel, None, format!("locked: {why}"))
            .await;
        self.progress(
            id,
            &format!("{why}; SMS code retired and PIN entry locked, waiting for the operator or the deadline"),
        )
        .await;
    }

    // ------------------------------------------------------------------ commands

    async fn menu(&self, ccid: &str, attempt: usize, text: &str, command_id: &str, prompt: u32) {
        let body = json!({
            "payload": voice::clip(text, 2900),
            "voice": self.voice,
            "valid_digits": voice::MENU_KEYS,
            "minimum_digits": 1,
            "maximum_digits": 1,
            "timeout_millis": 10000,
            "maximum_tries": 2,
            "invalid_payload": "That key is not on the menu.",
        });
        self.command_with(
            ccid,
            attempt,
            "gather_using_speak",
            body,
            command_id,
            Some(prompt),
        )
        .await;
    }

    async fn speak(&self, ccid: &str, attempt: usize, text: &str, command_id: &str) {
        let body = json!({ "payload": voice::clip(text, 2900), "voice": self.voice });
        self.command(ccid, attempt, "speak", body, command_id).await;
    }

    /// Sends a call command. A failure other than "call already ended" hangs the call up, so
    /// the ladder moves on instead of leaving the approver in silence.
    async fn command(
        &self,
        ccid: &str,
        attempt: usize,
        action: &str,
        body: Value,
        command_id: &str,
    ) {
        self.command_with(ccid, attempt, action, body, command_id, None)
            .await
    }

    /// [`Self::command`] for a gather: `prompt` goes into its `client_state`.
    async fn command_with(
        &self,
        ccid: &str,
        attempt: usize,
        action: &str,
        body: Value,
        command_id: &str,
        prompt: Option<u32>,
    ) {
        let Err(e) = self
            .try_command(ccid, attempt, action, body, command_id, prompt)
            .await
        else {
            return;
        };
        let Ok(Some(intent)) = self.state.call_intent(ccid).await else {
            return;
        };
        warn!(intent_id = %intent, action, error = %e, "telnyx command failed");
        if e.code() == "90034" && self.wait_for_answer(&intent, ccid, action).await {
            return;
        }
        self.progress(&intent, &format!("telnyx {action} failed: {e}"))
            .await;
        if action != "hangup" {
            let _ = self
                .try_command(
                    ccid,
                    attempt,
                    "hangup",
                    json!({}),
                    &format!("after-{command_id}"),
                    None,
                )
                .await;
        }
    }

    /// Telnyx refused a command with 90034 (call not answered yet): a call in conversation
    /// goes back to ringing, so Telnyx's `call.answered` starts the menu again, instead of
    /// hanging up on the approver; the ring watchdog hangs up if it never comes. `false` when
    /// the call was not in conversation (saying goodbye, say): the caller hangs up as usual.
    async fn wait_for_answer(&self, intent: &IntentId, ccid: &str, action: &str) -> bool {
        let reset = self
            .update(intent, |l| match l.call_mut(ccid) {
                Some(c) if matches!(c.mode, Mode::Menu | Mode::Pin | Mode::Question) => {
                    c.answered = false;
                    c.mode = Mode::Ringing;
                    c.awaiting = 0;
                    true
                }
                _ => false,
            })
            .await;
        if !matches!(reset, Ok(Some((_, true)))) {
            return false;
        }
        self.progress(
            intent,
            &format!("telnyx {action} refused: call not answered yet; waiting for call.answered"),
        )
        .await;
        self.arm(
            WatchdogKind::Ring,
            intent,
            ccid,
            self.ring_timeout + RING_GRACE,
        )
        .await;
        true
    }

    /// Sends a call command with our `client_state` and a `command_id`; the caller decides
    /// what a failure means. A call we do not know is left alone.
    async fn try_command(
        &self,
        ccid: &str,
        attempt: usize,
        action: &str,
        mut body: Value,
        command_id: &str,
        prompt: Option<u32>,
    ) -> Result<CommandOutcome, ClientError> {
        let Some(intent) = self.state.call_intent(ccid).await.ok().flatten() else {
            return Ok(CommandOutcome::CallEnded);
        };
        body["client_state"] = json!(ClientState {
            intent_id: intent.to_string(),
            attempt,
            traceparent: crate::telemetry::current_traceparent(),
            prompt,
        }
        .encode());
        body["command_id"] = json!(format!("{action}-{command_id}"));
        self.client.command(ccid, action, &body).await
    }

    /// The channel keeps a weak handle to itself for the tasks it spawns.
    fn self_arc(&self) -> Option<Arc<Telnyx>> {
        self.me.upgrade()
    }
}

fn push_sentence(text: &mut String, sentence: &str) {
    if !text.is_empty() {
        text.push(' ');
    }
    text.push_str(sentence);
}

/// [`Telnyx`] as an escalation channel.
pub struct TelnyxChannel(pub Arc<Telnyx>);

#[async_trait]
impl Channel for TelnyxChannel {
    fn name(&self) -> &str {
        "telnyx"
    }

    async fn start(&self, intent: &Intent) {
        let me = self.0.clone();
        let intent = intent.clone();
        let span = tracing::info_span!("escalation", intent_id = %intent.id, module = %intent.module, risk_score = intent.risk_score.get());
        // The escalation (and every webhook span under it) joins the submitter's trace.
        if let Some(tp) = &intent.trace_parent {
            crate::telemetry::adopt_traceparent(&span, tp);
        }
        tokio::spawn(me.begin(intent).instrument(span));
    }

    async fn stop(&self, intent: &Intent) {
        let me = self.0.clone();
        let intent = intent.clone();
        tokio::spawn(async move { me.end(&intent).await });
    }
}
