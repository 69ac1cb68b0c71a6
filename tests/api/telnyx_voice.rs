//! The approver's phone call: menu, keys, questions, PIN, voicemail.

use std::time::Duration;

use sentinel::grpc::pb::IntentState;
use serde_json::json;

use crate::fakes::telnyx::*;

const MENU: &str = "Press 1 to approve, 2 to ask a question, 3 to decline, or 9 to repeat.";

#[tokio::test]
async fn pressing_1_approves_and_the_call_says_goodbye() {
    let mut s = Setup::alice().await;
    let (id, watch) = s.escalate(7500).await;

    let dial = s.fake.wait_for("dial", None, 1).await;
    assert_eq!(dial.body["to"], ALICE);
    assert_eq!(dial.body["from"], CALLER_ID);
    assert_eq!(dial.body["connection_id"], CONNECTION_ID);
    assert_eq!(dial.body["answering_machine_detection"], "detect");
    assert_eq!(dial.body["timeout_secs"], 5);
    assert!(dial.body["command_id"]
        .as_str()
        .is_some_and(|c| !c.is_empty()));
    let cs = client_state(dial.body["client_state"].as_str().unwrap());
    assert_eq!(
        (cs["i"].as_str(), cs["a"].as_u64()),
        (Some(id.as_str()), Some(0))
    );

    let phone = s.phone(ALICE, 1).await;
    phone.pick_up().await;
    let prompt = phone.prompt(1).await;
    for fact in [
        "billing-bot",
        "pay invoice",
        "7500",
        "Acme Corp",
        "production",
        "Risk score 90",
        MENU,
    ] {
        assert!(prompt.contains(fact), "prompt lacks {fact:?}: {prompt}");
    }
    // Sentinel's facts first; the agent's words after, and said to be the agent's.
    assert!(
        prompt.starts_with(
            "Sentinel needs your decision. Risk score 90 out of 100. Module VaultKeeper. \
             Action pay invoice. Environment production. \
             The agent billing-bot says: amount 7500; vendor Acme Corp."
        ),
        "{prompt}"
    );
    let gather = s
        .fake
        .wait_for("gather_using_speak", Some(&phone.ccid), 1)
        .await;
    assert_eq!(gather.body["valid_digits"], "1239");
    assert_eq!(gather.body["maximum_digits"], 1);
    assert_eq!(
        client_state(gather.body["client_state"].as_str().unwrap())["i"],
        id.as_str()
    );

    phone.press("1").await;
    let details = finish_decided(&s, watch, IntentState::Approved, "alice", "voice").await;
    assert_progress(
        &details,
        &[
            "calling approver 1 (alice)",
            "approver 1 (alice) answered",
            "approver 1 (alice) pressed 1 (approve)",
        ],
    );

    let goodbye = s.fake.wait_for("speak", Some(&phone.ccid), 1).await;
    assert!(goodbye.body["payload"]
        .as_str()
        .unwrap()
        .contains("approved"));
    phone.speak_ended().await;
    s.fake.wait_for("hangup", Some(&phone.ccid), 1).await;
    phone.hangup("normal_clearing").await;
    s.app.stop().await;
}

