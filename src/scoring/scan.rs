//! The deterministic scan for text aimed at the reviewer rather than at the task.
//!
//! It runs on every string the agent wrote (reasoning, payload keys and string values, labels)
//! whenever a case reaches the scorer, with or without an LLM, so it must be cheap and bounded:
//! each string is cut at [`MAX_SCAN_CHARS`], decoded runs are capped, and matching is plain
//! substring search over a normalised copy.
//!
//! Normalisation sees through the usual disguises before matching:
//! - NFKD compatibility decomposition (full-width letters, ligatures, circled letters) with
//!   combining marks dropped ("déjà" is "deja");
//! - invisible characters removed (zero-width, soft hyphen, bidi controls);
//! - every non-ASCII character replaced by its Unicode TR39 confusable skeleton when that is
//!   ASCII (Greek and Cyrillic look-alikes become Latin letters);
//! - lower case; words are runs of letters and digits.
//!
//! On top of the normalised text it also reads: letter-separated words rejoined
//! ("i-g-n-o-r-e", "r i s k"), base64 / hex / percent-encoded runs decoded, and sentences
//! repeated over and over. The phrase sets cover English, French, Spanish, German,
//! Portuguese, Chinese and Japanese.
//!
//! A hit is a named signal. It never lowers anything: the scorer raises the intent to at least
//! [`INJECTION_SCORE`] and a human decides.

use std::sync::LazyLock;

use base64::Engine;
use serde_json::Value;
use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

use crate::domain::IntentDraft;

/// The score an intent gets, at least, when its text tries to instruct the reviewer.
pub const INJECTION_SCORE: u8 = 90;

/// Longest prefix of one string that is scanned (characters). Validation caps strings at
/// 16 KiB; this keeps the worst case of a submission with many strings bounded too.
pub const MAX_SCAN_CHARS: usize = 8192;
/// Most strings scanned per intent; the rest are treated as one more signal (an agent that
/// sends hundreds of free-text fields is itself worth a human look).
pub const MAX_SCAN_STRINGS: usize = 256;
/// Most encoded runs decoded per string.
const MAX_DECODED_RUNS: usize = 8;

mod phrases;

use phrases::{NOTHING_WORDS, OVERRIDE_OBJECTS, OVERRIDE_VERBS, PHRASES, RAW_MARKERS, SCORE_WORDS};

struct Phrase {
    text: String,
    signal: &'static str,
    /// CJK phrases match anywhere; others as whole words.
    anywhere: bool,
}

static NORMALISED_PHRASES: LazyLock<Vec<Phrase>> = LazyLock::new(|| {
    PHRASES
        .iter()
        .flat_map(|(signal, phrases)| {
            phrases.iter().map(move |p| {
                let anywhere = !p.is_ascii();
                let text = if anywhere {
                    normalise(p)
                } else {
                    words(&normalise(p)).join(" ")
                };
                Phrase {
                    text,
                    signal,
                    anywhere,
                }
            })
        })
        .collect()
});

/// The signals found in an intent's agent-written text, each once, in a stable order.
pub fn injection_signals(draft: &IntentDraft) -> Vec<&'static str> {
    let texts = agent_texts(draft);
    let mut found = Vec::new();
    if texts.len() > MAX_SCAN_STRINGS {
        found.push("too_many_strings");
    }
    for text in texts.into_iter().take(MAX_SCAN_STRINGS) {
        for signal in signals_in(text) {
            if !found.contains(&signal) {
                found.push(signal);
            }
        }
    }
    found
}

/// Every string the agent chose: reasoning, action, payload keys and string values, labels.
pub fn agent_texts(draft: &IntentDraft) -> Vec<&str> {
    let mut texts: Vec<&str> = vec![draft.reasoning.as_str(), draft.action.as_str()];
    collect_strings(&draft.payload, &mut texts);
    for (k, v) in &draft.labels {
        texts.push(k);
        texts.push(v);
    }
    texts.retain(|t| !t.is_empty());
    texts
}

