//! The application service: the decision pipeline and the operator's actions.
//!
//! validate -> idempotency -> policy -> scorer (only when policy left the case open) ->
//! decide -> persist -> publish. Transport-free: the gRPC adapter calls it with a
//! [`Principal`] and plain inputs, and maps [`GatewayError`] to status codes in one place.

pub mod channels;
pub mod limits;
mod timing;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::{info, instrument, warn, Instrument};

use crate::auth::Principal;
use crate::decision::{decide, Decision};
use crate::domain::validate::{Limits, SubmitInput, ValidationError};
use crate::domain::{
    Channel, Clock, DecidedBy, DeciderKind, IllegalTransition, Intent, IntentDraft, IntentId,
    IntentState, Reason, ReasonSource, SystemClock,
};
use crate::policy::{PolicyError, PolicyPack, Verdict};
use crate::scoring::{ScoreError, ScoreRequest, Scorer};
use crate::store::{Created, EventStream, Filter, Store, StoreError};

/// What the transport sees of the store: a list filter and the event stream of a watch,
/// named as the gateway hands them out.
pub use crate::store::{EventStream as IntentEvents, Filter as IntentFilter, WatchError};

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("{0}")]
    Invalid(String),
    #[error("intent {0} not found")]
    NotFound(String),
    #[error("{0}")]
    PermissionDenied(String),
    /// The idempotency key was used before with a different body.
    #[error("idempotency_key {key} was already used by this agent for a different request (intent {existing})")]
    KeyConflict { key: String, existing: IntentId },
    /// The intent cannot make this transition (still analysing, past its deadline, ...).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The intent was decided first, by someone else or a race this call lost.
    #[error("{}", already_decided(.current))]
    AlreadyDecided { current: Box<Intent> },
    #[error("store unavailable")]
    Unavailable(#[source] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
    /// A per-caller limit (watch streams, submission rate) refused the request.
    #[error("{message}")]
    ResourceExhausted {
        message: String,
        /// When a retry can succeed, if the limit knows.
        retry_after: Option<Duration>,
    },
}

impl From<StoreError> for GatewayError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(id) => GatewayError::NotFound(id.to_string()),
            StoreError::Unavailable(_) => GatewayError::Unavailable(e),
            StoreError::Conflict { current } => GatewayError::FailedPrecondition(format!(
                "intent {} changed concurrently; it is now {} at version {}",
                current.id, current.state, current.version
            )),
            StoreError::Corrupt(m) => GatewayError::Internal(m),
        }
    }
}

impl From<ValidationError> for GatewayError {
    fn from(e: ValidationError) -> Self {
        GatewayError::Invalid(e.to_string())
    }
}

impl From<PolicyError> for GatewayError {
    fn from(e: PolicyError) -> Self {
        match e {
            PolicyError::Module(m) => GatewayError::Invalid(m),
            other => GatewayError::Internal(other.to_string()),
        }
    }
}

/// Knobs the pipeline needs, taken from configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub limits: Limits,
    /// Default approval deadline when the pack sets none for the module.
    pub approval_timeout: Duration,
    /// The scorer's deadline; the pipeline cuts it off here whatever the scorer does.
    pub scorer_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            limits: Limits::default(),
            approval_timeout: Duration::from_secs(600),
            scorer_timeout: Duration::from_millis(3000),
        }
    }
}

/// Who resolves an intent and through what.
#[derive(Debug, Clone)]
pub struct Resolution {
    pub approve: bool,
    /// Who the caller says decides; must match an operator key's name when keys are used.
    pub approver: String,
    pub reason: String,
    pub expected_version: Option<u64>,
    pub channel: Channel,
}

pub struct Gateway {
    store: Arc<dyn Store>,
    policy: Arc<PolicyPack>,
    scorer: Arc<dyn Scorer>,
    settings: Settings,
    watches: limits::WatchLimiter,
    /// `None`: submissions are not rate-limited (and the check costs nothing).
    rate: Option<Arc<dyn limits::RateLimiter>>,
    /// Stamps submissions and decisions and drives the approval deadlines.
    clock: Arc<dyn Clock>,
}