#[tokio::test]
async fn pressing_3_declines_despite_duplicates_and_out_of_order_delivery() {
    let mut s = Setup::alice().await;
    let (_, watch) = s.escalate(6000).await;
    let phone = s.phone(ALICE, 1).await;

    // Detection overtakes the answer; both arrive twice (same event id).
    let detection = phone.event("call.machine.detection.ended", json!({"result": "human"}));
    assert_eq!(phone.post(&detection).await, 200);
    assert_eq!(phone.post(&detection).await, 200);
    phone.answered().await;
    let answered = phone.sent.lock().unwrap().last().cloned().unwrap();
    assert_eq!(phone.post(&answered).await, 200);
    let first = phone.prompt(1).await;
    let stale = phone.event(
        "call.gather.ended",
        json!({"digits": "1", "status": "valid"}),
    );

    // 9 repeats the summary.
    phone.press("9").await;
    assert_eq!(phone.prompt(2).await, first);
    // A "1" answering the first menu arrives late: stale, it decides nothing.
    assert_eq!(phone.post(&stale).await, 200);

    // The gather result comes twice and before its per-digit event.
    let ended = phone.event(
        "call.gather.ended",
        json!({"digits": "3", "status": "valid"}),
    );
    assert_eq!(phone.post(&ended).await, 200);
    assert_eq!(phone.post(&ended).await, 200);
    assert_eq!(
        phone
            .send("call.dtmf.received", json!({"digit": "3"}))
            .await,
        200
    );

    let details = finish_decided(&s, watch, IntentState::Declined, "alice", "voice").await;
    assert_eq!(
        details.iter().filter(|d| d.contains("pressed 3")).count(),
        1,
        "{details:#?}"
    );
    assert!(
        !details.iter().any(|d| d.contains("pressed 1")),
        "{details:#?}"
    );
    assert_eq!(
        s.fake.count("gather_using_speak", Some(&phone.ccid)),
        2,
        "the menu and its repeat, despite duplicates"
    );
    // Nothing was sent before the answer (the fake refuses that with 90034).
    assert!(s.fake.refused().is_empty(), "{:?}", s.fake.refused());
    s.app.stop().await;
}

#[tokio::test]
async fn questions_are_answered_and_words_alone_never_approve() {
    let mut s = Setup::alice().await;
    let (id, watch) = s.escalate(7500).await;
    let phone = s.phone(ALICE, 1).await;
    phone.pick_up().await;
    phone.prompt(1).await;

    phone.press("2").await;
    let ask = s
        .fake
        .wait_for("gather_using_ai", Some(&phone.ccid), 1)
        .await;
    assert_eq!(ask.body["parameters"]["required"], json!(["question"]));
    phone
        .say("Why is this vendor not on the trusted list?")
        .await;
    // The scorer's answer (the deterministic fallback here) is spoken, then the menu again.
    let answer = phone.prompt(2).await;
    assert!(
        answer.contains("I cannot answer questions without an LLM"),
        "{answer}"
    );
    assert!(
        answer.contains("PAY_INVOICE") && answer.ends_with(MENU),
        "{answer}"
    );

    // Saying "approve" asks for the key; it decides nothing.
    phone.press("2").await;
    s.fake
        .wait_for("gather_using_ai", Some(&phone.ccid), 2)
        .await;
    phone.say("Yes, approve it").await;
    let confirm = phone.prompt(3).await;
    assert!(
        confirm.contains("Spoken words do not decide. To approve, press 1."),
        "{confirm}"
    );
    assert_eq!(s.state_of(&id).await, IntentState::PendingApproval);

    phone.press("1").await;
    let details = finish_decided(&s, watch, IntentState::Approved, "alice", "voice").await;
    assert_progress(
        &details,
        &[
            "approver 1 (alice) pressed 2 (question)",
            "approver 1 (alice) asked: Why is this vendor not on the trusted list?",
            "answer spoken: I cannot answer",
            "approver 1 (alice) said \"approve\"; waiting for key 1 to confirm",
        ],
    );
    s.app.stop().await;
}

