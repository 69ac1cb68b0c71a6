//! `guard`: submit, then follow `WatchDecision` to a terminal state, riding out dropped
//! streams and restarted replicas without ever creating a second intent.
//!
//! Retry rules (the Python SDK's): a submit that failed with UNAVAILABLE, DEADLINE_EXCEEDED,
//! or UNKNOWN / CANCELLED (tonic's connection reset) may or may not have reached the store, so it is sent again with the same idempotency key,
//! which the gateway deduplicates. A watch that ended without a terminal event, or with
//! UNAVAILABLE, RESOURCE_EXHAUSTED (a lagging watcher), INTERNAL, UNKNOWN or CANCELLED (what
//! a connection reset looks like), is opened again: its first event is the current state, so
//! nothing is missed. Either stops after `retry_window` of outage in a row, or at the
//! caller's timeout.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::proto;
use crate::{Client, Decision, Error, State};

/// What to ask: `GuardRequest::new(agent, action, payload)` and the optional parts.
#[derive(Debug, Clone)]
pub struct GuardRequest {
    pub agent_id: String,
    pub action: String,
    /// A JSON object.
    pub payload: serde_json::Value,
    pub reasoning: String,
    /// `None`: one is generated and reused for every resubmission.
    pub idempotency_key: Option<String>,
    pub labels: HashMap<String, String>,
    /// `None`: wait until decided. Otherwise [`Error::Timeout`] and the intent stays pending.
    pub timeout: Option<Duration>,
}

impl GuardRequest {
    pub fn new(
        agent_id: impl Into<String>,
        action: impl Into<String>,
        payload: serde_json::Value,
    ) -> Self {
        GuardRequest {
            agent_id: agent_id.into(),
            action: action.into(),
            payload,
            reasoning: String::new(),
            idempotency_key: None,
            labels: HashMap::new(),
            timeout: None,
        }
    }

    pub fn reasoning(mut self, reasoning: impl Into<String>) -> Self {
        self.reasoning = reasoning.into();
        self
    }

    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

impl Client {
    /// Submits the intent and returns its terminal decision (approved or not).
    pub async fn guard(&self, request: GuardRequest) -> Result<Decision, Error> {
        if !request.payload.is_object() {
            return Err(Error::InvalidArgument {
                field: Some("payload".into()),
                message: "payload: must be a JSON object".into(),
            });
        }
        let key = request
            .idempotency_key
            .clone()
            .unwrap_or_else(|| format!("sdk-{}", uuid::Uuid::new_v4().simple()));
        let mut deadline = Deadline::new(request.timeout, self.options.retry_window);
        let submit = proto::SubmitIntentRequest {
            agent_id: request.agent_id,
            action: request.action,
            payload: Some(crate::json_to_struct(&request.payload)),
            reasoning: request.reasoning,
            idempotency_key: key.clone(),
            labels: request.labels,
            module: String::new(),
        };
        let response = self.submit(submit, &key, &mut deadline).await?;
        let intent = response.intent.ok_or_else(|| Error::Other {
            code: tonic::Code::Internal,
            message: "the gateway sent no intent".into(),
        })?;
        if State::from_pb(intent.state).is_terminal() {
            return Ok(Decision::from_intent(&intent, response.replayed));
        }
        self.wait(&intent.intent_id, &mut deadline, response.replayed)
            .await
    }

    /// [`Client::guard`], with [`Error::NotApproved`] (carrying the decision) unless approved.
    pub async fn require_approval(&self, request: GuardRequest) -> Result<Decision, Error> {
        let decision = self.guard(request).await?;
        if decision.approved {
            Ok(decision)
        } else {
            Err(Error::NotApproved(Box::new(decision)))
        }
    }

    async fn submit(
        &self,
        message: proto::SubmitIntentRequest,
        key: &str,
        deadline: &mut Deadline,
    ) -> Result<proto::SubmitIntentResponse, Error> {
        let mut backoff = Backoff::default();
        loop {
            let timeout = deadline.rpc_timeout(self.options.timeout);
            let request = self.request(message.clone(), Some(timeout));
            let status = match within(
                Some(Instant::now() + timeout),
                self.inner.clone().submit_intent(request),
            )
            .await
            {
                Some(Ok(response)) => return Ok(response.into_inner()),
                Some(Err(status)) => status,
                None => tonic::Status::deadline_exceeded("no answer in time"),
            };
            // UNKNOWN and CANCELLED are how tonic reports a connection reset mid-call.
            if !matches!(
                status.code(),
                tonic::Code::Unavailable
                    | tonic::Code::DeadlineExceeded
                    | tonic::Code::Unknown
                    | tonic::Code::Cancelled
            ) {
                return Err(Error::from_status(&status));
            }
            if deadline.expired() {
                return Err(Error::Timeout {
                    intent_id: None,
                    idempotency_key: Some(key.to_string()),
                });
            }
            if deadline.outage_too_long() {
                return Err(Error::Unavailable {
                    message: format!(
                        "gateway unreachable ({}); retry with idempotency_key={key}",
                        status.message()
                    ),
                    intent_id: None,
                    idempotency_key: Some(key.to_string()),
                });
            }
            tokio::time::sleep(deadline.sleep_for(backoff.next_delay())).await;
        }
    }

