//! Per-caller limits: open watch streams per principal, and the per-agent submission rate, in
//! memory and shared by replicas through Redis.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use serde_json::json;
use tonic::Code;

use crate::helpers::*;
use crate::redis_harness::{free_port, RedisServer, Replica};
use sentinel::auth::{hash_key, KeyRing, Principal};
use sentinel::grpc::pb;

const BOT: &str = "bot-key-0123456789";
const OPS: &str = "ops-key-0123456789";
/// Bounds on waiting for an event; nothing asserts how fast.
const WAIT: Duration = Duration::from_secs(15);

/// Approved by policy at once: 500 to a trusted vendor.
fn small_payment() -> serde_json::Value {
    json!({"amount": 500, "vendor": "AWS"})
}

/// Escalated by policy: stays pending, so its watch stays open.
async fn pending(client: &mut Client, agent: &str) -> pb::Intent {
    client
        .submit_json(agent, "DELETE_USER", json!({"user_id": "u-1"}))
        .await
        .expect("submit")
}

fn assert_rate_limited(status: &tonic::Status) {
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("SENTINEL_AGENT_RATE_LIMIT")
            && status.message().contains("retry in"),
        "{}",
        status.message()
    );
    let md = status.metadata();
    let secs: u64 = md
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("retry-after in seconds");
    let ms: u64 = md
        .get("grpc-retry-pushback-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("grpc-retry-pushback-ms");
    assert!((1..=1000).contains(&ms), "pushback {ms} ms at 5 per second");
    assert_eq!(secs, 1);
}

/// Submits 20 times as `agent` at once, spread over the clients, so the burst is spent
/// before much can refill even on a loaded machine. Every refusal must be the rate limit's,
/// and there must be one. Returns how many were accepted and how long the batch took: tokens
/// refill at `rate` per second, so the number accepted is bounded by the burst plus what
/// refilled while the batch ran.
async fn submit_burst(clients: &[&Client], agent: &str) -> (usize, Duration) {
    let started = Instant::now();
    let n = clients.len();
    let calls = (0..20).map(|i| {
        let mut client = clients[i % n].clone();
        async move {
            client
                .submit_json(agent, "PAY_INVOICE", small_payment())
                .await
        }
    });
    let results = futures::future::join_all(calls).await;
    let elapsed = started.elapsed();
    let mut accepted = 0;
    let mut refused = 0;
    for result in results {
        match result {
            Ok(intent) => {
                assert_eq!(state(&intent), pb::IntentState::Approved);
                accepted += 1;
            }
            Err(status) => {
                // Every refusal is the rate limit's, with its retry hint; nothing else fails.
                assert_rate_limited(&status);
                refused += 1;
            }
        }
    }
    assert!(
        refused > 0,
        "20 submissions at a limit of 5 per second were all accepted"
    );
    (accepted, elapsed)
}

/// What a budget of 5 per second allows in `elapsed`: the burst plus the refill.
fn allowance(elapsed: Duration) -> usize {
    5 + (elapsed.as_millis() as usize).div_ceil(200)
}

#[tokio::test]
async fn an_agent_over_its_rate_is_refused_with_a_retry_hint_and_others_are_not() {
    let mut parts = Parts::default();
    parts.config.agent_rate_limit = NonZeroU32::new(5);
    let app = spawn_with(parts).await;
    let mut c = app.client().await;

    // A replay of an accepted submission costs no budget.
    let mut keyed = intent_request("greedy", "PAY_INVOICE", small_payment());
    keyed.idempotency_key = "inv-1".into();
    let first = c.submit(keyed.clone()).await.unwrap();
    assert!(!first.replayed);

    let (accepted, elapsed) = submit_burst(&[&c], "greedy").await;
    // The keyed submission took one token of the burst of five.
    assert!(
        accepted >= 4 && accepted < allowance(elapsed),
        "{accepted} accepted"
    );

    let replay = c.submit(keyed).await.expect("a replay is answered");
    assert!(replay.replayed);
    assert_eq!(replay.intent, first.intent);

    // Another agent has its own budget.
    let other = c
        .submit_json("modest", "PAY_INVOICE", small_payment())
        .await
        .expect("another agent is not limited");
    assert_eq!(state(&other), pb::IntentState::Approved);
    app.stop().await;
}

