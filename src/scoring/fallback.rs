//! The deterministic scorer used when no LLM is configured.
//!
//! It does not pretend to judge: what policy left open is, by definition, a case no rule
//! covers, so it scores it as doubtful (above the default approval threshold) and a human
//! decides. Its analysis still names what a human needs: the action, amounts, counts,
//! environment and the rules that fired.

use async_trait::async_trait;

use super::{Assessment, ScoreError, ScoreRequest, Scorer};
use crate::domain::{Intent, Reason, ReasonSource, RiskScore};

/// The score given to anything policy did not decide: above the default threshold (50).
pub const DOUBT_SCORE: u8 = 60;

#[derive(Debug, Default, Clone)]
pub struct FallbackScorer;

/// A one-line summary of the facts in a payload a human acts on.
pub fn facts(payload: &serde_json::Value) -> String {
    let Some(map) = payload.as_object() else {
        return String::new();
    };
    FACT_KEYS
        .iter()
        .filter_map(|k| map.get(*k).map(|v| format!("{k}={v}")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The payload keys whose values a human acts on (also known field names for the scorer's
/// checked view, see `super::facts`).
pub const FACT_KEYS: [&str; 8] = [
    "amount",
    "currency",
    "vendor",
    "record_count",
    "contains_pii",
    "environment",
    "table",
    "user_id",
];

#[async_trait]
impl Scorer for FallbackScorer {
    fn name(&self) -> &str {
        "fallback"
    }

    fn is_remote(&self) -> bool {
        false
    }

    async fn score(&self, request: &ScoreRequest<'_>) -> Result<Assessment, ScoreError> {
        let mut score = RiskScore::new(DOUBT_SCORE)
            .expect("constant is in range")
            .max(request.floor);
        // Without an LLM the scan is the only reader of the agent's text: a hit does not change
        // the outcome (a human decides anyway) but raises the score and tells the human why.
        let signals = super::scan::injection_signals(request.draft);
        let facts = facts(&request.draft.payload);
        let rules: Vec<&str> = request
            .policy_reasons
            .iter()
            .map(|r| r.code.as_str())
            .collect();
        let analysis = format!(
            "{} by agent {} in module {}{}. No policy rule decides this case and no LLM scorer is configured, so a human should review it{}.",
            request.draft.action,
            request.draft.agent_id,
            if request.module.is_empty() { "(none)" } else { request.module },
            if facts.is_empty() { String::new() } else { format!(" ({facts})") },
            if rules.is_empty() { String::new() } else { format!("; policy noted: {}", rules.join(", ")) },
        );
        let reason = if signals.is_empty() {
            Reason::new(
                ReasonSource::Scorer,
                "no_scorer_configured",
                "no LLM scorer configured: uncovered cases are escalated",
            )
        } else {
            score = score.max(RiskScore::new(super::scan::INJECTION_SCORE).expect("constant"));
            Reason::new(
                ReasonSource::Scorer,
                "prompt_injection_suspected",
                format!(
                    "the agent's text looks like an attempt to steer the reviewer (scan: {}); no LLM scorer configured: escalated",
                    signals.join(", ")
                ),
            )
        };
        Ok(Assessment {
            score,
            analysis,
            reason,
            info: None,
            advisory: true,
        })
    }

    async fn answer_question(
        &self,
        intent: &Intent,
        _question: &str,
    ) -> Result<String, ScoreError> {
        Ok(format!(
            "I cannot answer questions without an LLM. The agent {} wants to {} with risk {}. {} I recommend deciding on the facts you have, or declining if unsure.",
            intent.agent_id, intent.action, intent.risk_score, intent.analysis
        ))
    }
}
