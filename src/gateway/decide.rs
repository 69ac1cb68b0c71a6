//! The one pure function that turns a policy evaluation (and, for open cases, a scorer
//! result) into a decision. The server and `sentinel policy test` both call it, so the test
//! harness can never disagree with production.

use std::time::Duration;

use crate::domain::{Channel, DecidedBy, DeciderKind, IntentState, Reason, RiskScore, ScorerInfo};
use crate::policy::{Evaluation, Verdict};
use crate::scoring::{combine, Assessment, ScoreError};

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub state: IntentState,
    pub score: RiskScore,
    pub module: String,
    pub reasons: Vec<Reason>,
    pub analysis: String,
    pub decided_by: Option<DecidedBy>,
    pub scorer: Option<ScorerInfo>,
    pub approval_timeout: Option<Duration>,
}

/// A sentence per policy reason, for the human who reads the intent.
fn policy_analysis(reasons: &[Reason]) -> String {
    reasons
        .iter()
        .map(|r| {
            if r.rule.is_empty() {
                format!("{}: {}.", r.code, r.message)
            } else {
                format!("Policy rule {} ({}): {}.", r.rule, r.code, r.message)
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `scored` is `None` when the scorer was not asked (policy decided).
pub fn decide(eval: &Evaluation, scored: Option<Result<Assessment, ScoreError>>) -> Decision {
    let mut reasons = eval.reasons.clone();
    let base = Decision {
        state: IntentState::PendingApproval,
        score: eval.score,
        module: eval.module.clone(),
        reasons: Vec::new(),
        analysis: policy_analysis(&eval.reasons),
        decided_by: None,
        scorer: None,
        approval_timeout: eval.approval_timeout,
    };
    let policy = || Some(DecidedBy::new(DeciderKind::Policy, "", Channel::Policy));
    match (eval.verdict, scored) {
        (Verdict::Decline, _) => Decision {
            state: IntentState::Declined,
            decided_by: policy(),
            reasons,
            ..base
        },
        (Verdict::Approve, _) => Decision {
            state: IntentState::Approved,
            decided_by: policy(),
            reasons,
            ..base
        },
        (Verdict::Escalate, _) | (Verdict::Open, None) => Decision { reasons, ..base },
        (Verdict::Open, Some(result)) => {
            let combined = combine(eval.score, eval.threshold, result);
            reasons.push(combined.reason);
            Decision {
                state: if combined.approve {
                    IntentState::Approved
                } else {
                    IntentState::PendingApproval
                },
                score: combined.score,
                decided_by: combined
                    .approve
                    .then(|| DecidedBy::new(DeciderKind::Scorer, "", Channel::Scorer)),
                analysis: combined.analysis,
                scorer: combined.info,
                reasons,
                ..base
            }
        }
    }
}
