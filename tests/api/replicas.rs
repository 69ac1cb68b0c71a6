//! Several `sentinel serve` processes on one real Redis act as one gateway.

use std::time::Duration;

use sentinel::grpc::pb;
use sentinel::grpc::pb::IntentState;

use crate::helpers::{collect, intent_request, next_event, state};
use crate::redis_harness::{RedisServer, Replica};

/// Generous bounds so a loaded CI machine does not flake; nothing asserts how fast.
const WAIT: Duration = Duration::from_secs(15);

/// 9000 to an unknown vendor: the built-in pack escalates it to a human.
fn risky_payment() -> pb::SubmitIntentRequest {
    intent_request(
        "billing-bot",
        "PAY_INVOICE",
        serde_json::json!({"amount": 9000, "vendor": "Shady LLC"}),
    )
}

#[tokio::test]
async fn a_decision_on_one_replica_reaches_a_watcher_on_another() {
    let redis = RedisServer::start().await;
    let a = Replica::start(&redis.url(), &[]).await;
    let b = Replica::start(&redis.url(), &[]).await;

    let mut on_a = a.client().await;
    let submitted = on_a.submit(risky_payment()).await.unwrap().intent.unwrap();
    assert_eq!(state(&submitted), IntentState::PendingApproval);

    let mut watch = on_a.watch(&submitted.intent_id).await.unwrap();
    let first = next_event(&mut watch, WAIT)
        .await
        .expect("current state first");
    assert_eq!(first.state, IntentState::PendingApproval as i32);

    // The intent is visible from the other replica, and decided there.
    let mut on_b = b.client().await;
    assert_eq!(
        state(&on_b.get(&submitted.intent_id).await.unwrap()),
        IntentState::PendingApproval
    );
    let approved = on_b
        .resolve(&submitted.intent_id, true, "checked the invoice")
        .await
        .unwrap();
    assert_eq!(state(&approved), IntentState::Approved);

    let rest = collect(watch, WAIT).await;
    let last = rest
        .last()
        .expect("the decision reaches replica A's watcher");
    assert_eq!(last.state, IntentState::Approved as i32);
    assert!(last.terminal, "the stream ends with the terminal event");
    assert_eq!(last.version, approved.version);
    assert!(rest.iter().all(|e| e.state != IntentState::Declined as i32));

    // The loser of a second decision on the first replica is told it is already decided.
    let late = on_a
        .resolve(&submitted.intent_id, false, "too late")
        .await
        .unwrap_err();
    assert_eq!(late.code(), tonic::Code::FailedPrecondition);
}

#[tokio::test]
async fn pending_intents_of_a_killed_replica_are_served_and_expired_by_the_others() {
    let redis = RedisServer::start().await;
    let short = [("SENTINEL_APPROVAL_TIMEOUT_SECS", "2")];
    let mut a = Replica::start(&redis.url(), &short).await;
    let b = Replica::start(&redis.url(), &short).await;

    let mut on_a = a.client().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            on_a.submit(risky_payment())
                .await
                .unwrap()
                .intent
                .unwrap()
                .intent_id,
        );
    }
    a.kill();

    let mut on_b = b.client().await;
    for id in &ids {
        let intent = on_b.get(id).await.expect("B serves A's intents");
        assert!(matches!(
            state(&intent),
            IntentState::PendingApproval | IntentState::Expired
        ));
        let events = collect(on_b.watch(id).await.unwrap(), WAIT).await;
        let last = events.last().expect("at least the current state");
        assert_eq!(
            last.state,
            IntentState::Expired as i32,
            "B expires what A left pending"
        );
        let decided_by = last
            .intent
            .as_ref()
            .and_then(|i| i.decided_by.clone())
            .expect("decided_by");
        assert_eq!(decided_by.kind, pb::DeciderKind::Timeout as i32);
    }

    // After a full outage, a fresh replica expires what fell due while nobody was running.
    let mut b = b;
    let overdue = on_b
        .submit(risky_payment())
        .await
        .unwrap()
        .intent
        .unwrap()
        .intent_id;
    b.kill();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let c = Replica::start(&redis.url(), &short).await;
    let mut on_c = c.client().await;
    let events = collect(on_c.watch(&overdue).await.unwrap(), WAIT).await;
    assert_eq!(
        events.last().map(|e| e.state),
        Some(IntentState::Expired as i32)
    );
}

