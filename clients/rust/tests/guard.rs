//! `guard`, `require_approval` and receipts against the real `sentinel serve`, in memory and
//! on Redis, including a replica restart while a guard waits.

mod support;

use std::time::Duration;

use sentinel_client::proto;
use sentinel_client::{
    fetch_jwks, verify_receipt, Client, ClientOptions, Error, Expected, GuardRequest, ReceiptCache,
    ReceiptReason, State, VerifyOptions,
};
use serde_json::json;
use support::{agent, Redis, Server};

const WAIT: Duration = Duration::from_secs(30);

/// The first intent of `agent` to become PENDING_APPROVAL, from a stream opened now (before
/// the submit, so it cannot be missed).
async fn next_pending(client: &Client, agent: &str) -> tokio::task::JoinHandle<String> {
    let request = client.request(
        proto::WatchDecisionsRequest {
            agent_id: agent.to_string(),
            states: vec![proto::IntentState::PendingApproval as i32],
            ..Default::default()
        },
        None,
    );
    // The response headers arrive once the server has subscribed.
    let mut stream = client
        .raw()
        .watch_decisions(request)
        .await
        .unwrap()
        .into_inner();
    tokio::spawn(async move {
        let event = stream.message().await.unwrap().expect("a pending intent");
        event.intent_id
    })
}

async fn resolve(client: &Client, intent_id: &str, approve: bool) {
    let request = client.request(
        proto::ResolveIntentRequest {
            intent_id: intent_id.to_string(),
            approve,
            reason: "checked".into(),
            ..Default::default()
        },
        None,
    );
    client.raw().resolve_intent(request).await.unwrap();
}

async fn intents_of(client: &Client, agent: &str) -> Vec<proto::Intent> {
    let request = client.request(
        proto::ListIntentsRequest {
            agent_id: agent.to_string(),
            page_size: 500,
            ..Default::default()
        },
        None,
    );
    client
        .raw()
        .list_intents(request)
        .await
        .unwrap()
        .into_inner()
        .intents
}

fn invoice() -> serde_json::Value {
    json!({"amount": 420, "vendor": "AWS", "lines": [{"sku": "ec2", "qty": 1.5}]})
}

async fn policy_approval_carries_a_single_use_receipt(server: &Server) {
    let client = Client::connect(server.url()).await.unwrap();
    let agent = agent();
    let decision = client
        .require_approval(GuardRequest::new(&agent, "PAY_INVOICE", invoice()).reasoning("hosting"))
        .await
        .unwrap();
    assert!(decision.approved && decision.state == State::Approved);
    assert_eq!(decision.decided_by.as_ref().unwrap().kind, "POLICY");
    assert_eq!(decision.risk_score, 10);

    let jwks = fetch_jwks(&server.jwks_url(), Duration::from_secs(5))
        .await
        .unwrap();
    let receipt = decision.receipt.as_deref().expect("a receipt");
    let payload = invoice();
    let expected = Expected {
        agent_id: &agent,
        action: "PAY_INVOICE",
        payload: &payload,
    };
    let verified = verify_receipt(receipt, &jwks, &expected).unwrap();
    assert_eq!(verified.claims.jti, decision.intent_id);
    let cache = ReceiptCache::default();
    let options = VerifyOptions {
        cache: Some(&cache),
        ..Default::default()
    };
    sentinel_client::verify_receipt_with(receipt, &jwks, &expected, &options).unwrap();
    let again = sentinel_client::verify_receipt_with(receipt, &jwks, &expected, &options);
    assert_eq!(again.unwrap_err().reason, ReceiptReason::Replayed);
    let other = json!({"amount": 4200, "vendor": "AWS"});
    let wrong = Expected {
        payload: &other,
        ..expected
    };
    assert_eq!(
        verify_receipt(receipt, &jwks, &wrong).unwrap_err().reason,
        ReceiptReason::PayloadMismatch
    );
}

#[tokio::test]
async fn a_policy_approval_carries_a_single_use_receipt() {
    policy_approval_carries_a_single_use_receipt(&Server::memory().await).await;
    let redis = Redis::start().await;
    policy_approval_carries_a_single_use_receipt(&Server::redis(&redis).await).await;
}