    async fn wait(
        &self,
        intent_id: &str,
        deadline: &mut Deadline,
        replayed: bool,
    ) -> Result<Decision, Error> {
        let mut backoff = Backoff::default();
        let timeout = |id: &str| Error::Timeout {
            intent_id: Some(id.to_string()),
            idempotency_key: None,
        };
        loop {
            if deadline.expired() {
                return Err(timeout(intent_id));
            }
            let request = self.request(
                proto::WatchDecisionRequest {
                    intent_id: intent_id.to_string(),
                },
                None,
            );
            let error = match within(deadline.at, self.inner.clone().watch_decision(request)).await
            {
                None => return Err(timeout(intent_id)),
                Some(Err(status)) => Some(status),
                Some(Ok(response)) => {
                    let mut stream = response.into_inner();
                    loop {
                        match within(deadline.at, stream.message()).await {
                            None => return Err(timeout(intent_id)),
                            Some(Ok(Some(event))) => {
                                deadline.connected();
                                backoff.reset();
                                if event.terminal || State::from_pb(event.state).is_terminal() {
                                    return self.terminal(event, replayed).await;
                                }
                            }
                            // Closed without a terminal event: a replica shutting down.
                            Some(Ok(None)) => break None,
                            Some(Err(status)) => break Some(status),
                        }
                    }
                }
            };
            if let Some(status) = error {
                let resubscribe = matches!(
                    status.code(),
                    tonic::Code::Unavailable
                        | tonic::Code::ResourceExhausted
                        | tonic::Code::Internal
                        | tonic::Code::Unknown
                        | tonic::Code::Cancelled
                        | tonic::Code::DeadlineExceeded
                );
                if !resubscribe {
                    return Err(Error::from_status(&status));
                }
            }
            if deadline.outage_too_long() {
                return Err(Error::Unavailable {
                    message: format!(
                        "gateway unreachable while waiting for intent {intent_id}; it stays pending"
                    ),
                    intent_id: Some(intent_id.to_string()),
                    idempotency_key: None,
                });
            }
            tokio::time::sleep(deadline.sleep_for(backoff.next_delay())).await;
        }
    }

    async fn terminal(
        &self,
        event: proto::DecisionEvent,
        replayed: bool,
    ) -> Result<Decision, Error> {
        match &event.intent {
            // Events leave the receipt out: an approval is read back with GetIntent.
            Some(intent)
                if State::from_pb(intent.state).is_terminal()
                    && State::from_pb(intent.state) != State::Approved =>
            {
                Ok(Decision::from_intent(intent, replayed))
            }
            _ => {
                let mut decision = self.get_decision(&event.intent_id).await?;
                decision.replayed = replayed;
                Ok(decision)
            }
        }
    }
}

/// `fut`, cut off at `at` (`None`: never).
async fn within<F: std::future::Future>(at: Option<Instant>, fut: F) -> Option<F::Output> {
    match at {
        None => Some(fut.await),
        Some(at) => tokio::time::timeout_at(at, fut).await.ok(),
    }
}

/// The caller's overall bound and how long the gateway has been out of reach in a row.
struct Deadline {
    at: Option<Instant>,
    retry_window: Duration,
    outage_since: Option<Instant>,
}

impl Deadline {
    fn new(timeout: Option<Duration>, retry_window: Duration) -> Deadline {
        Deadline {
            at: timeout.map(|t| Instant::now() + t),
            retry_window,
            outage_since: None,
        }
    }

    fn expired(&self) -> bool {
        self.at.is_some_and(|at| Instant::now() >= at)
    }

    fn rpc_timeout(&self, default: Duration) -> Duration {
        match self.at {
            None => default,
            Some(at) => at
                .saturating_duration_since(Instant::now())
                .min(default)
                .max(Duration::from_millis(1)),
        }
    }

    fn connected(&mut self) {
        self.outage_since = None;
    }

    fn outage_too_long(&mut self) -> bool {
        let since = *self.outage_since.get_or_insert_with(Instant::now);
        since.elapsed() > self.retry_window
    }

    fn sleep_for(&self, delay: Duration) -> Duration {
        match self.at {
            None => delay,
            Some(at) => delay.min(at.saturating_duration_since(Instant::now())),
        }
    }
}

/// Exponential backoff with jitter (between half and all of 50 ms * 2^n, at most 2 s).
#[derive(Default)]
struct Backoff {
    attempt: u32,
}

impl Backoff {
    fn next_delay(&mut self) -> Duration {
        let ceiling = (0.05 * 2f64.powi(self.attempt as i32)).min(2.0);
        self.attempt = (self.attempt + 1).min(30);
        Duration::from_secs_f64(rand::random_range(ceiling / 2.0..=ceiling))
    }

    fn reset(&mut self) {
        self.attempt = 0;
    }
}
