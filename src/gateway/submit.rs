//! The submission pipeline: validate -> idempotency -> rate limit -> policy -> scorer (only
//! when policy left the case open) -> decide -> persist.

use std::time::Duration;

use tracing::{info, instrument, warn, Instrument};

use super::{counted, limits, Gateway, GatewayError};
use crate::auth::Principal;
use crate::decision::{decide, Decision};
use crate::domain::validate::SubmitInput;
use crate::domain::{Intent, IntentDraft, IntentId, IntentState};
use crate::metrics::{Stopwatch, StoreOp};
use crate::policy::Verdict;
use crate::scoring::{ScoreError, ScoreRequest};
use crate::store::{Created, StoreError};

/// Extra time an ANALYZING intent is given past the scorer deadline before the expiry loop
/// treats the analysis as interrupted (the replica died mid-call).
const ANALYSIS_GRACE: Duration = Duration::from_secs(5);

impl Gateway {
    #[instrument(skip_all, fields(agent_id = %input.agent_id, action = %input.action, intent_id, module, state, risk_score, replayed))]
    pub async fn submit(
        &self,
        caller: &Principal,
        mut input: SubmitInput,
    ) -> Result<(Intent, bool), GatewayError> {
        // A key bound to an agent names the agent: callers that know only their key (the MCP
        // proxy) may leave `agent_id` empty.
        if input.agent_id.is_empty() {
            if let Some(agent) = caller.agent_scope() {
                input.agent_id = agent.to_string();
            }
        }
        if !input.agent_id.is_empty() && !caller.may_act_for(&input.agent_id) {
            return Err(GatewayError::PermissionDenied(format!(
                "agent_id: this key is bound to {caller}; it cannot submit as {}",
                input.agent_id
            )));
        }
        let draft = input.into_draft(&self.settings.limits)?;
        let body_hash = draft.body_hash();

        if let Some(key) = &draft.idempotency_key {
            if let Some(existing) = self
                .store
                .call(StoreOp::FindIdempotent, |s| {
                    s.find_idempotent(&draft.agent_id, key)
                })
                .await?
            {
                return replay(existing, &body_hash, key);
            }
        }
        // After the replay check: retrying an accepted submission costs no budget.
        if let Some(rate) = &self.rate {
            self.admit(rate.as_ref(), &draft.agent_id).await?;
        }

        let policy_started = Stopwatch::start();
        let eval = tracing::info_span!("policy", policy_version = %self.policy.version())
            .in_scope(|| self.policy.evaluate(&draft));
        crate::metrics::policy_evaluated(policy_started);
        let eval = eval?;
        let span = tracing::Span::current();
        span.record("module", eval.module.as_str());

        let now = self.clock.now();
        let id = IntentId::generate();
        span.record("intent_id", id.as_str());

        let (intent, replayed) = if eval.verdict == Verdict::Open && self.scorer.is_remote() {
            // Persist first: the scorer may take seconds, and an accepted intent must survive
            // this replica dying mid-call (the expiry loop escalates interrupted analyses).
            let analysis_deadline =
                now + (self.settings.scorer_timeout + ANALYSIS_GRACE).as_millis() as i64;
            let pending = Decision {
                state: IntentState::Analyzing,
                score: eval.score,
                module: eval.module.clone(),
                reasons: eval.reasons.clone(),
                analysis: String::new(),
                decided_by: None,
                scorer: None,
                approval_timeout: eval.approval_timeout,
            };
            let analyzing = self.build(
                id,
                &draft,
                body_hash.clone(),
                pending,
                now,
                Some(analysis_deadline),
            );
            let created = match self.create(analyzing).await? {
                (intent, true) => return Ok((intent, true)),
                (intent, false) => intent,
            };
            let decision = decide(&eval, Some(self.score(&draft, &eval).await));
            let decided_at = self.clock.now();
            let mut next = self.build(
                created.id.clone(),
                &draft,
                body_hash,
                decision,
                created.created_at,
                None,
            );
            next.version = created.version + 1;
            next.decided_at = next.is_terminal().then_some(decided_at);
            let next = self.sealed(next)?;
            match self
                .store
                .call(StoreOp::Transition, |s| s.transition(next))
                .await
            {
                Ok(intent) => (counted(intent), false),
                // The expiry loop escalated it meanwhile: what it says stands.
                Err(StoreError::Conflict { current }) => (*current, false),
                Err(e) => return Err(e.into()),
            }
        } else {
            let scored = if eval.verdict == Verdict::Open {
                Some(self.score(&draft, &eval).await)
            } else {
                None
            };
            let decision = decide(&eval, scored);
            let intent = self.build(id, &draft, body_hash, decision, now, None);
            self.create(intent).await?
        };
        span.record("state", intent.state.as_str());
        span.record("risk_score", i64::from(intent.risk_score.get()));
        span.record("replayed", replayed);
        info!(intent_id = %intent.id, state = %intent.state, score = %intent.risk_score, "intent decided");
        Ok((intent, replayed))
    }

