//! The ONE contract every `Store` implementation passes: each case below runs against the
//! in-memory store and against a Redis store on a real `redis-server`.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use sentinel::domain::{
    now_millis, Channel, Clock, DecidedBy, DeciderKind, EventKind, Intent, IntentId, IntentState,
    ManualClock, Millis, RiskScore,
};
use sentinel::store::{AuditRecord, Created, Cursor, Filter, Store, StoreError};

/// Generates `memory::<case>` and `redis::<case>` tests for each contract case.
macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $case() {
                    let clock = std::sync::Arc::new(sentinel::domain::ManualClock::starting_now());
                    let store = sentinel::store::MemoryStore::with_clock(
                        sentinel::store::memory::DEFAULT_RETENTION,
                        clock.clone(),
                    );
                    super::$case(std::sync::Arc::new(store), super::Time::Manual(clock)).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $case() {
                    let server = crate::redis_harness::RedisServer::start().await;
                    super::$case(server.store().await, super::Time::Wall).await;
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
            $( $case(make(stringify!($case)).await, Time::Wall).await; )*
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
    list_by_agent_reads_only_that_agents_intents,
    list_by_state_and_by_agent_and_state,
    filtered_lists_page_newest_first,
    a_transition_moves_an_intent_between_state_lists,
    index_filters_combine_with_module_action_and_time,
    counts_per_state_follow_creations_and_transitions,
);

const WAIT: Duration = Duration::from_secs(5);

/// The time the store under test reads. The memory store reads a manual clock that the case
/// moves; a Redis store stamps with the wall time and enforces deadlines with the server's
/// `TIME`, so there time passes for real (briefly: only to make timestamps distinct).
#[derive(Clone)]
pub(crate) enum Time {
    Manual(Arc<ManualClock>),
    Wall,
}

impl Time {
    fn now(&self) -> Millis {
        match self {
            Time::Manual(clock) => clock.now(),
            Time::Wall => now_millis(),
        }
    }

    /// Lets `by` pass: the manual clock moves, the wall clock is waited for.
    async fn pass(&self, by: Duration) {
        match self {
            Time::Manual(clock) => {
                clock.advance(by);
            }
            Time::Wall => tokio::time::sleep(by).await,
        }
    }

    /// [`sample_intent`] created now by this time.
    fn intent(&self, agent: &str, state: IntentState) -> Intent {
        sample_intent_at(agent, state, self.now())
    }
}

pub(crate) fn sample_intent(agent: &str, state: IntentState) -> Intent {
    sample_intent_at(agent, state, now_millis())
}

fn sample_intent_at(agent: &str, state: IntentState, now: Millis) -> Intent {
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
        receipt: None,
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

async fn created_intents_read_back(store: Arc<dyn Store>, _: Time) {
    let stored = pending(&store).await;
    let read = store.get(&stored.id).await.unwrap().expect("found");
    assert_eq!(read, stored, "the stored intent reads back unchanged");
    assert!(store.get(&IntentId::generate()).await.unwrap().is_none());
    store.ping().await.expect("ping");
}

async fn idempotency_keys_replay_or_conflict_per_agent(store: Arc<dyn Store>, _: Time) {
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

async fn transitions_are_compare_and_set(store: Arc<dyn Store>, _: Time) {
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

async fn racing_deciders_produce_one_winner(store: Arc<dyn Store>, _: Time) {
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

async fn transition_of_a_missing_intent_is_not_found(store: Arc<dyn Store>, _: Time) {
    let ghost = sample_intent("agent-a", IntentState::PendingApproval);
    let next = by_human(&ghost, IntentState::Approved, "alice", "");
    assert!(matches!(
        store.transition(next).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn deadlines_are_due_until_decided(store: Arc<dyn Store>, _: Time) {
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
    _: Time,
) {
    let pending = pending(&store).await;
    let mut watch = store.watch(&pending.id).await.unwrap();
    let first = tokio::time::timeout(WAIT, watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.kind, EventKind::Snapshot);
    // Events carry the decision fields, never the agent's payload or reasoning.
    assert_eq!(first.intent, sentinel::domain::slim(&pending));
    assert_eq!(first.intent.payload, serde_json::Value::Null);
    assert!(first.intent.reasoning.is_empty());

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
    assert_eq!(decided.intent, sentinel::domain::slim(&approved));
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

async fn watch_all_sees_every_event(store: Arc<dyn Store>, _: Time) {
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

async fn list_is_newest_first_filtered_and_paged(store: Arc<dyn Store>, time: Time) {
    let mut ids = Vec::new();
    for n in 0..7 {
        let agent = if n % 2 == 0 { "agent-a" } else { "agent-b" };
        ids.push(
            create(&store, time.intent(agent, IntentState::PendingApproval))
                .await
                .id,
        );
        // Distinct creation milliseconds keep "newest first" unambiguous.
        time.pass(Duration::from_millis(2)).await;
    }
    let newest_first: Vec<IntentId> = ids.iter().rev().cloned().collect();

    let mut listed = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list(
                &Filter::default(),
                Cursor {
                    after: after.as_ref(),
                    limit: 3,
                },
            )
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
    let page = store.list(&only_b, Cursor::first(50)).await.unwrap();
    assert_eq!(page.intents.len(), 3);
    assert!(page.intents.iter().all(|i| i.agent_id == "agent-b"));
    assert!(page.next_after.is_none());

    let approved = Filter {
        states: vec![IntentState::Approved],
        ..Filter::default()
    };
    assert!(store
        .list(&approved, Cursor::first(50))
        .await
        .unwrap()
        .intents
        .is_empty());
}

async fn audit_records_every_attempt(store: Arc<dyn Store>, time: Time) {
    let since = time.now();
    let pending = pending(&store).await;
    let winner = by_human(&pending, IntentState::Approved, "alice", "fine");
    let loser = by_human(&pending, IntentState::Declined, "bob", "no");
    // Records are ordered by their time; distinct milliseconds keep the order unambiguous.
    time.pass(Duration::from_millis(2)).await;
    store.transition(winner).await.unwrap();
    time.pass(Duration::from_millis(2)).await;
    assert!(store.transition(loser).await.is_err());
    time.pass(Duration::from_millis(2)).await;
    store
        .audit(AuditRecord {
            at: time.now(),
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
    let until = time.now() + 1;

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

    // One intent's story: its own records only, oldest first (GetIntentHistory).
    let own: Vec<(String, String)> = store
        .audit_of(&pending.id, pending.created_at, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.event, r.actor))
        .collect();
    let expected = [
        ("created", "agent-a"),
        ("transition", "alice"),
        ("rejected", "bob"),
    ];
    assert_eq!(
        own,
        expected
            .map(|(e, a)| (e.to_string(), a.to_string()))
            .to_vec()
    );
    assert!(store
        .audit_range(until, until + 10_000, 100)
        .await
        .unwrap()
        .is_empty());
}

/// A Redis store on `server` that keeps decided intents for `retention`, under its own key
/// prefix.
async fn short_retention(
    server: &crate::redis_harness::RedisServer,
    prefix: &str,
    retention: Duration,
) -> Arc<dyn Store> {
    use sentinel::store::redis::{RedisOptions, RedisStore};
    let options = RedisOptions {
        prefix: prefix.to_string(),
        retention,
        ..RedisOptions::default()
    };
    let url = sentinel::config::RedisUrl::parse(&server.url()).unwrap();
    Arc::new(RedisStore::connect(&url, options).await.unwrap())
}

/// Redis keeps decided intents for the retention period only: the record expires and the
/// index and audit stream are trimmed by the same scripts that write them.
#[tokio::test]
async fn redis_retention_expires_decided_intents_and_trims_the_index() {
    let server = crate::redis_harness::RedisServer::start().await;
    // Long enough that the 40 creations below fit in it on a loaded machine: the ones that
    // did not would be trimmed from the index themselves.
    let retention = Duration::from_millis(3000);
    let store = short_retention(&server, "retention", retention).await;
    let open = pending(&store).await;
    store
        .transition(by_human(&open, IntentState::Approved, "x", "y"))
        .await
        .unwrap();
    let still_open = pending(&store).await;
    assert!(store.get(&open.id).await.unwrap().is_some());
    // Redis expires the record on its own clock: the retention, then a margin for a loaded
    // machine.
    crate::helpers::eventually(retention + WAIT, "the decided intent to expire", || async {
        store.get(&open.id).await.unwrap().is_none().then_some(())
    })
    .await;
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
    let listed = store
        .list(&Filter::default(), Cursor::first(500))
        .await
        .unwrap();
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
async fn an_overdue_pending_intent_can_only_expire(store: Arc<dyn Store>, time: Time) {
    let mut late = time.intent("agent-a", IntentState::PendingApproval);
    late.expires_at = Some(time.now() - 1_000);
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
            time.now(),
        )
        .unwrap();
    let done = store.transition(expired).await.expect("expiry wins");
    assert_eq!(done.state, IntentState::Expired);
}

/// Creates intents for `agents` × `states` (one each, in that order), a millisecond apart.
async fn mixed(
    store: &Arc<dyn Store>,
    time: &Time,
    agents: &[&str],
    states: &[IntentState],
) -> Vec<Intent> {
    let mut out = Vec::new();
    for agent in agents {
        for state in states {
            let mut i = time.intent(agent, *state);
            if state.is_terminal() {
                i.decided_by = Some(human("bob"));
                i.decided_at = Some(time.now());
            }
            out.push(create(store, i).await);
            time.pass(Duration::from_millis(1)).await;
        }
    }
    out
}

fn ids_newest_first<'a>(intents: impl Iterator<Item = &'a Intent>) -> Vec<IntentId> {
    let mut ids: Vec<IntentId> = intents.map(|i| i.id.clone()).collect();
    ids.sort_by(|a, b| b.cmp(a));
    ids
}

async fn listed(store: &Arc<dyn Store>, filter: &Filter, page: usize) -> Vec<IntentId> {
    let mut out = Vec::new();
    let mut after = None;
    for _ in 0..100 {
        let p = store
            .list(
                filter,
                Cursor {
                    after: after.as_ref(),
                    limit: page,
                },
            )
            .await
            .unwrap();
        assert!(p.intents.len() <= page);
        assert!(
            p.intents.iter().all(|i| filter.matches(i)),
            "only matching intents"
        );
        out.extend(p.intents.iter().map(|i| i.id.clone()));
        match p.next_after {
            Some(next) => after = Some(next),
            None => return out,
        }
    }
    panic!("paging did not end");
}

const ALL_STATES: [IntentState; 3] = [
    IntentState::PendingApproval,
    IntentState::Approved,
    IntentState::Declined,
];

async fn list_by_agent_reads_only_that_agents_intents(store: Arc<dyn Store>, time: Time) {
    let made = mixed(&store, &time, &["ag-1", "ag-2", "ag-3"], &ALL_STATES).await;
    let filter = Filter {
        agent_id: Some("ag-2".into()),
        ..Filter::default()
    };
    assert_eq!(
        listed(&store, &filter, 50).await,
        ids_newest_first(made.iter().filter(|i| i.agent_id == "ag-2"))
    );
    let nobody = Filter {
        agent_id: Some("ag-none".into()),
        ..Filter::default()
    };
    assert!(listed(&store, &nobody, 50).await.is_empty());
}

async fn list_by_state_and_by_agent_and_state(store: Arc<dyn Store>, time: Time) {
    let made = mixed(&store, &time, &["ag-1", "ag-2"], &ALL_STATES).await;
    let pending = Filter {
        states: vec![IntentState::PendingApproval],
        ..Filter::default()
    };
    assert_eq!(
        listed(&store, &pending, 50).await,
        ids_newest_first(
            made.iter()
                .filter(|i| i.state == IntentState::PendingApproval)
        )
    );
    let decided = Filter {
        states: vec![IntentState::Approved, IntentState::Declined],
        ..Filter::default()
    };
    assert_eq!(
        listed(&store, &decided, 50).await,
        ids_newest_first(made.iter().filter(|i| i.is_terminal()))
    );
    let both = Filter {
        agent_id: Some("ag-1".into()),
        states: vec![IntentState::Approved],
        ..Filter::default()
    };
    assert_eq!(
        listed(&store, &both, 50).await,
        ids_newest_first(
            made.iter()
                .filter(|i| i.agent_id == "ag-1" && i.state == IntentState::Approved)
        )
    );
    let expired = Filter {
        agent_id: Some("ag-1".into()),
        states: vec![IntentState::Expired],
        ..Filter::default()
    };
    assert!(listed(&store, &expired, 50).await.is_empty());
}

async fn filtered_lists_page_newest_first(store: Arc<dyn Store>, time: Time) {
    let made = mixed(
        &store,
        &time,
        &["ag-p", "ag-q"],
        &[IntentState::PendingApproval; 7],
    )
    .await;
    for filter in [
        Filter {
            agent_id: Some("ag-p".into()),
            ..Filter::default()
        },
        Filter {
            states: vec![IntentState::PendingApproval],
            ..Filter::default()
        },
        Filter {
            agent_id: Some("ag-q".into()),
            states: vec![IntentState::PendingApproval],
            ..Filter::default()
        },
    ] {
        let expected = ids_newest_first(made.iter().filter(|i| filter.matches(i)));
        for page in [1, 2, 3, 50] {
            assert_eq!(
                listed(&store, &filter, page).await,
                expected,
                "pages of {page} cover every match once, newest first: {filter:?}"
            );
        }
    }
}

async fn a_transition_moves_an_intent_between_state_lists(store: Arc<dyn Store>, time: Time) {
    let open = create(&store, time.intent("ag-m", IntentState::PendingApproval)).await;
    let in_state = |state: IntentState| Filter {
        agent_id: Some("ag-m".into()),
        states: vec![state],
        ..Filter::default()
    };
    let state_only = |state: IntentState| Filter {
        states: vec![state],
        ..Filter::default()
    };
    assert_eq!(
        listed(&store, &in_state(IntentState::PendingApproval), 10).await,
        vec![open.id.clone()]
    );
    let declined = store
        .transition(by_human(&open, IntentState::Declined, "bob", "no"))
        .await
        .unwrap();
    assert!(listed(&store, &in_state(IntentState::PendingApproval), 10)
        .await
        .is_empty());
    assert!(
        !listed(&store, &state_only(IntentState::PendingApproval), 10)
            .await
            .contains(&open.id)
    );
    assert_eq!(
        listed(&store, &in_state(IntentState::Declined), 10).await,
        vec![open.id.clone()]
    );
    assert!(listed(&store, &state_only(IntentState::Declined), 10)
        .await
        .contains(&open.id));
    // The listed intent is the current one, and a lost race moves nothing.
    let page = store
        .list(&in_state(IntentState::Declined), Cursor::first(10))
        .await
        .unwrap();
    assert_eq!(page.intents, vec![declined]);
    assert!(store
        .transition(by_human(&open, IntentState::Approved, "eve", "late"))
        .await
        .is_err());
    assert!(listed(&store, &in_state(IntentState::Approved), 10)
        .await
        .is_empty());
}

async fn index_filters_combine_with_module_action_and_time(store: Arc<dyn Store>, time: Time) {
    let mut made = Vec::new();
    for n in 0..6 {
        let mut i = time.intent("ag-f", IntentState::PendingApproval);
        if n % 2 == 0 {
            i.module = "OpsGuard".into();
            i.action = "DELETE_USER".into();
        }
        made.push(create(&store, i).await);
        time.pass(Duration::from_millis(2)).await;
    }
    let ops = Filter {
        agent_id: Some("ag-f".into()),
        states: vec![IntentState::PendingApproval],
        module: Some("OpsGuard".into()),
        ..Filter::default()
    };
    assert_eq!(
        listed(&store, &ops, 1).await,
        ids_newest_first(made.iter().filter(|i| i.module == "OpsGuard"))
    );
    let action = Filter {
        agent_id: Some("ag-f".into()),
        action: Some("PAY_INVOICE".into()),
        ..Filter::default()
    };
    assert_eq!(
        listed(&store, &action, 2).await,
        ids_newest_first(made.iter().filter(|i| i.action == "PAY_INVOICE"))
    );
    let since = made[3].created_at;
    let recent = Filter {
        states: vec![IntentState::PendingApproval],
        created_after: Some(since),
        ..Filter::default()
    };
    assert_eq!(
        listed(&store, &recent, 2).await,
        ids_newest_first(made.iter().filter(|i| i.created_at >= since))
    );
}

/// Redis drops decided intents after the retention period, and with them every list index
/// entry: the per-state sets are trimmed by later creations, an agent's decided sets expire
/// with their newest record. No index entry is left pointing at a dropped intent.
#[tokio::test]
async fn redis_retention_drops_list_index_entries() {
    let server = crate::redis_harness::RedisServer::start().await;
    let store = short_retention(&server, "indexret", Duration::from_millis(300)).await;
    let old = mixed(
        &store,
        &Time::Wall,
        &["ag-old"],
        &[IntentState::Approved; 5],
    )
    .await;
    let open = create(
        &store,
        sample_intent("ag-old", IntentState::PendingApproval),
    )
    .await;
    let moved = store
        .transition(by_human(&open, IntentState::Declined, "bob", "no"))
        .await
        .unwrap();
    // Redis expires the decided records on its own clock; the index entries outlive them
    // until the creations below trim them.
    crate::helpers::eventually(WAIT, "the decided intents to expire", || async {
        for i in old.iter().chain([&moved]) {
            if store.get(&i.id).await.unwrap().is_some() {
                return None;
            }
        }
        Some(())
    })
    .await;
    // Later creations by another agent trim every bucket's state sets (200 creations reach
    // all 16 buckets but with a chance of about 1 in 25,000).
    for _ in 0..200 {
        create(&store, sample_intent("ag-new", IntentState::Approved)).await;
    }
    let by_agent = Filter {
        agent_id: Some("ag-old".into()),
        ..Filter::default()
    };
    assert!(listed(&store, &by_agent, 50).await.is_empty());
    let approved = Filter {
        states: vec![IntentState::Approved],
        ..Filter::default()
    };
    let still = listed(&store, &approved, 500).await;
    assert!(!still.is_empty(), "the newest creations are listed");
    assert!(old.iter().all(|i| !still.contains(&i.id)));

    let client = ::redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = ::redis::cmd("KEYS")
        .arg("indexret:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    for key in keys
        .iter()
        .filter(|k| k.contains(":st:") || k.contains(":as:"))
    {
        assert!(
            !key.contains("ag-old"),
            "{key}: the old agent's sets are gone"
        );
        for gone in old.iter().chain([&moved]) {
            let rank: Option<i64> = ::redis::cmd("ZRANK")
                .arg(key)
                .arg(gone.id.as_str())
                .query_async(&mut conn)
                .await
                .unwrap();
            assert_eq!(rank, None, "{key} still lists {}", gone.id);
        }
    }
}

async fn counts_per_state_follow_creations_and_transitions(store: Arc<dyn Store>, time: Time) {
    let count = |state| {
        let store = store.clone();
        async move { store.count_in(state).await.expect("count_in") }
    };
    assert_eq!(
        count(IntentState::PendingApproval).await,
        0,
        "an empty store"
    );
    let mut open = Vec::new();
    for agent in ["ag-c1", "ag-c2", "ag-c2"] {
        open.push(create(&store, time.intent(agent, IntentState::PendingApproval)).await);
    }
    create(&store, time.intent("ag-c1", IntentState::Approved)).await;
    assert_eq!(count(IntentState::PendingApproval).await, 3);
    assert_eq!(count(IntentState::Approved).await, 1);
    assert_eq!(count(IntentState::Declined).await, 0);

    store
        .transition(by_human(&open[0], IntentState::Declined, "bob", "no"))
        .await
        .expect("declined");
    // A lost race moves nothing.
    assert!(store
        .transition(by_human(&open[0], IntentState::Approved, "eve", "late"))
        .await
        .is_err());
    assert_eq!(count(IntentState::PendingApproval).await, 2);
    assert_eq!(count(IntentState::Declined).await, 1);
    assert_eq!(count(IntentState::Approved).await, 1);
}
