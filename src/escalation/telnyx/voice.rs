//! The approver's phone call as a state machine over Telnyx webhooks.
//!
//! [`on_event`] is pure: given the ladder and one call event it changes the call's state and
//! returns the [`Effect`]s to carry out (commands, the decision, progress lines). The caller
//! persists the new state with a compare-and-set first and only then acts, so a duplicate or
//! racing delivery cannot act twice.
//!
//! Invariants: only a key press approves or declines (speech goes through the menu again);
//! a machine (answering-machine detection) never reaches the menu; at or above the PIN tier
//! "1" approves only after the approver's PIN.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ladder::{self, Failure, Strike};
use super::roster::{Approver, Roster};
use super::state::{Amd, Call, Ladder, Mode, Stage};
use crate::domain::Intent;

/// Menus without a key before the call gives up.
const MAX_MISSES: u8 = 2;
pub const QUESTION_PROMPT: &str = "What would you like to know? Ask your question now.";
const QUESTION_PROMPT_KEY: &str = "what would you like to know";
pub const MENU: &str = "Press 1 to approve, 2 to ask a question, 3 to decline, or 9 to repeat.";
/// The menu's keys: a menu answer counts only when its digits are exactly one of these.
pub const MENU_KEYS: &str = "1239";

/// A webhook as Telnyx posts it. Most fields are optional in real payloads, so the payload
/// stays a JSON value read through accessors.
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

/// The call events the state machine reacts to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    Answered,
    Detection(Amd),
    Gather {
        digits: String,
        status: String,
        /// The prompt the event's `client_state` says it answers.
        prompt: PromptTag,
    },
    /// The approver's words (from `gather_using_ai` or a final transcript).
    Speech {
        text: String,
    },
    /// `gather_using_ai` ended without a usable question.
    SpeechMissing,
    SpeakEnded,
    Hangup {
        cause: String,
    },
    /// Sentinel's own watchdog: the ring timeout (plus grace) passed since the dial.
    RingTimeout,
    /// Sentinel's own watchdog: answered a while ago and machine detection never reported.
    DetectionTimeout,
    Other,
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

/// Something to do once the new state is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// `gather_using_speak`: `lead`, then the intent's summary (when `summary`), then the menu.
    Menu {
        ccid: String,
        lead: String,
        summary: bool,
        /// The prompt's sequence number on this call (in its `client_state`).
        prompt: u32,
    },
    /// Capture the approver's question (`gather_using_ai`).
    AskQuestion {
        ccid: String,
    },
    /// `transcription_stop`: the question is in.
    StopListening {
        ccid: String,
    },
    /// Ask the LLM, speak the answer, then the menu.
    Answer {
        ccid: String,
        question: String,
    },
    AskPin {
        ccid: String,
        lead: String,
        prompt: u32,
    },
    /// Record a human decision through the gateway, then say how it went.
    Decide {
        ccid: String,
        approve: bool,
        approver: Approver,
    },
    /// `speak`, then hang up on `call.speak.ended`.
    Goodbye {
        ccid: String,
        text: String,
    },
    Hangup {
        ccid: String,
    },
    /// Move the ladder past step `from` (guarded: only if it is still there).
    Advance {
        from: usize,
    },
    Progress(String),
    /// Key input that does not count: a progress line and a `rejected` audit record.
    Rejected {
        actor: String,
        line: String,
        reason: String,
    },
    /// Too many wrong codes or PINs: retire `code`, record `why` (progress and audit).
    Locked {
        code: Option<String>,
        why: String,
    },
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

