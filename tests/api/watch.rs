//! WatchDecision / WatchDecisions: state first, then transitions, ended after the terminal
//! one; racing resolutions; expiry; shutdown.

use std::time::Duration;

use serde_json::json;
use tonic::Code;

use crate::helpers::*;
use sentinel::grpc::pb;
use sentinel::grpc::pb::IntentState as S;

const LIMIT: Duration = Duration::from_secs(10);

async fn pending(c: &mut Client, agent: &str) -> pb::Intent {
    let i = c
        .submit_json(agent, "DELETE_USER", json!({"user_id": "u-1"}))
        .await
        .unwrap();
    assert_eq!(state(&i), S::PendingApproval);
    i
}

#[tokio::test]
async fn watch_before_the_decision_sees_pending_then_the_decision_then_ends() {
    let app = spawn_app().await;
    let mut c = app.client().await;
    let i = pending(&mut c, "w").await;
    let mut stream = c.watch(&i.intent_id).await.unwrap();
    let first = next_event(&mut stream, LIMIT)
        .await
        .expect("current state first");
    assert_eq!(first.state, S::PendingApproval as i32);
    assert_eq!(first.version, i.version);
    assert!(!first.terminal);

    c.resolve(&i.intent_id, true, "ok").await.unwrap();
    let rest = collect(stream, LIMIT).await;
    // Progress lines may come first; the decision is last and terminal, and the stream ended.
    let last = rest.last().expect("the decision arrives");
    assert_eq!(last.state, S::Approved as i32);
    assert!(last.terminal);
    assert_eq!(last.version, i.version + 1);
    assert!(rest[..rest.len() - 1].iter().all(|e| !e.terminal));
    app.stop().await;
}

#[tokio::test]
async fn watch_after_the_decision_gets_the_terminal_state_and_ends() {
    let app = spawn_app().await;
    let mut c = app.client().await;
    let approved = c
        .submit_json("w", "PAY_INVOICE", json!({"amount": 3, "vendor": "AWS"}))
        .await
        .unwrap();
    let events = collect(c.watch(&approved.intent_id).await.unwrap(), LIMIT).await;
    assert_eq!(events.len(), 1);
    assert!(events[0].terminal);
    assert_eq!(events[0].state, S::Approved as i32);

    let missing = uuid::Uuid::now_v7().to_string();
    assert_eq!(c.watch(&missing).await.unwrap_err().code(), Code::NotFound);
    app.stop().await;
}

#[tokio::test]
async fn watchers_joining_during_the_decision_all_end_on_the_same_terminal_event() {
    let app = spawn_app().await;
    let mut c = app.client().await;
    let i = pending(&mut c, "w").await;
    let mut watchers = Vec::new();
    for n in 0..40u64 {
        let mut c = c.clone();
        let id = i.intent_id.clone();
        watchers.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(n % 10)).await;
            let stream = c.watch(&id).await.unwrap();
            collect(stream, LIMIT).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    c.resolve(&i.intent_id, false, "no").await.unwrap();
    for w in watchers {
        let events = w.await.unwrap();
        let last = events.last().expect("at least the state");
        assert!(
            last.terminal,
            "every watcher ends on the terminal event: {events:?}"
        );
        assert_eq!(last.state, S::Declined as i32);
        assert!(
            events.windows(2).all(|p| p[0].version <= p[1].version),
            "versions never go back"
        );
        assert_eq!(events.iter().filter(|e| e.terminal).count(), 1);
    }
    app.stop().await;
}