const MAX_PAGE: u32 = 500;
const DEFAULT_PAGE: u32 = 50;
/// Extra time an ANALYZING intent is given past the scorer deadline before the expiry loop
/// treats the analysis as interrupted (the replica died mid-call).
const ANALYSIS_GRACE: Duration = Duration::from_secs(5);

impl Gateway {
    pub fn new(
        store: Arc<dyn Store>,
        policy: Arc<PolicyPack>,
        scorer: Arc<dyn Scorer>,
        settings: Settings,
    ) -> Self {
        Gateway {
            store: timing::TimedStore::wrap(store),
            policy,
            scorer,
            settings,
            watches: limits::WatchLimiter::new(limits::DEFAULT_MAX_WATCHES),
            rate: None,
            clock: SystemClock::shared(),
        }
    }

    /// Replaces the system clock (tests move a manual one instead of sleeping).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Sets the per-caller limits: open watch streams per principal, and the submission rate
    /// per agent (`None`: unlimited).
    pub fn with_caller_limits(
        mut self,
        max_watches: usize,
        rate: Option<Arc<dyn limits::RateLimiter>>,
    ) -> Self {
        self.watches = limits::WatchLimiter::new(max_watches);
        self.rate = rate;
        self
    }

    #[instrument(skip_all, fields(agent_id = %input.agent_id, action = %input.action, intent_id, module, state, risk_score, replayed))]
    pub async fn submit(
        &self,
        caller: &Principal,
        input: SubmitInput,
    ) -> Result<(Intent, bool), GatewayError> {
        if !input.agent_id.is_empty() && !caller.may_act_for(&input.agent_id) {
            return Err(GatewayError::PermissionDenied(format!(
                "agent_id: this key is bound to {caller}; it cannot submit as {}",
                input.agent_id
            )));
        }
        let draft = input.into_draft(&self.settings.limits)?;
        let body_hash = draft.body_hash();

        if let Some(key) = &draft.idempotency_key {
            if let Some(existing) = self.store.find_idempotent(&draft.agent_id, key).await? {
                return replay(existing, &body_hash, key);
            }
        }
        // After the replay check: retrying an accepted submission costs no budget.
        if let Some(rate) = &self.rate {
            self.admit(rate.as_ref(), &draft.agent_id).await?;
        }

        let policy_started = std::time::Instant::now();
        let eval = tracing::info_span!("policy", policy_version = %self.policy.version())
            .in_scope(|| self.policy.evaluate(&draft));
        crate::metrics::policy_evaluated(policy_started.elapsed());
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
            match self.store.transition(next).await {
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
        span.record("risk_score", intent.risk_score.get());
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
        match self.store.create(intent).await? {
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
            outcome = tracing::field::Empty
        );
        let started = std::time::Instant::now();
        let result = match tokio::time::timeout(deadline, self.scorer.score(&request))
            .instrument(span.clone())
            .await
        {
            Ok(result) => result,
            Err(_) => Err(ScoreError::Timeout(deadline.as_millis() as u64)),
        };
        let outcome = result.as_ref().map_or_else(|e| e.code(), |_| "ok");
        crate::metrics::scorer_finished(outcome, started.elapsed());
        match &result {
            Ok(a) => span.record("outcome", a.score.get()),
            Err(e) => {
                warn!(error = %e, "scorer failed; escalating to a human");
                span.record("outcome", e.code())
            }
        };
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
        }
    }

    /// One intent the caller may see. Another agent's intent is reported as not found, so
    /// ids cannot be probed.
    pub async fn get(&self, caller: &Principal, id: &str) -> Result<Intent, GatewayError> {
        let id = parse_id(id)?;
        match self.store.get(&id).await? {
            Some(intent) if caller.may_act_for(&intent.agent_id) => Ok(intent),
            _ => Err(GatewayError::NotFound(id.to_string())),
        }
    }

    pub async fn list(
        &self,
        caller: &Principal,
        mut filter: Filter,
        page_size: u32,
        page_token: &str,
    ) -> Result<(Vec<Intent>, String), GatewayError> {
        scope_filter(caller, &mut filter)?;
        let after = if page_token.is_empty() {
            None
        } else {
            Some(IntentId::parse(page_token).ok_or_else(|| {
                GatewayError::Invalid("page_token: not a token from a previous ListIntents".into())
            })?)
        };
        let limit = match page_size {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        } as usize;
        let page = self.store.list(&filter, after.as_ref(), limit).await?;
        Ok((
            page.intents,
            page.next_after.map(|id| id.to_string()).unwrap_or_default(),
        ))
    }