/// Applies one event to the call `ccid` of `ladder`. Unknown calls and finished calls get
/// no effects.
pub fn on_event(
    ladder: &mut Ladder,
    roster: &Roster,
    ccid: &str,
    event: &CallEvent,
) -> Vec<Effect> {
    let pin_required = ladder.pin_required;
    let locked = ladder.locked;
    let done = ladder.stage == Stage::Done;
    let Some(call) = ladder.call_mut(ccid) else {
        return Vec::new();
    };
    let who = format!("approver {} ({})", call.attempt + 1, call.approver.name);
    if let CallEvent::Gather { digits, status, .. } = event {
        // Keys after the decision or the end of the call change nothing, but say so: the
        // approver may believe they decided.
        if (done || matches!(call.mode, Mode::Ended | Mode::Closing))
            && valid(status)
            && !digits.is_empty()
        {
            let digits = clip(digits, 12);
            return vec![Effect::Progress(if done {
                format!("{who} pressed {digits} too late: the intent was already decided; ignored")
            } else {
                format!("{who} pressed {digits} after the call was over; ignored")
            })];
        }
    }
    if call.mode == Mode::Ended {
        return Vec::new();
    }
    // A watchdog that falls due after the decision has nothing left to move.
    if done && matches!(event, CallEvent::RingTimeout | CallEvent::DetectionTimeout) {
        return Vec::new();
    }
    let c = || ccid.to_string();
    let mut out = Vec::new();
    // A wrong PIN counts against the intent, which the call cannot touch while borrowed.
    let mut wrong_pin: Option<(String, String)> = None;

    // Any conversational event proves the call was answered, whatever order they arrive in.
    if matches!(
        event,
        CallEvent::Gather { .. } | CallEvent::Speech { .. } | CallEvent::SpeakEnded
    ) {
        call.answered = true;
    }

    match event {
        CallEvent::Answered => {
            if !call.answered {
                call.answered = true;
                out.push(Effect::Progress(format!("{who} answered")));
            }
            if call.mode == Mode::Ringing && call.amd == Amd::Human {
                call.mode = Mode::Menu;
                out.push(Effect::Menu {
                    ccid: c(),
                    lead: String::new(),
                    summary: true,
                    prompt: next_prompt(call),
                });
            }
        }
        CallEvent::Detection(result) => {
            // A machine must not keep hearing the summary: hang up on it until a key shows a
            // person is there, even if the menu already started (detection can report after
            // the watchdog gave up on it). One verdict of each kind is enough.
            if *result == Amd::Machine
                && call.amd != Amd::Machine
                && !call.keyed
                && matches!(call.mode, Mode::Ringing | Mode::Menu)
            {
                let late = call.mode == Mode::Menu;
                call.amd = Amd::Machine;
                call.mode = Mode::Closing;
                out.push(Effect::Progress(if late {
                    format!(
                        "voicemail detected for {who} after the menu started; trying the next step"
                    )
                } else {
                    format!("voicemail answered for {who}; trying the next step")
                }));
                out.push(Effect::Hangup { ccid: c() });
                out.push(Effect::Advance { from: call.attempt });
                return out;
            }
            if call.mode != Mode::Ringing || call.amd != Amd::Pending {
                return out;
            }
            call.amd = *result;
            if *result == Amd::Human && call.answered {
                call.mode = Mode::Menu;
                out.push(Effect::Menu {
                    ccid: c(),
                    lead: String::new(),
                    summary: true,
                    prompt: next_prompt(call),
                });
            }
        }
        CallEvent::Gather {
            digits,
            status,
            prompt,
        } => {
            // Only the answer to the prompt being awaited counts: a stale menu's keys, keys in
            // question mode (no menu is playing), a second delivery of one answer, and keys
            // whose client_state is missing, unreadable or the dial's (names no prompt) do not.
            // They are refused on record; the awaited gather keeps waiting.
            if let Some(why) = prompt.refusal(call.awaiting) {
                if valid(status) || !digits.is_empty() {
                    out.push(rejected_keys(call, &who, digits, &why));
                }
                return out;
            }
            call.awaiting = 0;
            gather(
                call,
                &who,
                ccid,
                digits,
                status,
                pin_required,
                locked,
                roster,
                &mut wrong_pin,
                &mut out,
            );
        }
        CallEvent::Speech { text } => {
            if call.mode != Mode::Question {
                return out;
            }
            if call.transcribing {
                // Which side `inbound` transcribes on a dialled leg is unverified: never
                // take our own prompt for the approver's question.
                if text.to_lowercase().contains(QUESTION_PROMPT_KEY) {
                    return out;
                }
                call.transcribing = false;
                out.push(Effect::StopListening { ccid: c() });
            }
            match spoken_decision(text) {
                // Words never decide: ask for the key that would.
                Some(approve) => {
                    call.mode = Mode::Menu;
                    let (word, key) = if approve {
                        ("approve", 1)
                    } else {
                        ("decline", 3)
                    };
                    out.push(Effect::Progress(format!(
                        "{who} said \"{word}\"; waiting for key {key} to confirm"
                    )));
                    out.push(Effect::Menu {
                        ccid: c(),
                        lead: format!(
                            "I heard you say {word}. Spoken words do not decide. \
                             To {word}, press {key}."
                        ),
                        summary: false,
                        prompt: next_prompt(call),
                    });
                }
                None => {
                    out.push(Effect::Progress(format!(
                        "{who} asked: {}",
                        clip(text, 300)
                    )));
                    out.push(Effect::Answer {
                        ccid: c(),
                        question: text.clone(),
                    });
                }
            }
        }
        CallEvent::SpeechMissing => {
            if call.mode == Mode::Question {
                call.mode = Mode::Menu;
                out.push(Effect::Menu {
                    ccid: c(),
                    lead: "I did not catch a question.".into(),
                    summary: false,
                    prompt: next_prompt(call),
                });
            }
        }
        CallEvent::SpeakEnded => {
            if call.mode == Mode::Closing {
                out.push(Effect::Hangup { ccid: c() });
            }
        }
        CallEvent::Hangup { cause } => {
            let was = call.mode;
            call.mode = Mode::Ended;
            if call.amd == Amd::Machine || done {
                return out; // already reported, or nothing is left to move on to
            }
            let line = if !call.answered {
                match cause.as_str() {
                    "timeout" | "no_answer" | "originator_cancel" => {
                        format!("{who} did not answer")
                    }
                    "user_busy" => format!("{who} was busy"),
                    "call_rejected" => format!("{who} rejected the call"),
                    other => format!("call to {who} failed ({other})"),
                }
            } else if was == Mode::Closing {
                format!("call with {who} ended")
            } else {
                format!("{who} hung up without deciding")
            };
            out.push(Effect::Progress(line));
            out.push(Effect::Advance { from: call.attempt });
        }
        CallEvent::DetectionTimeout => {
            if call.mode == Mode::Ringing && call.answered && call.amd == Amd::Pending {
                // Treated like `not_sure`: a person may be there, and only keys decide. The
                // verdict stays pending, so a late `machine` still ends the call.
                call.mode = Mode::Menu;
                out.push(Effect::Menu {
                    ccid: c(),
                    lead: String::new(),
                    summary: true,
                    prompt: next_prompt(call),
                });
            }
        }
        CallEvent::RingTimeout => {
            if call.mode != Mode::Ringing {
                return out;
            }
            if call.answered {
                // Detection never reported: a person may be there, and only keys decide.
                call.mode = Mode::Menu;
                out.push(Effect::Menu {
                    ccid: c(),
                    lead: String::new(),
                    summary: true,
                    prompt: next_prompt(call),
                });
            } else {
                call.mode = Mode::Closing;
                out.push(Effect::Progress(format!(
                    "{who} did not answer within the ring timeout"
                )));
                out.push(Effect::Hangup { ccid: c() });
                out.push(Effect::Advance { from: call.attempt });
            }
        }
        CallEvent::Other => {}
    }
    if let Some((phone, who)) = wrong_pin {
        out.extend(pin_failed(ladder, ccid, &phone, &who));
    }
    out
}