#[tokio::test]
async fn one_idempotency_key_on_two_replicas_gives_one_intent() {
    let redis = RedisServer::start().await;
    let a = Replica::start(&redis.url(), &[]).await;
    let b = Replica::start(&redis.url(), &[]).await;
    let (on_a, on_b) = (a.client().await, b.client().await);

    let mut request = intent_request(
        "idem-bot",
        "PAY_INVOICE",
        serde_json::json!({"amount": 9000, "vendor": "Shady LLC"}),
    );
    request.idempotency_key = "invoice-4711".into();
    let attempts = (0..8).map(|n| {
        let mut client = if n % 2 == 0 {
            on_a.clone()
        } else {
            on_b.clone()
        };
        let request = request.clone();
        async move { client.submit(request).await }
    });
    let responses: Vec<pb::SubmitIntentResponse> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.expect("every attempt answers"))
        .collect();
    let id = &responses[0].intent.as_ref().unwrap().intent_id;
    assert!(
        responses
            .iter()
            .all(|r| &r.intent.as_ref().unwrap().intent_id == id),
        "one intent"
    );
    assert_eq!(
        responses.iter().filter(|r| !r.replayed).count(),
        1,
        "exactly one is new"
    );

    let mut on_b = on_b;
    let listed = on_b
        .list(pb::ListIntentsRequest {
            agent_id: "idem-bot".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.intents.len(), 1);

    // The same key with a different body is refused on either replica.
    let mut changed = request.clone();
    changed.reasoning = "something else".into();
    let mut on_a = on_a;
    let refused = on_a.submit(changed).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
}

