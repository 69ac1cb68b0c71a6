//! The ladder: next approver, SMS with a one-time code, the deadline, other channels
//! deciding first, and Telnyx failures.

use std::time::Duration;

use sentinel::grpc::pb::{DeciderKind, IntentState};

use crate::fakes::telnyx::*;

fn code_in(text: &str) -> String {
    text.split_whitespace()
        .skip_while(|w| *w != "APPROVE")
        .nth(1)
        .expect("a code after APPROVE")
        .to_string()
}

#[tokio::test]
async fn no_answer_then_busy_then_sms_code_reply_approves() {
    let mut s = Setup::start(
        vec![approver("alice", ALICE, None), approver("bob", BOB, None)],
        |_| {},
    )
    .await;
    let (id, watch) = s.escalate(7500).await;

    let alice = s.phone(ALICE, 1).await;
    alice.initiated().await;
    alice.hangup("timeout").await;
    let bob = s.phone(BOB, 1).await;
    bob.initiated().await;
    bob.hangup("user_busy").await;

    s.fake.wait_for("sms", None, 2).await;
    let texts = s.fake.texts_to(ALICE);
    assert_eq!(texts.len(), 1);
    assert_eq!(s.fake.texts_to(BOB).len(), 1);
    assert!(
        texts[0].contains("PAY_INVOICE") && texts[0].contains("Acme Corp"),
        "{}",
        texts[0]
    );
    let code = code_in(&texts[0]);
    assert_eq!(code.len(), 6);

    // Not from the roster, a wrong code, or not a command: nothing changes.
    let http = reqwest::Client::new();
    let url = alice.webhook.clone();
    let key = signing_key();
    for (from, text) in [
        ("+14155550999", format!("APPROVE {code}")),
        (ALICE, "APPROVE 000000".to_string()),
        (ALICE, format!("yes {code}")),
    ] {
        assert_eq!(
            post_signed(&http, &url, &key, &sms_received(from, &text), now()).await,
            200
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        s.state_of(&id).await,
        sentinel::grpc::pb::IntentState::PendingApproval
    );

    assert_eq!(
        post_signed(
            &http,
            &url,
            &key,
            &sms_received(ALICE, &format!("approve {code}")),
            now()
        )
        .await,
        200
    );
    let (details, intent) = finish(&s, watch).await;
    assert_eq!(intent.state, IntentState::Approved as i32);
    let by = intent.decided_by.unwrap();
    assert_eq!(
        (by.kind, by.approver.as_str(), by.channel.as_str()),
        (DeciderKind::Human as i32, "alice", "sms")
    );
    for line in [
        "calling approver 1 (alice)",
        "approver 1 (alice) did not answer",
        "calling approver 2 (bob)",
        "approver 2 (bob) was busy",
        "SMS with a one-time code sent to 2 approvers",
        "alice replied APPROVE by SMS",
    ] {
        assert!(
            details.iter().any(|d| d == line),
            "no {line:?} in {details:#?}"
        );
    }
    // Alice is told it worked.
    for _ in 0..100 {
        if s.fake.texts_to(ALICE).len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        s.fake.texts_to(ALICE)[1].contains("approved"),
        "{:?}",
        s.fake.texts_to(ALICE)
    );
    // The code is retired: a second reply changes nothing.
    assert_eq!(
        post_signed(
            &http,
            &url,
            &key,
            &sms_received(BOB, &format!("DECLINE {code}")),
            now()
        )
        .await,
        200
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        s.state_of(&id).await,
        sentinel::grpc::pb::IntentState::Approved
    );
    s.app.stop().await;
}

#[tokio::test]
async fn a_cli_decision_while_the_phone_rings_hangs_up() {
    let mut s = Setup::start(vec![approver("alice", ALICE, None)], |_| {}).await;
    let (id, watch) = s.escalate(7500).await;
    let alice = s.phone(ALICE, 1).await;
    alice.initiated().await;

    let decided = s
        .client
        .resolve(&id, false, "not this vendor")
        .await
        .expect("resolve");
    assert_eq!(decided.state, IntentState::Declined as i32);
    s.fake.wait_for("hangup", Some(&alice.ccid), 1).await;

    // She picks up anyway, too late: no menu, nothing changes.
    alice.send("call.answered", serde_json::json!({})).await;
    alice.detection("human").await;
    alice.press("1").await;
    alice.hangup("normal_clearing").await;
    let (details, intent) = finish(&s, watch).await;
    assert_eq!(intent.state, IntentState::Declined as i32);
    assert!(
        details.iter().any(
            |d| d.starts_with("hanging up the call to approver 1 (alice): intent declined via")
        ),
        "{details:#?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.fake.count("gather_using_speak", None), 0);
    assert_eq!(
        s.fake.count("dial", None),
        1,
        "no one else is called after the decision"
    );
    assert_eq!(
        s.state_of(&id).await,
        sentinel::grpc::pb::IntentState::Declined
    );
    s.app.stop().await;
}

#[tokio::test]
async fn a_key_press_after_the_deadline_is_too_late() {
    let mut s = Setup::start(vec![approver("alice", ALICE, None)], |c| {
        c.approval_timeout = Duration::from_secs(2);
    })
    .await;
    let (id, watch) = s.escalate(7500).await;
    let alice = s.phone(ALICE, 1).await;
    alice.pick_up().await;
    alice.prompt(1).await;
    let (_, intent) = finish(&s, watch).await;
    assert_eq!(intent.state, IntentState::Expired as i32);
    s.fake.wait_for("hangup", Some(&alice.ccid), 1).await;
    alice.press("1").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        s.state_of(&id).await,
        sentinel::grpc::pb::IntentState::Expired
    );
    s.app.stop().await;
}

#[tokio::test]
async fn rate_limits_are_retried_and_total_failure_declines() {
    // One 429 on the dial: retried, the call goes out.
    let mut s = Setup::start(vec![approver("alice", ALICE, None)], |_| {}).await;
    s.fake.fail_next(&[(429, "10011")]);
    let (id, _watch) = s.escalate(7500).await;
    let alice = s.phone(ALICE, 1).await;
    assert_eq!(s.fake.count("dial", None), 1);
    alice.initiated().await;
    s.client.resolve(&id, false, "done").await.expect("resolve");
    s.app.stop().await;

    // Every dial and every SMS fails at Telnyx: declined with escalation_failed.
    let mut s = Setup::start(
        vec![approver("alice", ALICE, None), approver("bob", BOB, None)],
        |_| {},
    )
    .await;
    s.fake.fail_next(&[
        (422, "10016"),
        (422, "10015"),
        (422, "10016"),
        (422, "10016"),
    ]);
    let (_, watch) = s.escalate(7500).await;
    let (details, intent) = finish(&s, watch).await;
    assert_eq!(intent.state, IntentState::Declined as i32);
    assert!(
        intent.reasons.iter().any(|r| r.code == "escalation_failed"),
        "{:?}",
        intent.reasons
    );
    assert_eq!(intent.decided_by.unwrap().kind, DeciderKind::System as i32);
    assert!(
        details
            .iter()
            .any(|d| d.starts_with("could not call approver 1 (alice): telnyx 422: 10016")),
        "{details:#?}"
    );
    assert!(
        details
            .iter()
            .any(|d| d.starts_with("could not call approver 2 (bob)")),
        "{details:#?}"
    );
    assert!(
        details
            .iter()
            .any(|d| d.starts_with("SMS to approver 1 (alice) failed")),
        "{details:#?}"
    );
    assert_eq!(s.fake.count("dial", None), 0);
    s.app.stop().await;
}
