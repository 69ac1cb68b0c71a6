//! The ladder: next approver, SMS with a one-time code, the deadline, other channels
//! deciding first, and Telnyx failures.

use std::time::Duration;

use sentinel::grpc::pb::{DeciderKind, IntentState};

use crate::fakes::telnyx::*;

#[tokio::test]
async fn no_answer_then_busy_then_sms_code_reply_approves() {
    let mut s = Setup::alice_and_bob().await;
    let (id, watch) = s.escalate(7500).await;
    s.no_answer_then_busy().await;
    let texts = s.fake.texts_to(ALICE);
    assert_eq!((texts.len(), s.fake.texts_to(BOB).len()), (1, 1));
    assert!(
        texts[0].starts_with("Sentinel: risk 90/100, module VaultKeeper, action PAY_INVOICE")
            && texts[0].contains("The agent billing-bot says: amount 7500; vendor Acme Corp."),
        "{}",
        texts[0]
    );
    let code = code_in(&texts[0]);
    assert_eq!(code.len(), 6);

    // Not from the roster, a wrong code, not a command: refused, nothing changes.
    s.text_in("+14155550999", &format!("APPROVE {code}")).await;
    s.text_in(ALICE, "APPROVE 000000").await;
    s.text_in(ALICE, &format!("yes {code}")).await;
    s.wait_rejected("sms", 3).await;
    assert_eq!(s.state_of(&id).await, IntentState::PendingApproval);

    s.text_in(ALICE, &format!("approve {code}")).await;
    let details = finish_decided(&s, watch, IntentState::Approved, "alice", "sms").await;
    assert_progress(
        &details,
        &[
            "calling approver 1 (alice)",
            "approver 1 (alice) did not answer",
            "calling approver 2 (bob)",
            "approver 2 (bob) was busy",
            "SMS with a one-time code sent to 2 approvers",
            "alice replied APPROVE by SMS",
        ],
    );
    // Alice is told it worked.
    s.fake.wait_for("sms", None, 3).await;
    assert!(
        s.fake.texts_to(ALICE)[1].contains("approved"),
        "{:?}",
        s.fake.texts_to(ALICE)
    );

    // The code is retired: a later reply is refused.
    s.text_in(BOB, &format!("DECLINE {code}")).await;
    s.wait_rejected("sms", 4).await;
    assert_eq!(s.state_of(&id).await, IntentState::Approved);
    s.app.stop().await;
}

#[tokio::test]
async fn a_cli_decision_while_the_phone_rings_hangs_up() {
    let mut s = Setup::alice_and_bob().await;
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
    let (details, intent) = finish(&s, watch).await;
    assert_eq!(intent.state, IntentState::Declined as i32);
    assert_progress(
        &details,
        &["hanging up the call to approver 1 (alice): intent declined via grpc"],
    );

    // She picks up anyway, too late: the call is over for Sentinel.
    alice.send("call.answered", serde_json::json!({})).await;
    alice.detection("human").await;
    alice.press("1").await;
    s.wait_progress(
        &id,
        "approver 1 (alice) pressed 1 too late: the intent was already decided; ignored",
    )
    .await;
    alice.hangup("normal_clearing").await;
    // The webhook is answered once its handler has run (inside the acknowledgement window),
    // so whatever the hangup would have caused has happened by now.
    let details = s.progress(&id).await;
    assert!(
        !details.iter().any(|d| d.contains("pressed 1 (approve)")),
        "{details:#?}"
    );
    assert_eq!(
        s.fake.count("gather_using_speak", None),
        0,
        "no menu after the decision"
    );
    assert_eq!(
        s.fake.count("dial", None),
        1,
        "no one else is called after the decision"
    );
    assert_eq!(s.state_of(&id).await, IntentState::Declined);
    s.app.stop().await;
}

#[tokio::test]
async fn a_call_nobody_answers_is_ended_by_the_ring_watchdog_when_the_clock_passes_it() {
    let mut s = Setup::start(
        vec![approver("alice", ALICE, None), approver("bob", BOB, None)],
        |c| c.approval_timeout = Duration::from_secs(3600),
    )
    .await;
    let (id, _watch) = s.escalate(7500).await;
    let alice = s.phone(ALICE, 1).await;
    alice.initiated().await;
    // Telnyx never reports the end of ringing: the ring watchdog hangs up once the clock
    // passes it (armed just after the dial returns, so time moves in steps until it fired).
    s.advance_until(Duration::from_secs(5), "hangup", &alice.ccid, 1)
        .await;
    s.wait_progress(
        &id,
        "approver 1 (alice) did not answer within the ring timeout",
    )
    .await;
    let bob = s.phone(BOB, 1).await;
    bob.initiated().await;
    assert_eq!(s.fake.count("dial", None), 2, "alice once, then bob");
    assert_eq!(s.state_of(&id).await, IntentState::PendingApproval);
    s.app.stop().await;
}