#[tokio::test]
async fn the_audit_export_says_who_decided_through_what_and_when() {
    let redis = RedisServer::start().await;
    let a = Replica::start(&redis.url(), &[]).await;
    let since = sentinel::domain::now_millis();
    let mut on_a = a.client().await;
    let intent = on_a.submit(risky_payment()).await.unwrap().intent.unwrap();
    on_a.resolve(&intent.intent_id, false, "vendor unknown")
        .await
        .unwrap();

    let export = |args: Vec<String>| {
        std::process::Command::new(env!("CARGO_BIN_EXE_sentinel"))
            .args(["audit", "export"])
            .args(args)
            .env("SENTINEL_REDIS_URL", redis.url())
            .output()
            .expect("sentinel audit export runs")
    };
    let out = export(vec!["--since".into(), since.to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .filter(|r: &serde_json::Value| r["intent_id"] == intent.intent_id.as_str())
        // Progress lines (escalation's "awaiting a human") are audited too; not the point here.
        .filter(|r: &serde_json::Value| r["event"] != "progress")
        .collect();
    let summary: Vec<(&str, &str)> = records
        .iter()
        .map(|r| (r["event"].as_str().unwrap(), r["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        summary,
        vec![("created", "PENDING_APPROVAL"), ("transition", "DECLINED")]
    );
    assert_eq!(records[1]["channel"], "grpc");
    assert_eq!(records[1]["detail"], "vendor unknown");

    // A window before anything happened is empty; a malformed time is refused.
    let before = export(vec![
        "--since".into(),
        "2020-01-01T00:00:00Z".into(),
        "--until".into(),
        since.to_string(),
    ]);
    assert!(before.status.success());
    assert!(String::from_utf8_lossy(&before.stdout)
        .lines()
        .all(|l| !l.contains(&intent.intent_id)));
    assert!(!export(vec!["--since".into(), "yesterday".into()])
        .status
        .success());
}

#[tokio::test]
async fn telnyx_escalation_state_is_shared_by_the_replicas() {
    // Telnyx retries webhooks and a load balancer spreads them over replicas; a call's
    // webhooks may land anywhere. Two replicas' state handles must act as one.
    use sentinel::escalation::telnyx::state::redis::RedisTelnyxState;
    use sentinel::escalation::telnyx::state::{Ladder, Stage, TelnyxState};

    let redis = RedisServer::start().await;
    let open = || async {
        let url = sentinel::config::RedisUrl::parse(&redis.url()).expect("a redis URL");
        RedisTelnyxState::connect(&url, Default::default())
            .await
            .expect("connects")
    };
    let (a, b) = (open().await, open().await);
    let ttl = Duration::from_secs(60);

    let firsts = futures::future::join_all((0..6).map(|n| {
        let state = if n % 2 == 0 { &a } else { &b };
        state.first_delivery("evt-1", b"{}", ttl)
    }))
    .await;
    assert_eq!(
        firsts.iter().filter(|f| *f.as_ref().unwrap()).count(),
        1,
        "one delivery counts"
    );
    assert!(b.first_delivery("evt-2", b"{}", ttl).await.unwrap());
    // An event that was not processed is forgotten on every replica; a processed one stays.
    a.settle_delivery("evt-2", false).await.unwrap();
    assert!(b.first_delivery("evt-2", b"{}", ttl).await.unwrap());
    b.settle_delivery("evt-2", true).await.unwrap();
    assert!(!a.first_delivery("evt-2", b"{}", ttl).await.unwrap());

    let intent = sentinel::domain::IntentId::generate();
    // Who was texted about what (wrong SMS codes count against those intents).
    a.note_texted("+14155550101", &intent, ttl).await.unwrap();
    assert_eq!(
        b.texted_intents("+14155550101").await.unwrap(),
        vec![intent.clone()]
    );
    assert!(b.texted_intents("+14155550102").await.unwrap().is_empty());
    assert!(a.claim(&intent, "replica-a", ttl).await.unwrap());
    assert!(
        !b.claim(&intent, "replica-b", ttl).await.unwrap(),
        "one replica escalates an intent"
    );

    let ladder = |version| Ladder {
        intent_id: intent.clone(),
        version,
        approvers: vec![],
        pin_required: false,
        step: 0,
        stage: Stage::Calling,
        calls: vec![],
        sms_code: Some("482913".into()),
        failures: 0,
        delivered: version as usize,
        bad_codes: 0,
        bad_pins: 0,
        failures_by_sender: Default::default(),
        locked: false,
    };
    assert!(
        !a.save(&ladder(2), ttl).await.unwrap(),
        "nothing to follow yet"
    );
    assert!(a.save(&ladder(1), ttl).await.unwrap());
    assert!(!b.save(&ladder(1), ttl).await.unwrap(), "created once");
    assert!(b.save(&ladder(2), ttl).await.unwrap());
    assert!(
        !a.save(&ladder(2), ttl).await.unwrap(),
        "the same step computed by another replica loses too: one replica acts"
    );
    let mut rival = ladder(2);
    rival.step = 1;
    assert!(
        !a.save(&rival, ttl).await.unwrap(),
        "a different step 2 loses"
    );
    assert_eq!(a.load(&intent).await.unwrap(), Some(ladder(2)));

    assert!(a.index_code("482913", &intent, ttl).await.unwrap());
    assert!(!b
        .index_code("482913", &sentinel::domain::IntentId::generate(), ttl)
        .await
        .unwrap());
    assert_eq!(b.code_intent("482913").await.unwrap(), Some(intent.clone()));
    b.drop_code("482913").await.unwrap();
    assert_eq!(a.code_intent("482913").await.unwrap(), None);

    a.index_call("v3:call-1", &intent, ttl).await.unwrap();
    assert_eq!(
        b.call_intent("v3:call-1").await.unwrap(),
        Some(intent.clone())
    );
    assert_eq!(b.call_intent("v3:other").await.unwrap(), None);
}
