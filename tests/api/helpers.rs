//! `spawn_app()` and friends: the one way tests start Sentinel.

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use sentinel::app::App;
use sentinel::config::Config;
use sentinel::domain::{Clock, ManualClock, SystemClock};
use sentinel::grpc::convert::json_to_struct;
use sentinel::grpc::pb;
use sentinel::grpc::pb::sentinel_client::SentinelClient;
use sentinel::policy::PolicyPack;
use sentinel::scoring::fallback::FallbackScorer;
use sentinel::scoring::Scorer;
use sentinel::store::{MemoryStore, Store};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

pub struct TestApp {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub handle: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
}

/// Parts a test may swap.
pub struct Parts {
    pub config: Config,
    pub policy: Arc<PolicyPack>,
    pub store: Arc<dyn Store>,
    pub scorer: Arc<dyn Scorer>,
    /// The gateway's clock; give a memory store the same one ([`Parts::with_manual_clock`]).
    pub clock: Arc<dyn Clock>,
}

impl Parts {
    /// Default parts whose gateway and memory store read a manual clock that the test moves.
    pub fn with_manual_clock() -> (Parts, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::starting_now());
        let parts = Parts {
            store: Arc::new(MemoryStore::with_clock(
                sentinel::store::memory::DEFAULT_RETENTION,
                clock.clone(),
            )),
            clock: clock.clone(),
            ..Parts::default()
        };
        (parts, clock)
    }
}

impl Default for Parts {
    fn default() -> Self {
        Parts {
            config: Config::ephemeral(),
            policy: Arc::new(PolicyPack::builtin()),
            store: Arc::new(MemoryStore::new()),
            scorer: Arc::new(FallbackScorer),
            clock: SystemClock::shared(),
        }
    }
}

/// Keys of the secured app ([`secured`]): agents `alpha` and `beta`, operator `olivia`.
pub const ALPHA: &str = "alpha-key-0123456789";
pub const BETA: &str = "beta-key-0123456789";
pub const OPS: &str = "ops-key-0123456789";

/// An app that requires API keys: [`ALPHA`], [`BETA`] (agents) and [`OPS`] (operator olivia).
pub async fn secured() -> TestApp {
    let mut parts = Parts::default();
    parts.config.keys = sentinel::auth::KeyRing::new([
        (
            sentinel::auth::hash_key(ALPHA),
            sentinel::auth::Principal::Agent("alpha".into()),
        ),
        (
            sentinel::auth::hash_key(BETA),
            sentinel::auth::Principal::Agent("beta".into()),
        ),
        (
            sentinel::auth::hash_key(OPS),
            sentinel::auth::Principal::Operator("olivia".into()),
        ),
    ]);
    spawn_with(parts).await
}

pub async fn spawn_app() -> TestApp {
    spawn_with(Parts::default()).await
}

pub async fn spawn_with(parts: Parts) -> TestApp {
    let store = parts.store.clone();
    let clock = parts.clock.clone();
    let app = App::build_with_clock(
        parts.config,
        parts.policy,
        parts.store,
        parts.scorer,
        parts.clock,
    )
    .await
    .expect("app builds");
    TestApp {
        grpc_addr: app.grpc_addr(),
        http_addr: app.http_addr(),
        shutdown: app.shutdown_token(),
        handle: tokio::spawn(app.run()),
        store,
        clock,
    }
}

impl TestApp {
    pub fn url(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// The `sentinel` CLI pointed at this app, as a user runs it.
    pub fn cli(&self) -> tokio::process::Command {
        cli_at(&self.url())
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.url())
            .expect("url")
            .connect()
            .await
            .expect("connects")
    }

    /// A client that sends no credential.
    pub async fn client(&self) -> Client {
        Client {
            inner: SentinelClient::new(self.channel().await),
            key: None,
        }
    }

    /// A client that sends `key` as a bearer token.
    pub async fn client_with_key(&self, key: &str) -> Client {
        Client {
            inner: SentinelClient::new(self.channel().await),
            key: Some(key.to_string()),
        }
    }

    /// Shuts the app down and fails the test unless every task ended cleanly, in time.
    pub async fn stop(self) {
        self.shutdown.cancel();
        match tokio::time::timeout(SHUTDOWN_LIMIT, self.handle).await {
            Err(_) => panic!("the app did not shut down within {SHUTDOWN_LIMIT:?}"),
            Ok(Err(join)) => panic!("the app's run task panicked: {join}"),
            Ok(Ok(Err(e))) => panic!("a task of the app failed: {e:#}"),
            Ok(Ok(Ok(()))) => {}
        }
    }
}

/// How long a shutdown may take before the test fails.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(10);

/// Polls `check` until it returns `Some` and returns that value; panics naming `what` if that
/// does not happen within `limit` (a slow check included).
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    match within(limit, check).await {
        Some(value) => value,
        None => panic!("timed out after {limit:?} waiting for {what}"),
    }
}