/// A key press (or none) answering the prompt being awaited on `call`.
#[allow(clippy::too_many_arguments)]
fn gather(
    call: &mut Call,
    who: &str,
    ccid: &str,
    digits: &str,
    status: &str,
    pin_required: bool,
    locked: bool,
    roster: &Roster,
    wrong_pin: &mut Option<(String, String)>,
    out: &mut Vec<Effect>,
) {
    let c = || ccid.to_string();
    match call.mode {
        Mode::Menu => {
            if !valid(status) || digits.is_empty() {
                if matches!(status, "call_hangup" | "cancelled" | "cancelled_amd") {
                    return;
                }
                if valid(status) {
                    out.push(rejected_keys(call, who, digits, "no digits"));
                }
                call.misses += 1;
                if call.misses >= MAX_MISSES {
                    call.mode = Mode::Closing;
                    out.push(Effect::Progress(format!(
                        "{who} pressed no key; ending the call"
                    )));
                    out.push(Effect::Goodbye {
                        ccid: c(),
                        text: "No key was pressed. Nothing was decided. Goodbye.".into(),
                    });
                } else {
                    out.push(Effect::Menu {
                        ccid: c(),
                        lead: "I did not get a key.".into(),
                        summary: false,
                        prompt: next_prompt(call),
                    });
                }
                return;
            }
            // Exactly one menu key: "11", "1#" or letters are not an answer, whatever they
            // start with.
            if !is_menu_key(digits) {
                out.push(rejected_keys(call, who, digits, "not exactly one menu key"));
                out.push(Effect::Menu {
                    ccid: c(),
                    lead: "That key is not on the menu.".into(),
                    summary: false,
                    prompt: next_prompt(call),
                });
                return;
            }
            call.misses = 0;
            call.keyed = true;
            match digits.chars().next() {
                Some('1') => {
                    out.push(Effect::Progress(format!("{who} pressed 1 (approve)")));
                    if !pin_required {
                        call.mode = Mode::Closing;
                        out.push(Effect::Decide {
                            ccid: c(),
                            approve: true,
                            approver: call.approver.clone(),
                        });
                    } else if let Some((line, lead)) = pin_refusal(call, who, locked, roster) {
                        out.push(Effect::Progress(line));
                        out.push(Effect::Menu {
                            ccid: c(),
                            lead: lead.into(),
                            summary: false,
                            prompt: next_prompt(call),
                        });
                    } else {
                        call.mode = Mode::Pin;
                        out.push(Effect::AskPin {
                            ccid: c(),
                            lead: "This intent needs your PIN.".into(),
                            prompt: next_prompt(call),
                        });
                    }
                }
                Some('2') => {
                    call.mode = Mode::Question;
                    out.push(Effect::Progress(format!("{who} pressed 2 (question)")));
                    out.push(Effect::AskQuestion { ccid: c() });
                }
                Some('3') => {
                    call.mode = Mode::Closing;
                    out.push(Effect::Progress(format!("{who} pressed 3 (decline)")));
                    out.push(Effect::Decide {
                        ccid: c(),
                        approve: false,
                        approver: call.approver.clone(),
                    });
                }
                Some('9') => {
                    out.push(Effect::Progress(format!("{who} pressed 9 (repeat)")));
                    out.push(Effect::Menu {
                        ccid: c(),
                        lead: String::new(),
                        summary: true,
                        prompt: next_prompt(call),
                    });
                }
                _ => out.push(Effect::Menu {
                    ccid: c(),
                    lead: "That key is not on the menu.".into(),
                    summary: false,
                    prompt: next_prompt(call),
                }),
            }
        }
        Mode::Pin => {
            if !valid(status) || digits.is_empty() {
                if matches!(status, "call_hangup" | "cancelled" | "cancelled_amd") {
                    return;
                }
                call.mode = Mode::Menu;
                out.push(Effect::Menu {
                    ccid: c(),
                    lead: "No PIN was entered; nothing was approved.".into(),
                    summary: false,
                    prompt: next_prompt(call),
                });
            } else if roster.check_pin(&call.approver.phone, digits.trim_end_matches('#')) {
                call.mode = Mode::Closing;
                out.push(Effect::Progress(format!("{who} entered a valid PIN")));
                out.push(Effect::Decide {
                    ccid: c(),
                    approve: true,
                    approver: call.approver.clone(),
                });
            } else {
                call.pin_failures = call.pin_failures.saturating_add(1);
                *wrong_pin = Some((call.approver.phone.clone(), who.to_string()));
            }
        }
        _ => {}
    }
}

