//! The single place where a score becomes a decision.

use super::{Assessment, ScoreError};
use crate::domain::{Reason, ReasonSource, RiskScore, ScorerInfo};

/// The outcome of combining a policy floor with a scorer's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Combined {
    pub score: RiskScore,
    pub approve: bool,
    pub analysis: String,
    pub reason: Reason,
    pub info: Option<ScorerInfo>,
}

/// The combination rule: the final score is `max(floor, scorer)`; it approves only when a
/// scorer (not an advisory one) answered and the result is at or under the module's threshold. A failure escalates
/// with a reason naming it.
pub fn combine(
    floor: RiskScore,
    threshold: RiskScore,
    result: Result<Assessment, ScoreError>,
) -> Combined {
    match result {
        Ok(assessment) => {
            let score = assessment.score.max(floor);
            Combined {
                score,
                approve: !assessment.advisory && score <= threshold,
                analysis: assessment.analysis,
                reason: assessment.reason,
                info: assessment.info,
            }
        }
        Err(error) => Combined {
            score: floor,
            approve: false,
            analysis: format!(
                "Automatic risk scoring failed ({error}); a human must decide this intent."
            ),
            reason: Reason::new(ReasonSource::Scorer, error.code(), error.to_string()),
            info: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assessment(score: u8) -> Assessment {
        Assessment {
            score: RiskScore::new(score).unwrap(),
            analysis: "a".into(),
            reason: Reason::new(ReasonSource::Scorer, "llm", "m"),
            info: None,
            advisory: false,
        }
    }

    #[test]
    fn the_scorer_can_raise_risk_but_never_lower_the_floor() {
        // (policy floor, threshold, scorer's score) -> the combined score; none approves.
        for (floor, threshold, scored, expected) in [(70, 50, 0, 70), (10, 50, 80, 80)] {
            let c = combine(
                RiskScore::new(floor).unwrap(),
                RiskScore::new(threshold).unwrap(),
                Ok(assessment(scored)),
            );
            assert_eq!(c.score.get(), expected, "floor {floor}, scored {scored}");
            assert!(!c.approve, "floor {floor}, scored {scored}");
        }
    }

    #[test]
    fn advisory_scores_never_approve_whatever_the_threshold() {
        let mut a = assessment(10);
        a.advisory = true;
        let c = combine(RiskScore::MIN, RiskScore::MAX, Ok(a));
        assert!(!c.approve);
    }

    #[test]
    fn failures_never_approve() {
        for err in [
            ScoreError::Timeout(3000),
            ScoreError::Unavailable("x".into()),
            ScoreError::InvalidOutput("y".into()),
        ] {
            let code = err.code();
            let c = combine(RiskScore::MIN, RiskScore::MAX, Err(err));
            assert!(!c.approve);
            assert_eq!(c.reason.code, code);
        }
    }
}
