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
    fn without_sms_the_ladder_is_exhausted() {
        let mut l = new(IntentId::generate(), approvers(1), false);
        assert_eq!(advance(&mut l, 0, false), Next::Exhausted);
        l.failures = 2;
        assert!(every_channel_failed(&l));
        l.delivered = 1;
        assert!(!every_channel_failed(&l));
    }
}
