//! Key presses on a call: the menu's one key, the PIN, and the input that does not count.
//!
//! Called by the call state machine ([`super::voice::on_event`]) only for the answer to the
//! prompt being awaited; what counts is decided here, pure like the rest of the machine.

use super::ladder::{self, Failure, Strike};
use super::roster::Roster;
use super::speech;
use super::state::{Call, Ladder, Mode};
use super::voice::{decide, full_menu, next_prompt, reprompt, Effect};

/// Menus without a key before the call gives up.
const MAX_MISSES: u8 = 2;

/// What a key press is read against: the call's approver and the intent's PIN rules.
pub struct Keys<'a> {
    /// "approver N (name)", for progress lines.
    pub who: &'a str,
    pub ccid: &'a str,
    pub pin_required: bool,
    /// PIN entry is locked for the intent (too many wrong PINs or codes).
    pub locked: bool,
    pub roster: &'a Roster,
}

/// A wrong PIN from `phone`: counted against the intent by [`pin_failed`] once the call is
/// no longer borrowed.
pub struct WrongPin {
    pub phone: String,
    pub who: String,
}

/// A key press (or none) answering the prompt being awaited on `call`.
pub fn gather(
    call: &mut Call,
    keys: &Keys<'_>,
    digits: &str,
    status: &str,
    out: &mut Vec<Effect>,
) -> Option<WrongPin> {
    let Keys {
        who,
        ccid,
        pin_required,
        locked,
        roster,
    } = *keys;
    let c = || ccid.to_string();
    match call.mode {
        Mode::Menu => {
            if !valid(status) || digits.is_empty() {
                if matches!(status, "call_hangup" | "cancelled" | "cancelled_amd") {
                    return None;
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
                        text: speech::NO_KEY_GOODBYE.into(),
                    });
                } else {
                    out.push(reprompt(call, ccid, speech::NO_KEY));
                }
                return None;
            }
            // Exactly one menu key: "11", "1#" or letters are not an answer, whatever they
            // start with.
            if !is_menu_key(digits) {
                out.push(rejected_keys(call, who, digits, "not exactly one menu key"));
                out.push(reprompt(call, ccid, speech::NOT_ON_MENU));
                return None;
            }
            call.misses = 0;
            call.keyed = true;
            match digits.chars().next() {
                Some('1') => {
                    out.push(Effect::Progress(format!("{who} pressed 1 (approve)")));
                    if !pin_required {
                        out.push(decide(call, ccid, true));
                    } else if let Some((line, lead)) = pin_refusal(call, who, locked, roster) {
                        out.push(Effect::Progress(line));
                        out.push(reprompt(call, ccid, lead));
                    } else {
                        call.mode = Mode::Pin;
                        out.push(Effect::AskPin {
                            ccid: c(),
                            lead: speech::NEEDS_PIN.into(),
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
                    out.push(Effect::Progress(format!("{who} pressed 3 (decline)")));
                    out.push(decide(call, ccid, false));
                }
                Some('9') => {
                    out.push(Effect::Progress(format!("{who} pressed 9 (repeat)")));
                    out.push(full_menu(call, ccid));
                }
                _ => out.push(reprompt(call, ccid, speech::NOT_ON_MENU)),
            }
        }
        Mode::Pin => {
            if !valid(status) || digits.is_empty() {
                if matches!(status, "call_hangup" | "cancelled" | "cancelled_amd") {
                    return None;
                }
                call.mode = Mode::Menu;
                out.push(reprompt(call, ccid, speech::NO_PIN_ENTERED));
            } else if roster.check_pin(&call.approver.phone, digits.trim_end_matches('#')) {
                out.push(Effect::Progress(format!("{who} entered a valid PIN")));
                out.push(decide(call, ccid, true));
            } else {
                call.pin_failures = call.pin_failures.saturating_add(1);
                return Some(WrongPin {
                    phone: call.approver.phone.clone(),
                    who: who.to_string(),
                });
            }
        }
        _ => {}
    }
    None
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
            speech::PIN_LOCKED,
        ))
    } else if !roster.has_pin(&call.approver.phone) {
        Some((
            format!("{who} has no PIN configured; approval by phone refused"),
            speech::NO_PIN_CONFIGURED,
        ))
    } else {
        None
    }
}

/// Counts a wrong PIN against the intent: ask again, or at the limit lock the intent (its
/// SMS code too) and end the call.
pub fn pin_failed(ladder: &mut Ladder, ccid: &str, phone: &str, who: &str) -> Vec<Effect> {
    let strike = ladder::strike(ladder, phone, Failure::Pin);
    let mut out = Vec::new();
    let goodbye = |out: &mut Vec<Effect>| {
        out.push(Effect::Goodbye {
            ccid: ccid.to_string(),
            text: speech::PIN_LOCKED_GOODBYE.into(),
        })
    };
    match strike {
        Strike::Counted { count, max, .. } => {
            out.push(Effect::Progress(format!(
                "{who} entered a wrong PIN ({count} of {max})"
            )));
            out.push(Effect::AskPin {
                ccid: ccid.to_string(),
                lead: speech::WRONG_PIN.into(),
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
    digits.len() == 1 && speech::MENU_KEYS.contains(digits)
}

/// Key input that does not count, with the reason: a progress line (the digits clipped, never
/// read as a decision) and a `rejected` audit record.
pub fn rejected_keys(call: &Call, who: &str, digits: &str, why: &str) -> Effect {
    let digits = speech::clip(digits, 12);
    Effect::Rejected {
        actor: call.approver.name.clone(),
        line: format!("{who}: key input {digits:?} rejected ({why}); nothing decided"),
        reason: format!("key input {digits:?} on the call rejected: {why}"),
    }
}

/// A gather result with keys. Only an explicit `valid` counts: a missing status is not
/// Telnyx's shape, and a key press that decides must be unambiguous.
pub fn valid(status: &str) -> bool {
    status == "valid"
}

#[cfg(test)]
mod tests {
    use super::super::roster::Roster;
    use super::super::voice::fixtures::*;
    use super::super::voice::{on_event, CallEvent, Effect};
    use super::super::wire::PromptTag;
    use super::*;

    #[test]
    fn only_the_awaited_prompt_takes_keys() {
        let roster = Roster::default();
        let mut l = at_menu(&roster, false);
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
        let mut l = at_menu(&roster, false);
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
        let mut l = at_menu(&roster, false);
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
        let mut l = at_menu(&roster, false);
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
    fn pin_tier_needs_the_pin() {
        let hash = crate::config::PinHash::of_pin("2468");
        let roster = Roster::new(vec![crate::config::ApproverConfig {
            name: "alice".into(),
            phone: "+14155550101".into(),
            pin_sha256: Some(hash),
            modules: vec![],
            min_risk: 0,
            order: 0,
        }]);
        let mut l = at_menu(&roster, true);
        assert_eq!(decides(&press(&mut l, &roster, "1")), None);
        assert_eq!(decides(&press(&mut l, &roster, "1111#")), None);
        assert_eq!(decides(&press(&mut l, &roster, "2468#")), Some(true));
    }
}