fn collect_strings<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        Value::Object(map) => {
            for (k, v) in map {
                out.push(k);
                collect_strings(v, out);
            }
        }
        _ => {}
    }
}

/// The signals in one string.
pub fn signals_in(text: &str) -> Vec<&'static str> {
    let text: String = text.chars().take(MAX_SCAN_CHARS).collect();
    let mut found = Vec::new();
    scan_normalised(&normalise(&text), &mut found);
    if repeats(&text) {
        add(&mut found, "repetition");
    }
    for decoded in decoded_runs(&text) {
        let before = found.len();
        scan_normalised(&normalise(&decoded), &mut found);
        if found.len() > before {
            add(&mut found, "encoded_instructions");
        }
    }
    found
}

fn add(found: &mut Vec<&'static str>, signal: &'static str) {
    if !found.contains(&signal) {
        found.push(signal);
    }
}

fn scan_normalised(norm: &str, found: &mut Vec<&'static str>) {
    let compact: String = norm.chars().filter(|c| !c.is_whitespace()).collect();
    for (marker, signal) in RAW_MARKERS {
        if compact.contains(marker) {
            add(found, signal);
        }
    }
    let words = words(norm);
    // Letter-separated words rejoined in place: "i-g-n-o-r-e" or "r i s k: 0" read as
    // "ignore", "risk 0". Runs of one-letter words (three or more) become one word.
    let mut merged: Vec<String> = Vec::with_capacity(words.len());
    let mut rejoined: Vec<String> = Vec::new();
    let mut run = String::new();
    let mut run_len = 0;
    let flush = |run: &mut String,
                 run_len: &mut usize,
                 merged: &mut Vec<String>,
                 rejoined: &mut Vec<String>| {
        if *run_len >= 3 {
            rejoined.push(run.clone());
            merged.push(std::mem::take(run));
        } else {
            merged.extend(run.chars().map(String::from));
            run.clear();
        }
        *run_len = 0;
    };
    for w in &words {
        if w.chars().count() == 1 && w.chars().all(char::is_alphabetic) {
            run.push_str(w);
            run_len += 1;
        } else {
            flush(&mut run, &mut run_len, &mut merged, &mut rejoined);
            merged.push((*w).to_string());
        }
    }
    flush(&mut run, &mut run_len, &mut merged, &mut rejoined);
    let spaced = format!(" {} ", words.join(" "));
    let spaced_merged = format!(" {} ", merged.join(" "));
    for phrase in NORMALISED_PHRASES.iter() {
        let hit = if phrase.anywhere {
            norm.contains(&phrase.text)
        } else {
            contains_words(&spaced, &phrase.text) || contains_words(&spaced_merged, &phrase.text)
        };
        if hit {
            add(found, phrase.signal);
        }
    }
    let words: Vec<&str> = merged.iter().map(String::as_str).collect();
    // Rejoined letters also count when glued to their neighbours ("r-i-s-k-s-c-o-r-e").
    for r in &rejoined {
        for phrase in NORMALISED_PHRASES.iter().filter(|p| !p.anywhere) {
            if phrase.text.len() >= 4 && r.contains(&phrase.text.replace(' ', "")) {
                add(found, phrase.signal);
            }
        }
    }
    for (i, w) in words.iter().enumerate() {
        let next = || words[i + 1..].iter().take(4);
        if OVERRIDE_VERBS.contains(w) && next().any(|o| OVERRIDE_OBJECTS.contains(o)) {
            add(found, "instruction_override");
        }
        if SCORE_WORDS.contains(w)
            && next()
                .take(3)
                .any(|o| NOTHING_WORDS.contains(o) || o.parse::<u32>().is_ok_and(|n| n <= 50))
        {
            add(found, "score_request");
        }
    }
}