#[tokio::test]
async fn replicas_on_one_redis_share_an_agents_budget() {
    let redis = RedisServer::start().await;
    let env = [("SENTINEL_AGENT_RATE_LIMIT", "5")];
    let a = Replica::start(&redis.url(), &env).await;
    let b = Replica::start(&redis.url(), &env).await;
    let on_a = a.client().await;
    let mut on_b = b.client().await;

    // Spread over both replicas: five pass in all (plus what refills), either one refuses.
    let (accepted, elapsed) = submit_burst(&[&on_a, &on_b], "shared-bot").await;
    // Budgets per replica would have let ten through.
    assert!(
        accepted >= 5 && accepted <= allowance(elapsed),
        "{accepted} accepted across two replicas"
    );

    let other = on_b
        .submit_json("other-bot", "PAY_INVOICE", small_payment())
        .await
        .expect("another agent is not affected");
    assert_eq!(state(&other), pb::IntentState::Approved);
}

#[tokio::test]
async fn a_limiter_that_cannot_reach_redis_refuses_and_stores_nothing() {
    let mut parts = Parts::default();
    parts.config.agent_rate_limit = NonZeroU32::new(5);
    // Nothing listens there: the limiter cannot count, while the memory store works.
    parts.config.store.backend = sentinel::config::StoreBackend::Redis(
        sentinel::config::RedisUrl::parse(&format!("redis://127.0.0.1:{}", free_port()))
            .expect("a redis URL"),
    );
    let app = spawn_with(parts).await;
    let mut c = app.client().await;
    let err = c
        .submit_json("bot", "PAY_INVOICE", small_payment())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    let page = c.list(Default::default()).await.unwrap();
    assert!(page.intents.is_empty(), "nothing was accepted");
    app.stop().await;
}

/// Retries a refused watch until the slot released by another stream's end is seen.
async fn watch_once_released(client: &mut Client, id: &str) -> tonic::Streaming<pb::DecisionEvent> {
    eventually(WAIT, "a released watch slot", || {
        let mut client = client.clone();
        async move {
            match client.watch(id).await {
                Ok(stream) => Some(stream),
                Err(e) if e.code() == Code::ResourceExhausted => None,
                Err(e) => panic!("the slot was not released: {e:?}"),
            }
        }
    })
    .await
}

#[tokio::test]
async fn a_principal_holds_at_most_the_limit_of_watches_and_ended_streams_free_slots() {
    let mut parts = Parts::default();
    parts.config.max_watches_per_agent = 2;
    parts.config.keys = KeyRing::new([
        (hash_key(BOT), Principal::Agent("bot".into())),
        (hash_key(OPS), Principal::Operator("olivia".into())),
    ]);
    let app = spawn_with(parts).await;
    let mut bot = app.client_with_key(BOT).await;
    let mut ops = app.client_with_key(OPS).await;
    let one = pending(&mut bot, "bot").await;
    let two = pending(&mut bot, "bot").await;

    // WatchDecision and WatchDecisions both count.
    let mut first = bot.watch(&one.intent_id).await.expect("first watch");
    let all = bot.req(pb::WatchDecisionsRequest::default());
    let all = bot
        .inner
        .watch_decisions(all)
        .await
        .expect("second watch")
        .into_inner();
    let refused = bot.watch(&two.intent_id).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert!(
        refused.message().contains("SENTINEL_MAX_WATCHES_PER_AGENT")
            && refused.message().contains('2'),
        "{}",
        refused.message()
    );

    // Another principal has its own slots.
    let _ops_watch = ops.watch(&two.intent_id).await.expect("operator watch");

    // The client goes away: its slot comes back.
    drop(all);
    let mut third = watch_once_released(&mut bot, &two.intent_id).await;
    assert_eq!(
        next_event(&mut third, WAIT)
            .await
            .expect("current state")
            .intent_id,
        two.intent_id
    );

    // A terminal event ends a stream and frees its slot too.
    assert!(next_event(&mut first, WAIT).await.is_some());
    ops.resolve(&one.intent_id, false, "no").await.unwrap();
    let rest = collect(first, WAIT).await;
    assert!(rest.last().is_some_and(|e| e.terminal));
    let _fourth = watch_once_released(&mut bot, &two.intent_id).await;
    app.stop().await;
}
