//! Shutdown waits for escalation work in flight: a step the phone channel started finishes
//! (and is on record) before `App::run` returns.

use std::time::Duration;

use crate::fakes::telnyx::*;

#[tokio::test]
async fn shutdown_waits_for_a_dial_in_flight_to_finish_its_step() {
    let mut s = Setup::alice().await;
    // Telnyx answers the dial slowly, and then refuses it (403: not retried).
    s.fake.delay_dials(Duration::from_millis(1500));
    s.fake.fail_next(&[(403, "10010")]);
    let (id, _watch) = s.escalate(7500).await;
    s.wait_progress(&id, "calling approver 1 (alice)").await;

    // The dial is in flight: stop the app.
    s.app.shutdown.cancel();
    let handle = std::mem::replace(&mut s.app.handle, tokio::spawn(async { Ok(()) }));
    tokio::time::timeout(Duration::from_secs(15), handle)
        .await
        .expect("the app stops")
        .expect("no panic")
        .expect("a clean stop");

    // The interrupted step was carried to its end before `run` returned: its outcome is on
    // record, and the ladder moved on as it would have without the shutdown.
    let lines = s.progress(&id).await;
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("could not call approver 1 (alice)")),
        "{lines:#?}"
    );
}
