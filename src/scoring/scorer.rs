//! The [`Scorer`] trait and what crosses it: the request, the assessment, the failure.

use async_trait::async_trait;

use super::facts;
use crate::domain::{Intent, IntentDraft, Reason, RiskScore, ScorerInfo};

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