#[tokio::test]
async fn at_the_pin_tier_only_the_right_pin_makes_1_count() {
    let mut s = Setup::start(vec![approver("alice", ALICE, Some("2468"))], |c| {
        c.telnyx
            .as_mut()
            .expect("telnyx on")
            .escalation
            .pin_min_risk = Some(90);
    })
    .await;
    let (id, watch) = s.escalate(7500).await; // risk 90
    let phone = s.phone(ALICE, 1).await;
    phone.pick_up().await;
    phone.prompt(1).await;

    phone.press("1").await;
    let pin_prompt = phone.prompt(2).await;
    assert!(pin_prompt.contains("Enter your PIN"), "{pin_prompt}");
    phone.press("1111").await;
    let again = phone.prompt(3).await;
    assert!(again.contains("That PIN is not correct"), "{again}");
    assert_eq!(s.state_of(&id).await, IntentState::PendingApproval);

    phone.press("2468").await;
    let details = finish_decided(&s, watch, IntentState::Approved, "alice", "voice").await;
    assert_progress(
        &details,
        &[
            "approver 1 (alice) entered a wrong PIN (1 of 3)",
            "approver 1 (alice) entered a valid PIN",
        ],
    );
    s.app.stop().await;
}

#[tokio::test]
async fn three_wrong_pins_end_the_call_and_lock_the_intent() {
    let mut s = Setup::start(vec![approver("alice", ALICE, Some("2468"))], |c| {
        c.telnyx
            .as_mut()
            .expect("telnyx on")
            .escalation
            .pin_min_risk = Some(90);
    })
    .await;
    let (id, _watch) = s.escalate(7500).await;
    let phone = s.phone(ALICE, 1).await;
    phone.pick_up().await;
    phone.prompt(1).await;
    phone.press("1").await;
    for (n, pin) in ["1111", "2222", "3333"].iter().enumerate() {
        phone.prompt(n + 2).await;
        phone.press(pin).await;
    }
    s.wait_progress(
        &id,
        "approver 1 (alice) entered a wrong PIN (3 of 3); SMS code retired and PIN entry locked",
    )
    .await;
    let goodbye = s.fake.wait_for("speak", Some(&phone.ccid), 1).await;
    assert!(goodbye.body["payload"]
        .as_str()
        .unwrap()
        .contains("Too many wrong PINs"));
    assert_eq!(s.fake.count("gather_using_speak", Some(&phone.ccid)), 4);
    assert_eq!(s.state_of(&id).await, IntentState::PendingApproval);
    s.app.stop().await;
}

#[tokio::test]
async fn voicemail_never_decides_and_the_next_approver_is_called() {
    let mut s = Setup::alice_and_bob().await;
    let (id, watch) = s.escalate(7500).await;
    let alice = s.phone(ALICE, 1).await;
    alice.initiated().await;
    alice.answered().await;
    alice.detection("machine").await;
    s.fake.wait_for("hangup", Some(&alice.ccid), 1).await;
    // Nothing was ever put to the machine, and tones it plays are no decision.
    assert_eq!(s.fake.count("gather_using_speak", Some(&alice.ccid)), 0);
    alice.press("1").await;
    // The barrier: the key was processed (and ignored) before the state is looked at.
    s.wait_progress(
        &id,
        "approver 1 (alice) pressed 1 after the call was over; ignored",
    )
    .await;
    alice.hangup("normal_clearing").await;

    let bob = s.phone(BOB, 1).await;
    assert_eq!(client_state(&bob.client_state)["a"], 1);
    assert_eq!(s.state_of(&id).await, IntentState::PendingApproval);
    bob.pick_up().await;
    bob.prompt(1).await;
    bob.press("3").await;
    let details = finish_decided(&s, watch, IntentState::Declined, "bob", "voice").await;
    assert_progress(
        &details,
        &[
            "voicemail answered for approver 1 (alice); trying the next step",
            "calling approver 2 (bob)",
        ],
    );
    s.app.stop().await;
}

#[tokio::test]
async fn without_machine_detection_the_menu_still_starts() {
    // Some carriers (and stand-ins) never report detection: the approver is not left waiting.
    let mut s = Setup::alice().await;
    let (_, watch) = s.escalate(7500).await;
    let phone = s.phone(ALICE, 1).await;
    phone.initiated().await;
    phone.answered().await;
    // The detection watchdog starts the menu once the clock passes the wait for a verdict.
    s.advance_until(Duration::from_secs(1), "gather_using_speak", &phone.ccid, 1)
        .await;
    assert!(phone.prompt(1).await.ends_with(MENU));
    phone.press("3").await;
    finish_decided(&s, watch, IntentState::Declined, "alice", "voice").await;
    s.app.stop().await;
}