    /// An operator approves or declines a pending intent.
    #[instrument(skip_all, fields(intent_id = %id, approve = resolution.approve, channel = %resolution.channel))]
    pub async fn resolve(
        &self,
        caller: &Principal,
        id: &str,
        resolution: Resolution,
    ) -> Result<Intent, GatewayError> {
        let id = parse_id(id)?;
        if !caller.is_operator() {
            return Err(GatewayError::PermissionDenied(
                "only operators may resolve intents".into(),
            ));
        }
        let approver = match caller {
            Principal::Operator(name) => {
                if !resolution.approver.is_empty() && resolution.approver != *name {
                    return Err(GatewayError::PermissionDenied(format!(
                        "approver: this key is bound to operator {name}, not {}",
                        resolution.approver
                    )));
                }
                name.clone()
            }
            _ if resolution.approver.is_empty() => caller.name().to_string(),
            _ => resolution.approver.clone(),
        };
        let current = self
            .store
            .get(&id)
            .await?
            .ok_or_else(|| GatewayError::NotFound(id.to_string()))?;
        if let Some(v) = resolution.expected_version {
            if v != current.version {
                return Err(GatewayError::FailedPrecondition(format!(
                    "expected_version: intent is at version {}, not {v}",
                    current.version
                )));
            }
        }
        let to = if resolution.approve {
            IntentState::Approved
        } else {
            IntentState::Declined
        };
        self.decide_pending(
            current,
            to,
            DecidedBy::new(DeciderKind::Human, approver.clone(), resolution.channel),
            Reason::new(
                ReasonSource::Human,
                if resolution.approve {
                    "human_approved"
                } else {
                    "human_declined"
                },
                if resolution.reason.is_empty() {
                    format!(
                        "{} by {approver} via {}",
                        to.as_str().to_lowercase(),
                        resolution.channel
                    )
                } else {
                    resolution.reason.clone()
                },
            ),
            resolution.reason,
        )
        .await
    }

    /// The agent that submitted an intent (or an operator) withdraws it while it is pending.
    #[instrument(skip_all, fields(intent_id = %id))]
    pub async fn cancel(
        &self,
        caller: &Principal,
        id: &str,
        reason: String,
    ) -> Result<Intent, GatewayError> {
        let current = self.get(caller, id).await?;
        let by = match caller {
            Principal::Agent(name) => {
                DecidedBy::new(DeciderKind::Agent, name.clone(), Channel::Grpc)
            }
            other => DecidedBy::new(DeciderKind::Human, other.name(), Channel::Grpc),
        };
        let message = if reason.is_empty() {
            "withdrawn".to_string()
        } else {
            reason.clone()
        };
        self.decide_pending(
            current,
            IntentState::Cancelled,
            by,
            Reason::new(ReasonSource::System, "cancelled", message),
            reason,
        )
        .await
    }

