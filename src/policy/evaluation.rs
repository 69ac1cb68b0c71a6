//! What evaluating a pack answers about one submission.

use std::time::Duration;

use crate::domain::{Reason, RiskScore};

/// What policy alone concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Approve,
    Decline,
    Escalate,
    /// No decisive rule matched: the scorer decides against the threshold.
    Open,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// The module the intent belongs to; empty when no module owns its action.
    pub module: String,
    pub verdict: Verdict,
    /// The policy score: the deciding rule's score, never below any matched floor.
    pub score: RiskScore,
    pub reasons: Vec<Reason>,
    /// The highest score that may still be approved in this module.
    pub threshold: RiskScore,
    /// The module's approval deadline, if the pack sets one.
    pub approval_timeout: Option<Duration>,
    /// Why the scorer may not approve this intent (`scorer_may_approve = false`, or an amount
    /// over `scorer_max_approve_amount`); `None` when it may.
    pub scorer_limit: Option<String>,
    /// The strings and field names the pack knows (see `scoring::facts`).
    pub known: std::sync::Arc<crate::domain::KnownValues>,
}