#[tokio::test]
async fn a_late_machine_verdict_hangs_up_and_calls_the_next_approver() {
    let mut s = Setup::alice_and_bob().await;
    let (id, watch) = s.escalate(7500).await;
    let alice = s.phone(ALICE, 1).await;
    alice.initiated().await;
    alice.answered().await;
    // Detection is slow: the menu starts without it once the clock passes the wait ...
    s.advance_until(Duration::from_secs(1), "gather_using_speak", &alice.ccid, 1)
        .await;
    assert!(alice.prompt(1).await.ends_with(MENU));
    // ... and then it says machine, before any key: hang up, next approver.
    alice.detection("machine").await;
    s.fake.wait_for("hangup", Some(&alice.ccid), 1).await;
    let bob = s.phone(BOB, 1).await;
    assert_eq!(s.state_of(&id).await, IntentState::PendingApproval);
    bob.pick_up().await;
    bob.prompt(1).await;
    bob.press("3").await;
    let details = finish_decided(&s, watch, IntentState::Declined, "bob", "voice").await;
    assert_progress(
        &details,
        &["voicemail detected for approver 1 (alice) after the menu started; trying the next step"],
    );
    s.app.stop().await;
}

#[tokio::test]
async fn a_menu_refused_as_not_answered_yet_waits_for_call_answered() {
    let mut s = Setup::alice().await;
    let (id, watch) = s.escalate(7500).await;
    let phone = s.phone(ALICE, 1).await;
    phone.initiated().await;
    // Our webhook says answered, Telnyx's call state does not yet: the menu gets 90034.
    assert_eq!(phone.send("call.answered", json!({})).await, 200);
    phone.detection("human").await;
    s.wait_progress(
        &id,
        "telnyx gather_using_speak refused: call not answered yet; waiting for call.answered",
    )
    .await;
    assert_eq!(s.fake.count("hangup", Some(&phone.ccid)), 0, "not hung up");
    // Telnyx's call.answered comes: the menu starts.
    phone.answered().await;
    assert!(phone.prompt(1).await.ends_with(MENU));
    phone.press("3").await;
    finish_decided(&s, watch, IntentState::Declined, "alice", "voice").await;
    s.app.stop().await;
}

#[tokio::test]
async fn a_failed_command_hangs_up_with_our_state_and_a_command_id() {
    let mut s = Setup::alice().await;
    let (id, _watch) = s.escalate(7500).await;
    let phone = s.phone(ALICE, 1).await;
    s.fake.fail_next(&[(422, "10032")]); // the menu
    phone.pick_up().await;
    let hangup = s.fake.wait_for("hangup", Some(&phone.ccid), 1).await;
    assert_eq!(
        client_state(hangup.body["client_state"].as_str().expect("client_state"))["i"],
        id.as_str()
    );
    assert!(hangup.body["command_id"]
        .as_str()
        .is_some_and(|c| !c.is_empty()));
    s.wait_progress(&id, "telnyx gather_using_speak failed: telnyx 422: 10032")
        .await;
    s.app.stop().await;
}

#[tokio::test]
async fn a_command_on_a_call_that_already_ended_counts_as_done() {
    let mut s = Setup::alice().await;
    let (_, watch) = s.escalate(7500).await;
    let phone = s.phone(ALICE, 1).await;
    phone.pick_up().await;
    phone.prompt(1).await;
    // The line drops before Telnyx tells us: the goodbye gets 422 / 90018.
    phone.drop_line();
    phone.press("3").await;
    let details = finish_decided(&s, watch, IntentState::Declined, "alice", "voice").await;
    assert!(
        !details.iter().any(|d| d.contains("failed")),
        "{details:#?}"
    );
    phone.hangup("normal_clearing").await;
    // The webhook is answered once its handler has run (inside the acknowledgement window),
    // so whatever the hangup would have caused has happened by now.
    let details = s.progress(&phone.client_state_intent()).await;
    assert!(
        !details.iter().any(|d| d.contains("failed")),
        "{details:#?}"
    );
    assert_eq!(
        s.fake.count("speak", None),
        0,
        "the fake refused it as 90018"
    );
    s.app.stop().await;
}

