//! The contract of the Telnyx escalation's shared state that keeps a ladder moving when a
//! replica dies: the watchdog index and renewable claims. Each case runs on the in-memory
//! state and on the Redis one (a real `redis-server`).

use std::sync::Arc;
use std::time::Duration;

use sentinel::domain::{now_millis, IntentId};
use sentinel::escalation::telnyx::state::{TelnyxState, Watchdog, WatchdogKind};

/// Generates `memory::<case>` and `redis::<case>` tests for each case.
macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $case() {
                    let state = sentinel::escalation::telnyx::state::MemoryState::new();
                    super::$case(std::sync::Arc::new(state)).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $case() {
                    let server = crate::redis_harness::RedisServer::start().await;
                    let state = sentinel::escalation::telnyx::state::redis::RedisTelnyxState::connect(
                        &sentinel::config::RedisUrl::parse(&server.url()).expect("a redis URL"),
                        Default::default(),
                    )
                    .await
                    .expect("redis telnyx state connects");
                    super::$case(std::sync::Arc::new(state)).await;
                }
            )*
        }
    };
}

contract!(
    watchdogs_fire_once_when_due_and_again_only_after_their_lease,
    an_earlier_watchdog_keeps_its_time,
    a_lapsed_claim_is_taken_over_by_exactly_one_replica,
    a_renewed_claim_is_never_taken_over,
);

const LEASE: Duration = Duration::from_secs(30);

fn watchdog(kind: WatchdogKind, intent: &IntentId, ccid: &str) -> Watchdog {
    Watchdog {
        kind,
        intent: intent.clone(),
        call_control_id: ccid.to_string(),
    }
}

async fn watchdogs_fire_once_when_due_and_again_only_after_their_lease(
    state: Arc<dyn TelnyxState>,
) {
    let now = now_millis();
    let intent = IntentId::generate();
    let ring = watchdog(WatchdogKind::Ring, &intent, "v3:call-1");
    let detection = watchdog(WatchdogKind::Detection, &IntentId::generate(), "v3:call|2");
    state.arm_watchdog(&ring, now + 1_000).await.unwrap();
    state.arm_watchdog(&detection, now + 60_000).await.unwrap();

    assert!(
        state
            .due_watchdogs(now, LEASE, 10)
            .await
            .unwrap()
            .is_empty(),
        "nothing is due yet"
    );
    // Two replicas polling at once: each due watchdog goes to exactly one of them.
    let (first, second) = tokio::join!(
        state.due_watchdogs(now + 1_000, LEASE, 10),
        state.due_watchdogs(now + 1_000, LEASE, 10)
    );
    let mut handed = first.unwrap();
    handed.extend(second.unwrap());
    assert_eq!(handed, vec![ring.clone()]);
    // Its firer died before disarming: it is handed out again once the lease has passed.
    let after_lease = now + 1_000 + LEASE.as_millis() as i64;
    assert!(state
        .due_watchdogs(after_lease - 1, LEASE, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        state.due_watchdogs(after_lease, LEASE, 10).await.unwrap(),
        vec![ring.clone()]
    );
    // Disarmed after firing: never again; the other one fires at its own time.
    state.disarm_watchdog(&ring).await.unwrap();
    assert_eq!(
        state
            .due_watchdogs(now + 10 * LEASE.as_millis() as i64, LEASE, 10)
            .await
            .unwrap(),
        vec![detection]
    );
}

async fn an_earlier_watchdog_keeps_its_time(state: Arc<dyn TelnyxState>) {
    let now = now_millis();
    let ring = watchdog(WatchdogKind::Ring, &IntentId::generate(), "v3:call-1");
    state.arm_watchdog(&ring, now + 1_000).await.unwrap();
    // Arming again later (a takeover making sure it exists) does not postpone it ...
    state.arm_watchdog(&ring, now + 50_000).await.unwrap();
    assert_eq!(
        state.due_watchdogs(now + 1_000, LEASE, 10).await.unwrap(),
        vec![ring.clone()]
    );
    state.disarm_watchdog(&ring).await.unwrap();
    // ... and an earlier time wins over a later one.
    state.arm_watchdog(&ring, now + 50_000).await.unwrap();
    state.arm_watchdog(&ring, now + 2_000).await.unwrap();
    assert_eq!(
        state.due_watchdogs(now + 2_000, LEASE, 10).await.unwrap(),
        vec![ring]
    );
}

/// Waits (bounded) until `intent`'s claim is listed as lapsed.
async fn until_lapsed(state: &dyn TelnyxState, intent: &IntentId) {
    crate::helpers::eventually(Duration::from_secs(10), "the claim to lapse", || async {
        let lapsed = state.expired_claims(now_millis(), 100).await.unwrap();
        lapsed.contains(intent).then_some(())
    })
    .await
}

async fn a_lapsed_claim_is_taken_over_by_exactly_one_replica(state: Arc<dyn TelnyxState>) {
    let intent = IntentId::generate();
    let short = Duration::from_millis(300);
    assert!(state.claim(&intent, "replica-a", short).await.unwrap());
    assert!(
        !state.claim(&intent, "replica-a", short).await.unwrap(),
        "a live claim is taken, even for its owner"
    );
    assert!(!state.claim(&intent, "replica-b", short).await.unwrap());
    assert!(!state
        .expired_claims(now_millis(), 100)
        .await
        .unwrap()
        .contains(&intent));

    // Replica A dies: nobody renews. Five replicas try to take over at once: one wins.
    until_lapsed(state.as_ref(), &intent).await;
    let ttl = Duration::from_secs(60);
    let tries =
        futures::future::join_all(["b", "c", "d", "e", "f"].map(|r| state.claim(&intent, r, ttl)))
            .await;
    assert_eq!(
        tries.iter().filter(|t| *t.as_ref().unwrap()).count(),
        1,
        "{tries:?}"
    );
    assert!(
        !state.renew_claim(&intent, "replica-a", ttl).await.unwrap(),
        "the dead owner's claim is gone"
    );
    assert!(!state
        .expired_claims(now_millis(), 100)
        .await
        .unwrap()
        .contains(&intent));

    // Released when the escalation ends: no longer listed, free to claim.
    state.release_claim(&intent).await.unwrap();
    assert!(!state
        .expired_claims(now_millis() + 120_000, 100)
        .await
        .unwrap()
        .contains(&intent));
    assert!(state.claim(&intent, "replica-g", ttl).await.unwrap());
}

async fn a_renewed_claim_is_never_taken_over(state: Arc<dyn TelnyxState>) {
    let intent = IntentId::generate();
    let ttl = Duration::from_millis(400);
    assert!(state.claim(&intent, "replica-a", ttl).await.unwrap());
    // Heartbeats at a third of the life keep it for several lifetimes.
    for _ in 0..6 {
        tokio::time::sleep(ttl / 3).await;
        assert!(state.renew_claim(&intent, "replica-a", ttl).await.unwrap());
        assert!(!state.claim(&intent, "replica-b", ttl).await.unwrap());
        assert!(
            !state.renew_claim(&intent, "replica-b", ttl).await.unwrap(),
            "only the owner renews"
        );
    }
    assert!(!state
        .expired_claims(now_millis(), 100)
        .await
        .unwrap()
        .contains(&intent));
}
