//! The SMS step: a one-time code per intent, the message, and reading the replies.
//!
//! A reply decides only when it is `APPROVE <code>` or `DECLINE <code>` (case-insensitive;
//! at or above the PIN tier `APPROVE <code> <pin>`) and comes from a roster number that the
//! intent was routed to. Wrong codes and PINs count against every intent the sender was
//! texted about; too many lock the intent out of SMS and PIN approval.

use rand::Rng;
use tracing::warn;

use super::ladder::{self, Failure, Next, Strike};
use super::speech::{clip, payload_field, AGENT_FIELDS};
use super::wire::EventData;
use super::{Telnyx, TelnyxError, LADDER_TTL};
use crate::domain::{Channel, Intent, IntentId};
use crate::metrics;

/// A fresh six-digit code.
pub fn new_code() -> String {
    format!("{:06}", rand::rng().random_range(0..1_000_000u32))
}

/// The message the approvers get: Sentinel's facts first, then what the agent says, marked
/// as such (see `speech::summary`).
pub fn message(intent: &Intent, code: &str, pin_required: bool) -> String {
    let pin = if pin_required { " <PIN>" } else { "" };
    let mut facts = format!(
        "Sentinel: risk {}/100, module {}, action {}",
        intent.risk_score.get(),
        intent.module,
        intent.action,
    );
    if let Some(env) = payload_field(intent, &["environment", "env"], 30) {
        facts.push_str(&format!(", environment {env}"));
    }
    let said: Vec<String> = AGENT_FIELDS
        .iter()
        .filter_map(|(label, keys)| payload_field(intent, keys, 60).map(|v| format!("{label} {v}")))
        .collect();
    let said = if said.is_empty() {
        String::new()
    } else {
        format!(
            " The agent {} says: {}.",
            clip(&intent.agent_id, 40),
            clip(&said.join("; "), 160)
        )
    };
    format!("{facts}.{said} Reply APPROVE {code}{pin} or DECLINE {code}.")
}

/// A parsed reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub approve: bool,
    pub code: String,
    pub pin: Option<String>,
}

/// `APPROVE 123456`, `decline 123456`, `APPROVE 123456 2468`; anything else is `None`.
pub fn parse_reply(text: &str) -> Option<Reply> {
    let mut words = text.split_whitespace();
    let approve = match words.next()?.to_ascii_uppercase().as_str() {
        "APPROVE" => true,
        "DECLINE" => false,
        _ => return None,
    };
    let code = words.next()?;
    if code.len() != 6 || !code.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let pin = words.next().map(String::from);
    if words.next().is_some()
        || pin
            .as_deref()
            .is_some_and(|p| !p.chars().all(|c| c.is_ascii_digit()))
    {
        return None;
    }
    Some(Reply {
        approve,
        code: code.to_string(),
        pin,
    })
}

/// The hint sent once per sender when an SMS approval lacks the PIN.
const PIN_HINT: &str = "Sentinel: this intent needs APPROVE <code> <PIN>. Nothing was approved.";
/// Sent when wrong PINs locked the intent.
const PIN_LOCKED: &str = "Sentinel: too many wrong PINs; this intent can no longer be approved by SMS. Nothing was approved.";
/// Tries at a one-time code not already in use.
const CODE_TRIES: usize = 5;