/// Polls `check` until it returns `Some`, for at most `limit` (a check that hangs is cut off
/// at the deadline too); `None` if it never did. Polls quickly at first, then every 100 ms.
pub async fn within<T, F, Fut>(limit: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Ok(Some(value)) = tokio::time::timeout_at(deadline, check()).await {
            return Some(value);
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return None;
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// A gRPC client that adds the API key to each request.
#[derive(Clone)]
pub struct Client {
    pub inner: SentinelClient<Channel>,
    pub key: Option<String>,
}

impl Client {
    pub fn req<T>(&self, message: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(message);
        if let Some(k) = &self.key {
            r.metadata_mut().insert(
                "authorization",
                format!("Bearer {k}").parse().expect("ascii key"),
            );
        }
        r
    }

    pub async fn submit(
        &mut self,
        request: pb::SubmitIntentRequest,
    ) -> Result<pb::SubmitIntentResponse, tonic::Status> {
        let r = self.req(request);
        self.inner.submit_intent(r).await.map(|r| r.into_inner())
    }

    /// Submits `action` with a JSON payload for `agent`; returns the intent.
    pub async fn submit_json(
        &mut self,
        agent: &str,
        action: &str,
        payload: serde_json::Value,
    ) -> Result<pb::Intent, tonic::Status> {
        self.submit(intent_request(agent, action, payload))
            .await
            .map(|r| r.intent.expect("intent in response"))
    }

    pub async fn get(&mut self, id: &str) -> Result<pb::Intent, tonic::Status> {
        let r = self.req(pb::GetIntentRequest {
            intent_id: id.to_string(),
        });
        self.inner
            .get_intent(r)
            .await
            .map(|r| r.into_inner().intent.expect("intent"))
    }

    pub async fn resolve(
        &mut self,
        id: &str,
        approve: bool,
        reason: &str,
    ) -> Result<pb::Intent, tonic::Status> {
        let r = self.req(pb::ResolveIntentRequest {
            intent_id: id.to_string(),
            approve,
            approver: String::new(),
            reason: reason.to_string(),
            expected_version: 0,
        });
        self.inner
            .resolve_intent(r)
            .await
            .map(|r| r.into_inner().intent.expect("intent"))
    }

    pub async fn history(&mut self, id: &str) -> Result<Vec<pb::HistoryEntry>, tonic::Status> {
        let r = self.req(pb::GetIntentHistoryRequest {
            intent_id: id.to_string(),
        });
        self.inner
            .get_intent_history(r)
            .await
            .map(|r| r.into_inner().entries)
    }

    pub async fn cancel(&mut self, id: &str, reason: &str) -> Result<pb::Intent, tonic::Status> {
        let r = self.req(pb::CancelIntentRequest {
            intent_id: id.to_string(),
            reason: reason.to_string(),
        });
        self.inner
            .cancel_intent(r)
            .await
            .map(|r| r.into_inner().intent.expect("intent"))
    }

    pub async fn watch(
        &mut self,
        id: &str,
    ) -> Result<tonic::Streaming<pb::DecisionEvent>, tonic::Status> {
        let r = self.req(pb::WatchDecisionRequest {
            intent_id: id.to_string(),
        });
        self.inner.watch_decision(r).await.map(|r| r.into_inner())
    }

    pub async fn list(
        &mut self,
        request: pb::ListIntentsRequest,
    ) -> Result<pb::ListIntentsResponse, tonic::Status> {
        let r = self.req(request);
        self.inner.list_intents(r).await.map(|r| r.into_inner())
    }
}

pub fn intent_request(
    agent: &str,
    action: &str,
    payload: serde_json::Value,
) -> pb::SubmitIntentRequest {
    pb::SubmitIntentRequest {
        agent_id: agent.to_string(),
        action: action.to_string(),
        payload: Some(json_to_struct(&payload)),
        reasoning: "test".to_string(),
        ..Default::default()
    }
}

/// Who decided `intent` and through which channel; `("", "")` while nobody has.
pub fn decided_by(intent: &pb::Intent) -> (&str, &str) {
    intent
        .decided_by
        .as_ref()
        .map_or(("", ""), |by| (by.approver.as_str(), by.channel.as_str()))
}

pub fn state(i: &pb::Intent) -> pb::IntentState {
    pb::IntentState::try_from(i.state).expect("known state")
}

/// Reads every event of a stream until it ends (bounded by `limit`).
pub async fn collect(
    mut stream: tonic::Streaming<pb::DecisionEvent>,
    limit: Duration,
) -> Vec<pb::DecisionEvent> {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(limit, async {
        while let Ok(Some(e)) = stream.message().await {
            out.push(e);
        }
    })
    .await;
    out
}

/// The next event, or panics after `limit`.
pub async fn next_event(
    stream: &mut tonic::Streaming<pb::DecisionEvent>,
    limit: Duration,
) -> Option<pb::DecisionEvent> {
    tokio::time::timeout(limit, stream.message())
        .await
        .expect("event within the limit")
        .expect("stream ok")
}

/// The `sentinel` binary.
pub const SENTINEL_BIN: &str = env!("CARGO_BIN_EXE_sentinel");

/// `sentinel submit --json` of an invoice the built-in pack approves (a small amount to a
/// known vendor).
pub const SUBMIT_APPROVED: [&str; 8] = [
    "submit",
    "--json",
    "--agent",
    "bot",
    "--action",
    "PAY_INVOICE",
    "--payload",
    r#"{"amount": 20, "vendor": "AWS"}"#,
];

/// The `sentinel` CLI as a client of the gateway at `addr`: no API key unless the test sets
/// one, its output captured.
pub fn cli_at(addr: &str) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(SENTINEL_BIN);
    c.env("SENTINEL_ADDR", addr)
        .env_remove("SENTINEL_API_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Runs a CLI command to its end; it must succeed (its stderr is the failure message).
pub async fn run_ok(command: &mut tokio::process::Command) -> Output {
    let out = command.output().await.expect("the CLI runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