/// Why "1" cannot go on to the PIN step, if it cannot: (progress line, what the approver
/// hears before the menu again).
fn pin_refusal(
    call: &Call,
    who: &str,
    locked: bool,
    roster: &Roster,
) -> Option<(String, &'static str)> {
    if locked {
        Some((
            format!("{who} cannot approve: PIN entry is locked for this intent"),
            "Too many wrong PINs were entered for this intent, so it cannot be approved by \
             phone. You can decline, or ask the operator.",
        ))
    } else if !roster.has_pin(&call.approver.phone) {
        Some((
            format!("{who} has no PIN configured; approval by phone refused"),
            "This intent needs a PIN to approve and you have none configured. You can \
             decline, or approve from the operator console.",
        ))
    } else {
        None
    }
}

/// Counts a wrong PIN against the intent: ask again, or at the limit lock the intent (its
/// SMS code too) and end the call.
fn pin_failed(ladder: &mut Ladder, ccid: &str, phone: &str, who: &str) -> Vec<Effect> {
    let strike = ladder::strike(ladder, phone, Failure::Pin);
    let mut out = Vec::new();
    let goodbye = |out: &mut Vec<Effect>| {
        out.push(Effect::Goodbye {
            ccid: ccid.to_string(),
            text: "Too many wrong PINs. Nothing was approved. Goodbye.".into(),
        })
    };
    match strike {
        Strike::Counted { count, max, .. } => {
            out.push(Effect::Progress(format!(
                "{who} entered a wrong PIN ({count} of {max})"
            )));
            out.push(Effect::AskPin {
                ccid: ccid.to_string(),
                lead: "That PIN is not correct.".into(),
                prompt: ladder.call_mut(ccid).map(next_prompt).unwrap_or_default(),
            });
        }
        Strike::Locked { max, code } => {
            out.push(Effect::Locked {
                code,
                why: format!("{who} entered a wrong PIN ({max} of {max})"),
            });
            goodbye(&mut out);
        }
        Strike::AlreadyLocked => goodbye(&mut out),
    }
    if !matches!(out.last(), Some(Effect::AskPin { .. })) {
        if let Some(call) = ladder.call_mut(ccid) {
            call.mode = Mode::Closing;
        }
    }
    out
}

