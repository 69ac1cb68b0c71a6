//! The approver's phone call as a state machine over Telnyx webhooks.
//!
//! [`on_event`] is pure: given the ladder and one call event it changes the call's state and
//! returns the [`Effect`]s to carry out (commands, the decision, progress lines). The caller
//! persists the new state with a compare-and-set first and only then acts, so a duplicate or
//! racing delivery cannot act twice. Key presses are read in [`super::keys`]; what is said is
//! in [`super::speech`]; events are parsed from the wire in [`super::wire`].
//!
//! Invariants: only a key press approves or declines (speech goes through the menu again);
//! a machine (answering-machine detection) never reaches the menu; at or above the PIN tier
//! "1" approves only after the approver's PIN.

use super::keys::{self, Keys, WrongPin};
use super::roster::{Approver, Roster};
use super::speech;
use super::state::{Amd, Call, Ladder, Mode, Stage};
use super::wire::PromptTag;

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
            && keys::valid(status)
            && !digits.is_empty()
        {
            let digits = speech::clip(digits, 12);
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
    let mut wrong_pin: Option<WrongPin> = None;

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
                out.push(full_menu(call, ccid));
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
                out.push(full_menu(call, ccid));
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
                if keys::valid(status) || !digits.is_empty() {
                    out.push(keys::rejected_keys(call, &who, digits, &why));
                }
                return out;
            }
            call.awaiting = 0;
            let keys = Keys {
                who: &who,
                ccid,
                pin_required,
                locked,
                roster,
            };
            wrong_pin = keys::gather(call, &keys, digits, status, &mut out);
        }
        CallEvent::Speech { text } => {
            if call.mode != Mode::Question {
                return out;
            }
            if call.transcribing {
                // Which side `inbound` transcribes on a dialled leg is unverified: never
                // take our own prompt for the approver's question.
                if text.to_lowercase().contains(speech::QUESTION_PROMPT_KEY) {
                    return out;
                }
                call.transcribing = false;
                out.push(Effect::StopListening { ccid: c() });
            }
            match speech::spoken_decision(text) {
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
                    out.push(reprompt(call, ccid, speech::confirm_with_key(word, key)));
                }
                None => {
                    out.push(Effect::Progress(format!(
                        "{who} asked: {}",
                        speech::clip(text, 300)
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
                out.push(reprompt(call, ccid, speech::NO_QUESTION));
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
                out.push(full_menu(call, ccid));
            }
        }
        CallEvent::RingTimeout => {
            if call.mode != Mode::Ringing {
                return out;
            }
            if call.answered {
                // Detection never reported: a person may be there, and only keys decide.
                out.push(full_menu(call, ccid));
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
    if let Some(WrongPin { phone, who }) = wrong_pin {
        out.extend(keys::pin_failed(ladder, ccid, &phone, &who));
    }
    out
}

/// The approver's decision on `call`, which then only closes.
pub fn decide(call: &mut Call, ccid: &str, approve: bool) -> Effect {
    call.mode = Mode::Closing;
    Effect::Decide {
        ccid: ccid.to_string(),
        approve,
        approver: call.approver.clone(),
    }
}

/// The whole menu, the intent's summary first: the call is at its menu now.
pub fn full_menu(call: &mut Call, ccid: &str) -> Effect {
    call.mode = Mode::Menu;
    Effect::Menu {
        ccid: ccid.to_string(),
        lead: String::new(),
        summary: true,
        prompt: next_prompt(call),
    }
}

/// The menu again after `lead`, without the summary: the next gather on `call`.
pub fn reprompt(call: &mut Call, ccid: &str, lead: impl Into<String>) -> Effect {
    Effect::Menu {
        ccid: ccid.to_string(),
        lead: lead.into(),
        summary: false,
        prompt: next_prompt(call),
    }
}

/// Numbers the next gather on `call` and awaits its answer.
pub fn next_prompt(call: &mut Call) -> u32 {
    call.prompts = call.prompts.wrapping_add(1).max(1);
    call.awaiting = call.prompts;
    call.prompts
}

/// A ladder with one ringing call to alice, and helpers to drive it: shared by the state
/// machine's tests here and in [`super::keys`].
#[cfg(test)]
pub(super) mod fixtures {
    use super::*;
    use crate::domain::IntentId;

    pub fn ladder(pin_required: bool) -> Ladder {
        let alice = Approver {
            name: "alice".into(),
            phone: "+14155550101".into(),
        };
        let mut ladder = super::super::ladder::new(IntentId::generate(), vec![], pin_required);
        ladder.calls.push(Call::ringing("v3:c".into(), 0, alice));
        ladder.delivered = 1;
        ladder
    }

    /// A call just answered, machine detection still out.
    pub fn answered(roster: &Roster) -> Ladder {
        let mut l = ladder(false);
        on_event(&mut l, roster, "v3:c", &CallEvent::Answered);
        l
    }

    /// A call answered whose machine detection never reported: the watchdog started the menu.
    pub fn menu_without_verdict(roster: &Roster) -> Ladder {
        let mut l = answered(roster);
        let e = on_event(&mut l, roster, "v3:c", &CallEvent::DetectionTimeout);
        assert!(matches!(e[0], Effect::Menu { .. }), "{e:?}");
        l
    }

    /// A call a person answered, its menu playing.
    pub fn at_menu(roster: &Roster, pin_required: bool) -> Ladder {
        let mut l = ladder(pin_required);
        on_event(&mut l, roster, "v3:c", &CallEvent::Answered);
        on_event(&mut l, roster, "v3:c", &CallEvent::Detection(Amd::Human));
        l
    }

    /// Keys answering the prompt the call awaits.
    pub fn press(l: &mut Ladder, roster: &Roster, d: &str) -> Vec<Effect> {
        let event = CallEvent::Gather {
            digits: d.into(),
            status: "valid".into(),
            prompt: PromptTag::Named(l.calls[0].awaiting),
        };
        on_event(l, roster, "v3:c", &event)
    }

    pub fn decides(effects: &[Effect]) -> Option<bool> {
        effects.iter().find_map(|e| match e {
            Effect::Decide { approve, .. } => Some(*approve),
            _ => None,
        })
    }

    pub fn rejections(effects: &[Effect]) -> usize {
        effects
            .iter()
            .filter(|e| matches!(e, Effect::Rejected { .. }))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

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
        let mut l = answered(&roster);
        let e = on_event(&mut l, &roster, "v3:c", &CallEvent::Detection(Amd::Machine));
        assert!(e.contains(&Effect::Advance { from: 0 }));
        assert_eq!(decides(&press(&mut l, &roster, "1")), None);
    }

    #[test]
    fn a_late_machine_verdict_ends_the_menu_until_a_key_is_pressed() {
        let roster = Roster::default();
        let mut l = menu_without_verdict(&roster);
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
        let mut l = menu_without_verdict(&roster);
        press(&mut l, &roster, "9");
        let e = on_event(&mut l, &roster, "v3:c", &CallEvent::Detection(Amd::Machine));
        assert!(e.is_empty(), "{e:?}");
    }

    #[test]
    fn watchdogs_only_act_on_calls_still_waiting() {
        let roster = Roster::default();
        // Answered, detection silent: the menu starts anyway.
        let mut l = menu_without_verdict(&roster);
        assert!(on_event(&mut l, &roster, "v3:c", &CallEvent::RingTimeout).is_empty());
        // Never answered: hang up and move on, once.
        let mut l = ladder(false);
        assert!(on_event(&mut l, &roster, "v3:c", &CallEvent::DetectionTimeout).is_empty());
        let e = on_event(&mut l, &roster, "v3:c", &CallEvent::RingTimeout);
        assert!(e.contains(&Effect::Advance { from: 0 }));
        assert!(on_event(&mut l, &roster, "v3:c", &CallEvent::RingTimeout).is_empty());
    }

    #[test]
    fn speech_never_decides() {
        let roster = Roster::default();
        let mut l = at_menu(&roster, false);
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
}