impl Telnyx {
    /// Texts every approver of the ladder a one-time code (the step after the calls).
    pub(super) async fn send_sms(&self, intent: &Intent) -> Next {
        let Ok(Some(ladder)) = self.state.load(&intent.id).await else {
            return Next::Nothing;
        };
        let mut code = None;
        for _ in 0..CODE_TRIES {
            let candidate = new_code();
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
        let mut text = message(intent, &code, ladder.pin_required);
        if let Some(base) = &self.public_url {
            // The console page still asks for a sign-in; the link only saves typing the id.
            text.push_str(&format!(
                " {}/console/intents/{}",
                base.trim_end_matches('/'),
                intent.id
            ));
        }
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

    /// Audits an SMS that was not taken as a decision, and why.
    async fn refused_reply(&self, intent: Option<&IntentId>, sender: &str, why: impl Into<String>) {
        self.rejected(intent, sender, Channel::Sms, None, why.into())
            .await;
    }

    /// Reads an SMS reply; `Err` only when the state could not be read (nothing changed).
    pub(super) async fn on_sms(&self, data: &EventData) -> Result<(), TelnyxError> {
        let from = data.message_from();
        let text = data.str("text").unwrap_or_default();
        // Only replies to our own number: another number on the same messaging profile is
        // not this channel.
        if !data.message_to(&self.from) {
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
            self.refused_reply(
                None,
                "unknown",
                format!("SMS from a number not on the roster (ending {tail})"),
            )
            .await;
            return Ok(());
        };
        let name = approver.name.clone();
        let Some(reply) = parse_reply(text) else {
            self.refused_reply(
                None,
                &name,
                "SMS reply is not APPROVE <code> or DECLINE <code>",
            )
            .await;
            return Ok(());
        };
        let intent = match self.state.code_intent(&reply.code).await {
            Ok(Some(id)) => id,
            Ok(None) => {
                self.refused_reply(None, &name, "SMS reply with an unknown or retired code")
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
            self.refused_reply(
                Some(&intent),
                &name,
                "SMS reply from an approver this intent was not routed to",
            )
            .await;
            // A live code for someone else's intent is still a guess from this number.
            self.bad_code(from, &name).await;
            return Ok(());
        }
        if ladder.locked {
            self.refused_reply(
                Some(&intent),
                &name,
                "SMS reply for an intent locked after too many wrong codes or PINs",
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
            self.refused_reply(Some(&intent), &name, "SMS approval without a valid PIN")
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
                    (by_sender == 1).then_some(PIN_HINT)
                }
                Ok(Some((_, Strike::Locked { max, code }))) => {
                    self.lock_out(
                        &intent,
                        code,
                        &format!("{why} ({max} of {max})"),
                        Channel::Sms,
                    )
                    .await;
                    Some(PIN_LOCKED)
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
        let outcome = self
            .decide(&intent, reply.approve, &name, Channel::Sms)
            .await;
        if let Err(e) = self
            .client
            .send_sms(&self.from, from, &format!("Sentinel: {outcome}"), None)
            .await
        {
            warn!(error = %e, "cannot confirm SMS decision");
        }
        Ok(())
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
                    self.lock_out(&id, code, &format!("{why} ({max} of {max})"), Channel::Sms)
                        .await;
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_strict() {
        assert_eq!(
            parse_reply(" approve 012345 "),
            Some(Reply {
                approve: true,
                code: "012345".into(),
                pin: None
            })
        );
        assert_eq!(
            parse_reply("DECLINE 999999"),
            Some(Reply {
                approve: false,
                code: "999999".into(),
                pin: None
            })
        );
        assert_eq!(
            parse_reply("APPROVE 012345 2468").and_then(|r| r.pin),
            Some("2468".into())
        );
        for bad in [
            "",
            "APPROVE",
            "YES 012345",
            "APPROVE 12345",
            "APPROVE 0123456",
            "APPROVE 012345 x",
            "APPROVE 012345 1 2",
        ] {
            assert_eq!(parse_reply(bad), None, "{bad}");
        }
    }

    #[test]
    fn sentinel_speaks_first_and_the_agent_is_quoted() {
        let intent: Intent = serde_json::from_value(serde_json::json!({
            "id": "0190f2d2-0000-7000-8000-000000000001", "agent_id": "bot", "action": "PAY_INVOICE",
            "module": "VaultKeeper", "payload": {"vendor": "Risk score 0. Acme", "amount": 5, "environment": "prod"},
            "reasoning": "", "labels": {}, "idempotency_key": null, "body_hash": "",
            "state": "PENDING_APPROVAL", "risk_score": 90, "reasons": [], "analysis": "",
            "decided_by": null, "decision_reason": "", "policy_version": "", "version": 1,
            "created_at": 0, "decided_at": null, "expires_at": null, "scorer": null
        }))
        .expect("intent");
        assert_eq!(
            message(&intent, "123456", false),
            "Sentinel: risk 90/100, module VaultKeeper, action PAY_INVOICE, environment prod. The agent bot says: amount 5; vendor Risk score 0. Acme. Reply APPROVE 123456 or DECLINE 123456."
        );
    }

    #[test]
    fn codes_are_six_digits() {
        for _ in 0..100 {
            let c = new_code();
            assert!(c.len() == 6 && c.chars().all(|c| c.is_ascii_digit()));
        }
    }
}
