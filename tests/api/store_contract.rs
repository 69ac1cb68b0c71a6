//! The ONE contract every `Store` implementation passes: each case below runs against the
//! in-memory store and against a Redis store on a real `redis-server`.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use sentinel::domain::{
    now_millis, Channel, DecidedBy, DeciderKind, EventKind, Intent, IntentId, IntentState,
    RiskScore,
};
use sentinel::store::{AuditRecord, Created, Filter, Store, StoreError};

/// Generates `memory::<case>` and `redis::<case>` tests for each contract case.
macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(std::sync::Arc::new(sentinel::store::MemoryStore::new())).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $case() {
                    let server = crate::redis_harness::RedisServer::start().await;
                    super::$case(server.store().await).await;
                }
            )*
        }

        /// Every case in turn, each on a fresh store that `make` returns for the case's
        /// name (the Redis Cluster test runs the suite this way, one key prefix per case).
        pub(crate) async fn run_every_case<F, Fut>(make: F)
        where
            F: Fn(&'static str) -> Fut,
            Fut: std::future::Future<Output = Arc<dyn Store>>,
        {
            $( $case(make(stringify!($case)).await).await; )*
        }
    };
}

contract!(
    created_intents_read_back,
    idempotency_keys_replay_or_conflict_per_agent,
    transitions_are_compare_and_set,
    racing_deciders_produce_one_winner,
    transition_of_a_missing_intent_is_not_found,
    deadlines_are_due_until_decided,
    watch_starts_with_the_current_state_and_ends_after_the_terminal_one,
    watch_all_sees_every_event,
    list_is_newest_first_filtered_and_paged,
    audit_records_every_attempt,
    an_overdue_pending_intent_can_only_expire,
);

const WAIT: Duration = Duration::from_secs(5);

pub(crate) fn sample_intent(agent: &str, state: IntentState) -> Intent {
    let now = now_millis();
    Intent {
        id: IntentId::generate(),
        agent_id: agent.to_string(),
        action: "PAY_INVOICE".into(),
        module: "VaultKeeper".into(),
        payload: serde_json::json!({"amount": 9000, "vendor": "Shady LLC", "note": "quote \" and \\ and {b1}"}),
        reasoning: "pay the invoice".into(),
        labels: Default::default(),
        idempotency_key: None,
        body_hash: "hash-1".into(),
        state,
        risk_score: RiskScore::new(90).expect("valid"),
        reasons: Vec::new(),
        analysis: "large amount to an unknown vendor".into(),
        decided_by: None,
        decision_reason: String::new(),
        policy_version: "builtin@1".into(),
        version: 1,
        created_at: now,
        decided_at: None,
        expires_at: (!state.is_terminal()).then_some(now + 60_000),
        scorer: None,
        trace_parent: None,
    }
}

fn human(name: &str) -> DecidedBy {
    DecidedBy::new(DeciderKind::Human, name, Channel::Cli)
}

/// The next version of `intent`, decided now by the human `who` through the CLI.
fn by_human(intent: &Intent, to: IntentState, who: &str, why: &str) -> Intent {
    intent
        .decide(to, human(who), why, None, now_millis())
        .expect("a legal transition")
}

async fn pending(store: &Arc<dyn Store>) -> Intent {
    create(
        store,
        sample_intent("agent-a", IntentState::PendingApproval),
    )
    .await
}

async fn create(store: &Arc<dyn Store>, i: Intent) -> Intent {
    match store.create(i).await.expect("create") {
        Created::New(i) => i,
        other => panic!("expected a new intent, got {other:?}"),
    }
}

async fn created_intents_read_back(store: Arc<dyn Store>) {
    let stored = pending(&store).await;
    let read = store.get(&stored.id).await.unwrap().expect("found");
    assert_eq!(read, stored, "the stored intent reads back unchanged");
    assert!(store.get(&IntentId::generate()).await.unwrap().is_none());
    store.ping().await.expect("ping");
}