    async fn admit(
        &self,
        rate: &dyn limits::RateLimiter,
        agent_id: &str,
    ) -> Result<(), GatewayError> {
        match rate.admit(agent_id).await {
            Ok(limits::Admission::Allowed) => Ok(()),
            Ok(limits::Admission::Limited { retry_after }) => {
                let ms = retry_after.as_millis().max(1);
                Err(GatewayError::ResourceExhausted {
                    message: format!(
                        "agent_id: {agent_id} is over its submission rate limit of {} per second (SENTINEL_AGENT_RATE_LIMIT); retry in {ms} ms",
                        rate.per_second()
                    ),
                    retry_after: Some(retry_after),
                })
            }
            // The budget cannot be checked: refuse rather than let the submission through.
            Err(e) => Err(GatewayError::Unavailable(e)),
        }
    }

    async fn create(&self, intent: Intent) -> Result<(Intent, bool), GatewayError> {
        let key = intent.idempotency_key.clone().unwrap_or_default();
        let hash = intent.body_hash.clone();
        let intent = self.sealed(intent)?;
        match self
            .store
            .call(StoreOp::Create, |s| s.create(intent))
            .await?
        {
            Created::New(intent) => Ok((counted(intent), false)),
            Created::Replayed(existing) => replay(existing, &hash, &key),
            Created::KeyConflict { existing } => Err(GatewayError::KeyConflict { key, existing }),
        }
    }

    async fn score(
        &self,
        draft: &IntentDraft,
        eval: &crate::policy::Evaluation,
    ) -> Result<crate::scoring::Assessment, ScoreError> {
        let request = ScoreRequest {
            draft,
            module: &eval.module,
            floor: eval.score,
            policy_reasons: &eval.reasons,
            known: &eval.known,
        };
        let deadline = self.settings.scorer_timeout;
        let span = tracing::info_span!(
            "scorer",
            scorer = self.scorer.name(),
            outcome = tracing::field::Empty,
            risk_score = tracing::field::Empty
        );
        let started = Stopwatch::start();
        let result = match tokio::time::timeout(deadline, self.scorer.score(&request))
            .instrument(span.clone())
            .await
        {
            Ok(result) => result,
            Err(_) => Err(ScoreError::Timeout(deadline.as_millis() as u64)),
        };
        let outcome = result.as_ref().map_or_else(|e| e.code(), |_| "ok");
        crate::metrics::scorer_finished(outcome, started);
        span.record("outcome", outcome);
        match &result {
            Ok(a) => {
                span.record("risk_score", i64::from(a.score.get()));
            }
            Err(e) => warn!(error = %e, "scorer failed; escalating to a human"),
        }
        result
    }

    fn build(
        &self,
        id: IntentId,
        draft: &IntentDraft,
        body_hash: String,
        decision: Decision,
        now: i64,
        analysis_deadline: Option<i64>,
    ) -> Intent {
        let terminal = decision.state.is_terminal();
        let approval_ms = decision
            .approval_timeout
            .map(|d| d.as_millis() as i64)
            .unwrap_or_else(|| self.settings.approval_timeout.as_millis() as i64);
        let expires_at = match decision.state {
            IntentState::Analyzing => analysis_deadline,
            IntentState::PendingApproval => Some(now + approval_ms),
            _ => None,
        };
        Intent {
            id,
            agent_id: draft.agent_id.clone(),
            action: draft.action.clone(),
            module: decision.module,
            payload: draft.payload.clone(),
            reasoning: draft.reasoning.clone(),
            labels: draft.labels.clone(),
            idempotency_key: draft.idempotency_key.clone(),
            body_hash,
            state: decision.state,
            risk_score: decision.score,
            reasons: decision.reasons,
            analysis: decision.analysis,
            decision_reason: String::new(),
            decided_by: decision.decided_by,
            policy_version: self.policy.version().to_string(),
            version: 1,
            created_at: now,
            decided_at: terminal.then_some(now),
            expires_at,
            scorer: decision.scorer,
            trace_parent: crate::telemetry::current_traceparent(),
            receipt: None,
        }
    }
}

fn replay(existing: Intent, body_hash: &str, key: &str) -> Result<(Intent, bool), GatewayError> {
    if existing.body_hash == body_hash {
        Ok((existing, true))
    } else {
        Err(GatewayError::KeyConflict {
            key: key.to_string(),
            existing: existing.id,
        })
    }
}
