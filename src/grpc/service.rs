//! The `Sentinel` service: each handler authenticates the caller, converts the request into
//! plain domain input, calls the [`Gateway`], and converts back.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::convert::{self, intent_to_pb, millis, state_from_pb, struct_to_json};
use super::pb::{self, sentinel_server::Sentinel};
use super::status::status;
use super::stream;
use crate::auth::{KeyRing, Principal};
use crate::domain::validate::SubmitInput;
use crate::domain::{Channel, Intent};
use crate::gateway::{Gateway, GatewayError, IntentFilter, Resolution};

pub struct SentinelService {
    gateway: Arc<Gateway>,
    keys: KeyRing,
    shutdown: CancellationToken,
    /// Bytes of events a `WatchDecisions` stream may have waiting before it is ended.
    watch_max_lag_bytes: usize,
}

impl SentinelService {
    pub fn new(gateway: Arc<Gateway>, keys: KeyRing, shutdown: CancellationToken) -> Self {
        SentinelService {
            gateway,
            keys,
            shutdown,
            watch_max_lag_bytes: stream::DEFAULT_MAX_LAG_BYTES,
        }
    }

    /// Sets the per-stream budget of `WatchDecisions` (`SENTINEL_WATCH_MAX_LAG_BYTES`).
    pub fn with_watch_max_lag_bytes(mut self, bytes: usize) -> Self {
        self.watch_max_lag_bytes = bytes;
        self
    }

    fn authenticate<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        let md = request.metadata();
        let presented = md
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
                    .unwrap_or(v)
            })
            .or_else(|| md.get("x-api-key").and_then(|v| v.to_str().ok()));
        self.keys
            .authenticate(presented)
            .map_err(|e| Status::unauthenticated(e.to_string()))
    }

    /// Wraps a domain event stream for the wire: ends on shutdown, and after the terminal
    /// event for single-intent watches.
    fn wire_stream(&self, events: crate::gateway::IntentEvents) -> EventStream {
        let shutdown = self.shutdown.clone();
        let stream = events
            .take_until(shutdown.cancelled_owned())
            .map(stream::wire_item);
        Box::pin(stream::end_after_error(stream))
    }
}

fn channel_of<T>(request: &Request<T>) -> Channel {
    match request
        .metadata()
        .get("x-sentinel-channel")
        .and_then(|v| v.to_str().ok())
        .and_then(Channel::parse)
    {
        Some(c @ (Channel::Cli | Channel::Console)) => c,
        _ => Channel::Grpc,
    }
}

fn filter_from(
    agent_id: String,
    module: String,
    action: String,
    states: &[i32],
) -> Result<IntentFilter, Status> {
    let mut parsed = Vec::new();
    for (i, raw) in states.iter().enumerate() {
        parsed.push(state_from_pb(*raw).ok_or_else(|| {
            Status::invalid_argument(format!("states[{i}]: {raw} is not a known intent state"))
        })?);
    }
    let opt = |s: String| (!s.is_empty()).then_some(s);
    Ok(IntentFilter {
        agent_id: opt(agent_id),
        module: opt(module),
        action: opt(action),
        states: parsed,
        created_after: None,
        created_before: None,
    })
}

/// The responses that carry the one intent a call returned.
trait IntentReply {
    fn with(intent: pb::Intent) -> Self;
}

macro_rules! intent_reply {
    ($($response:ty),*) => {$(
        impl IntentReply for $response {
            fn with(intent: pb::Intent) -> Self {
                Self { intent: Some(intent) }
            }
        }
    )*};
}

intent_reply!(
    pb::GetIntentResponse,
    pb::ResolveIntentResponse,
    pb::CancelIntentResponse
);

