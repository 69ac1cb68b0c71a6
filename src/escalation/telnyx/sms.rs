//! The SMS step: a one-time code per intent, the message, and reading the replies.
//!
//! A reply decides only when it is `APPROVE <code>` or `DECLINE <code>` (case-insensitive;
//! at or above the PIN tier `APPROVE <code> <pin>`) and comes from a roster number that the
//! intent was routed to.

use rand::Rng;

use super::voice::{clip, payload_field, AGENT_FIELDS};
use crate::domain::Intent;

/// A fresh six-digit code.
pub fn new_code() -> String {
    format!("{:06}", rand::rng().random_range(0..1_000_000u32))
}

/// The message the approvers get: Sentinel's facts first, then what the agent says, marked
/// as such (see `voice::summary`).
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
