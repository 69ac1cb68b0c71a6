//! The SMS step: a one-time code per intent, the message, and reading the replies.
//!
//! A reply decides only when it is `APPROVE <code>` or `DECLINE <code>` (case-insensitive;
//! at or above the PIN tier `APPROVE <code> <pin>`) and comes from a roster number that the
//! intent was routed to.

use rand::Rng;

use super::voice::clip;
use crate::domain::Intent;

/// A fresh six-digit code.
pub fn new_code() -> String {
    format!("{:06}", rand::rng().random_range(0..1_000_000u32))
}

/// The message the approvers get.
pub fn message(intent: &Intent, code: &str, pin_required: bool) -> String {
    let pin = if pin_required { " <PIN>" } else { "" };
    format!(
        "Sentinel: agent {} wants to {} ({}; risk {}/100). Reply APPROVE {code}{pin} or DECLINE {code}.",
        clip(&intent.agent_id, 40),
        intent.action,
        clip(&details(intent), 160),
        intent.risk_score.get(),
    )
}

fn details(intent: &Intent) -> String {
    ["amount", "vendor", "record_count", "environment"]
        .iter()
        .filter_map(|k| {
            let v = intent.payload.get(*k)?;
            let v = v
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| v.to_string());
            Some(format!("{k} {v}"))
        })
        .chain(std::iter::once(format!("module {}", intent.module)))
        .collect::<Vec<_>>()
        .join(", ")
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
    fn codes_are_six_digits() {
        for _ in 0..100 {
            let c = new_code();
            assert!(c.len() == 6 && c.chars().all(|c| c.is_ascii_digit()));
        }
    }
}
