//! What Telnyx posts to the webhook, and what Sentinel puts in `client_state`.
//!
//! The envelope keeps the payload as a JSON value read through accessors (most fields are
//! optional in real payloads); [`CallEvent::parse`] turns a voice event into the call state
//! machine's input, so nothing past this file reads Telnyx's JSON.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::state::Amd;
use super::voice::CallEvent;

/// A webhook as Telnyx posts it.
#[derive(Debug, Clone, Deserialize)]
pub struct Envelope {
    pub data: EventData,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EventData {
    pub id: String,
    pub event_type: String,
    #[serde(default)]
    pub payload: Value,
}

impl EventData {
    pub fn str(&self, key: &str) -> Option<&str> {
        self.payload.get(key).and_then(Value::as_str)
    }

    pub fn call_control_id(&self) -> Option<&str> {
        self.str("call_control_id").filter(|s| !s.is_empty())
    }

    pub fn client_state(&self) -> Option<ClientState> {
        ClientState::decode(self.str("client_state")?)
    }

    /// An inbound message's sender: `from` is an object on inbound messages; a bare number
    /// is accepted as well.
    pub fn message_from(&self) -> &str {
        self.payload
            .pointer("/from/phone_number")
            .or_else(|| self.payload.get("from"))
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// Whether an inbound message was sent to `number` (`to` is a list of objects on inbound
    /// messages; a bare number is accepted as well).
    pub fn message_to(&self, number: &str) -> bool {
        match self.payload.get("to") {
            Some(Value::Array(to)) => to
                .iter()
                .any(|t| t.get("phone_number").and_then(Value::as_str) == Some(number)),
            Some(Value::String(to)) => to == number,
            _ => false,
        }
    }

    /// Which prompt this event's `client_state` says it answers.
    pub fn prompt_tag(&self) -> PromptTag {
        match self.str("client_state").map(str::trim) {
            None | Some("") => PromptTag::Missing,
            Some(text) => match ClientState::decode(text) {
                None => PromptTag::Unreadable,
                Some(ClientState {
                    prompt: Some(p), ..
                }) => PromptTag::Named(p),
                Some(_) => PromptTag::NoPrompt,
            },
        }
    }
}

/// What a key press's `client_state` says about the prompt it answers. Only
/// [`PromptTag::Named`] with the awaited number can count; everything else is stale input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptTag {
    /// The gather's sequence number on the call.
    Named(u32),
    /// No `client_state` at all (`null`, `""`, absent).
    Missing,
    /// A `client_state` that is not ours (not Base64 JSON of our shape).
    Unreadable,
    /// Ours but without a prompt number: the dial's, not a gather's.
    NoPrompt,
}

impl PromptTag {
    /// Why a key press with this tag does not answer the prompt `awaiting` (0: none is).
    pub fn refusal(self, awaiting: u32) -> Option<String> {
        match self {
            PromptTag::Named(p) if awaiting != 0 && p == awaiting => None,
            PromptTag::Named(p) if awaiting == 0 => Some(format!(
                "it answers prompt {p} but no menu is waiting for a key"
            )),
            PromptTag::Named(p) => Some(format!(
                "it answers prompt {p}, not the awaited prompt {awaiting}"
            )),
            PromptTag::Missing => Some("its client_state is missing".into()),
            PromptTag::Unreadable => Some("its client_state is unreadable".into()),
            PromptTag::NoPrompt => Some("its client_state names no prompt (the dial's)".into()),
        }
    }
}

/// What Sentinel puts in `client_state`: the intent, the ladder step, the trace context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientState {
    #[serde(rename = "i")]
    pub intent_id: String,
    #[serde(rename = "a")]
    pub attempt: usize,
    /// W3C `traceparent` of the escalation span.
    #[serde(rename = "tp", default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// On a gather: its sequence number on the call, so a key press can be matched to the
    /// prompt it answers (Telnyx echoes the latest `client_state` in every later webhook).
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<u32>,
}

