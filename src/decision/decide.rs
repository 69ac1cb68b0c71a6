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
            let mut combined = combine(eval.score, eval.threshold, result);
            reasons.push(combined.reason);
            if let (true, Some(limit)) = (combined.approve, &eval.scorer_limit) {
                // The module keeps approvals for rules and humans: the scorer's low score stands
                // as information, the decision goes to a human.
                combined.approve = false;
                reasons.push(Reason::new(
                    crate::domain::ReasonSource::Policy,
                    "scorer_approval_limited",
                    limit.clone(),
                ));
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ReasonSource;

    fn open_eval(limit: Option<&str>) -> Evaluation {
        Evaluation {
            module: "M".into(),
            verdict: Verdict::Open,
            score: RiskScore::MIN,
            reasons: Vec::new(),
            threshold: RiskScore::new(50).unwrap(),
            approval_timeout: None,
            scorer_limit: limit.map(str::to_string),
            known: Default::default(),
        }
    }

    fn low() -> Result<Assessment, ScoreError> {
        Ok(Assessment {
            score: RiskScore::new(10).unwrap(),
            analysis: "fine".into(),
            reason: Reason::new(ReasonSource::Scorer, "llm_assessment", "m scored 10"),
            info: None,
            advisory: false,
        })
    }

    #[test]
    fn a_scorer_limit_turns_a_scorer_approval_into_an_escalation() {
        let free = decide(&open_eval(None), Some(low()));
        assert_eq!(free.state, IntentState::Approved);
        let limited = decide(&open_eval(Some("no scorer approvals here")), Some(low()));
        assert_eq!(limited.state, IntentState::PendingApproval);
        assert_eq!(limited.score.get(), 10);
        assert!(limited.reasons.iter().any(
            |r| r.code == "scorer_approval_limited" && r.message == "no scorer approvals here"
        ));
        assert!(limited.decided_by.is_none());
    }
}