#[tokio::test]
async fn without_gather_using_ai_questions_are_transcribed() {
    let mut s = Setup::alice().await;
    let (id, watch) = s.escalate(7500).await;
    let phone = s.phone(ALICE, 1).await;
    phone.pick_up().await;
    phone.prompt(1).await;

    // The account has no hosted assistant: the next request (gather_using_ai) is refused.
    s.fake.fail_next(&[(422, "10015")]);
    phone.press("2").await;
    s.fake
        .wait_for("transcription_start", Some(&phone.ccid), 1)
        .await;
    // Our own prompt echoing back is not the question; interim results are not either.
    phone
        .transcript("What would you like to know? Ask your question now.")
        .await;
    let interim = json!({"transcription_data": {"transcript": "approve", "is_final": false}});
    phone.send("call.transcription", interim).await;
    phone.transcript("what does Acme Corp sell").await;
    s.fake
        .wait_for("transcription_stop", Some(&phone.ccid), 1)
        .await;
    assert!(phone.prompt(2).await.ends_with(MENU));
    assert_eq!(s.state_of(&id).await, IntentState::PendingApproval);
    phone.press("3").await;
    let details = finish_decided(&s, watch, IntentState::Declined, "alice", "voice").await;
    assert_progress(
        &details,
        &[
            "gather_using_ai unavailable",
            "approver 1 (alice) asked: what does Acme Corp sell",
        ],
    );
    s.app.stop().await;
}

#[tokio::test]
async fn a_key_after_the_hang_up_decides_nothing() {
    let mut s = Setup::alice().await;
    let (id, _watch) = s.escalate(7500).await;
    let phone = s.phone(ALICE, 1).await;
    phone.pick_up().await;
    phone.prompt(1).await;
    // The hang-up overtakes the gather result of the menu.
    phone.hangup("normal_clearing").await;
    phone.press("1").await;
    s.wait_progress(
        &id,
        "approver 1 (alice) pressed 1 after the call was over; ignored",
    )
    .await;
    s.wait_progress(&id, "SMS with a one-time code sent").await;
    assert_eq!(s.state_of(&id).await, IntentState::PendingApproval);
    s.app.stop().await;
}

#[tokio::test]
async fn a_real_calls_event_naming_another_intent_decides_neither() {
    let mut s = Setup::alice().await;
    let (first, _w1) = s.escalate(7500).await;
    let (second, _w2) = s.escalate(8000).await;
    let (a, b) = (s.phone(ALICE, 1).await, s.phone(ALICE, 2).await);
    let (a, b) = if a.client_state_intent() == first {
        (a, b)
    } else {
        (b, a)
    };
    a.pick_up().await;
    a.prompt(1).await;
    b.pick_up().await;
    b.prompt(1).await;
    // Signed, on the first intent's live call, with the second intent's client_state.
    let latest = s
        .fake
        .wait_for("gather_using_speak", Some(&b.ccid), 1)
        .await;
    let foreign = a.event_with_state(
        "call.gather.ended",
        json!({"digits": "1", "status": "valid"}),
        latest.body["client_state"].as_str().unwrap(),
    );
    assert_eq!(a.post(&foreign).await, 200);
    s.wait_rejected("voice", 1).await;
    assert_eq!(s.state_of(&first).await, IntentState::PendingApproval);
    assert_eq!(s.state_of(&second).await, IntentState::PendingApproval);
    for id in [&first, &second] {
        assert!(
            !s.progress(id).await.iter().any(|d| d.contains("pressed")),
            "{id}"
        );
    }
    s.app.stop().await;
}

