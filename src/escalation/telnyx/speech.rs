//! What Sentinel says to an approver on the phone, in one place.
//!
//! Sentinel's own facts come first and the agent's text is introduced as the agent's, clipped,
//! so words in a payload cannot pass themselves off as Sentinel speaking. Speech never decides:
//! [`spoken_decision`] only recognises that an approver said a decision, which the call then
//! asks them to confirm with a key.

use serde_json::Value;

use crate::domain::Intent;

/// The menu, spoken after every summary, answer or refusal.
pub const MENU: &str = "Press 1 to approve, 2 to ask a question, 3 to decline, or 9 to repeat.";
/// The menu's keys: a menu answer counts only when its digits are exactly one of these.
pub const MENU_KEYS: &str = "1239";
pub const NO_KEY: &str = "I did not get a key.";
pub const NOT_ON_MENU: &str = "That key is not on the menu.";
pub const NO_KEY_GOODBYE: &str = "No key was pressed. Nothing was decided. Goodbye.";

/// The menu prompt: `lead`, then the summary when there is one, then the menu.
pub fn menu(lead: &str, summary: Option<&str>) -> String {
    let text = match summary {
        Some(summary) => followed_by(lead.to_string(), summary),
        None => lead.to_string(),
    };
    followed_by(text, MENU)
}

/// Question mode's greeting (also spoken before plain transcription).
pub const QUESTION_PROMPT: &str = "What would you like to know? Ask your question now.";
/// How our own greeting is recognised if a transcript echoes it back.
pub const QUESTION_PROMPT_KEY: &str = "what would you like to know";
pub const NO_QUESTION: &str = "I did not catch a question.";
pub const NO_ANSWER: &str = "I could not get an answer right now.";
pub const NO_ANSWER_IN_TIME: &str = "I could not get an answer in time.";

/// The scorer's answer to a question, then the menu again.
pub fn answer(answer: &str) -> String {
    followed_by(clip(answer, 2000), MENU)
}

pub const NEEDS_PIN: &str = "This intent needs your PIN.";
pub const WRONG_PIN: &str = "That PIN is not correct.";
pub const NO_PIN_ENTERED: &str = "No PIN was entered; nothing was approved.";
pub const PIN_LOCKED_GOODBYE: &str = "Too many wrong PINs. Nothing was approved. Goodbye.";
pub const PIN_LOCKED: &str = "Too many wrong PINs were entered for this intent, so it cannot be \
     approved by phone. You can decline, or ask the operator.";
pub const NO_PIN_CONFIGURED: &str = "This intent needs a PIN to approve and you have none \
     configured. You can decline, or approve from the operator console.";
const ENTER_PIN: &str = "Enter your PIN, then press pound.";

/// The PIN prompt after `lead`.
pub fn pin_prompt(lead: &str) -> String {
    followed_by(lead.to_string(), ENTER_PIN)
}

/// Said when the intent cannot be read for its summary.
pub const NO_SUMMARY: &str = "Sentinel needs your decision on a pending intent.";
pub const CANNOT_READ_INTENT: &str = "I could not read this intent right now.";
pub const TOO_LATE: &str = "This intent was already decided. Your answer changed nothing.";
pub const NOT_READ: &str = "Sentinel could not read this intent. Nothing was changed. Please use \
     the operator console.";
pub const NOT_RECORDED: &str = "Sentinel could not record your decision. Nothing was approved. \
     Please use the operator console.";

/// Said (or read in the SMS) when a decision was recorded.
pub fn decided(word: &str) -> String {
    format!("The intent is {word}. Thank you.")
}

/// The last thing said before hanging up.
pub fn goodbye(outcome: &str) -> String {
    followed_by(outcome.to_string(), "Goodbye.")
}

/// Heard a spoken decision: ask for the key that would make it.
pub fn confirm_with_key(word: &str, key: u8) -> String {
    format!("I heard you say {word}. Spoken words do not decide. To {word}, press {key}.")
}

/// What the approver hears first: enough to decide on. Sentinel's own facts come first
/// (risk score, module, action, environment); what the agent wrote follows, introduced as the
/// agent's words, so text in a payload cannot pass itself off as Sentinel speaking.
pub fn summary(intent: &Intent) -> String {
    let mut parts = vec![format!(
        "Sentinel needs your decision. Risk score {} out of 100. Module {}. Action {}.",
        intent.risk_score.get(),
        intent.module,
        intent.action.to_lowercase().replace('_', " ")
    )];
    if let Some(env) = payload_field(intent, &["environment", "env"], 30) {
        parts.push(format!("Environment {env}."));
    }
    let said: Vec<String> = AGENT_FIELDS
        .iter()
        .filter_map(|(label, keys)| payload_field(intent, keys, 80).map(|v| format!("{label} {v}")))
        .collect();
    if !said.is_empty() {
        parts.push(format!(
            "The agent {} says: {}.",
            clip(&intent.agent_id, 60),
            said.join("; ")
        ));
    }
    if !intent.analysis.is_empty() {
        parts.push(format!("Analysis: {}", clip(&intent.analysis, 1200)));
    }
    parts.join(" ")
}

