//! The checkable view of an intent: what the approving pass of the scorer is allowed to read.
//!
//! The score that can approve is computed from facts Sentinel can stand behind, never from
//! text the agent chose. A payload value reaches the approving pass verbatim only when it is:
//! - a number, a boolean or null;
//! - a string the policy pack itself names (a string literal in a rule, e.g. a trusted vendor
//!   in `payload.vendor in ['AWS', 'Stripe']`, or an action a module lists);
//! - a value from a closed set Sentinel knows: ISO 4217 currency codes and environment names
//!   (`production`, `staging`, ...).
//!
//! Every other string is agent-chosen free text and is reduced to neutral facts: its length in
//! characters and words, the scripts it is written in, and for a short token without spaces
//! its shape (`INV-2024-7` becomes `AAA-9999-9`). Field names are agent-chosen too: a key
//! passes only when the pack reads it (`payload.amount`) or it is one of the well-known keys
//! below; any other key becomes `field_1`, `field_2`, ... The agent id, reasoning and labels
//! follow the same rules (the reasoning is always reduced).

use serde_json::{json, Map, Value};

pub use crate::domain::KnownValues;

use super::ScoreRequest;

/// Keys whose meaning Sentinel knows, whatever the pack reads (besides
/// [`super::fallback::FACT_KEYS`]).
const KNOWN_KEYS: [&str; 8] = [
    "invoice_id",
    "memo",
    "description",
    "destination",
    "recipient",
    "service",
    "server",
    "count",
];

/// Whether a field name may reach the approving pass: the pack reads it, or Sentinel knows
/// its meaning.
fn knows_key(known: &KnownValues, k: &str) -> bool {
    known.names_key(k) || KNOWN_KEYS.contains(&k) || super::fallback::FACT_KEYS.contains(&k)
}

/// The neutral facts of a free-text string.
pub fn text_facts(s: &str) -> Value {
    let chars = s.chars().count();
    if chars <= 32 && !s.chars().any(char::is_whitespace) {
        let shape: String = s
            .chars()
            .map(|c| match c {
                c if c.is_ascii_digit() => '9',
                c if c.is_alphabetic() => 'A',
                '-' | '_' | '.' | '/' | ':' | '#' => c,
                _ => '?',
            })
            .collect();
        return json!({ "token_shape": shape });
    }
    json!({
        "free_text": {
            "chars": chars,
            "words": s.split_whitespace().count(),
            "scripts": scripts(s),
        }
    })
}

/// The writing systems a text uses, by name.
fn scripts(s: &str) -> Vec<&'static str> {
    let mut found: Vec<&'static str> = Vec::new();
    for c in s.chars().filter(|c| c.is_alphabetic()) {
        let name = match c as u32 {
            0x0000..=0x024F | 0x1E00..=0x1EFF => "Latin",
            0x0370..=0x03FF | 0x1F00..=0x1FFF => "Greek",
            0x0400..=0x052F => "Cyrillic",
            0x0590..=0x05FF => "Hebrew",
            0x0600..=0x06FF => "Arabic",
            0x3040..=0x30FF => "Japanese kana",
            0x4E00..=0x9FFF | 0x3400..=0x4DBF => "Han",
            0xAC00..=0xD7AF => "Hangul",
            0xFF00..=0xFFEF => "Full-width",
            _ => "Other",
        };
        if !found.contains(&name) {
            found.push(name);
        }
        if found.len() == 4 {
            break;
        }
    }
    found
}

struct Reducer<'a> {
    known: &'a KnownValues,
    renamed: usize,
}

impl Reducer<'_> {
    fn value(&mut self, v: &Value) -> Value {
        match v {
            Value::String(s) if self.known.knows_string(s) => Value::String(s.clone()),
            Value::String(s) => text_facts(s),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.value(v)).collect()),
            Value::Object(map) => Value::Object(self.object(map.iter())),
            other => other.clone(),
        }
    }

    fn object<'v>(
        &mut self,
        entries: impl Iterator<Item = (&'v String, &'v Value)>,
    ) -> Map<String, Value> {
        let mut out = Map::new();
        for (k, v) in entries {
            let key = if knows_key(self.known, k) {
                k.clone()
            } else {
                self.renamed += 1;
                format!("field_{}", self.renamed)
            };
            out.insert(key, self.value(v));
        }
        out
    }
}

/// The document the approving pass reads: Sentinel's policy view plus the intent with every
/// unchecked string reduced to neutral facts.
pub fn checked_document(request: &ScoreRequest<'_>) -> Value {
    let d = request.draft;
    let mut reducer = Reducer {
        known: request.known,
        renamed: 0,
    };
    let payload = reducer.value(&d.payload);
    let labels: Map<String, Value> = d
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let labels = reducer.value(&Value::Object(labels));
    let action = if request.known.knows_string(&d.action) {
        json!(d.action)
    } else {
        text_facts(&d.action)
    };
    let reasoning = if d.reasoning.trim().is_empty() {
        json!("none given")
    } else {
        text_facts(&d.reasoning)
    };
    json!({
        "action": action,
        "module": request.module,
        "policy": {
            "floor": request.floor.get(),
            "notes": request.policy_reasons.iter().map(|r| json!({"code": r.code, "message": r.message})).collect::<Vec<_>>(),
        },
        "payload": payload,
        "labels": labels,
        "reasoning": reasoning,
    })
}

/// The agent-written strings a prompt-attack classifier should read: everything the checked
/// view does not pass verbatim (known values are Sentinel's own text).
pub fn unchecked_texts<'a>(request: &ScoreRequest<'a>) -> Vec<&'a str> {
    let mut texts = super::scan::agent_texts(request.draft);
    texts.retain(|t| !request.known.knows_string(t) && !knows_key(request.known, t));
    texts.sort_unstable();
    texts.dedup();
    texts
}