#[tokio::test]
async fn the_deadline_expires_the_intent_and_ends_the_call() {
    let mut s = Setup::start(vec![approver("alice", ALICE, None)], |c| {
        c.approval_timeout = Duration::from_secs(120);
    })
    .await;
    let (id, watch) = s.escalate(7500).await;
    let alice = s.phone(ALICE, 1).await;
    alice.pick_up().await;
    alice.prompt(1).await;
    s.clock.advance(Duration::from_secs(121));
    let (_, intent) = finish(&s, watch).await;
    assert_eq!(intent.state, IntentState::Expired as i32);
    s.fake.wait_for("hangup", Some(&alice.ccid), 1).await;

    // A key pressed as the line drops is too late.
    alice.press("1").await;
    s.wait_progress(
        &id,
        "approver 1 (alice) pressed 1 too late: the intent was already decided; ignored",
    )
    .await;
    let details = s.progress(&id).await;
    assert!(
        !details.iter().any(|d| d.contains("pressed 1 (approve)")),
        "{details:#?}"
    );
    assert_eq!(s.fake.count("gather_using_speak", Some(&alice.ccid)), 1);
    assert_eq!(s.state_of(&id).await, IntentState::Expired);
    s.app.stop().await;
}

#[tokio::test]
async fn a_dial_whose_response_is_lost_is_retried_without_a_second_call() {
    let mut s = Setup::alice().await;
    // Telnyx places the call, then the response is a 503: the retry must not ring twice.
    s.fake.fail_after_next(&[(503, "10007")]);
    let (id, watch) = s.escalate(7500).await;
    let alice = s.phone(ALICE, 1).await;
    alice.initiated().await;
    s.client.resolve(&id, false, "done").await.expect("resolve");
    s.fake.wait_for("hangup", Some(&alice.ccid), 1).await;
    finish(&s, watch).await;
    assert_eq!(s.fake.dial_attempts(), 2, "the dial was retried");
    assert_eq!(
        s.fake.count("dial", None),
        1,
        "one call thanks to command_id"
    );
    s.app.stop().await;
}

#[tokio::test]
async fn an_absurd_retry_after_fails_the_dial_instead_of_crashing() {
    let mut s = Setup::alice().await;
    s.fake.set_retry_after("1e300");
    s.fake.fail_next(&[(429, "90103")]);
    let (id, _watch) = s.escalate(7500).await;
    // Not waited for (nor a panic in the dial task): the ladder moves on to the SMS.
    s.wait_progress(&id, "could not call approver 1 (alice): telnyx 429: 90103")
        .await;
    s.wait_progress(&id, "SMS with a one-time code sent to 1 approver")
        .await;
    assert_eq!(s.fake.count("dial", None), 0);
    s.app.stop().await;
}

#[tokio::test]
async fn when_every_channel_fails_the_intent_is_declined() {
    let mut s = Setup::alice_and_bob().await;
    // Both dials, then both SMS.
    s.fake.fail_next(&[
        (422, "10016"),
        (422, "10015"),
        (422, "10016"),
        (422, "10016"),
    ]);
    let (_, watch) = s.escalate(7500).await;
    let (details, intent) = finish(&s, watch).await;
    assert_decided(
        &intent,
        IntentState::Declined,
        DeciderKind::System,
        "",
        "telnyx",
    );
    assert!(
        intent.reasons.iter().any(|r| r.code == "escalation_failed"),
        "{:?}",
        intent.reasons
    );
    assert_progress(
        &details,
        &[
            "could not call approver 1 (alice): telnyx 422: 10016",
            "could not call approver 2 (bob): telnyx 422: 10015",
            "SMS to approver 1 (alice) failed",
            "SMS to approver 2 (bob) failed",
        ],
    );
    assert_eq!(s.fake.count("dial", None), 0);
    s.app.stop().await;
}

#[tokio::test]
async fn intents_no_approver_takes_wait_for_the_operator() {
    let mut ops = approver("ops", ALICE, None);
    ops.modules = vec!["OpsGuard".into()];
    let mut s = Setup::start(vec![ops], |_| {}).await;
    let (id, _watch) = s.escalate(7500).await; // VaultKeeper
    s.wait_progress(
        &id,
        "no approver in the roster takes module VaultKeeper at risk 90; waiting for the operator",
    )
    .await;
    assert_eq!(s.fake.count("dial", None), 0);
    assert_eq!(s.state_of(&id).await, IntentState::PendingApproval);
    s.app.stop().await;
}

/// An intent that became pending while no replica could phone (here: before the Telnyx
/// channel existed) is phoned as soon as one starts: the escalation loop catches up on open
/// intents when it subscribes.
#[tokio::test]
async fn intents_pending_before_start_up_are_phoned_at_start_up() {
    use std::sync::Arc;
    let store: Arc<dyn sentinel::store::Store> = Arc::new(sentinel::store::MemoryStore::new());
    // A gateway without phones accepts the intent.
    let before = crate::helpers::spawn_with(crate::helpers::Parts {
        store: store.clone(),
        ..Default::default()
    })
    .await;
    let mut c = before.client().await;
    let pending = c
        .submit_json("ops", "DELETE_USER", serde_json::json!({"user_id": "u-1"}))
        .await
        .unwrap();
    before.stop().await;

    // A gateway with phones on the same store calls about it without any new event.
    let fake = crate::fakes::telnyx::FakeTelnyx::start().await;
    let config = crate::fakes::telnyx::config(&fake, vec![approver("alice", ALICE, None)]);
    let after = crate::helpers::spawn_with(crate::helpers::Parts {
        config,
        store,
        ..Default::default()
    })
    .await;
    let what = format!("intent {} to be phoned", pending.intent_id);
    crate::helpers::eventually(std::time::Duration::from_secs(5), &what, || async {
        (fake.dial_attempts() > 0).then_some(())
    })
    .await;
    after.stop().await;
}
