use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::auth::Principal;
use crate::domain::validate::SubmitInput;
use crate::domain::{Channel, DeciderKind, IntentState};
use crate::policy::PolicyPack;
use crate::scoring::fallback::FallbackScorer;
use crate::store::MemoryStore;

fn gateway(approval_timeout: Duration) -> Gateway {
    Gateway::new(
        Arc::new(MemoryStore::new()),
        Arc::new(PolicyPack::builtin()),
        Arc::new(FallbackScorer),
        Settings {
            approval_timeout,
            ..Settings::default()
        },
    )
}

fn delete_user() -> SubmitInput {
    SubmitInput {
        agent_id: "ops".into(),
        action: "DELETE_USER".into(),
        payload: Some(serde_json::json!({"user_id": "u"})),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_decision_after_the_deadline_loses_even_before_the_expiry_loop_runs() {
    // No expiry loop is running here: only the deadline check in the decision path.
    let gw = gateway(Duration::from_millis(1));
    let (intent, _) = gw.submit(&Principal::Open, delete_user()).await.unwrap();
    assert_eq!(intent.state, IntentState::PendingApproval);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let late = Resolution {
        approve: true,
        approver: String::new(),
        reason: String::new(),
        expected_version: None,
        channel: Channel::Grpc,
    };
    let err = gw
        .resolve(&Principal::Open, intent.id.as_str(), late)
        .await
        .unwrap_err();
    assert!(matches!(err, GatewayError::FailedPrecondition(_)), "{err}");
    let now = gw.get(&Principal::Open, intent.id.as_str()).await.unwrap();
    assert_eq!(now.state, IntentState::Expired);
    assert_eq!(now.decided_by.unwrap().kind, DeciderKind::Timeout);
}

#[tokio::test]
async fn expire_due_expires_each_overdue_intent_once() {
    let gw = gateway(Duration::from_millis(1));
    for _ in 0..5 {
        gw.submit(&Principal::Open, delete_user()).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(gw.expire_due().await.unwrap(), 5);
    assert_eq!(gw.expire_due().await.unwrap(), 0);
}
