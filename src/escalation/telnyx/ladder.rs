//! The escalation ladder: approver 1, approver 2, ..., then the SMS, then the deadline.
//!
//! Pure moves over [`Ladder`]; the channel performs them. Every move is guarded by the step
//! it leaves, so a duplicate or late "this step is over" (a second hang-up, the ring
//! watchdog after the hang-up) cannot skip an approver.

use super::roster::Approver;
use super::state::{Ladder, Stage};
use crate::domain::IntentId;

/// What to do after a move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Dial(usize),
    Sms,
    /// Nothing left to try.
    Exhausted,
    /// The ladder was not at that step (or is done): someone else moved it.
    Nothing,
}

pub fn new(intent_id: IntentId, approvers: Vec<Approver>, pin_required: bool) -> Ladder {
    Ladder {
        intent_id,
        version: 1,
        approvers,
        pin_required,
        step: 0,
        stage: Stage::Calling,
        calls: Vec::new(),
        sms_code: None,
        failures: 0,
        delivered: 0,
        bad_codes: 0,
        bad_pins: 0,
        failures_by_sender: Default::default(),
        locked: false,
    }
}

/// The first move: call the first approver, or go straight to the end of the calls.
pub fn first(ladder: &mut Ladder) -> Next {
    if ladder.approvers.is_empty() {
        ladder.stage = Stage::Waiting;
        return Next::Exhausted;
    }
    Next::Dial(0)
}

/// Leaves step `from` for the next approver, or for the SMS once every approver was called.
pub fn advance(ladder: &mut Ladder, from: usize, sms: bool) -> Next {
    if ladder.stage != Stage::Calling || ladder.step != from {
        return Next::Nothing;
    }
    ladder.step += 1;
    if ladder.step < ladder.approvers.len() {
        return Next::Dial(ladder.step);
    }
    ladder.stage = Stage::Waiting;
    if sms {
        Next::Sms
    } else {
        Next::Exhausted
    }
}

/// Wrong PINs (phone and SMS together) after which an intent takes no more PINs.
pub const MAX_BAD_PINS: u8 = 3;
/// Wrong SMS codes after which an intent's code is retired. Six digits make a guess a
/// one-in-a-million shot; five tries keep it there instead of letting it add up.
pub const MAX_BAD_CODES: u8 = 5;

/// What an approver got wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Code,
    Pin,
}

/// What one failure did to the intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strike {
    /// Counted: `count` of `max` for the intent, `by_sender` from this number.
    Counted { count: u8, max: u8, by_sender: u8 },
    /// This failure locked the intent; `code` is the SMS code to retire.
    Locked { max: u8, code: Option<String> },
    /// Already locked (or decided): nothing more to count.
    AlreadyLocked,
}

/// Counts a wrong code or PIN from `sender` against the intent; at the limit the intent is
/// locked and its SMS code handed back for retiring.
pub fn strike(ladder: &mut Ladder, sender: &str, failure: Failure) -> Strike {
    if ladder.locked || ladder.stage == Stage::Done {
        return Strike::AlreadyLocked;
    }
    let by_sender = ladder
        .failures_by_sender
        .entry(sender.to_string())
        .or_insert(0);
    *by_sender = by_sender.saturating_add(1);
    let by_sender = *by_sender;
    let (count, max) = match failure {
        Failure::Code => {
            ladder.bad_codes = ladder.bad_codes.saturating_add(1);
            (ladder.bad_codes, MAX_BAD_CODES)
        }
        Failure::Pin => {
            ladder.bad_pins = ladder.bad_pins.saturating_add(1);
            (ladder.bad_pins, MAX_BAD_PINS)
        }
    };
    if count >= max {
        ladder.locked = true;
        return Strike::Locked {
            max,
            code: ladder.sms_code.take(),
        };
    }
    Strike::Counted {
        count,
        max,
        by_sender,
    }
}

/// Every channel step failed at Telnyx and none went out: the intent cannot reach a human
/// through Telnyx at all.
pub fn every_channel_failed(ladder: &Ladder) -> bool {
    ladder.delivered == 0 && ladder.failures > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approvers(n: usize) -> Vec<Approver> {
        (0..n)
            .map(|i| Approver {
                name: format!("a{i}"),
                phone: format!("+1415555010{i}"),
            })
            .collect()
    }

    #[test]
    fn walks_approvers_then_sms_once() {
        let mut l = new(IntentId::generate(), approvers(2), false);
        assert_eq!(first(&mut l), Next::Dial(0));
        assert_eq!(advance(&mut l, 0, true), Next::Dial(1));
        assert_eq!(
            advance(&mut l, 0, true),
            Next::Nothing,
            "a late duplicate does not skip"
        );
        assert_eq!(advance(&mut l, 1, true), Next::Sms);
        assert_eq!(advance(&mut l, 1, true), Next::Nothing);
        assert_eq!(l.stage, Stage::Waiting);
    }

    #[test]
    fn failures_lock_the_intent_once() {
        let mut l = new(IntentId::generate(), approvers(2), true);
        l.sms_code = Some("123456".into());
        for n in 1..MAX_BAD_CODES {
            assert!(matches!(
                strike(&mut l, "+1", Failure::Code),
                Strike::Counted { count, .. } if count == n
            ));
        }
        assert_eq!(
            strike(&mut l, "+2", Failure::Code),
            Strike::Locked {
                max: MAX_BAD_CODES,
                code: Some("123456".into())
            }
        );
        assert!(l.locked && l.sms_code.is_none());
        assert_eq!(strike(&mut l, "+1", Failure::Pin), Strike::AlreadyLocked);

        let mut l = new(IntentId::generate(), approvers(1), true);
        strike(&mut l, "+1", Failure::Pin);
        strike(&mut l, "+1", Failure::Pin);
        assert!(matches!(
            strike(&mut l, "+1", Failure::Pin),
            Strike::Locked { .. }
        ));
    }

    #[test]
    fn without_sms_the_ladder_is_exhausted() {
        let mut l = new(IntentId::generate(), approvers(1), false);
        assert_eq!(advance(&mut l, 0, false), Next::Exhausted);
        l.failures = 2;
        assert!(every_channel_failed(&l));
        l.delivered = 1;
        assert!(!every_channel_failed(&l));
    }
}