#[tokio::test]
async fn fifty_racing_resolutions_have_exactly_one_winner() {
    let app = spawn_app().await;
    let mut c = app.client().await;
    let i = pending(&mut c, "race").await;
    let mut tasks = Vec::new();
    for n in 0..50 {
        let mut c = c.clone();
        let id = i.intent_id.clone();
        tasks.push(tokio::spawn(async move {
            (
                n % 2 == 0,
                c.resolve(&id, n % 2 == 0, &format!("racer {n}")).await,
            )
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (approve, result) = t.await.unwrap();
        match result {
            Ok(intent) => winners.push((approve, intent)),
            Err(e) => assert_eq!(
                e.code(),
                Code::FailedPrecondition,
                "losers get FAILED_PRECONDITION: {e:?}"
            ),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one winner");
    let (approve, won) = &winners[0];
    let final_state = c.get(&i.intent_id).await.unwrap();
    assert_eq!(
        final_state.version,
        i.version + 1,
        "one transition happened"
    );
    assert_eq!(
        state(&final_state),
        if *approve { S::Approved } else { S::Declined }
    );
    assert_eq!(final_state.decision_reason, won.decision_reason);
    app.stop().await;
}

#[tokio::test]
async fn pending_intents_expire_at_their_deadline() {
    let (mut parts, clock) = Parts::with_manual_clock();
    parts.config.approval_timeout = Duration::from_secs(600);
    let app = spawn_with(parts).await;
    let mut c = app.client().await;
    let i = pending(&mut c, "slow").await;
    let mut stream = c.watch(&i.intent_id).await.unwrap();
    let first = next_event(&mut stream, LIMIT).await.unwrap();
    assert_eq!(first.state, S::PendingApproval as i32);
    clock.advance(Duration::from_secs(601));
    let events = collect(stream, LIMIT).await;
    let last = events.last().unwrap();
    assert!(last.terminal);
    assert_eq!(last.state, S::Expired as i32);
    let expired = c.get(&i.intent_id).await.unwrap();
    assert_eq!(
        expired.decided_by.unwrap().kind,
        pb::DeciderKind::Timeout as i32
    );
    assert!(expired.reasons.iter().any(|r| r.code == "approval_timeout"));
    // Expired counts as a decline: it cannot be approved afterwards.
    assert_eq!(
        c.resolve(&i.intent_id, true, "").await.unwrap_err().code(),
        Code::FailedPrecondition
    );
    app.stop().await;
}

#[tokio::test]
async fn watch_decisions_streams_every_matching_transition() {
    let app = spawn_app().await;
    let mut c = app.client().await;
    let r = c.req(pb::WatchDecisionsRequest {
        agent_id: "alpha".into(),
        module: String::new(),
        states: vec![S::Approved as i32, S::Declined as i32],
        include_progress: false,
    });
    let mut stream = c.inner.watch_decisions(r).await.unwrap().into_inner();
    // Other agents' events and other states are filtered out.
    c.submit_json("beta", "DROP_TABLE", json!({}))
        .await
        .unwrap();
    let p = pending(&mut c, "alpha").await;
    let a = c
        .submit_json(
            "alpha",
            "PAY_INVOICE",
            json!({"amount": 1, "vendor": "AWS"}),
        )
        .await
        .unwrap();
    c.resolve(&p.intent_id, false, "").await.unwrap();
    let d = c
        .submit_json("alpha", "DROP_TABLE", json!({}))
        .await
        .unwrap();

    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(next_event(&mut stream, LIMIT).await.unwrap());
    }
    let ids: Vec<_> = got.iter().map(|e| (e.intent_id.clone(), e.state)).collect();
    assert_eq!(
        ids,
        vec![
            (a.intent_id, S::Approved as i32),
            (p.intent_id, S::Declined as i32),
            (d.intent_id, S::Declined as i32),
        ]
    );
    assert!(got
        .iter()
        .all(|e| e.intent.as_ref().unwrap().agent_id == "alpha"));
    app.stop().await;
}

#[tokio::test]
async fn a_slow_watcher_does_not_block_submissions_or_other_watchers() {
    let app = spawn_app().await;
    let mut c = app.client().await;
    // Subscribed, never read.
    let r = c.req(pb::WatchDecisionsRequest::default());
    let _stalled = c.inner.watch_decisions(r).await.unwrap().into_inner();
    let r = c.req(pb::WatchDecisionsRequest::default());
    let mut live = c.inner.watch_decisions(r).await.unwrap().into_inner();

    let n = 3000;
    let mut tasks = Vec::new();
    for chunk in 0..10 {
        let mut c = c.clone();
        tasks.push(tokio::spawn(async move {
            for k in 0..n / 10 {
                c.submit_json(
                    &format!("bulk-{chunk}"),
                    "PAY_INVOICE",
                    json!({"amount": k % 900, "vendor": "AWS"}),
                )
                .await
                .unwrap();
            }
        }));
    }
    let reader = tokio::spawn(async move {
        let mut count = 0;
        while count < n {
            match tokio::time::timeout(LIMIT, live.message()).await {
                Ok(Ok(Some(_))) => count += 1,
                other => panic!("live watcher stopped after {count}: {other:?}"),
            }
        }
        count
    });
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(180), t)
            .await
            .expect("submissions finish")
            .unwrap();
    }
    assert_eq!(reader.await.unwrap(), n);
    app.stop().await;
}

#[tokio::test]
async fn streams_end_cleanly_on_shutdown() {
    let app = spawn_app().await;
    let mut c = app.client().await;
    let i = pending(&mut c, "w").await;
    let mut one = c.watch(&i.intent_id).await.unwrap();
    next_event(&mut one, LIMIT).await.unwrap();
    let r = c.req(pb::WatchDecisionsRequest::default());
    let mut all = c.inner.watch_decisions(r).await.unwrap().into_inner();
    app.shutdown.cancel();
    for stream in [&mut one, &mut all] {
        let end = tokio::time::timeout(LIMIT, stream.message())
            .await
            .expect("stream ends on shutdown");
        assert!(matches!(end, Ok(None)) || end.is_err(), "{end:?}");
    }
    app.stop().await;
}

/// Sixty-four labels of 256 bytes: the largest event an agent can make (events carry labels
/// but never the payload), so a few dozen fill the transport's buffers.
fn big_labels(n: usize) -> std::collections::HashMap<String, String> {
    (0..64)
        .map(|k| (format!("label-{k:02}"), format!("{n:08}").repeat(32)))
        .collect()
}

#[tokio::test]
async fn a_stalled_watch_decisions_reader_is_ended_while_others_get_every_decision() {
    let mut parts = Parts::default();
    // The smallest budget allowed, so the test needs few events.
    parts.config.watch_max_lag_bytes = 64 * 1024;
    let app = spawn_with(parts).await;
    let mut c = app.client().await;

    // Its own connection with small HTTP/2 windows: the client stops taking data soon.
    let small = tonic::transport::Endpoint::from_shared(app.url())
        .unwrap()
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535)
        .connect()
        .await
        .unwrap();
    let mut stalled_client = pb::sentinel_client::SentinelClient::new(small);
    let mut stalled = stalled_client
        .watch_decisions(pb::WatchDecisionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let r = c.req(pb::WatchDecisionsRequest::default());
    let mut live = c.inner.watch_decisions(r).await.unwrap().into_inner();
    let n = 200;
    // The reader that keeps up sees every decision, in order, whatever the stalled one does.
    let reader = tokio::spawn(async move {
        let mut seen = Vec::new();
        while seen.len() < n {
            let e = next_event(&mut live, LIMIT)
                .await
                .expect("live stream open");
            seen.push(e.intent_id);
        }
        seen
    });

    // About 21 KB per event: 200 events are ~4 MB, far past 64 KiB + the client's 64 KiB
    // window + hyper's 400 KiB send buffer.
    let mut submitted = Vec::new();
    for k in 0..n {
        let mut request = intent_request(
            "stall",
            "PAY_INVOICE",
            json!({"amount": 5, "vendor": "AWS"}),
        );
        request.labels = big_labels(k);
        submitted.push(c.submit(request).await.unwrap().intent.unwrap().intent_id);
    }
    assert_eq!(reader.await.unwrap(), submitted);

    // The stalled reader gets what was already on its way, then RESOURCE_EXHAUSTED.
    let mut delivered = 0;
    let end = loop {
        match tokio::time::timeout(LIMIT, stalled.message())
            .await
            .expect("the stalled stream answers")
        {
            Ok(Some(_)) => delivered += 1,
            Ok(None) => panic!("ended without an error after {delivered} events"),
            Err(status) => break status,
        }
    };
    assert_eq!(end.code(), Code::ResourceExhausted, "{end:?}");
    assert!(end.message().contains("fell behind"), "{}", end.message());
    assert!(end.message().contains("resubscribe"), "{}", end.message());
    assert!(delivered < n, "it was cut off, not sent everything");

    // A new subscription works at once and sees new decisions.
    let mut again = stalled_client
        .watch_decisions(pb::WatchDecisionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let fresh = c
        .submit_json(
            "stall",
            "PAY_INVOICE",
            json!({"amount": 6, "vendor": "AWS"}),
        )
        .await
        .unwrap();
    assert_eq!(
        next_event(&mut again, LIMIT).await.unwrap().intent_id,
        fresh.intent_id
    );
    app.stop().await;
}

#[tokio::test]
async fn events_carry_no_payload_or_reasoning_but_get_intent_does() {
    let app = spawn_app().await;
    let mut c = app.client().await;
    let r = c.req(pb::WatchDecisionsRequest::default());
    let mut all = c.inner.watch_decisions(r).await.unwrap().into_inner();
    let mut request = intent_request("slim", "DELETE_USER", json!({"user_id": "u-42"}));
    request.reasoning = "the user asked to be forgotten".into();
    request.labels = [("ticket".to_string(), "T-1".to_string())].into();
    let submitted = c.submit(request).await.unwrap().intent.unwrap();
    assert_eq!(state(&submitted), S::PendingApproval);

    let mut one = c.watch(&submitted.intent_id).await.unwrap();
    let first = next_event(&mut one, LIMIT).await.unwrap();
    c.resolve(&submitted.intent_id, true, "ok").await.unwrap();
    let mut events = vec![first];
    events.extend(collect(one, LIMIT).await);
    for _ in 0..2 {
        events.push(next_event(&mut all, LIMIT).await.unwrap());
    }
    assert!(events.iter().any(|e| e.terminal));
    for e in &events {
        let i = e.intent.as_ref().expect("events carry the slim intent");
        assert_eq!(i.intent_id, submitted.intent_id);
        assert!(i.payload.is_none(), "no payload in {e:?}");
        assert!(i.reasoning.is_empty(), "no reasoning in {e:?}");
        // The decision fields are all there.
        assert_eq!(i.agent_id, "slim");
        assert_eq!(i.action, "DELETE_USER");
        assert_eq!(i.module, submitted.module);
        assert_eq!(i.risk_score, submitted.risk_score);
        assert_eq!(i.labels.get("ticket").map(String::as_str), Some("T-1"));
        assert!(!i.reasons.is_empty());
        assert_eq!(i.policy_version, submitted.policy_version);
    }

    let full = c.get(&submitted.intent_id).await.unwrap();
    assert_eq!(full.reasoning, "the user asked to be forgotten");
    let payload = sentinel::grpc::convert::struct_to_json(full.payload.as_ref().unwrap());
    assert_eq!(payload, json!({"user_id": "u-42"}));
    assert_eq!(state(&full), S::Approved);
    app.stop().await;
}
