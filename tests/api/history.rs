//! `GetIntentHistory` and `sentinel history`: an intent's story from the audit records, with
//! the same authorisation as reading the intent (agents see only their own).

use serde_json::json;
use tonic::Code;

use crate::helpers::{run_ok, secured, ALPHA, BETA, OPS};
use sentinel::grpc::pb;

fn summary(entries: &[pb::HistoryEntry]) -> Vec<(String, String, String, pb::IntentState)> {
    entries
        .iter()
        .map(|e| {
            (
                e.kind.clone(),
                e.actor.clone(),
                e.channel.clone(),
                pb::IntentState::try_from(e.state).unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn history_tells_who_decided_and_only_to_those_who_may_read_the_intent() {
    let app = secured().await;
    let mut alpha = app.client_with_key(ALPHA).await;
    let mut beta = app.client_with_key(BETA).await;
    let mut ops = app.client_with_key(OPS).await;
    let intent = alpha
        .submit_json(
            "alpha",
            "PAY_INVOICE",
            json!({"amount": 7500, "vendor": "Acme Corp"}),
        )
        .await
        .unwrap();
    ops.resolve(&intent.intent_id, true, "known vendor")
        .await
        .unwrap();

    let entries = alpha.history(&intent.intent_id).await.unwrap();
    assert_eq!(
        summary(&entries),
        vec![
            (
                "created".into(),
                "alpha".into(),
                "grpc".into(),
                pb::IntentState::PendingApproval
            ),
            (
                "transition".into(),
                "olivia".into(),
                "grpc".into(),
                pb::IntentState::Approved
            ),
        ]
    );
    assert_eq!(entries[1].detail, "known vendor");
    assert_eq!(
        entries[1].attributes.get("version").map(String::as_str),
        Some("2")
    );
    assert!(entries[0].at.is_some());

    let denied = beta.history(&intent.intent_id).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    let unknown = ops
        .history("01a23835-7019-736d-be4c-3d1731400000")
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let bad = ops.history("not-an-id").await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().starts_with("intent_id"), "{}", bad.message());

    // The CLI prints the same story.
    let history = ["history", &intent.intent_id, "--json"];
    let out = run_ok(app.cli().args(history).env("SENTINEL_API_KEY", OPS)).await;
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["entries"][1]["actor"], "olivia");
    assert_eq!(printed["entries"][1]["state"], "APPROVED");
    app.stop().await;
}
