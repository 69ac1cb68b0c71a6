//! The CLI as a user runs it: the real binary against the real server.

use std::time::Duration;

use tokio::process::Command;

use crate::helpers::*;
use sentinel::grpc::pb::IntentState as S;

#[tokio::test]
async fn submit_wait_streams_until_an_operator_resolves_from_another_cli() {
    let app = spawn_app().await;
    // Approved by policy: exit 0 and the decision in JSON.
    let out = run_ok(app.cli().args(SUBMIT_APPROVED)).await;
    let intent: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(intent["state"], "APPROVED");
    assert_eq!(intent["decided_by"]["kind"], "DECIDER_KIND_POLICY");

    // Escalated: --wait blocks until a human decides through another CLI.
    let waiting = app
        .cli()
        .args([
            "submit",
            "--json",
            "--wait",
            "--agent",
            "bot",
            "--action",
            "DELETE_USER",
            "--payload",
            r#"{"user_id": "u-7"}"#,
        ])
        .spawn()
        .unwrap();
    let c = app.client().await;
    let id = eventually(
        Duration::from_secs(30),
        "the CLI's intent to be pending",
        || {
            let mut c = c.clone();
            async move {
                let page = c.list(Default::default()).await.unwrap();
                page.intents
                    .iter()
                    .find(|i| state(i) == S::PendingApproval)
                    .map(|i| i.intent_id.clone())
            }
        },
    )
    .await;
    run_ok(
        app.cli()
            .args(["resolve", &id, "--approve", "--reason", "ticket OPS-12"]),
    )
    .await;
    let out = tokio::time::timeout(Duration::from_secs(20), waiting.wait_with_output())
        .await
        .expect("submit --wait returns once decided")
        .unwrap();
    assert!(out.status.success(), "approved means exit 0");
    let last: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(last["state"], "APPROVED");
    assert_eq!(last["terminal"], true);
    assert_eq!(last["intent"]["decided_by"]["channel"], "cli");

    // A decided intent cannot be resolved again: a clear error and a failing exit code.
    let again = app
        .cli()
        .args(["resolve", &id, "--decline"])
        .output()
        .await
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("FailedPrecondition"));

    // Declined by policy: non-zero exit so scripts can gate on it.
    let declined = app
        .cli()
        .args([
            "submit",
            "--agent",
            "bot",
            "--action",
            "DROP_TABLE",
            "--payload",
            "{}",
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(declined.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&declined.stdout).contains("DECLINED"));

    let listed = run_ok(app.cli().args(["list", "--json", "--state", "approved"])).await;
    let page: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(page["intents"].as_array().unwrap().len(), 2);
    app.stop().await;
}

#[tokio::test]
async fn health_exits_0_when_the_gateway_is_ready_and_1_when_it_is_not() {
    let app = spawn_app().await;
    // The container runs it with no arguments: SENTINEL_HTTP_ADDR names the listener, and
    // 0.0.0.0 is asked on loopback.
    let any_interface = format!("0.0.0.0:{}", app.http_addr.port());
    run_ok(
        app.cli()
            .arg("health")
            .env("SENTINEL_HTTP_ADDR", &any_interface),
    )
    .await;
    let http_addr = app.http_addr;
    app.stop().await;

    // Nothing listens any more: unhealthy, exit 1, and it says why.
    let down = Command::new(SENTINEL_BIN)
        .args(["health", "--url", &format!("http://{http_addr}/readyz")])
        .output()
        .await
        .unwrap();
    assert_eq!(down.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&down.stderr).contains("unhealthy"));
}