/// Payload fields worth hearing, as the agent's words: (label, keys tried in order).
pub const AGENT_FIELDS: &[(&str, &[&str])] = &[
    ("amount", &["amount"]),
    ("currency", &["currency"]),
    ("vendor", &["vendor"]),
    ("records", &["record_count", "records"]),
    ("contains personal data", &["contains_pii"]),
    ("target", &["table", "user_id", "server", "target"]),
];

/// A scalar payload field as text, clipped to `max` characters.
pub fn payload_field(intent: &Intent, keys: &[&str], max: usize) -> Option<String> {
    keys.iter()
        .find_map(|k| intent.payload.get(*k))
        .and_then(|v| match v {
            Value::String(s) => Some(clip(s, max)),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(if *b { "yes".into() } else { "no".into() }),
            _ => None,
        })
}

/// At most `max` characters, on a character boundary.
pub fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_string(),
    }
}

/// `text`, then `sentence` after a space (none when `text` is empty).
fn followed_by(mut text: String, sentence: &str) -> String {
    if !text.is_empty() {
        text.push(' ');
    }
    text.push_str(sentence);
    text
}

/// What a spoken utterance asks for, if it sounds like a decision.
pub fn spoken_decision(text: &str) -> Option<bool> {
    let t = text.to_lowercase();
    let has = |words: &[&str]| {
        words
            .iter()
            .any(|w| t.split(|c: char| !c.is_alphanumeric()).any(|x| x == *w))
    };
    let approve = has(&[
        "approve",
        "approved",
        "approving",
        "accept",
        "authorize",
        "authorise",
    ]);
    let decline = has(&[
        "decline", "declined", "deny", "denied", "reject", "rejected", "refuse",
    ]);
    match (approve, decline) {
        (true, false) => Some(true),
        (false, true) => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn intent(payload: serde_json::Value, analysis: &str) -> Intent {
        serde_json::from_value(json!({
            "id": "0190f2d2-0000-7000-8000-000000000001", "agent_id": "billing-bot",
            "action": "PAY_INVOICE", "module": "VaultKeeper", "payload": payload,
            "reasoning": "", "labels": {}, "idempotency_key": null, "body_hash": "",
            "state": "PENDING_APPROVAL", "risk_score": 92, "reasons": [], "analysis": analysis,
            "decided_by": null, "decision_reason": "", "policy_version": "", "version": 2,
            "created_at": 0, "decided_at": null, "expires_at": null, "scorer": null
        }))
        .expect("intent")
    }

    #[test]
    fn sentinel_speaks_first_and_the_agent_is_quoted_as_the_agent() {
        let text = summary(&intent(
            json!({"amount": 9000, "vendor": "Sentinel says approve. Press 1 now", "environment": "prod"}),
            "unknown vendor",
        ));
        assert!(text.starts_with(
            "Sentinel needs your decision. Risk score 92 out of 100. Module VaultKeeper. Action pay invoice."
        ), "{text}");
        let agent = text.find(
            "The agent billing-bot says: amount 9000; vendor Sentinel says approve. Press 1 now.",
        );
        assert!(agent.is_some(), "{text}");
        // The vendor's words appear only inside the agent's quote, after Sentinel's facts.
        assert_eq!(
            text.find("Sentinel says approve"),
            agent.map(|a| a + "The agent billing-bot says: amount 9000; vendor ".len())
        );
        assert!(text.contains("Environment prod."), "{text}");
        assert!(text.ends_with("Analysis: unknown vendor"), "{text}");
    }

    #[test]
    fn the_agents_fields_are_clipped() {
        let long = "x".repeat(500);
        let text = summary(&intent(json!({"vendor": long}), ""));
        assert!(
            text.contains(&format!("vendor {}...", "x".repeat(80))),
            "{text}"
        );
        assert!(!text.contains(&"x".repeat(81)));
        assert_eq!(clip("héllo", 2), "hé...");
        assert_eq!(clip("hi", 2), "hi");
    }

    #[test]
    fn every_prompt_ends_with_what_to_press() {
        assert_eq!(menu("", None), MENU);
        assert_eq!(
            menu(NO_KEY, Some("Summary.")),
            format!("{NO_KEY} Summary. {MENU}")
        );
        assert_eq!(answer("It is a refund."), format!("It is a refund. {MENU}"));
        assert_eq!(
            pin_prompt(NEEDS_PIN),
            "This intent needs your PIN. Enter your PIN, then press pound."
        );
        assert_eq!(
            goodbye(&decided("approved")),
            "The intent is approved. Thank you. Goodbye."
        );
        assert_eq!(
            confirm_with_key("decline", 3),
            "I heard you say decline. Spoken words do not decide. To decline, press 3."
        );
        for key in MENU_KEYS.chars() {
            assert!(MENU.contains(&format!("{key} to")), "{key}");
        }
    }

    #[test]
    fn spoken_decisions_are_recognised_as_words_only() {
        assert_eq!(spoken_decision("I approve"), Some(true));
        assert_eq!(spoken_decision("decline it"), Some(false));
        assert_eq!(spoken_decision("why approve or decline?"), None);
        assert_eq!(spoken_decision("what is the disapproval rate"), None);
    }
}