/// Whether `phrase` occurs in `spaced` (words joined by single spaces, padded with one space at
/// each end) as whole words.
fn contains_words(spaced: &str, phrase: &str) -> bool {
    spaced
        .match_indices(phrase)
        .any(|(i, _)| spaced[..i].ends_with(' ') && spaced[i + phrase.len()..].starts_with(' '))
}

/// The normal form matched against: compatibility-decomposed, combining marks and invisible
/// characters dropped, non-ASCII look-alikes replaced by their ASCII skeleton, lower case.
pub fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.nfkd() {
        if is_combining_mark(c) || is_invisible(c) {
            continue;
        }
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
            continue;
        }
        let mut buf = [0u8; 4];
        let skeleton: String = unicode_security::skeleton(c.encode_utf8(&mut buf)).collect();
        if !skeleton.is_empty() && skeleton.is_ascii() {
            out.extend(skeleton.chars().map(|c| c.to_ascii_lowercase()));
        } else {
            out.extend(c.to_lowercase());
        }
    }
    out
}

fn is_invisible(c: char) -> bool {
    matches!(c, '\u{00ad}' | '\u{034f}' | '\u{061c}' | '\u{115f}' | '\u{1160}' | '\u{17b4}'
        | '\u{17b5}' | '\u{180b}'..='\u{180f}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
        | '\u{2060}'..='\u{206f}' | '\u{fe00}'..='\u{fe0f}' | '\u{feff}')
}

/// Words of normalised text: runs of letters and digits.
fn words(norm: &str) -> Vec<&str> {
    norm.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect()
}

/// Whether one short sentence is said three times or more ("Low risk. Low risk. Low risk.").
fn repeats(text: &str) -> bool {
    let mut seen: Vec<(String, usize)> = Vec::new();
    for sentence in text.split(['.', '!', '?', '\n', ';', '。', '！']) {
        let key = words(&normalise(sentence)).join(" ");
        if key.is_empty() {
            continue;
        }
        if let Some((_, n)) = seen.iter_mut().find(|(k, _)| *k == key) {
            *n += 1;
            if *n >= 3 {
                return true;
            }
        } else if seen.len() < 64 {
            seen.push((key, 1));
        }
    }
    false
}

/// Text hidden in base64, hex or percent-encoded runs, decoded (at most [`MAX_DECODED_RUNS`]).
fn decoded_runs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for token in
        text.split(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ',' | '(' | ')'))
    {
        if out.len() >= MAX_DECODED_RUNS {
            break;
        }
        let token = token.trim_matches(|c: char| matches!(c, '.' | ':' | ';'));
        // `name=value`: the value is what may be encoded.
        let token = match token.split_once('=') {
            Some((name, value))
                if !value.trim_end_matches('=').is_empty()
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                value
            }
            _ => token,
        };
        if token.len() < 12 {
            continue;
        }
        if token.contains('%') {
            let decoded = percent_decode(token);
            if decoded != token {
                out.push(decoded);
                continue;
            }
        }
        if token.len() % 2 == 0 && token.chars().all(|c| c.is_ascii_hexdigit()) {
            if let Some(s) = hex::decode(token).ok().and_then(printable) {
                out.push(s);
                continue;
            }
        }
        if token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '-' | '_'))
        {
            let trimmed = token.trim_end_matches('=');
            let engines = [
                base64::engine::general_purpose::STANDARD_NO_PAD,
                base64::engine::general_purpose::URL_SAFE_NO_PAD,
            ];
            if let Some(s) = engines
                .iter()
                .find_map(|e| e.decode(trimmed).ok().and_then(printable))
            {
                out.push(s);
            }
        }
    }
    out
}

/// Bytes that decode to mostly printable UTF-8 text.
fn printable(bytes: Vec<u8>) -> Option<String> {
    let s = String::from_utf8(bytes).ok()?;
    let total = s.chars().count();
    let good = s
        .chars()
        .filter(|c| !c.is_control() || c.is_whitespace())
        .count();
    (total >= 4 && good * 10 >= total * 9).then_some(s)
}

fn percent_decode(token: &str) -> String {
    let bytes = token.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests;