    /// Compare-and-set a pending intent into `to`. Losing a race, or finding the intent
    /// already decided, is `AlreadyDecided` with the current intent.
    pub async fn decide_pending(
        &self,
        current: Intent,
        to: IntentState,
        by: DecidedBy,
        reason: Reason,
        why: String,
    ) -> Result<Intent, GatewayError> {
        match current.state {
            IntentState::PendingApproval => {}
            IntentState::Analyzing => {
                return Err(GatewayError::FailedPrecondition(format!(
                "intent {} is still being analysed; it can be decided once it is PENDING_APPROVAL",
                current.id
            )))
            }
            _ => {
                return Err(GatewayError::AlreadyDecided {
                    current: Box::new(current),
                })
            }
        }
        let now = self.clock.now();
        if current.expires_at.is_some_and(|deadline| deadline <= now) {
            // The deadline passed and the expiry loop has not run yet: a late decision must not
            // win. Expire it now (whoever wins that race, the result is EXPIRED) and refuse.
            if let Ok(expired) = expiry(&current, now) {
                match self.store.transition(expired).await {
                    Ok(_) | Err(StoreError::Conflict { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            return Err(GatewayError::FailedPrecondition(format!(
                "intent {} passed its approval deadline; it is EXPIRED",
                current.id
            )));
        }
        let next = current
            .decide(to, by, why, Some(reason), now)
            .map_err(|e| GatewayError::FailedPrecondition(e.to_string()))?;
        match self.store.transition(next).await {
            Ok(intent) => {
                info!(intent_id = %intent.id, state = %intent.state, "intent resolved");
                Ok(counted(intent))
            }
            Err(StoreError::Conflict { current }) => Err(GatewayError::AlreadyDecided { current }),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn watch(&self, caller: &Principal, id: &str) -> Result<EventStream, GatewayError> {
        // Authorise against the stored intent first; the watch itself re-reads under its lock.
        let intent = self.get(caller, id).await?;
        let permit = self.watch_permit(caller)?;
        Ok(limits::holding(self.store.watch(&intent.id).await?, permit))
    }

    pub async fn watch_all(
        &self,
        caller: &Principal,
        mut filter: Filter,
        include_progress: bool,
    ) -> Result<EventStream, GatewayError> {
        scope_filter(caller, &mut filter)?;
        let permit = self.watch_permit(caller)?;
        let stream = limits::holding(self.store.watch_all().await?, permit);
        Ok(Box::pin(stream.filter(move |item| {
            let keep = match item {
                Ok(event) => {
                    filter.matches(&event.intent)
                        && (include_progress || event.kind != crate::domain::EventKind::Progress)
                }
                Err(WatchError::Lagged(_) | WatchError::Unavailable(_)) => true,
            };
            futures::future::ready(keep)
        })))
    }

    fn watch_permit(&self, caller: &Principal) -> Result<limits::WatchPermit, GatewayError> {
        self.watches
            .acquire(caller)
            .map_err(|e| GatewayError::ResourceExhausted {
                message: e.to_string(),
                retry_after: None,
            })
    }

    /// Expires every pending intent whose deadline has passed, and escalates analyses that a
    /// dead replica left behind. Returns how many intents it changed.
    pub async fn expire_due(&self) -> Result<usize, GatewayError> {
        let now = self.clock.now();
        let mut changed = 0;
        for id in self.store.due(now, 256).await? {
            let Some(intent) = self.store.get(&id).await? else {
                continue;
            };
            if intent.expires_at.is_none_or(|d| d > now) {
                continue;
            }
            let next = match intent.state {
                IntentState::PendingApproval => expiry(&intent, now),
                IntentState::Analyzing => {
                    let mut next = intent.decide(
                        IntentState::PendingApproval,
                        DecidedBy::new(DeciderKind::System, "", Channel::System),
                        "",
                        Some(Reason::system("analysis_interrupted", "scoring did not finish (a replica stopped mid-analysis); a human must decide")),
                        now,
                    );
                    if let Ok(n) = next.as_mut() {
                        n.expires_at =
                            Some(now + self.settings.approval_timeout.as_millis() as i64);
                        n.analysis =
                            "Automatic scoring was interrupted; a human must decide this intent."
                                .into();
                    }
                    next
                }
                _ => continue,
            };
            let Ok(next) = next else { continue };
            match self.store.transition(next).await {
                Ok(i) => {
                    let i = counted(i);
                    info!(intent_id = %i.id, state = %i.state, "deadline reached");
                    changed += 1;
                }
                Err(StoreError::Conflict { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(changed)
    }

    /// Runs [`Gateway::expire_due`] until shutdown, sleeping until the next deadline (at most
    /// a second, so deadlines created by other replicas are seen).
    pub fn spawn_expiry(
        self: Arc<Self>,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                if let Err(e) = self.expire_due().await {
                    warn!(error = %e, "expiry pass failed; retrying");
                }
                let next = self.store.next_deadline().await;
                let now = self.clock.now();
                let wait = match next {
                    Ok(Some(d)) => (d - now).clamp(5, 1000),
                    _ => 1000,
                };
                // The clock may wake us early; the next pass simply finds nothing due.
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = self.clock.sleep_until(now, now + wait) => {}
                }
            }
        })
    }
}

/// Counts an intent that reached its state on this replica (for `/metrics`).
fn counted(intent: Intent) -> Intent {
    let decider = intent.decided_by.as_ref().map(|d| d.kind);
    crate::metrics::intent_reached(intent.state, decider);
    if let (true, Some(at)) = (intent.is_terminal(), intent.decided_at) {
        crate::metrics::time_to_decision(decider, at - intent.created_at);
    }
    intent
}

/// The EXPIRED version of a pending intent whose deadline passed.
fn expiry(intent: &Intent, now: i64) -> Result<Intent, IllegalTransition> {
    intent.decide(
        IntentState::Expired,
        DecidedBy::new(DeciderKind::Timeout, "", Channel::Timeout),
        "approval deadline passed",
        Some(Reason::system(
            "approval_timeout",
            "no decision before the approval deadline; expired counts as declined",
        )),
        now,
    )
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

fn parse_id(id: &str) -> Result<IntentId, GatewayError> {
    if id.is_empty() {
        return Err(GatewayError::Invalid("intent_id: is required".into()));
    }
    IntentId::parse(id)
        .ok_or_else(|| GatewayError::Invalid(format!("intent_id: {id:?} is not an intent id")))
}

fn already_decided(intent: &Intent) -> String {
    let state = intent.state;
    match &intent.decided_by {
        Some(by) => format!(
            "intent {} is already {state} (by {} via {})",
            intent.id,
            if by.approver.is_empty() {
                by.kind.as_str().to_string()
            } else {
                by.approver.clone()
            },
            by.channel
        ),
        None => format!("intent {} is already {state}", intent.id),
    }
}

/// Restricts an agent's filter to its own intents; an agent asking for another's is refused.
fn scope_filter(caller: &Principal, filter: &mut Filter) -> Result<(), GatewayError> {
    if let Some(own) = caller.agent_scope() {
        match &filter.agent_id {
            Some(asked) if asked != own => {
                return Err(GatewayError::PermissionDenied(format!(
                    "agent_id: this key may only see intents of agent {own}"
                )))
            }
            _ => filter.agent_id = Some(own.to_string()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoring::fallback::FallbackScorer;
    use crate::store::MemoryStore;

    fn gateway(approval_timeout: Duration) -> Gateway {
        Gateway::new(
            Arc::new(MemoryStore::new()),
            Arc::new(PolicyPack::builtin()),
            Arc::new(FallbackScorer),
            Settings {
                approval_timeout,
                ..Settings::default()
            },
        )
    }

    fn delete_user() -> SubmitInput {
        SubmitInput {
            agent_id: "ops".into(),
            action: "DELETE_USER".into(),
            payload: Some(serde_json::json!({"user_id": "u"})),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_decision_after_the_deadline_loses_even_before_the_expiry_loop_runs() {
        // No expiry loop is running here: only the deadline check in the decision path.
        let gw = gateway(Duration::from_millis(1));
        let (intent, _) = gw.submit(&Principal::Open, delete_user()).await.unwrap();
        assert_eq!(intent.state, IntentState::PendingApproval);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let late = Resolution {
            approve: true,
            approver: String::new(),
            reason: String::new(),
            expected_version: None,
            channel: Channel::Grpc,
        };
        let err = gw
            .resolve(&Principal::Open, intent.id.as_str(), late)
            .await
            .unwrap_err();
        assert!(matches!(err, GatewayError::FailedPrecondition(_)), "{err}");
        let now = gw.get(&Principal::Open, intent.id.as_str()).await.unwrap();
        assert_eq!(now.state, IntentState::Expired);
        assert_eq!(now.decided_by.unwrap().kind, DeciderKind::Timeout);
    }

    #[tokio::test]
    async fn expire_due_expires_each_overdue_intent_once() {
        let gw = gateway(Duration::from_millis(1));
        for _ in 0..5 {
            gw.submit(&Principal::Open, delete_user()).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(gw.expire_due().await.unwrap(), 5);
        assert_eq!(gw.expire_due().await.unwrap(), 0);
    }
}
