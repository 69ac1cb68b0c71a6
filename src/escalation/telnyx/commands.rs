//! Call commands: typed Telnyx requests and how a failed one is handled.
//!
//! Every command carries our `client_state` (the intent, the ladder step, the trace context
//! and, for a gather, the prompt's number) and a `command_id` Telnyx deduplicates. A failure
//! other than "call already ended" hangs the call up so the ladder moves on instead of leaving
//! the approver in silence; 90034 (not answered yet) puts the call back to ringing instead.

use serde::Serialize;
use serde_json::{json, Value};
use tracing::warn;

use super::client::{ClientError, CommandOutcome};
use super::speech;
use super::state::{Mode, WatchdogKind};
use super::wire::ClientState;
use super::{Telnyx, RING_GRACE};
use crate::domain::IntentId;

/// Longest text handed to text-to-speech (Telnyx takes at most 3,000 characters).
const MAX_SPOKEN: usize = 2900;
/// How long a gather waits for a key after its prompt, and for a spoken question.
const INPUT_TIMEOUT_MS: u32 = 10_000;
/// Prompts replayed when no key comes (Telnyx's default of 3 keeps a silent line busy).
const GATHER_TRIES: u32 = 2;

/// The body of `POST /calls/{call_control_id}/actions/{action}`, without the `client_state`
/// and `command_id` every command gets when it is sent.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Command<'a> {
    Speak {
        payload: String,
        voice: &'a str,
    },
    GatherUsingSpeak {
        payload: String,
        voice: &'a str,
        valid_digits: &'static str,
        minimum_digits: u32,
        maximum_digits: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        terminating_digit: Option<&'static str>,
        timeout_millis: u32,
        maximum_tries: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        invalid_payload: Option<&'static str>,
    },
    GatherUsingAi {
        greeting: &'static str,
        parameters: Value,
        voice: &'a str,
        user_response_timeout_ms: u32,
    },
    TranscriptionStart {
        transcription_tracks: &'static str,
    },
    TranscriptionStop {},
    Hangup {},
}

impl<'a> Command<'a> {
    /// Speaks `text`.
    pub fn speak(text: &str, voice: &'a str) -> Self {
        Command::Speak {
            payload: speech::clip(text, MAX_SPOKEN),
            voice,
        }
    }

    /// Speaks `text` and takes exactly one of the menu's keys.
    pub fn menu(text: &str, voice: &'a str) -> Self {
        Command::GatherUsingSpeak {
            payload: speech::clip(text, MAX_SPOKEN),
            voice,
            valid_digits: speech::MENU_KEYS,
            minimum_digits: 1,
            maximum_digits: 1,
            terminating_digit: None,
            timeout_millis: INPUT_TIMEOUT_MS,
            maximum_tries: GATHER_TRIES,
            invalid_payload: Some(speech::NOT_ON_MENU),
        }
    }

    /// Speaks `text` and takes a PIN ended by `#`.
    pub fn pin(text: &str, voice: &'a str) -> Self {
        Command::GatherUsingSpeak {
            payload: text.to_string(),
            voice,
            valid_digits: "0123456789#",
            minimum_digits: 1,
            maximum_digits: 12,
            terminating_digit: Some("#"),
            timeout_millis: INPUT_TIMEOUT_MS,
            maximum_tries: GATHER_TRIES,
            invalid_payload: None,
        }
    }

    /// Telnyx's hosted assistant asks for the approver's question and returns it as text.
    pub fn ask_question(voice: &'a str) -> Self {
        Command::GatherUsingAi {
            greeting: speech::QUESTION_PROMPT,
            parameters: json!({
                "type": "object",
                "properties": {
                    "question": {"type": "string", "description": "The caller's question or request, word for word."}
                },
                "required": ["question"]
            }),
            voice,
            user_response_timeout_ms: INPUT_TIMEOUT_MS,
        }
    }

    /// Transcribes the approver (the fallback when no hosted assistant is available).
    pub fn listen() -> Self {
        Command::TranscriptionStart {
            transcription_tracks: "inbound",
        }
    }

    /// The Telnyx action this command is sent to.
    pub fn action(&self) -> &'static str {
        match self {
            Command::Speak { .. } => "speak",
            Command::GatherUsingSpeak { .. } => "gather_using_speak",
            Command::GatherUsingAi { .. } => "gather_using_ai",
            Command::TranscriptionStart { .. } => "transcription_start",
            Command::TranscriptionStop {} => "transcription_stop",
            Command::Hangup {} => "hangup",
        }
    }
}

/// A command as sent: its body with our `client_state` and `command_id`.
#[derive(Debug, Serialize)]
pub struct Sent<'a> {
    #[serde(flatten)]
    pub command: &'a Command<'a>,
    pub client_state: String,
    pub command_id: String,
}

