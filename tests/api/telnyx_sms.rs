//! The SMS step: one-time codes, the PIN tier, routing, and lockout after repeated guesses.

use sentinel::grpc::pb::IntentState;

use crate::fakes::telnyx::*;

/// Alice alone; her call is not answered, so the ladder texts her. Returns the code.
async fn texted(
    s: &mut Setup,
) -> (
    String,
    tonic::Streaming<sentinel::grpc::pb::DecisionEvent>,
    String,
) {
    let (id, watch) = s.escalate(7500).await;
    let alice = s.phone(ALICE, 1).await;
    alice.initiated().await;
    alice.hangup("timeout").await;
    s.fake.wait_for("sms", None, 1).await;
    let code = code_in(&s.fake.texts_to(ALICE)[0]);
    (id, watch, code)
}

#[tokio::test]
async fn five_wrong_codes_retire_the_code() {
    let mut s = Setup::alice().await;
    let (id, _watch, code) = texted(&mut s).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        s.text_in(ALICE, &format!("APPROVE {wrong}")).await;
    }
    s.wait_progress(
        &id,
        "alice sent a wrong SMS code (5 of 5); SMS code retired",
    )
    .await;
    // The right code no longer counts: the intent waits for the operator or the deadline.
    s.text_in(ALICE, &format!("APPROVE {code}")).await;
    s.wait_rejected("sms", 6).await;
    assert_eq!(s.state_of(&id).await, IntentState::PendingApproval);
    let details = s.progress(&id).await;
    assert_progress(&details, &["alice sent a wrong SMS code (1 of 5)"]);
    assert!(
        !details.iter().any(|d| d.contains("replied APPROVE")),
        "{details:#?}"
    );
    // Guesses earn no texts back: only the code itself went out.
    assert_eq!(s.fake.texts_to(ALICE).len(), 1);
    s.app.stop().await;
}

#[tokio::test]
async fn at_the_pin_tier_sms_needs_the_pin_and_three_wrong_pins_lock() {
    let mut s = Setup::start(vec![approver("alice", ALICE, Some("2468"))], |c| {
        c.telnyx
            .as_mut()
            .expect("telnyx on")
            .escalation
            .pin_min_risk = Some(90);
    })
    .await;
    let (id, _watch, code) = texted(&mut s).await;
    assert!(s.fake.texts_to(ALICE)[0].contains(&format!("APPROVE {code} <PIN>")));

    s.text_in(ALICE, &format!("APPROVE {code}")).await;
    s.text_in(ALICE, &format!("APPROVE {code} 1111")).await;
    s.text_in(ALICE, &format!("APPROVE {code} 1357")).await;
    s.wait_progress(
        &id,
        "alice's SMS approval was refused: PIN missing or wrong (3 of 3); SMS code retired",
    )
    .await;
    s.text_in(ALICE, &format!("APPROVE {code} 2468")).await;
    s.wait_rejected("sms", 5).await; // 3 refusals, the lockout, the retired code
    assert_eq!(s.state_of(&id).await, IntentState::PendingApproval);
    // The code, one hint, one lockout notice: no text per guess.
    let texts = s.fake.texts_to(ALICE);
    assert_eq!(texts.len(), 3, "{texts:#?}");
    assert!(
        texts[2].contains("can no longer be approved by SMS"),
        "{texts:#?}"
    );
    s.app.stop().await;
}

#[tokio::test]
async fn at_the_pin_tier_the_right_pin_approves_by_sms() {
    let mut s = Setup::start(vec![approver("alice", ALICE, Some("2468"))], |c| {
        c.telnyx
            .as_mut()
            .expect("telnyx on")
            .escalation
            .pin_min_risk = Some(90);
    })
    .await;
    let (_, watch, code) = texted(&mut s).await;
    s.text_in(ALICE, &format!("APPROVE {code} 1111")).await;
    s.text_in(ALICE, &format!("APPROVE {code} 2468")).await;
    let details = finish_decided(&s, watch, IntentState::Approved, "alice", "sms").await;
    assert_progress(
        &details,
        &[
            "alice's SMS approval was refused: PIN missing or wrong (1 of 3)",
            "alice replied APPROVE by SMS",
        ],
    );
    s.app.stop().await;
}

#[tokio::test]
async fn a_roster_number_the_intent_was_not_routed_to_cannot_decide() {
    let mut alice = approver("alice", ALICE, None);
    alice.modules = vec!["VaultKeeper".into()];
    let mut bob = approver("bob", BOB, None);
    bob.modules = vec!["OpsGuard".into()];
    let mut s = Setup::start(vec![alice, bob], |_| {}).await;
    let (id, _watch, code) = texted(&mut s).await;
    assert!(s.fake.texts_to(BOB).is_empty());
    s.text_in(BOB, &format!("APPROVE {code}")).await;
    s.wait_rejected("sms", 1).await;
    assert_eq!(s.state_of(&id).await, IntentState::PendingApproval);
    assert!(
        !s.progress(&id).await.iter().any(|d| d.contains("replied")),
        "bob's reply is no decision"
    );
    s.app.stop().await;
}

#[tokio::test]
async fn a_reply_to_another_number_is_not_ours() {
    let mut s = Setup::alice().await;
    let (id, watch, code) = texted(&mut s).await;
    // Same messaging profile, another number: not this channel, whatever it says.
    s.text_in_to(ALICE, "+14155550177", &format!("APPROVE {code}"))
        .await;
    // Handled before the answer (well within its window): then the real reply decides.
    assert_eq!(s.state_of(&id).await, IntentState::PendingApproval);
    s.text_in(ALICE, &format!("DECLINE {code}")).await;
    let details = finish_decided(&s, watch, IntentState::Declined, "alice", "sms").await;
    assert!(
        !details.iter().any(|d| d.contains("replied APPROVE")),
        "{details:#?}"
    );
    s.app.stop().await;
}
