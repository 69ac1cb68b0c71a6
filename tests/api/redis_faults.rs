//! Redis paused, killed or restarted under a running replica: submissions fail closed with
//! UNAVAILABLE (never an approval), readiness says so, watchers are kept or told but never
//! shown a wrong state, and everything recovers by itself once Redis is back.

use std::time::Duration;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use sentinel::domain::{now_millis, Channel, DecidedBy, DeciderKind, IntentState as State};
use sentinel::grpc::pb;
use sentinel::grpc::pb::IntentState;
use sentinel::store::{Created, Store, StoreError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{collect, intent_request, next_event, state, Client};
use crate::redis_harness::{connect, RedisServer, Replica};

const WAIT: Duration = Duration::from_secs(15);

/// 500 to AWS: the built-in pack approves it at once when the store works.
fn safe_payment(key: &str) -> pb::SubmitIntentRequest {
    let mut r = intent_request(
        "ops-bot",
        "PAY_INVOICE",
        serde_json::json!({"amount": 500, "vendor": "AWS"}),
    );
    r.idempotency_key = key.to_string();
    r
}

fn risky_payment() -> pb::SubmitIntentRequest {
    intent_request(
        "ops-bot",
        "PAY_INVOICE",
        serde_json::json!({"amount": 9000, "vendor": "Shady LLC"}),
    )
}

/// Submits with a client-side deadline: the server must answer within it.
async fn submit_within(
    client: &mut Client,
    request: pb::SubmitIntentRequest,
    deadline: Duration,
) -> Result<pb::SubmitIntentResponse, tonic::Status> {
    let mut r = client.req(request);
    r.set_timeout(deadline);
    client.inner.submit_intent(r).await.map(|r| r.into_inner())
}

/// While Redis cannot answer, a submission that would be approved is refused as UNAVAILABLE.
async fn assert_fails_closed(client: &mut Client) {
    for request in [safe_payment(""), safe_payment("during")] {
        let refused = submit_within(client, request, Duration::from_secs(5))
            .await
            .expect_err("no answer but UNAVAILABLE while redis is down");
        assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    }
}

/// A replica with a pending intent and a watcher that has seen its first state: what an
/// outage must not break.
struct Scene {
    replica: Replica,
    client: Client,
    pending: pb::Intent,
    watch: tonic::Streaming<pb::DecisionEvent>,
}

use tonic_health::pb::health_check_response::ServingStatus::{NotServing, Serving};

/// Polls the replica's gRPC health until it reports `want` (bounded by `WAIT`).
async fn grpc_health_becomes(
    replica: &Replica,
    want: tonic_health::pb::health_check_response::ServingStatus,
) -> bool {
    crate::helpers::within(WAIT, || async {
        let channel = tonic::transport::Channel::from_shared(replica.url())
            .expect("url")
            .connect()
            .await
            .ok()?;
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        let request = tonic_health::pb::HealthCheckRequest {
            service: "sentinel.v1.Sentinel".into(),
        };
        let r = tokio::time::timeout(Duration::from_secs(1), health.check(request))
            .await
            .ok()?
            .ok()?;
        (r.into_inner().status == want as i32).then_some(())
    })
    .await
    .is_some()
}

impl Scene {
    async fn start(redis_url: &str) -> Scene {
        let replica = Replica::start(redis_url, &[]).await;
        let mut client = replica.client().await;
        let response = client.submit(risky_payment()).await.unwrap();
        let pending = response.intent.expect("intent");
        let mut watch = client.watch(&pending.intent_id).await.unwrap();
        let first = next_event(&mut watch, WAIT).await.expect("current state");
        assert_eq!(first.state, IntentState::PendingApproval as i32);
        Scene {
            replica,
            client,
            pending,
            watch,
        }
    }

    /// While Redis cannot answer: submissions fail closed, readiness says so, and the watcher
    /// is either kept (no event) or told (UNAVAILABLE), never shown a state the intent is not
    /// in. Returns whether it was kept.
    async fn during_outage(&mut self) -> bool {
        assert_fails_closed(&mut self.client).await;
        let not_ready = self.replica.wait_readyz(503, WAIT).await;
        assert!(not_ready, "readiness reports the outage");
        assert!(
            grpc_health_becomes(&self.replica, NotServing).await,
            "gRPC health reports the outage"
        );
        // The health loop sets the gauge before it flips gRPC health.
        assert_eq!(
            self.replica.metric("sentinel_store_up").await,
            Some(0.0),
            "/metrics reports the outage"
        );
        match tokio::time::timeout(Duration::from_millis(1500), self.watch.message()).await {
            Err(_) => true,
            Ok(Err(status)) => {
                assert_eq!(status.code(), tonic::Code::Unavailable);
                false
            }
            Ok(Ok(None)) => false,
            Ok(Ok(Some(event))) => {
                let state = event.state;
                assert_eq!(state, IntentState::PendingApproval as i32, "no wrong state");
                true
            }
        }
    }

    /// Once Redis is back: ready again by itself, the pending intent is intact, new
    /// submissions are decided, and a decision reaches the watcher (on the same stream if it
    /// was kept, on a new watch if it was told to resubscribe).
    async fn after_recovery(mut self, kept: bool) {
        let ready = self.replica.wait_ready(WAIT).await;
        assert!(ready, "recovers by itself:\n{}", self.replica.log());
        assert!(
            grpc_health_becomes(&self.replica, Serving).await,
            "gRPC health recovers"
        );
        assert_eq!(
            self.replica.metric("sentinel_store_up").await,
            Some(1.0),
            "/metrics reports the recovery"
        );
        let id = self.pending.intent_id.clone();
        let intent = self
            .client
            .get(&id)
            .await
            .expect("the pending intent survived");
        assert_eq!(state(&intent), IntentState::PendingApproval);
        let approved = self.client.submit(safe_payment("after")).await.unwrap();
        assert_eq!(state(&approved.intent.unwrap()), IntentState::Approved);
        self.client
            .resolve(&id, true, "after the outage")
            .await
            .unwrap();
        let events = if kept {
            collect(self.watch, WAIT).await
        } else {
            collect(self.client.watch(&id).await.unwrap(), WAIT).await
        };
        let last = events.last().map(|e| e.state);
        assert_eq!(last, Some(IntentState::Approved as i32));
    }
}

#[tokio::test]
async fn a_paused_redis_fails_closed_and_recovers() {
    let redis = RedisServer::start().await;
    let mut scene = Scene::start(&redis.url()).await;
    redis.pause();
    let kept = scene.during_outage().await;
    redis.resume();
    scene.after_recovery(kept).await;
}

#[tokio::test]
async fn a_restarted_redis_keeps_every_intent_and_the_replica_reconnects() {
    let mut redis = RedisServer::start().await;
    let mut scene = Scene::start(&redis.url()).await;
    redis.kill();
    let kept = scene.during_outage().await;
    redis.restart().await;
    scene.after_recovery(kept).await;
}

#[tokio::test]
async fn a_replica_started_before_redis_becomes_ready_when_it_appears() {
    let mut redis = RedisServer::start().await;
    let url = redis.url();
    redis.kill();
    let replica = Replica::spawn(&url, &[]);
    // The replica is up but not ready; start Redis and it becomes ready on its own.
    assert!(
        replica.wait_readyz(503, WAIT).await,
        "the replica answers not-ready while Redis is down:\n{}",
        replica.log()
    );
    redis.restart().await;
    assert!(
        replica.wait_ready(WAIT).await,
        "the replica becomes ready once Redis answers:\n{}",
        replica.log()
    );
    let mut client = replica.client().await;
    assert_eq!(
        state(
            &client
                .submit(safe_payment("late"))
                .await
                .unwrap()
                .intent
                .unwrap()
        ),
        IntentState::Approved
    );
}

/// A TCP proxy to Redis that, when armed, cuts the connection instead of forwarding the next
/// `{1}` reply (what `create` and `transition` answer on success): the write has landed, the
/// caller never hears so.
struct ReplyCutter {
    port: u16,
    armed: Arc<AtomicBool>,
    cuts: Arc<AtomicUsize>,
}

impl ReplyCutter {
    async fn start(upstream: u16) -> ReplyCutter {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (armed, cuts) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicUsize::new(0)),
        );
        let (armed2, cuts2) = (armed.clone(), cuts.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                else {
                    continue;
                };
                let (armed, cuts) = (armed2.clone(), cuts2.clone());
                tokio::spawn(async move {
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    let upstream = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                    });
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match server_read.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if buf[..n].starts_with(b"*1\r\n:1\r\n")
                            && armed.swap(false, Ordering::SeqCst)
                        {
                            cuts.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                        if client_write.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    upstream.abort();
                });
            }
        });
        ReplyCutter { port, armed, cuts }
    }

    fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_write_whose_reply_was_lost_is_retried_and_counts_once() {
    // redis-rs's ConnectionManager does not replay a failed command; the store retries once,
    // and the retry must converge on what already landed instead of failing or writing twice.
    let redis = RedisServer::start().await;
    let cutter = ReplyCutter::start(redis.port).await;
    let store = connect(&format!("redis://127.0.0.1:{}", cutter.port), "retry").await;

    let mut intent = crate::store_contract::sample_intent("agent-a", State::PendingApproval);
    intent.idempotency_key = Some("k".into());
    cutter.arm();
    let created = match store
        .create(intent.clone())
        .await
        .expect("the retried create succeeds")
    {
        Created::New(created) => created,
        other => panic!("our own landed write is not a replay: {other:?}"),
    };
    assert_eq!(created.id, intent.id);

    let next = created
        .decide(
            State::Declined,
            DecidedBy::new(DeciderKind::Human, "alice", Channel::Cli),
            "no",
            None,
            now_millis(),
        )
        .unwrap();
    cutter.arm();
    let decided = store
        .transition(next.clone())
        .await
        .expect("the retried transition succeeds");
    assert_eq!(decided, next);
    assert_eq!(
        cutter.cuts.load(Ordering::SeqCst),
        2,
        "both replies were cut"
    );

    let audit = store.audit_range(0, now_millis() + 1, 100).await.unwrap();
    let events: Vec<&str> = audit.iter().map(|r| r.event.as_str()).collect();
    assert_eq!(
        events,
        vec!["created", "transition"],
        "each step written once, no rejection"
    );

    // An identical decision by someone else is not a retry: it loses.
    match store.transition(next).await {
        Err(StoreError::Conflict { current }) => assert_eq!(*current, decided),
        other => panic!("a second identical decision must lose, got {other:?}"),
    }
}
