//! The decision pipeline over gRPC: the built-in pack, validation, idempotency, every RPC's
//! error codes, health and reflection.

use std::time::Duration;

use serde_json::json;
use tonic::Code;

use crate::helpers::*;
use sentinel::grpc::pb;
use sentinel::grpc::pb::IntentState as S;

#[tokio::test]
async fn builtin_pack_decides_each_row_of_the_brief() {
    let app = spawn_app().await;
    let mut c = app.client().await;
    // (action, payload, state, score, module)
    let rows = [
        (
            "PAY_INVOICE",
            json!({"amount": 500, "vendor": "AWS"}),
            S::Approved,
            Some(10),
            "VaultKeeper",
        ),
        (
            "PAY_INVOICE",
            json!({"amount": 1000, "vendor": "Trusted SaaS Inc"}),
            S::Approved,
            Some(10),
            "VaultKeeper",
        ),
        (
            "PAY_INVOICE",
            json!({"amount": 999.99, "vendor": "Stripe"}),
            S::Approved,
            Some(10),
            "VaultKeeper",
        ),
        (
            "PAY_INVOICE",
            json!({"amount": 5000, "vendor": "Shady LLC"}),
            S::PendingApproval,
            Some(90),
            "VaultKeeper",
        ),
        (
            "PAY_INVOICE",
            json!({"amount": 25000}),
            S::PendingApproval,
            Some(90),
            "VaultKeeper",
        ),
        (
            "PAY_INVOICE",
            json!({"amount": 2500, "vendor": "AWS"}),
            S::PendingApproval,
            None,
            "VaultKeeper",
        ),
        (
            "EXPORT_CSV",
            json!({"record_count": 5, "contains_pii": false}),
            S::Approved,
            Some(15),
            "PrivacyShield",
        ),
        (
            "EXPORT_CSV",
            json!({"record_count": 10, "contains_pii": false}),
            S::Approved,
            Some(15),
            "PrivacyShield",
        ),
        // The flag is the agent's claim: leaving it out is not a "no".
        (
            "EXPORT_CSV",
            json!({"record_count": 10}),
            S::PendingApproval,
            Some(80),
            "PrivacyShield",
        ),
        (
            "EXPORT_CSV",
            json!({"record_count": 5, "contains_pii": true}),
            S::PendingApproval,
            Some(90),
            "PrivacyShield",
        ),
        (
            "EXPORT_CSV",
            json!({"record_count": 100, "contains_pii": false}),
            S::PendingApproval,
            Some(65),
            "PrivacyShield",
        ),
        (
            "EXPORT_CSV",
            json!({"record_count": 20, "contains_pii": false}),
            S::PendingApproval,
            Some(90),
            "PrivacyShield",
        ),
        (
            "EXPORT_CSV",
            json!({"record_count": 5000, "contains_pii": false}),
            S::PendingApproval,
            Some(90),
            "PrivacyShield",
        ),
        (
            "SHARE_RECORD",
            json!({"contains_pii": true}),
            S::PendingApproval,
            Some(90),
            "PrivacyShield",
        ),
        (
            "QUERY_SSN",
            json!({"contains_pii": true}),
            S::PendingApproval,
            Some(90),
            "PrivacyShield",
        ),
        (
            "DROP_TABLE",
            json!({"table": "users"}),
            S::Declined,
            Some(100),
            "OpsGuard",
        ),
        (
            "DELETE_USER",
            json!({"user_id": "u1", "environment": "production"}),
            S::PendingApproval,
            Some(70),
            "OpsGuard",
        ),
        (
            "RESTART_SERVER",
            json!({"environment": "staging"}),
            S::Approved,
            Some(20),
            "OpsGuard",
        ),
        (
            "RESTART_SERVER",
            json!({"environment": "dev"}),
            S::Approved,
            Some(20),
            "OpsGuard",
        ),
        (
            "RESTART_SERVER",
            json!({"environment": "production"}),
            S::PendingApproval,
            None,
            "OpsGuard",
        ),
    ];
    for (action, payload, want_state, want_score, module) in rows {
        let i = c
            .submit_json("agent-1", action, payload.clone())
            .await
            .expect("submitted");
        assert_eq!(state(&i), want_state, "{action} {payload}");
        if let Some(score) = want_score {
            assert_eq!(i.risk_score, score, "{action} {payload}");
        }
        assert_eq!(i.module, module, "{action} {payload}");
        assert!(
            i.policy_version.starts_with("sentinel-builtin@"),
            "policy version stamped"
        );
        assert!(!i.analysis.is_empty(), "every decision explains itself");
        match want_state {
            S::Approved | S::Declined => {
                let by = i.decided_by.expect("decided_by on a decision");
                assert_eq!(by.kind, pb::DeciderKind::Policy as i32);
                assert!(i.decided_at.is_some() && i.expires_at.is_none());
            }
            _ => {
                assert!(i.decided_by.is_none());
                assert!(i.expires_at.is_some(), "pending intents have a deadline");
            }
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn wrong_types_and_unknown_actions_never_auto_approve() {
    let app = spawn_app().await;
    let mut c = app.client().await;
    let cases = [
        (
            "PAY_INVOICE",
            json!({"amount": "500", "vendor": "AWS"}),
            "invalid_amount",
        ),
        ("PAY_INVOICE", json!({"vendor": "AWS"}), "invalid_amount"),
        (
            "PAY_INVOICE",
            json!({"amount": -5, "vendor": "AWS"}),
            "invalid_amount",
        ),
        (
            "PAY_INVOICE",
            json!({"amount": true, "vendor": "AWS"}),
            "invalid_amount",
        ),
        ("PAY_INVOICE", json!({"amount": 100, "vendor": ["AWS"]}), ""),
        (
            "EXPORT_CSV",
            json!({"record_count": "3"}),
            "invalid_export_request",
        ),
        (
            "EXPORT_CSV",
            json!({"record_count": 3, "contains_pii": "no"}),
            "invalid_export_request",
        ),
        ("RESTART_SERVER", json!({"environment": 7}), ""),
        (
            "LAUNCH_MISSILES",
            json!({"target": "moon"}),
            "unknown_action",
        ),
        (
            "pay_invoice",
            json!({"amount": 5, "vendor": "AWS"}),
            "unknown_action",
        ),
    ];
    for (action, payload, code) in cases {
        let i = c
            .submit_json("agent-1", action, payload.clone())
            .await
            .expect("submitted");
        assert_eq!(
            state(&i),
            S::PendingApproval,
            "{action} {payload} must go to a human"
        );
        assert!(
            i.risk_score > 50,
            "{action} {payload}: score {}",
            i.risk_score
        );
        if !code.is_empty() {
            assert!(
                i.reasons.iter().any(|r| r.code == code),
                "{action} {payload}: {:?}",
                i.reasons
            );
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn bad_input_is_invalid_argument_naming_the_field_and_the_server_stays_healthy() {
    let app = spawn_app().await;
    let mut c = app.client().await;
    let mut deep = json!(1);
    for _ in 0..40 {
        deep = json!({ "n": deep });
    }
    let big: Vec<String> = (0..8).map(|_| "x".repeat(9_000)).collect();
    let cases: Vec<(pb::SubmitIntentRequest, &str)> = vec![
        (intent_request("", "PAY_INVOICE", json!({})), "agent_id"),
        (intent_request("a", "", json!({})), "action"),
        (intent_request("a b", "PAY_INVOICE", json!({})), "agent_id"),
        (intent_request("a", "PAY_INVOICE", deep), "payload"),
        (
            intent_request("a", "PAY_INVOICE", json!({ "blob": big })),
            "payload",
        ),
        (
            intent_request("a", "PAY_INVOICE", json!({ "memo": "m".repeat(20_000) })),
            "payload.memo",
        ),
        (
            pb::SubmitIntentRequest {
                module: "NoSuchModule".into(),
                ..intent_request("a", "LAUNCH", json!({}))
            },
            "module",
        ),
        (
            pb::SubmitIntentRequest {
                module: "OpsGuard".into(),
                ..intent_request("a", "PAY_INVOICE", json!({"amount": 1, "vendor": "AWS"}))
            },
            "module",
        ),
        (
            pb::SubmitIntentRequest {
                reasoning: "r".repeat(20_000),
                ..intent_request("a", "PAY_INVOICE", json!({}))
            },
            "reasoning",
        ),
    ];
    for (request, field) in cases {
        let err = c.submit(request).await.expect_err("must be rejected");
        assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err:?}");
        assert!(
            err.message().starts_with(field),
            "message {:?} should name {field}",
            err.message()
        );
    }
    // Non-finite numbers cannot be judged.
    let mut r = intent_request("a", "PAY_INVOICE", json!({"vendor": "AWS"}));
    r.payload.as_mut().unwrap().fields.insert(
        "amount".into(),
        prost_types::Value {
            kind: Some(prost_types::value::Kind::NumberValue(f64::NAN)),
        },
    );
    let err = c.submit(r).await.expect_err("NaN rejected");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("payload.amount"),
        "{}",
        err.message()
    );

    // Still serving, still deciding.
    let mut health = tonic_health::pb::health_client::HealthClient::new(app.channel().await);
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "sentinel.v1.Sentinel".into(),
        })
        .await
        .expect("health answers")
        .into_inner();
    assert_eq!(
        status.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    let i = c
        .submit_json("a", "PAY_INVOICE", json!({"amount": 5, "vendor": "AWS"}))
        .await
        .unwrap();
    assert_eq!(state(&i), S::Approved);
    app.stop().await;
}

#[tokio::test]
async fn idempotency_replays_the_same_intent_and_refuses_a_different_body() {
    let app = spawn_app().await;
    let mut c = app.client().await;
    let mut first = intent_request(
        "billing",
        "PAY_INVOICE",
        json!({"amount": 7000, "vendor": "X"}),
    );
    first.idempotency_key = "inv-42".into();
    let a = c.submit(first.clone()).await.unwrap();
    assert!(!a.replayed);
    let b = c.submit(first.clone()).await.unwrap();
    assert!(b.replayed);
    assert_eq!(
        a.intent.as_ref().unwrap().intent_id,
        b.intent.as_ref().unwrap().intent_id
    );

    // After a decision, a replay returns the decided intent, not a new one.
    let id = a.intent.unwrap().intent_id;
    c.resolve(&id, false, "no").await.unwrap();
    let again = c.submit(first.clone()).await.unwrap();
    assert!(again.replayed);
    assert_eq!(state(again.intent.as_ref().unwrap()), S::Declined);

    let mut changed = first.clone();
    changed.payload = Some(sentinel::grpc::convert::json_to_struct(
        &json!({"amount": 7001, "vendor": "X"}),
    ));
    let err = c.submit(changed).await.expect_err("different body");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("idempotency_key"),
        "{}",
        err.message()
    );

    // Keys are scoped per agent.
    let mut other_agent = first.clone();
    other_agent.agent_id = "other".into();
    let o = c.submit(other_agent).await.unwrap();
    assert!(!o.replayed);
    assert_ne!(o.intent.unwrap().intent_id, id);

    // Concurrent submissions with one key produce one intent.
    let mut race = intent_request("racer", "PAY_INVOICE", json!({"amount": 9000}));
    race.idempotency_key = "once".into();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let mut c = c.clone();
        let r = race.clone();
        tasks.push(tokio::spawn(async move { c.submit(r).await.unwrap() }));
    }
    let mut ids = std::collections::HashSet::new();
    let mut fresh = 0;
    for t in tasks {
        let r = t.await.unwrap();
        fresh += usize::from(!r.replayed);
        ids.insert(r.intent.unwrap().intent_id);
    }
    assert_eq!(ids.len(), 1);
    assert_eq!(fresh, 1);
    app.stop().await;
}

#[tokio::test]
async fn get_resolve_cancel_and_their_error_codes() {
    let app = spawn_app().await;
    let mut c = app.client().await;
    let pending = c
        .submit_json("ops", "DELETE_USER", json!({"user_id": "u-9"}))
        .await
        .unwrap();
    assert_eq!(state(&pending), S::PendingApproval);

    let got = c.get(&pending.intent_id).await.unwrap();
    assert_eq!(got, pending);
    let missing = uuid::Uuid::now_v7().to_string();
    assert_eq!(c.get(&missing).await.unwrap_err().code(), Code::NotFound);
    assert_eq!(
        c.get("not-an-id").await.unwrap_err().code(),
        Code::InvalidArgument
    );
    assert_eq!(c.get("").await.unwrap_err().code(), Code::InvalidArgument);
    assert_eq!(
        c.resolve(&missing, true, "").await.unwrap_err().code(),
        Code::NotFound
    );

    let approved = c
        .resolve(&pending.intent_id, true, "checked with the team")
        .await
        .unwrap();
    assert_eq!(state(&approved), S::Approved);
    assert_eq!(approved.version, pending.version + 1);
    let by = approved.decided_by.clone().unwrap();
    assert_eq!(by.kind, pb::DeciderKind::Human as i32);
    assert_eq!(by.channel, "grpc");
    assert_eq!(by.approver, "anonymous");
    assert_eq!(approved.decision_reason, "checked with the team");
    assert!(approved.decided_at.is_some());
    assert!(approved.reasons.iter().any(|r| r.code == "human_approved"));

    let again = c.resolve(&pending.intent_id, false, "").await.unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    assert!(again.message().contains("APPROVED"), "{}", again.message());
    assert_eq!(
        c.cancel(&pending.intent_id, "").await.unwrap_err().code(),
        Code::FailedPrecondition
    );

    // Policy decisions are final too.
    let auto = c.submit_json("ops", "DROP_TABLE", json!({})).await.unwrap();
    assert_eq!(
        c.resolve(&auto.intent_id, true, "")
            .await
            .unwrap_err()
            .code(),
        Code::FailedPrecondition
    );

    // Cancel a pending one.
    let p2 = c
        .submit_json("ops", "DELETE_USER", json!({"user_id": "u-10"}))
        .await
        .unwrap();
    let cancelled = c.cancel(&p2.intent_id, "changed my mind").await.unwrap();
    assert_eq!(state(&cancelled), S::Cancelled);
    assert_eq!(cancelled.decision_reason, "changed my mind");

    // expected_version guards a stale view.
    let p3 = c
        .submit_json("ops", "DELETE_USER", json!({"user_id": "u-11"}))
        .await
        .unwrap();
    let r = c.req(pb::ResolveIntentRequest {
        intent_id: p3.intent_id.clone(),
        approve: true,
        expected_version: p3.version + 5,
        ..Default::default()
    });
    assert_eq!(
        c.inner.resolve_intent(r).await.unwrap_err().code(),
        Code::FailedPrecondition
    );
    assert_eq!(
        state(&c.get(&p3.intent_id).await.unwrap()),
        S::PendingApproval
    );
    app.stop().await;
}

#[tokio::test]
async fn list_filters_and_pages_without_gaps_or_repeats() {
    let app = spawn_app().await;
    let mut c = app.client().await;
    for n in 0..23 {
        c.submit_json(
            "lister",
            "PAY_INVOICE",
            json!({"amount": n, "vendor": "AWS"}),
        )
        .await
        .unwrap();
    }
    for n in 0..7 {
        c.submit_json("lister", "DELETE_USER", json!({"user_id": n}))
            .await
            .unwrap();
    }
    c.submit_json("someone-else", "DROP_TABLE", json!({}))
        .await
        .unwrap();

    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = c
            .list(pb::ListIntentsRequest {
                agent_id: "lister".into(),
                page_size: 10,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(page.intents.len() <= 10);
        seen.extend(
            page.intents
                .into_iter()
                .map(|i| (i.intent_id, i.created_at)),
        );
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen.len(), 30);
    let unique: std::collections::HashSet<_> = seen.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(unique.len(), 30, "no repeats across pages");
    let times: Vec<_> = seen
        .iter()
        .map(|(_, t)| sentinel::grpc::convert::millis(t.as_ref().unwrap()))
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");

    let pending = c
        .list(pb::ListIntentsRequest {
            states: vec![S::PendingApproval as i32],
            module: "OpsGuard".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(pending.intents.len(), 7);
    assert!(pending
        .intents
        .iter()
        .all(|i| state(i) == S::PendingApproval && i.module == "OpsGuard"));

    let bad = c
        .list(pb::ListIntentsRequest {
            page_token: "garbage".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    app.stop().await;
}

#[tokio::test]
async fn reflection_lists_the_service() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let app = spawn_app().await;
    let mut client = ServerReflectionClient::new(app.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = client
        .server_reflection_info(futures::stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let response = tokio::time::timeout(Duration::from_secs(5), responses.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection response");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"sentinel.v1.Sentinel"), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");
    app.stop().await;
}

#[tokio::test]
async fn http_sidecar_reports_health_readiness_and_decision_metrics() {
    let app = spawn_app().await;
    let http = reqwest::Client::new();
    for path in ["/healthz", "/readyz"] {
        let r = http
            .get(format!("http://{}{path}", app.http_addr))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let mut c = app.client().await;
    c.submit_json("m", "DROP_TABLE", json!({})).await.unwrap();
    let pending = c
        .submit_json("m", "DELETE_USER", json!({"user_id": 1}))
        .await
        .unwrap();
    c.resolve(&pending.intent_id, true, "ok").await.unwrap();
    let text = http
        .get(format!("http://{}/metrics", app.http_addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("# TYPE sentinel_intents_total counter"),
        "{text}"
    );
    // Counters are process-wide (other tests run in this process too): present and positive.
    for series in [
        r#"sentinel_intents_total{state="DECLINED",decided_by="policy"}"#,
        r#"sentinel_intents_total{state="PENDING_APPROVAL",decided_by="none"}"#,
        r#"sentinel_intents_total{state="APPROVED",decided_by="human"}"#,
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(series))
            .unwrap_or_else(|| panic!("{series} in {text}"));
        let value: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(value >= 1, "{line}");
    }
    app.stop().await;
}