/// The gateway's answer about one intent, as that call's response.
fn reply<R: IntentReply>(answer: Result<Intent, GatewayError>) -> Result<Response<R>, Status> {
    answer
        .map(|intent| Response::new(R::with(intent_to_pb(&intent))))
        .map_err(status)
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::DecisionEvent, Status>> + Send>>;

#[tonic::async_trait]
impl Sentinel for SentinelService {
    async fn submit_intent(
        &self,
        request: Request<pb::SubmitIntentRequest>,
    ) -> Result<Response<pb::SubmitIntentResponse>, Status> {
        let caller = self.authenticate(&request)?;
        let r = request.into_inner();
        if let Some(path) = r.payload.as_ref().and_then(convert::has_non_finite) {
            return Err(Status::invalid_argument(format!(
                "{path}: number is not finite"
            )));
        }
        let input = SubmitInput {
            agent_id: r.agent_id,
            action: r.action,
            payload: r.payload.as_ref().map(struct_to_json),
            reasoning: r.reasoning,
            idempotency_key: r.idempotency_key,
            labels: r.labels.into_iter().collect(),
            module: r.module,
        };
        let (intent, replayed) = self.gateway.submit(&caller, input).await.map_err(status)?;
        Ok(Response::new(pb::SubmitIntentResponse {
            intent: Some(intent_to_pb(&intent)),
            replayed,
        }))
    }

    type WatchDecisionStream = EventStream;

    async fn watch_decision(
        &self,
        request: Request<pb::WatchDecisionRequest>,
    ) -> Result<Response<Self::WatchDecisionStream>, Status> {
        let caller = self.authenticate(&request)?;
        let events = self
            .gateway
            .watch(&caller, &request.get_ref().intent_id)
            .await
            .map_err(status)?;
        Ok(Response::new(self.wire_stream(events)))
    }

    async fn get_intent(
        &self,
        request: Request<pb::GetIntentRequest>,
    ) -> Result<Response<pb::GetIntentResponse>, Status> {
        let caller = self.authenticate(&request)?;
        reply(
            self.gateway
                .get(&caller, &request.get_ref().intent_id)
                .await,
        )
    }

    async fn list_intents(
        &self,
        request: Request<pb::ListIntentsRequest>,
    ) -> Result<Response<pb::ListIntentsResponse>, Status> {
        let caller = self.authenticate(&request)?;
        let r = request.into_inner();
        let mut filter = filter_from(r.agent_id, r.module, r.action, &r.states)?;
        filter.created_after = r.created_after.as_ref().map(millis);
        filter.created_before = r.created_before.as_ref().map(millis);
        let (intents, next) = self
            .gateway
            .list(&caller, filter, r.page_size, &r.page_token)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ListIntentsResponse {
            intents: intents.iter().map(intent_to_pb).collect(),
            next_page_token: next,
        }))
    }

    async fn resolve_intent(
        &self,
        request: Request<pb::ResolveIntentRequest>,
    ) -> Result<Response<pb::ResolveIntentResponse>, Status> {
        let caller = self.authenticate(&request)?;
        let channel = channel_of(&request);
        let r = request.into_inner();
        let resolution = Resolution {
            approve: r.approve,
            approver: r.approver,
            reason: r.reason,
            expected_version: (r.expected_version > 0).then_some(r.expected_version),
            channel,
        };
        reply(
            self.gateway
                .resolve(&caller, &r.intent_id, resolution)
                .await,
        )
    }

    async fn cancel_intent(
        &self,
        request: Request<pb::CancelIntentRequest>,
    ) -> Result<Response<pb::CancelIntentResponse>, Status> {
        let caller = self.authenticate(&request)?;
        let r = request.into_inner();
        reply(self.gateway.cancel(&caller, &r.intent_id, r.reason).await)
    }

    type WatchDecisionsStream = EventStream;

    async fn watch_decisions(
        &self,
        request: Request<pb::WatchDecisionsRequest>,
    ) -> Result<Response<Self::WatchDecisionsStream>, Status> {
        let caller = self.authenticate(&request)?;
        let r = request.into_inner();
        let filter = filter_from(r.agent_id, r.module, String::new(), &r.states)?;
        let events = self
            .gateway
            .watch_all(&caller, filter, r.include_progress)
            .await
            .map_err(status)?;
        Ok(Response::new(stream::bounded(
            events,
            self.watch_max_lag_bytes,
            &self.shutdown,
        )))
    }

    async fn get_intent_history(
        &self,
        request: Request<pb::GetIntentHistoryRequest>,
    ) -> Result<Response<pb::GetIntentHistoryResponse>, Status> {
        let caller = self.authenticate(&request)?;
        let records = self
            .gateway
            .history(&caller, &request.get_ref().intent_id)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::GetIntentHistoryResponse {
            entries: records.iter().map(convert::history_to_pb).collect(),
        }))
    }
}