#[tokio::test]
async fn declined_is_not_approved_and_errors_are_typed() {
    let server = Server::memory().await;
    let client = Client::connect(server.url()).await.unwrap();
    let agent = agent();
    match client
        .require_approval(GuardRequest::new(
            &agent,
            "DROP_TABLE",
            json!({"table": "users"}),
        ))
        .await
    {
        Err(Error::NotApproved(decision)) => {
            assert_eq!(decision.state, State::Declined);
            assert!(!decision.approved && decision.receipt.is_none());
            assert_eq!(decision.risk_score, 100);
        }
        other => panic!("expected NotApproved, got {other:?}"),
    }
    match client
        .guard(GuardRequest::new("", "PAY_INVOICE", json!({})))
        .await
    {
        Err(Error::InvalidArgument { field, .. }) => assert_eq!(field.as_deref(), Some("agent_id")),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    // The same idempotency key is the same intent.
    let first = client
        .guard(GuardRequest::new(&agent, "PAY_INVOICE", invoice()).idempotency_key("inv-1"))
        .await
        .unwrap();
    let again = client
        .guard(GuardRequest::new(&agent, "PAY_INVOICE", invoice()).idempotency_key("inv-1"))
        .await
        .unwrap();
    assert_eq!(
        (again.intent_id.as_str(), again.replayed),
        (first.intent_id.as_str(), true)
    );
    assert_eq!(again.receipt, first.receipt);

    // A timeout names the intent, which stays pending.
    match client
        .guard(
            GuardRequest::new(&agent, "DELETE_USER", json!({"user_id": "u-8"}))
                .timeout(Duration::from_millis(500)),
        )
        .await
    {
        Err(Error::Timeout {
            intent_id: Some(id),
            ..
        }) => {
            assert_eq!(
                client.get_decision(&id).await.unwrap().state,
                State::PendingApproval
            );
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
}

#[tokio::test]
async fn a_key_is_required_when_the_gateway_has_keys() {
    let server = Server::start(vec![(
        "SENTINEL_API_KEYS".into(),
        "agent:billing-bot=agent-key-0123456789".into(),
    )])
    .await;
    let anonymous = Client::connect(server.url()).await.unwrap();
    let request = || {
        GuardRequest::new(
            "billing-bot",
            "PAY_INVOICE",
            json!({"amount": 1, "vendor": "AWS"}),
        )
    };
    assert!(matches!(
        anonymous.guard(request()).await,
        Err(Error::Unauthenticated(_))
    ));
    let keyed = anonymous
        .clone()
        .with_api_key("agent-key-0123456789")
        .unwrap();
    assert!(keyed.guard(request()).await.unwrap().approved);
    let other = GuardRequest::new(
        "ops-bot",
        "PAY_INVOICE",
        json!({"amount": 1, "vendor": "AWS"}),
    );
    assert!(matches!(
        keyed.guard(other).await,
        Err(Error::PermissionDenied(_))
    ));
}

#[tokio::test]
async fn guard_waits_for_a_human_and_rides_out_a_restart_on_redis() {
    let redis = Redis::start().await;
    let mut server = Server::redis(&redis).await;
    let options = ClientOptions {
        retry_window: WAIT,
        ..Default::default()
    };
    let client = Client::connect_with(server.url(), options).await.unwrap();
    let operator = Client::connect(server.url()).await.unwrap();
    let agent = agent();

    let pending = next_pending(&operator, &agent).await;
    let payload = json!({"user_id": "u-7"});
    let waiting = {
        let client = client.clone();
        let request = GuardRequest::new(&agent, "DELETE_USER", payload.clone()).timeout(WAIT * 2);
        tokio::spawn(async move { client.guard(request).await })
    };
    let intent_id = tokio::time::timeout(WAIT, pending).await.unwrap().unwrap();

    // The replica dies while the guard is watching; a new one takes its ports.
    server.restart().await;
    let operator = Client::connect(server.url()).await.unwrap();
    resolve(&operator, &intent_id, true).await;
    let decision = tokio::time::timeout(WAIT, waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(decision.intent_id, intent_id);
    assert!(decision.approved);
    assert_eq!(decision.decided_by.as_ref().unwrap().kind, "HUMAN");
    // The key lives in Redis: the restarted replica's JWKS verifies the receipt.
    let jwks = fetch_jwks(&server.jwks_url(), Duration::from_secs(5))
        .await
        .unwrap();
    let expected = Expected {
        agent_id: &agent,
        action: "DELETE_USER",
        payload: &payload,
    };
    verify_receipt(decision.receipt.as_deref().unwrap(), &jwks, &expected).unwrap();
    assert_eq!(
        intents_of(&operator, &agent).await.len(),
        1,
        "never a second intent"
    );
}