impl Telnyx {
    /// Sends `command`; on failure (other than "call already ended") hangs up, or, when the
    /// call is not answered yet, waits for it to be (see [`Self::wait_for_answer`]).
    /// `prompt` numbers a gather in its `client_state`.
    pub(super) async fn send(
        &self,
        ccid: &str,
        attempt: usize,
        command: Command<'_>,
        command_id: &str,
        prompt: Option<u32>,
    ) {
        let action = command.action();
        let Err(e) = self
            .try_send(ccid, attempt, &command, command_id, prompt)
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
        if !matches!(command, Command::Hangup {}) {
            let _ = self
                .try_send(
                    ccid,
                    attempt,
                    &Command::Hangup {},
                    &format!("after-{command_id}"),
                    None,
                )
                .await;
        }
    }

    /// Speaks the menu (prompt number `prompt`) and waits for one key.
    pub(super) async fn menu(
        &self,
        ccid: &str,
        attempt: usize,
        text: &str,
        command_id: &str,
        prompt: u32,
    ) {
        let command = Command::menu(text, &self.voice);
        self.send(ccid, attempt, command, command_id, Some(prompt))
            .await;
    }

    pub(super) async fn speak(&self, ccid: &str, attempt: usize, text: &str, command_id: &str) {
        let command = Command::speak(text, &self.voice);
        self.send(ccid, attempt, command, command_id, None).await;
    }

    pub(super) async fn hangup(&self, ccid: &str, attempt: usize, command_id: &str) {
        self.send(ccid, attempt, Command::Hangup {}, command_id, None)
            .await;
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
    pub(super) async fn try_send(
        &self,
        ccid: &str,
        attempt: usize,
        command: &Command<'_>,
        command_id: &str,
        prompt: Option<u32>,
    ) -> Result<CommandOutcome, ClientError> {
        let Some(intent) = self.state.call_intent(ccid).await.ok().flatten() else {
            return Ok(CommandOutcome::CallEnded);
        };
        let action = command.action();
        let sent = Sent {
            command,
            client_state: ClientState {
                intent_id: intent.to_string(),
                attempt,
                traceparent: crate::telemetry::current_traceparent(),
                prompt,
            }
            .encode(),
            command_id: format!("{action}-{command_id}"),
        };
        self.client.command(ccid, action, &sent).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(command: &Command<'_>) -> Value {
        serde_json::to_value(Sent {
            command,
            client_state: "cs".into(),
            command_id: format!("{}-e-1", command.action()),
        })
        .unwrap()
    }

    #[test]
    fn the_menu_takes_exactly_one_menu_key_with_a_short_timeout() {
        let command = Command::menu("Risk score 92.", "Telnyx.KokoroTTS.af");
        assert_eq!(command.action(), "gather_using_speak");
        assert_eq!(
            sent(&command),
            json!({
                "payload": "Risk score 92.",
                "voice": "Telnyx.KokoroTTS.af",
                "valid_digits": "1239",
                "minimum_digits": 1,
                "maximum_digits": 1,
                "timeout_millis": 10000,
                "maximum_tries": 2,
                "invalid_payload": "That key is not on the menu.",
                "client_state": "cs",
                "command_id": "gather_using_speak-e-1",
            })
        );
    }

    #[test]
    fn the_pin_gather_ends_on_pound() {
        let body = sent(&Command::pin("Enter your PIN, then press pound.", "v"));
        assert_eq!(body["valid_digits"], "0123456789#");
        assert_eq!(body["terminating_digit"], "#");
        assert_eq!(body["maximum_digits"], 12);
        assert_eq!(body["minimum_digits"], 1);
        assert!(body.get("invalid_payload").is_none());
    }

    #[test]
    fn spoken_text_stays_under_the_speak_limit() {
        let body = sent(&Command::speak(&"a".repeat(5000), "v"));
        let payload = body["payload"].as_str().unwrap();
        assert!(payload.chars().count() <= 3000, "{}", payload.len());
        assert_eq!(body["voice"], "v");
    }

    #[test]
    fn question_mode_asks_for_the_question_as_a_required_string() {
        let command = Command::ask_question("v");
        assert_eq!(command.action(), "gather_using_ai");
        let body = sent(&command);
        assert_eq!(body["greeting"], speech::QUESTION_PROMPT);
        assert_eq!(body["parameters"]["required"], json!(["question"]));
        assert_eq!(
            body["parameters"]["properties"]["question"]["type"],
            "string"
        );
        assert_eq!(body["user_response_timeout_ms"], 10000);
        assert_eq!(
            sent(&Command::listen()),
            json!({"transcription_tracks": "inbound", "client_state": "cs", "command_id": "transcription_start-e-1"})
        );
    }

    #[test]
    fn hangup_and_transcription_stop_carry_only_our_state() {
        for command in [Command::Hangup {}, Command::TranscriptionStop {}] {
            let action = command.action();
            assert_eq!(
                sent(&command),
                json!({"client_state": "cs", "command_id": format!("{action}-e-1")})
            );
        }
    }
}