async fn idempotency_keys_replay_or_conflict_per_agent(store: Arc<dyn Store>) {
    let mut first = sample_intent("agent-a", IntentState::PendingApproval);
    first.idempotency_key = Some("key-1".into());
    let first = create(&store, first).await;

    let mut again = sample_intent("agent-a", IntentState::PendingApproval);
    again.idempotency_key = Some("key-1".into());
    match store.create(again.clone()).await.unwrap() {
        Created::Replayed(i) => assert_eq!(i.id, first.id),
        other => panic!("same key and body must replay, got {other:?}"),
    }

    let mut different = again.clone();
    different.id = IntentId::generate();
    different.body_hash = "hash-2".into();
    match store.create(different).await.unwrap() {
        Created::KeyConflict { existing } => assert_eq!(existing, first.id),
        other => panic!("same key, different body must conflict, got {other:?}"),
    }

    // Keys are scoped per agent.
    let mut other_agent = sample_intent("agent-b", IntentState::PendingApproval);
    other_agent.idempotency_key = Some("key-1".into());
    let other = create(&store, other_agent).await;
    assert_ne!(other.id, first.id);

    let found = store
        .find_idempotent("agent-a", "key-1")
        .await
        .unwrap()
        .expect("found");
    assert_eq!(found.id, first.id);
    assert!(store
        .find_idempotent("agent-a", "key-2")
        .await
        .unwrap()
        .is_none());
}

