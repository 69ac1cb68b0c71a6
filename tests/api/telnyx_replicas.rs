//! The phone ladder survives the death of the replica that dialled: two real `sentinel serve`
//! processes on one real Redis with the fake Telnyx; the one that placed the call is killed
//! (SIGKILL) and the other moves the ladder on and takes the decision.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sentinel::grpc::pb;
use sentinel::grpc::pb::IntentState;

use crate::fakes::telnyx::*;
use crate::helpers::{collect, intent_request, state};
use crate::redis_harness::{RedisServer, Replica};

/// The shortest ring timeout the configuration takes.
const RING_TIMEOUT_SECS: u64 = 5;

fn env<'a>(fake: &'a str, public_key: &'a str, config: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("SENTINEL_CONFIG", config),
        ("TELNYX_API_KEY", API_KEY),
        ("TELNYX_PUBLIC_KEY", public_key),
        ("SENTINEL_TELNYX_BASE_URL", fake),
        ("TELNYX_CONNECTION_ID", CONNECTION_ID),
        ("TELNYX_PHONE_NUMBER", CALLER_ID),
        ("SENTINEL_RING_TIMEOUT_SECS", "5"),
        ("SENTINEL_PIN_MIN_RISK", "101"),
    ]
}

/// Waits (bounded by `limit`) for the first dial to `to`; `None` if none came.
async fn dialled(fake: &FakeTelnyx, to: &str, limit: Duration) -> Option<Instant> {
    crate::helpers::within(limit, || async {
        fake.requests()
            .iter()
            .any(|r| r.kind == "dial" && r.body["to"] == to)
            .then(Instant::now)
    })
    .await
}

#[tokio::test]
async fn when_the_dialling_replica_is_killed_another_calls_the_next_approver() {
    let redis = RedisServer::start().await;
    let fake = FakeTelnyx::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("sentinel.toml");
    std::fs::write(
        &config,
        format!(
            "[[approvers]]\nname = \"alice\"\nphone = \"{ALICE}\"\norder = 1\n\n\
             [[approvers]]\nname = \"bob\"\nphone = \"{BOB}\"\norder = 2\n"
        ),
    )
    .expect("config written");
    let (base, key) = (fake.base_url(), public_key_b64());
    let config = config.to_string_lossy().to_string();
    let env = env(&base, &key, &config);

    // Replica A alone: it claims the intent and dials approver 1, who never answers.
    let mut a = Replica::start(&redis.url(), &env).await;
    let submitted = a
        .client()
        .await
        .submit(intent_request(
            "billing-bot",
            "PAY_INVOICE",
            serde_json::json!({"amount": 9000, "vendor": "Shady LLC"}),
        ))
        .await
        .expect("submit")
        .intent
        .expect("intent");
    assert_eq!(state(&submitted), IntentState::PendingApproval);
    dialled(&fake, ALICE, Duration::from_secs(15))
        .await
        .expect("replica A dials approver 1");

    // Replica B joins (its catch-up finds the intent claimed: it does not dial), then A dies.
    let b = Replica::start(&redis.url(), &env).await;
    let mut on_b = b.client().await;
    let watch = on_b.watch(&submitted.intent_id).await.expect("watch on B");
    a.kill();
    let killed = Instant::now();

    // Nobody answers approver 1 and Telnyx never reports the end of ringing: B's poller fires
    // the ring watchdog A armed, hangs up and calls approver 2.
    let bound = Duration::from_secs(RING_TIMEOUT_SECS + 15);
    let bob_dialled = dialled(&fake, BOB, bound).await;
    assert!(
        bob_dialled.is_some_and(|at| at.duration_since(killed) <= bound),
        "replica B did not call approver 2 within {bound:?} of A's death; requests: {:#?}\nB's log:\n{}",
        fake.requests(),
        b.log()
    );
    fake.wait_for("hangup", None, 1).await;

    // The decision is taken through B's webhook listener.
    let b_http: SocketAddr = b.http_addr.parse().expect("B's http address");
    let bob = fake.phone(b_http, BOB, 1).await;
    assert_eq!(client_state(&bob.client_state)["a"], 1);
    bob.pick_up().await;
    bob.prompt(1).await;
    bob.press("1").await;
    let events = collect(watch, Duration::from_secs(30)).await;
    let last = events.last().expect("events");
    assert!(last.terminal, "{events:#?}");
    let intent = last.intent.clone().expect("intent");
    assert_decided(
        &intent,
        IntentState::Approved,
        pb::DeciderKind::Human,
        "bob",
        "voice",
    );
    assert_eq!(
        state(&on_b.get(&submitted.intent_id).await.expect("get")),
        IntentState::Approved
    );
    // Exactly one replica moved the ladder: approver 2 was dialled once, approver 1 once.
    let dials = |to: &str| {
        fake.requests()
            .iter()
            .filter(|r| r.kind == "dial" && r.body["to"] == to)
            .count()
    };
    assert_eq!((dials(ALICE), dials(BOB)), (1, 1), "{:#?}", fake.requests());
    fake.assert_commands_identified();
}