impl ClientState {
    /// Standard Base64 of compact JSON: no line breaks (Telnyx truncates at one).
    pub fn encode(&self) -> String {
        STANDARD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// `None` for `null`, `""`, or anything that is not ours.
    pub fn decode(text: &str) -> Option<ClientState> {
        let bytes = STANDARD.decode(text.trim()).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

impl CallEvent {
    pub fn parse(data: &EventData) -> CallEvent {
        match data.event_type.as_str() {
            "call.answered" => CallEvent::Answered,
            "call.machine.detection.ended" | "call.machine.premium.detection.ended" => {
                CallEvent::Detection(match data.str("result").unwrap_or_default() {
                    "machine" | "fax_detected" | "silence" => Amd::Machine,
                    // human, human_residence, human_business, not_sure: a person may be
                    // there; only a key press can decide anyway.
                    _ => Amd::Human,
                })
            }
            "call.gather.ended" => CallEvent::Gather {
                digits: data.str("digits").unwrap_or_default().to_string(),
                status: data.str("status").unwrap_or_default().to_string(),
                prompt: data.prompt_tag(),
            },
            "call.ai_gather.ended" => {
                let question = data
                    .payload
                    .pointer("/result/question")
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .unwrap_or_default();
                if data.str("status") == Some("valid") && !question.is_empty() {
                    CallEvent::Speech {
                        text: question.to_string(),
                    }
                } else {
                    CallEvent::SpeechMissing
                }
            }
            "call.transcription" => {
                let t = data.payload.get("transcription_data");
                let is_final = t
                    .and_then(|t| t.get("is_final"))
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                let text = t
                    .and_then(|t| t.get("transcript"))
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .unwrap_or_default();
                if is_final && !text.is_empty() {
                    CallEvent::Speech {
                        text: text.to_string(),
                    }
                } else {
                    CallEvent::Other
                }
            }
            "call.speak.ended" => CallEvent::SpeakEnded,
            "call.hangup" => CallEvent::Hangup {
                cause: data
                    .str("hangup_cause")
                    .unwrap_or("unspecified")
                    .to_string(),
            },
            _ => CallEvent::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(event_type: &str, payload: Value) -> EventData {
        serde_json::from_value(json!({"id": "e-1", "event_type": event_type, "payload": payload}))
            .unwrap()
    }

    #[test]
    fn client_state_round_trips_without_line_breaks() {
        let s = ClientState {
            intent_id: "x".repeat(200),
            attempt: 3,
            traceparent: Some("00-abc-def-01".into()),
            prompt: Some(7),
        };
        let text = s.encode();
        assert!(!text.contains('\n'));
        assert_eq!(ClientState::decode(&text), Some(s));
        assert_eq!(ClientState::decode(""), None);
        assert_eq!(ClientState::decode("eyJyZXEiOiJyLTEyMyJ9"), None);
    }

    #[test]
    fn a_key_press_names_the_prompt_its_client_state_carries() {
        let tagged = |client_state: Value| {
            event(
                "call.gather.ended",
                json!({"digits": "1", "status": "valid", "client_state": client_state}),
            )
            .prompt_tag()
        };
        let ours = |prompt| {
            json!(ClientState {
                intent_id: "i".into(),
                attempt: 0,
                traceparent: None,
                prompt,
            }
            .encode())
        };
        assert_eq!(tagged(ours(Some(4))), PromptTag::Named(4));
        assert_eq!(tagged(ours(None)), PromptTag::NoPrompt);
        assert_eq!(tagged(Value::Null), PromptTag::Missing);
        assert_eq!(tagged(json!("")), PromptTag::Missing);
        assert_eq!(tagged(json!("not base64 of ours")), PromptTag::Unreadable);
        assert_eq!(PromptTag::Named(4).refusal(4), None);
        assert!(PromptTag::Named(3).refusal(4).is_some());
        assert!(PromptTag::Named(4).refusal(0).is_some());
    }

    #[test]
    fn voice_events_parse_into_call_events() {
        let parse = |t: &str, p: Value| CallEvent::parse(&event(t, p));
        assert_eq!(parse("call.answered", json!({})), CallEvent::Answered);
        assert_eq!(
            parse("call.machine.detection.ended", json!({"result": "machine"})),
            CallEvent::Detection(Amd::Machine)
        );
        assert_eq!(
            parse(
                "call.machine.detection.ended",
                json!({"result": "not_sure"})
            ),
            CallEvent::Detection(Amd::Human)
        );
        assert_eq!(
            parse(
                "call.ai_gather.ended",
                json!({"status": "valid", "result": {"question": " why? "}})
            ),
            CallEvent::Speech {
                text: "why?".into()
            }
        );
        assert_eq!(
            parse(
                "call.ai_gather.ended",
                json!({"status": "valid", "result": {}})
            ),
            CallEvent::SpeechMissing
        );
        // Interim transcripts are not the approver's question yet.
        assert_eq!(
            parse(
                "call.transcription",
                json!({"transcription_data": {"transcript": "why", "is_final": false}})
            ),
            CallEvent::Other
        );
        assert_eq!(
            parse("call.hangup", json!({})),
            CallEvent::Hangup {
                cause: "unspecified".into()
            }
        );
        assert_eq!(parse("call.bridged", json!({})), CallEvent::Other);
    }
}
