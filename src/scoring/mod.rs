//! Risk scoring for what policy leaves open.
//!
//! One [`Scorer`] trait: the deterministic [`fallback::FallbackScorer`] (the embedded default,
//! used when no LLM is configured) and [`llm::LlmScorer`] (Groq or any OpenAI-compatible
//! endpoint; its prompt in [`prompt`], its verdict cache in [`cache`]). [`combine`] is the
//! single place where a score becomes a decision: a scorer can raise risk above the policy
//! floor but never lower it, and any scorer failure escalates to a human.

pub mod cache;
pub mod facts;
pub mod fallback;
pub mod guard;
pub mod llm;
pub mod prompt;
pub mod scan;

use async_trait::async_trait;

use crate::domain::{Intent, IntentDraft, Reason, ReasonSource, RiskScore, ScorerInfo};

/// What the scorer is asked to judge.
#[derive(Debug, Clone)]
pub struct ScoreRequest<'a> {
    pub draft: &'a IntentDraft,
    /// The module the policy pack assigned.
    pub module: &'a str,
    /// The lowest score policy allows; the scorer cannot go below it.
    pub floor: RiskScore,
    /// What policy already said (context for the analysis).
    pub policy_reasons: &'a [Reason],
    /// The strings and field names the policy pack knows: the only agent-supplied strings the
    /// approving pass may read verbatim ([`facts`]).
    pub known: &'a facts::KnownValues,
}

/// A scorer's judgment.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    pub score: RiskScore,
    /// Two or three sentences for a busy on-call engineer.
    pub analysis: String,
    pub reason: Reason,
    pub info: Option<ScorerInfo>,
    /// A judgment that may only escalate, never approve (the deterministic fallback: it
    /// cannot tell a safe case from an unsafe one, whatever a module's threshold is).
    pub advisory: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScoreError {
    #[error("scorer unavailable: {0}")]
    Unavailable(String),
    #[error("scorer timed out after {0} ms")]
    Timeout(u64),
    #[error("scorer returned invalid output: {0}")]
    InvalidOutput(String),
}

impl ScoreError {
    /// The reason code recorded on an intent escalated because of this failure.
    pub fn code(&self) -> &'static str {
        match self {
            ScoreError::Unavailable(_) => "scorer_unavailable",
            ScoreError::Timeout(_) => "scorer_timeout",
            ScoreError::InvalidOutput(_) => "scorer_invalid_output",
        }
    }
}

#[async_trait]
pub trait Scorer: Send + Sync + 'static {
    /// A short name for logs and `ScorerInfo.model`.
    fn name(&self) -> &str;

    /// Whether scoring leaves the process (and may take up to its deadline): the pipeline then
    /// persists the intent as ANALYZING first, so a crash mid-call loses nothing.
    fn is_remote(&self) -> bool;

    async fn score(&self, request: &ScoreRequest<'_>) -> Result<Assessment, ScoreError>;

    /// Answers an approver's spoken question about an intent: plain text, 2-4 short sentences,
    /// a direct answer first and a recommendation last.
    async fn answer_question(&self, intent: &Intent, question: &str) -> Result<String, ScoreError>;
}

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
