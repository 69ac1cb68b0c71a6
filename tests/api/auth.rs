//! API keys bind callers to principals: agents only see their own intents; only operators
//! resolve, list everything and watch all.

use serde_json::json;
use tonic::Code;

use crate::helpers::*;
use sentinel::grpc::pb;
use sentinel::grpc::pb::IntentState as S;

#[tokio::test]
async fn missing_or_unknown_keys_are_unauthenticated() {
    let app = secured().await;
    let mut anon = app.client().await;
    let err = anon
        .submit_json("alpha", "DROP_TABLE", json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let mut wrong = app.client_with_key("not-a-key-at-all").await;
    assert_eq!(
        wrong
            .submit_json("alpha", "DROP_TABLE", json!({}))
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    assert_eq!(
        wrong.list(Default::default()).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    // x-api-key works as well as a bearer token.
    let mut c = app.client().await;
    let mut r = tonic::Request::new(intent_request("alpha", "DROP_TABLE", json!({})));
    r.metadata_mut().insert("x-api-key", ALPHA.parse().unwrap());
    assert!(c.inner.submit_intent(r).await.is_ok());
    app.stop().await;
}

#[tokio::test]
async fn agents_are_isolated_from_each_other() {
    let app = secured().await;
    let mut alpha = app.client_with_key(ALPHA).await;
    let mut beta = app.client_with_key(BETA).await;

    let err = alpha
        .submit_json("beta", "DELETE_USER", json!({"user_id": 1}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("agent_id"), "{}", err.message());

    let mine = alpha
        .submit_json("alpha", "DELETE_USER", json!({"user_id": 1}))
        .await
        .unwrap();
    assert_eq!(state(&mine), S::PendingApproval);
    assert!(alpha.get(&mine.intent_id).await.is_ok());

    // Beta cannot see, watch or cancel alpha's intent: it does not exist for beta.
    assert_eq!(
        beta.get(&mine.intent_id).await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(
        beta.watch(&mine.intent_id).await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(
        beta.cancel(&mine.intent_id, "").await.unwrap_err().code(),
        Code::NotFound
    );
    let listed = beta.list(Default::default()).await.unwrap();
    assert!(listed.intents.is_empty());
    let err = beta
        .list(pb::ListIntentsRequest {
            agent_id: "alpha".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // Agents cannot resolve, not even their own intents.
    assert_eq!(
        alpha
            .resolve(&mine.intent_id, true, "")
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    assert_eq!(
        state(&alpha.get(&mine.intent_id).await.unwrap()),
        S::PendingApproval
    );

    // An agent's WatchDecisions is limited to its own intents.
    let r = beta.req(pb::WatchDecisionsRequest::default());
    let mut beta_all = beta.inner.watch_decisions(r).await.unwrap().into_inner();
    alpha
        .submit_json("alpha", "DROP_TABLE", json!({}))
        .await
        .unwrap();
    let own = beta
        .submit_json("beta", "DROP_TABLE", json!({}))
        .await
        .unwrap();
    let e = next_event(&mut beta_all, std::time::Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(e.intent_id, own.intent_id);

    // The owner may cancel.
    let cancelled = alpha.cancel(&mine.intent_id, "not needed").await.unwrap();
    assert_eq!(state(&cancelled), S::Cancelled);
    let by = cancelled.decided_by.unwrap();
    assert_eq!(
        (by.kind, by.approver.as_str()),
        (pb::DeciderKind::Agent as i32, "alpha")
    );
    app.stop().await;
}

#[tokio::test]
async fn operators_resolve_under_their_own_name_and_see_everything() {
    let app = secured().await;
    let mut alpha = app.client_with_key(ALPHA).await;
    let mut ops = app.client_with_key(OPS).await;
    let p = alpha
        .submit_json("alpha", "DELETE_USER", json!({"user_id": 2}))
        .await
        .unwrap();

    // The approver is bound to the key: claiming another name is refused.
    let r = ops.req(pb::ResolveIntentRequest {
        intent_id: p.intent_id.clone(),
        approve: true,
        approver: "mallory".into(),
        ..Default::default()
    });
    assert_eq!(
        ops.inner.resolve_intent(r).await.unwrap_err().code(),
        Code::PermissionDenied
    );

    let done = ops.resolve(&p.intent_id, true, "verified").await.unwrap();
    let by = done.decided_by.unwrap();
    assert_eq!(by.approver, "olivia");
    assert_eq!(by.kind, pb::DeciderKind::Human as i32);
    let all = ops.list(Default::default()).await.unwrap();
    assert_eq!(all.intents.len(), 1);
    app.stop().await;
}