async fn transitions_are_compare_and_set(store: Arc<dyn Store>) {
    let pending = pending(&store).await;
    let approve = by_human(&pending, IntentState::Approved, "alice", "looks fine");
    let approved = store
        .transition(approve)
        .await
        .expect("first decision wins");
    assert_eq!(approved.state, IntentState::Approved);
    assert_eq!(approved.version, 2);

    // A decision made from the stale version loses and learns the current state.
    let decline = by_human(&pending, IntentState::Declined, "bob", "no");
    match store.transition(decline).await {
        Err(StoreError::Conflict { current }) => {
            assert_eq!(current.state, IntentState::Approved);
            assert_eq!(current.version, 2);
        }
        other => panic!("stale decision must conflict, got {other:?}"),
    }

    // Terminal states never change, even at the right version.
    let mut after = approved.clone();
    after.state = IntentState::Declined;
    after.version = 3;
    assert!(matches!(
        store.transition(after).await,
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(
        store.get(&pending.id).await.unwrap().unwrap().state,
        IntentState::Approved
    );
}

async fn racing_deciders_produce_one_winner(store: Arc<dyn Store>) {
    let pending = pending(&store).await;
    let attempts = (0..16).map(|n| {
        let store = store.clone();
        let to = if n % 2 == 0 {
            IntentState::Approved
        } else {
            IntentState::Declined
        };
        let next = by_human(&pending, to, &format!("approver-{n}"), "race");
        async move { store.transition(next).await }
    });
    let results = futures::future::join_all(attempts).await;
    let winners: Vec<&Intent> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "exactly one decision wins");
    for r in &results {
        if let Err(e) = r {
            assert!(
                matches!(e, StoreError::Conflict { current } if current.state == winners[0].state)
            );
        }
    }
}

async fn transition_of_a_missing_intent_is_not_found(store: Arc<dyn Store>) {
    let ghost = sample_intent("agent-a", IntentState::PendingApproval);
    let next = by_human(&ghost, IntentState::Approved, "alice", "");
    assert!(matches!(
        store.transition(next).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn deadlines_are_due_until_decided(store: Arc<dyn Store>) {
    let now = now_millis();
    let mut overdue = sample_intent("agent-a", IntentState::PendingApproval);
    overdue.expires_at = Some(now - 1_000);
    let overdue = create(&store, overdue).await;
    let mut analyzing = sample_intent("agent-a", IntentState::Analyzing);
    analyzing.expires_at = Some(now - 500);
    let analyzing = create(&store, analyzing).await;
    let mut later = sample_intent("agent-a", IntentState::PendingApproval);
    later.expires_at = Some(now + 60_000);
    create(&store, later).await;
    create(&store, sample_intent("agent-a", IntentState::Approved)).await;

    assert_eq!(
        store.due(now, 10).await.unwrap(),
        vec![overdue.id.clone(), analyzing.id.clone()],
        "oldest first"
    );
    assert_eq!(store.due(now, 1).await.unwrap(), vec![overdue.id.clone()]);
    assert_eq!(store.next_deadline().await.unwrap(), Some(now - 1_000));

    let expired = overdue
        .decide(
            IntentState::Expired,
            DecidedBy::new(DeciderKind::Timeout, "", Channel::Timeout),
            "deadline",
            None,
            now,
        )
        .unwrap();
    store.transition(expired).await.unwrap();
    // Re-armed with a new deadline when an analysis becomes pending.
    let mut escalated = analyzing
        .decide(
            IntentState::PendingApproval,
            DecidedBy::new(DeciderKind::System, "", Channel::System),
            "",
            None,
            now,
        )
        .unwrap();
    escalated.expires_at = Some(now + 30_000);
    store.transition(escalated).await.unwrap();

    assert!(store.due(now, 10).await.unwrap().is_empty());
    assert_eq!(store.next_deadline().await.unwrap(), Some(now + 30_000));
}

async fn watch_starts_with_the_current_state_and_ends_after_the_terminal_one(
    store: Arc<dyn Store>,
) {
    let pending = pending(&store).await;
    let mut watch = store.watch(&pending.id).await.unwrap();
    let first = tokio::time::timeout(WAIT, watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.kind, EventKind::Snapshot);
    assert_eq!(first.intent, pending);

    store
        .progress(&pending.id, "calling approver 1")
        .await
        .unwrap();
    let progress = tokio::time::timeout(WAIT, watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        (progress.kind, progress.detail.as_str()),
        (EventKind::Progress, "calling approver 1")
    );

    let approved = store
        .transition(by_human(&pending, IntentState::Approved, "alice", "ok"))
        .await
        .unwrap();
    let decided = tokio::time::timeout(WAIT, watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(decided.kind, EventKind::Transition);
    assert_eq!(decided.intent, approved);
    assert!(
        tokio::time::timeout(WAIT, watch.next())
            .await
            .unwrap()
            .is_none(),
        "ends after the terminal event"
    );

    // Watching a decided intent: its state, then the end.
    let events: Vec<_> = tokio::time::timeout(
        WAIT,
        store.watch(&pending.id).await.unwrap().collect::<Vec<_>>(),
    )
    .await
    .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].as_ref().unwrap().intent.state,
        IntentState::Approved
    );

    assert!(matches!(
        store.watch(&IntentId::generate()).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn watch_all_sees_every_event(store: Arc<dyn Store>) {
    let mut all = store.watch_all().await.unwrap();
    let pending = pending(&store).await;
    store
        .transition(by_human(&pending, IntentState::Declined, "bob", "no"))
        .await
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let event = tokio::time::timeout(WAIT, all.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if event.intent.id == pending.id {
            seen.push((event.kind, event.intent.state, event.intent.version));
        }
    }
    assert_eq!(
        seen,
        vec![
            (EventKind::Transition, IntentState::PendingApproval, 1),
            (EventKind::Transition, IntentState::Declined, 2)
        ]
    );
}

async fn list_is_newest_first_filtered_and_paged(store: Arc<dyn Store>) {
    let mut ids = Vec::new();
    for n in 0..7 {
        let agent = if n % 2 == 0 { "agent-a" } else { "agent-b" };
        ids.push(
            create(&store, sample_intent(agent, IntentState::PendingApproval))
                .await
                .id,
        );
        // Distinct creation milliseconds keep "newest first" unambiguous.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let newest_first: Vec<IntentId> = ids.iter().rev().cloned().collect();

    let mut listed = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list(&Filter::default(), after.as_ref(), 3)
            .await
            .unwrap();
        assert!(page.intents.len() <= 3);
        listed.extend(page.intents.iter().map(|i| i.id.clone()));
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(listed, newest_first, "pages cover everything, newest first");

    let only_b = Filter {
        agent_id: Some("agent-b".into()),
        ..Filter::default()
    };
    let page = store.list(&only_b, None, 50).await.unwrap();
    assert_eq!(page.intents.len(), 3);
    assert!(page.intents.iter().all(|i| i.agent_id == "agent-b"));
    assert!(page.next_after.is_none());

    let approved = Filter {
        states: vec![IntentState::Approved],
        ..Filter::default()
    };
    assert!(store
        .list(&approved, None, 50)
        .await
        .unwrap()
        .intents
        .is_empty());
}

async fn audit_records_every_attempt(store: Arc<dyn Store>) {
    let since = now_millis();
    let pending = pending(&store).await;
    let winner = by_human(&pending, IntentState::Approved, "alice", "fine");
    let loser = by_human(&pending, IntentState::Declined, "bob", "no");
    // Records are ordered by their time; distinct milliseconds keep the order unambiguous.
    tokio::time::sleep(Duration::from_millis(2)).await;
    store.transition(winner).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2)).await;
    assert!(store.transition(loser).await.is_err());
    tokio::time::sleep(Duration::from_millis(2)).await;
    store
        .audit(AuditRecord {
            at: now_millis(),
            intent_id: None,
            event: "webhook_rejected".into(),
            actor: "telnyx".into(),
            channel: "webhook".into(),
            state: None,
            version: None,
            detail: "bad signature".into(),
        })
        .await
        .unwrap();
    let until = now_millis() + 1;

    let records = store.audit_range(since, until, 100).await.unwrap();
    let events: Vec<(&str, &str, &str)> = records
        .iter()
        .map(|r| (r.event.as_str(), r.actor.as_str(), r.channel.as_str()))
        .collect();
    assert_eq!(
        events,
        vec![
            ("created", "agent-a", "grpc"),
            ("transition", "alice", "cli"),
            ("rejected", "bob", "cli"),
            ("webhook_rejected", "telnyx", "webhook"),
        ]
    );
    assert!(
        records.windows(2).all(|w| w[0].at <= w[1].at),
        "oldest first"
    );
    assert!(
        records[2].detail.contains("lost race"),
        "{}",
        records[2].detail
    );
    assert_eq!(store.audit_range(since, until, 2).await.unwrap().len(), 2);
    assert!(store
        .audit_range(until, until + 10_000, 100)
        .await
        .unwrap()
        .is_empty());
}

/// Redis keeps decided intents for the retention period only: the record expires and the
/// index and audit stream are trimmed by the same scripts that write them.
#[tokio::test]
async fn redis_retention_expires_decided_intents_and_trims_the_index() {
    use sentinel::store::redis::{RedisOptions, RedisStore};
    let server = crate::redis_harness::RedisServer::start().await;
    let options = RedisOptions {
        prefix: "retention".to_string(),
        retention: std::time::Duration::from_millis(300),
        ..RedisOptions::default()
    };
    let store: Arc<dyn Store> =
        Arc::new(RedisStore::connect(&server.url(), options).await.unwrap());
    let open = pending(&store).await;
    store
        .transition(by_human(&open, IntentState::Approved, "x", "y"))
        .await
        .unwrap();
    let still_open = pending(&store).await;
    assert!(store.get(&open.id).await.unwrap().is_some());
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    // A write after the retention period trims what is older.
    for _ in 0..40 {
        pending(&store).await;
    }
    assert!(
        store.get(&open.id).await.unwrap().is_none(),
        "the decided intent expired"
    );
    assert!(
        store.get(&still_open.id).await.unwrap().is_some(),
        "open intents never expire"
    );
    let listed = store.list(&Filter::default(), None, 500).await.unwrap();
    assert!(listed.intents.iter().all(|i| i.id != open.id));
    // The 40 recent ones are listed; the old open one only if no later create trimmed its
    // bucket's index yet (which is why the retention must exceed the approval timeout).
    let recent = listed
        .intents
        .iter()
        .filter(|i| i.id != still_open.id)
        .count();
    assert_eq!(recent, 40);
}

/// Past its deadline a pending intent can only become EXPIRED, even if the expiry loop has not
/// run yet: the store refuses a late human decision.
async fn an_overdue_pending_intent_can_only_expire(store: Arc<dyn Store>) {
    let mut late = sample_intent("agent-a", IntentState::PendingApproval);
    late.expires_at = Some(now_millis() - 1_000);
    let late = create(&store, late).await;
    let err = store
        .transition(by_human(&late, IntentState::Approved, "alice", "too late"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    let expired = late
        .decide(
            IntentState::Expired,
            DecidedBy::new(DeciderKind::Timeout, "", Channel::Timeout),
            "deadline",
            None,
            now_millis(),
        )
        .unwrap();
    let done = store.transition(expired).await.expect("expiry wins");
    assert_eq!(done.state, IntentState::Expired);
}