/// Base64 JSON in Sentinel's `client_state` shape.
fn encoded_state(value: serde_json::Value) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(value.to_string())
}

#[tokio::test]
async fn key_presses_that_do_not_answer_the_awaited_menu_exactly_are_refused_on_record() {
    let mut s = Setup::alice().await;
    let (id, watch) = s.escalate(7500).await;
    let phone = s.phone(ALICE, 1).await;
    phone.pick_up().await;
    phone.prompt(1).await;
    let awaited = s
        .fake
        .wait_for("gather_using_speak", Some(&phone.ccid), 1)
        .await;
    let awaited = client_state(awaited.body["client_state"].as_str().unwrap());
    let one = json!({"digits": "1", "status": "valid"});

    // A "1" whose client_state does not name the awaited prompt: missing (absent, null, ""),
    // the dial's (no prompt number), unreadable, or another prompt number.
    let mut absent = serde_json::from_str::<serde_json::Value>(&phone.event_with_state(
        "call.gather.ended",
        one.clone(),
        "",
    ))
    .unwrap();
    absent["data"]["payload"]
        .as_object_mut()
        .unwrap()
        .remove("client_state");
    let other_prompt = encoded_state(json!({
        "i": id, "a": 0, "p": awaited["p"].as_u64().unwrap() + 7
    }));
    let stale = [
        absent.to_string(),
        phone.event_with_state(
            "call.gather.ended",
            json!({"digits": "1", "status": "valid", "client_state": null}),
            "",
        ),
        phone.event_with_state("call.gather.ended", one.clone(), ""),
        phone.event_with_state("call.gather.ended", one.clone(), &phone.client_state),
        phone.event_with_state("call.gather.ended", one.clone(), "eyJyZXEiOiJyLTEyMyJ9"),
        phone.event_with_state("call.gather.ended", one.clone(), "%%% not base64"),
        phone.event_with_state("call.gather.ended", one.clone(), &other_prompt),
    ];
    let mut refused = 0;
    for body in &stale {
        assert_eq!(phone.post(body).await, 200, "{body}");
        refused += 1;
        // The barrier: the press was processed (refused on record) before the state is read.
        s.wait_rejected("voice", refused).await;
        assert_eq!(
            s.state_of(&id).await,
            IntentState::PendingApproval,
            "{body}"
        );
    }
    // None of them ended the awaited menu: no new prompt was played.
    assert_eq!(s.fake.count("gather_using_speak", Some(&phone.ccid)), 1);

    // With the awaited prompt's client_state, digits other than exactly one menu key.
    let mut prompts = 1;
    for digits in ["11", "1#", "", "a", "1a"] {
        phone.press(digits).await;
        refused += 1;
        s.wait_rejected("voice", refused).await;
        assert_eq!(
            s.state_of(&id).await,
            IntentState::PendingApproval,
            "{digits:?}"
        );
        // The menu is offered again, and its answer is the one awaited next.
        prompts += 1;
        phone.prompt(prompts).await;
    }

    // A correct press still approves.
    phone.press("1").await;
    let details = finish_decided(&s, watch, IntentState::Approved, "alice", "voice").await;
    assert_eq!(
        details.iter().filter(|d| d.contains("rejected")).count(),
        refused,
        "{details:#?}"
    );
    for reason in [
        "its client_state is missing",
        "its client_state is unreadable",
        "its client_state names no prompt",
        "not the awaited prompt",
        "not exactly one menu key",
        "no digits",
    ] {
        assert!(
            details.iter().any(|d| d.contains(reason)),
            "no refusal because {reason:?}: {details:#?}"
        );
    }
    assert_eq!(
        details.iter().filter(|d| d.contains("pressed 1")).count(),
        1,
        "{details:#?}"
    );
    s.app.stop().await;
}
