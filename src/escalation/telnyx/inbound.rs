//! Verified, first-seen webhooks: which intent an event is about, and what it changes.
//!
//! SMS replies go to [`super::sms`]; call events go through the pure call state machine
//! ([`super::voice::on_event`]) under the ladder's compare-and-set, and only then are its
//! effects carried out, so a duplicate or racing delivery cannot act twice. Unknown calls are
//! ignored; a `client_state` naming another intent than the call's is refused on record.

use std::sync::Arc;

use tracing::{warn, Instrument};

use super::commands::Command;
use super::ladder;
use super::speech;
use super::state::{Mode, Stage, StateError, WatchdogKind};
use super::voice::{self, CallEvent, Effect};
use super::wire::EventData;
use super::{Telnyx, TelnyxError, AMD_WAIT, ANSWER_TIMEOUT, UNKNOWN_CALL_TRIES, UNKNOWN_CALL_WAIT};
use crate::domain::{Channel, IntentId};
use crate::metrics;

impl Telnyx {
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
                    self.rejected(
                        Some(&intent),
                        "telnyx-webhook",
                        Channel::Voice,
                        None,
                        detail,
                    )
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
    pub(super) async fn on_call_event(
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
                self.rejected(Some(id), &actor, Channel::Voice, None, reason)
                    .await;
                self.progress(id, &line).await;
            }
            Effect::Locked { code, why } => self.lock_out(id, code, &why, Channel::Voice).await,
            Effect::Menu {
                ccid,
                lead,
                summary,
                prompt,
            } => {
                let summary = match summary {
                    false => None,
                    true => Some(match self.gateway.intent(id).await {
                        Ok(Some(intent)) => speech::summary(&intent),
                        _ => speech::NO_SUMMARY.to_string(),
                    }),
                };
                let text = speech::menu(&lead, summary.as_deref());
                self.menu(&ccid, attempt, &text, command_id, prompt).await;
            }
            Effect::AskQuestion { ccid } => {
                let ask = Command::ask_question(&self.voice);
                let asked = self.try_send(&ccid, attempt, &ask, command_id, None).await;
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
                    self.speak(&ccid, attempt, speech::QUESTION_PROMPT, command_id)
                        .await;
                    self.send(&ccid, attempt, Command::listen(), command_id, None)
                        .await;
                }
            }
            Effect::StopListening { ccid } => {
                // Best effort: the transcription ends with the call anyway.
                let stop = Command::TranscriptionStop {};
                let _ = self.try_send(&ccid, attempt, &stop, command_id, None).await;
            }
            Effect::Answer { ccid, question } => {
                let answer = match self.gateway.intent(id).await {
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
                                speech::NO_ANSWER.to_string()
                            }
                            Err(_) => speech::NO_ANSWER_IN_TIME.to_string(),
                        }
                    }
                    _ => speech::CANNOT_READ_INTENT.to_string(),
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
                    self.progress(
                        id,
                        &format!("answer spoken: {}", speech::clip(&answer, 300)),
                    )
                    .await;
                    let text = speech::answer(&answer);
                    self.menu(&ccid, attempt, &text, command_id, prompt).await;
                }
            }
            Effect::AskPin { ccid, lead, prompt } => {
                let pin = Command::pin(&speech::pin_prompt(&lead), &self.voice);
                self.send(&ccid, attempt, pin, command_id, Some(prompt))
                    .await;
            }
            Effect::Decide {
                ccid,
                approve,
                approver,
            } => {
                let outcome = self
                    .decide(id, approve, &approver.name, Channel::Voice)
                    .await;
                self.speak(&ccid, attempt, &speech::goodbye(&outcome), command_id)
                    .await;
            }
            Effect::Goodbye { ccid, text } => self.speak(&ccid, attempt, &text, command_id).await,
            Effect::Hangup { ccid } => {
                self.hangup(&ccid, attempt, command_id).await;
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
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio_util::sync::CancellationToken;
    use tokio_util::task::TaskTracker;

    use super::*;
    use crate::escalation::telnyx::state::{MemoryState, TelnyxState};
    use crate::escalation::telnyx::testing;
    use crate::scoring::fallback::FallbackScorer;
    use crate::store::{MemoryStore, Store};

    struct Fixture {
        telnyx: Arc<Telnyx>,
        store: Arc<dyn Store>,
        state: Arc<MemoryState>,
        shutdown: CancellationToken,
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            self.shutdown.cancel();
        }
    }

    fn fixture() -> Fixture {
        let config = testing::settings();
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let gateway = testing::gateway(store.clone());
        let state = Arc::new(MemoryState::new());
        let shutdown = CancellationToken::new();
        let telnyx = Telnyx::new(
            &config,
            gateway,
            Arc::new(FallbackScorer),
            state.clone(),
            TaskTracker::new(),
            shutdown.clone(),
        )
        .unwrap();
        Fixture {
            telnyx,
            store,
            state,
            shutdown,
        }
    }

    fn event(event_type: &str, payload: serde_json::Value) -> EventData {
        serde_json::from_value(serde_json::json!({
            "id": "e-1", "event_type": event_type, "payload": payload
        }))
        .unwrap()
    }

    async fn rejected(store: &Arc<dyn Store>) -> Vec<(String, String, String)> {
        store
            .audit_range(0, i64::MAX, 100)
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.event == "rejected")
            .map(|r| (r.actor, r.channel, r.detail))
            .collect()
    }

    #[tokio::test]
    async fn an_event_arriving_at_shutdown_is_left_for_redelivery() {
        let f = fixture();
        f.shutdown.cancel();
        let result = f
            .telnyx
            .clone()
            .handle(event(
                "call.answered",
                serde_json::json!({"call_control_id": "v3:x"}),
            ))
            .await;
        assert!(
            matches!(result, Err(TelnyxError::ShuttingDown)),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn events_of_unknown_calls_and_other_numbers_change_nothing() {
        let f = fixture();
        let unknown_call = event(
            "call.gather.ended",
            serde_json::json!({"call_control_id": "v3:nobody", "digits": "1", "status": "valid"}),
        );
        f.telnyx.clone().handle(unknown_call).await.unwrap();
        let elsewhere = event(
            "message.received",
            serde_json::json!({
                "from": {"phone_number": "+14155550101"},
                "to": [{"phone_number": "+14155550000"}],
                "text": "APPROVE 123456"
            }),
        );
        f.telnyx.clone().handle(elsewhere).await.unwrap();
        assert!(rejected(&f.store).await.is_empty());
    }

    #[tokio::test]
    async fn a_client_state_naming_another_intent_is_refused_on_record() {
        let f = fixture();
        let ours = IntentId::generate();
        f.state
            .index_call("v3:c", &ours, Duration::from_secs(60))
            .await
            .unwrap();
        let other = crate::escalation::telnyx::wire::ClientState {
            intent_id: IntentId::generate().to_string(),
            attempt: 0,
            traceparent: None,
            prompt: Some(1),
        };
        let keys = event(
            "call.gather.ended",
            serde_json::json!({
                "call_control_id": "v3:c", "digits": "1", "status": "valid",
                "client_state": other.encode()
            }),
        );
        f.telnyx.clone().handle(keys).await.unwrap();
        assert_eq!(
            rejected(&f.store).await,
            vec![(
                "telnyx-webhook".to_string(),
                "voice".to_string(),
                "call.gather.ended on this intent's call names another intent; ignored".to_string()
            )]
        );
    }
}