/// Digits that are exactly one of the menu's keys.
fn is_menu_key(digits: &str) -> bool {
    digits.len() == 1 && MENU_KEYS.contains(digits)
}

/// Key input that does not count, with the reason: a progress line (the digits clipped, never
/// read as a decision) and a `rejected` audit record.
fn rejected_keys(call: &Call, who: &str, digits: &str, why: &str) -> Effect {
    let digits = clip(digits, 12);
    Effect::Rejected {
        actor: call.approver.name.clone(),
        line: format!("{who}: key input {digits:?} rejected ({why}); nothing decided"),
        reason: format!("key input {digits:?} on the call rejected: {why}"),
    }
}

/// A gather result with keys. Only an explicit `valid` counts: a missing status is not
/// Telnyx's shape, and a key press that decides must be unambiguous.
fn valid(status: &str) -> bool {
    status == "valid"
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

/// Numbers the next gather on `call` and awaits its answer.
pub fn next_prompt(call: &mut Call) -> u32 {
    call.prompts = call.prompts.wrapping_add(1).max(1);
    call.awaiting = call.prompts;
    call.prompts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::IntentId;
    use crate::escalation::telnyx::state::Call;

    fn ladder(pin_required: bool) -> Ladder {
        Ladder {
            intent_id: IntentId::generate(),
            version: 1,
            approvers: vec![],
            pin_required,
            step: 0,
            stage: Stage::Calling,
            calls: vec![Call::ringing(
                "v3:c".into(),
                0,
                Approver {
                    name: "alice".into(),
                    phone: "+14155550101".into(),
                },
            )],
            sms_code: None,
            failures: 0,
            delivered: 1,
            bad_codes: 0,
            bad_pins: 0,
            failures_by_sender: Default::default(),
            locked: false,
        }
    }

    /// Keys answering the prompt the call awaits.
    fn press(l: &mut Ladder, roster: &Roster, d: &str) -> Vec<Effect> {
        let event = CallEvent::Gather {
            digits: d.into(),
            status: "valid".into(),
            prompt: PromptTag::Named(l.calls[0].awaiting),
        };
        on_event(l, roster, "v3:c", &event)
    }

    fn decides(effects: &[Effect]) -> Option<bool> {
        effects.iter().find_map(|e| match e {
            Effect::Decide { approve, .. } => Some(*approve),
            _ => None,
        })
    }

    #[test]
    fn the_menu_waits_for_both_answer_and_detection_in_any_order() {
        let roster = Roster::default();
        for order in [
            [CallEvent::Answered, CallEvent::Detection(Amd::Human)],
            [CallEvent::Detection(Amd::Human), CallEvent::Answered],
        ] {
            let mut l = ladder(false);
            let first = on_event(&mut l, &roster, "v3:c", &order[0]);
            assert!(!first.iter().any(|e| matches!(e, Effect::Menu { .. })));
            let second = on_event(&mut l, &roster, "v3:c", &order[1]);
            assert_eq!(
                second
                    .iter()
                    .filter(|e| matches!(e, Effect::Menu { .. }))
                    .count(),
                1
            );
            // A late duplicate starts nothing.
            assert!(on_event(&mut l, &roster, "v3:c", &order[0])
                .iter()
                .all(|e| !matches!(e, Effect::Menu { .. })));
        }
    }

    #[test]
    fn a_machine_never_gets_the_menu_and_its_keys_never_decide() {
        let roster = Roster::default();
        let mut l = ladder(false);
        on_event(&mut l, &roster, "v3:c", &CallEvent::Answered);
        let e = on_event(&mut l, &roster, "v3:c", &CallEvent::Detection(Amd::Machine));
        assert!(e.contains(&Effect::Advance { from: 0 }));
        assert_eq!(decides(&press(&mut l, &roster, "1")), None);
    }

    #[test]
    fn a_late_machine_verdict_ends_the_menu_until_a_key_is_pressed() {
        let roster = Roster::default();
        let mut l = ladder(false);
        on_event(&mut l, &roster, "v3:c", &CallEvent::Answered);
        let e = on_event(&mut l, &roster, "v3:c", &CallEvent::DetectionTimeout);
        assert!(matches!(e[0], Effect::Menu { .. }));
        let e = on_event(&mut l, &roster, "v3:c", &CallEvent::Detection(Amd::Machine));
        assert!(
            e.contains(&Effect::Hangup {
                ccid: "v3:c".into()
            }),
            "{e:?}"
        );
        assert!(e.contains(&Effect::Advance { from: 0 }));
        assert_eq!(decides(&press(&mut l, &roster, "1")), None);

        // Once a key was pressed a person is there: a late verdict changes nothing.
        let mut l = ladder(false);
        on_event(&mut l, &roster, "v3:c", &CallEvent::Answered);
        on_event(&mut l, &roster, "v3:c", &CallEvent::DetectionTimeout);
        press(&mut l, &roster, "9");
        let e = on_event(&mut l, &roster, "v3:c", &CallEvent::Detection(Amd::Machine));
        assert!(e.is_empty(), "{e:?}");
    }

    #[test]
    fn watchdogs_only_act_on_calls_still_waiting() {
        let roster = Roster::default();
        // Answered, detection silent: the menu starts anyway.
        let mut l = ladder(false);
        on_event(&mut l, &roster, "v3:c", &CallEvent::Answered);
        let e = on_event(&mut l, &roster, "v3:c", &CallEvent::DetectionTimeout);
        assert!(matches!(e[0], Effect::Menu { .. }));
        assert!(on_event(&mut l, &roster, "v3:c", &CallEvent::RingTimeout).is_empty());
        // Never answered: hang up and move on, once.
        let mut l = ladder(false);
        assert!(on_event(&mut l, &roster, "v3:c", &CallEvent::DetectionTimeout).is_empty());
        let e = on_event(&mut l, &roster, "v3:c", &CallEvent::RingTimeout);
        assert!(e.contains(&Effect::Advance { from: 0 }));
        assert!(on_event(&mut l, &roster, "v3:c", &CallEvent::RingTimeout).is_empty());
    }

    fn rejections(effects: &[Effect]) -> usize {
        effects
            .iter()
            .filter(|e| matches!(e, Effect::Rejected { .. }))
            .count()
    }

    #[test]
    fn only_the_awaited_prompt_takes_keys() {
        let roster = Roster::default();
        let mut l = ladder(false);
        on_event(&mut l, &roster, "v3:c", &CallEvent::Answered);
        on_event(&mut l, &roster, "v3:c", &CallEvent::Detection(Amd::Human));
        let first = l.calls[0].awaiting;
        press(&mut l, &roster, "9");
        let key = |digits: &str, prompt: PromptTag| CallEvent::Gather {
            digits: digits.into(),
            status: "valid".into(),
            prompt,
        };
        // The first menu was replaced by the repeat: its keys are stale, refused on record.
        let e = on_event(&mut l, &roster, "v3:c", &key("1", PromptTag::Named(first)));
        assert_eq!((decides(&e), rejections(&e)), (None, 1), "{e:?}");
        // Question mode: no menu plays, so no key decides, whatever prompt it names.
        press(&mut l, &roster, "2");
        let awaited = l.calls[0].prompts;
        for prompt in [
            PromptTag::Named(awaited),
            PromptTag::Named(awaited + 1),
            PromptTag::NoPrompt,
        ] {
            assert_eq!(
                decides(&on_event(&mut l, &roster, "v3:c", &key("3", prompt))),
                None
            );
        }
        assert_eq!(l.calls[0].mode, Mode::Question);
    }

    #[test]
    fn keys_without_the_awaited_prompt_number_never_decide() {
        let roster = Roster::default();
        let mut l = ladder(false);
        on_event(&mut l, &roster, "v3:c", &CallEvent::Answered);
        on_event(&mut l, &roster, "v3:c", &CallEvent::Detection(Amd::Human));
        let awaited = l.calls[0].awaiting;
        for prompt in [
            PromptTag::Missing,
            PromptTag::Unreadable,
            PromptTag::NoPrompt,
            PromptTag::Named(awaited + 1),
        ] {
            let key = CallEvent::Gather {
                digits: "1".into(),
                status: "valid".into(),
                prompt,
            };
            let e = on_event(&mut l, &roster, "v3:c", &key);
            assert_eq!(
                (decides(&e), rejections(&e)),
                (None, 1),
                "{prompt:?}: {e:?}"
            );
            // The menu still waits for its own answer.
            assert_eq!(l.calls[0].awaiting, awaited);
        }
        assert_eq!(decides(&press(&mut l, &roster, "1")), Some(true));
    }

    #[test]
    fn only_exactly_one_menu_key_counts() {
        let roster = Roster::default();
        let mut l = ladder(false);
        on_event(&mut l, &roster, "v3:c", &CallEvent::Answered);
        on_event(&mut l, &roster, "v3:c", &CallEvent::Detection(Amd::Human));
        for digits in ["11", "1#", "13", "a", "1 ", "4", ""] {
            let e = press(&mut l, &roster, digits);
            assert_eq!(decides(&e), None, "{digits:?}: {e:?}");
            assert_eq!(rejections(&e), 1, "{digits:?}: {e:?}");
            assert!(
                e.iter().any(|x| matches!(x, Effect::Menu { .. })),
                "re-prompted after {digits:?}: {e:?}"
            );
            assert_eq!(l.calls[0].mode, Mode::Menu);
            l.calls[0].misses = 0;
        }
        assert_eq!(decides(&press(&mut l, &roster, "3")), Some(false));
    }

    #[test]
    fn a_gather_without_a_status_is_no_key() {
        let roster = Roster::default();
        let mut l = ladder(false);
        on_event(&mut l, &roster, "v3:c", &CallEvent::Answered);
        on_event(&mut l, &roster, "v3:c", &CallEvent::Detection(Amd::Human));
        let event = CallEvent::Gather {
            digits: "1".into(),
            status: String::new(),
            prompt: PromptTag::Named(l.calls[0].awaiting),
        };
        let e = on_event(&mut l, &roster, "v3:c", &event);
        assert_eq!(decides(&e), None);
        assert!(matches!(&e[0], Effect::Menu { lead, .. } if lead == "I did not get a key."));
    }

    #[test]
    fn speech_never_decides() {
        let roster = Roster::default();
        let mut l = ladder(false);
        on_event(&mut l, &roster, "v3:c", &CallEvent::Answered);
        on_event(&mut l, &roster, "v3:c", &CallEvent::Detection(Amd::Human));
        press(&mut l, &roster, "2");
        let e = on_event(
            &mut l,
            &roster,
            "v3:c",
            &CallEvent::Speech {
                text: "Yes, approve it".into(),
            },
        );
        assert_eq!(decides(&e), None);
        assert!(matches!(&e[1], Effect::Menu { lead, .. } if lead.contains("press 1")));
        assert_eq!(decides(&press(&mut l, &roster, "1")), Some(true));
    }

    #[test]
    fn pin_tier_needs_the_pin() {
        let hash = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(b"2468"))
        };
        let roster = Roster::new(vec![crate::config::ApproverConfig {
            name: "alice".into(),
            phone: "+14155550101".into(),
            pin_sha256: Some(hash),
            modules: vec![],
            min_risk: 0,
            order: 0,
        }]);
        let mut l = ladder(true);
        on_event(&mut l, &roster, "v3:c", &CallEvent::Answered);
        on_event(&mut l, &roster, "v3:c", &CallEvent::Detection(Amd::Human));
        assert_eq!(decides(&press(&mut l, &roster, "1")), None);
        assert_eq!(decides(&press(&mut l, &roster, "1111#")), None);
        assert_eq!(decides(&press(&mut l, &roster, "2468#")), Some(true));
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
    fn spoken_decisions_are_recognised_as_words_only() {
        assert_eq!(spoken_decision("I approve"), Some(true));
        assert_eq!(spoken_decision("decline it"), Some(false));
        assert_eq!(spoken_decision("why approve or decline?"), None);
        assert_eq!(spoken_decision("what is the disapproval rate"), None);
    }
}
