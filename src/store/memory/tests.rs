use super::*;
use crate::domain::{DecidedBy, DeciderKind, IntentState, RiskScore};

fn intent(state: IntentState, key: Option<&str>, decided_at: Option<Millis>) -> Intent {
    Intent {
        id: IntentId::generate(),
        agent_id: "a".into(),
        action: "X".into(),
        module: String::new(),
        payload: serde_json::json!({}),
        reasoning: String::new(),
        labels: Default::default(),
        idempotency_key: key.map(String::from),
        body_hash: "h".into(),
        state,
        risk_score: RiskScore::MIN,
        reasons: vec![],
        analysis: String::new(),
        decided_by: state
            .is_terminal()
            .then(|| DecidedBy::new(DeciderKind::Policy, "", Channel::Policy)),
        decision_reason: String::new(),
        policy_version: "p".into(),
        version: 1,
        created_at: 0,
        decided_at,
        expires_at: (!state.is_terminal()).then_some(i64::MAX),
        scorer: None,
        trace_parent: None,
        receipt: None,
    }
}

#[tokio::test]
async fn retention_drops_old_decisions_but_never_pending_intents() {
    let store = MemoryStore::with_retention(std::time::Duration::ZERO);
    let pending = intent(IntentState::PendingApproval, None, None);
    store.create(pending.clone()).await.unwrap();
    let keyed = intent(IntentState::Approved, Some("k"), Some(1));
    store.create(keyed.clone()).await.unwrap();
    // Twice the sweep interval per shard on average: every shard sweeps at least once.
    for _ in 0..(SHARDS as u32 * SWEEP_EVERY * 2) {
        store
            .create(intent(IntentState::Declined, None, Some(1)))
            .await
            .unwrap();
    }
    let total: usize = store
        .inner
        .shards
        .iter()
        .map(|s| lock(s).intents.len())
        .sum();
    assert!(total < 70_000, "decided intents are swept: {total} left");
    // The indexes lost exactly the swept intents: every entry names a kept intent, and
    // every kept intent is in its two sets.
    for shard in &store.inner.shards {
        let shard = lock(shard);
        let by_agent = shard.by_agent.iter().flat_map(|(agent, sets)| {
            sets.iter()
                .enumerate()
                .map(move |(i, set)| (Some(agent), i, set))
        });
        let by_state = shard.by_state.iter().enumerate().map(|(i, s)| (None, i, s));
        let mut entries = 0;
        for (agent, i, set) in by_state.chain(by_agent) {
            for id in set {
                entries += 1;
                let e = shard.intents.get(id).expect("no entry for a swept intent");
                assert_eq!(slot(e.intent.state), i);
                assert!(agent.is_none_or(|a| *a == e.intent.agent_id));
            }
        }
        assert_eq!(entries, 2 * shard.intents.len());
    }
    assert!(
        store.get(&pending.id).await.unwrap().is_some(),
        "pending survives"
    );
    assert!(store.get(&keyed.id).await.unwrap().is_none());
    // Its key was freed with it: the same key makes a new intent.
    let again = intent(IntentState::Approved, Some("k"), Some(1));
    assert!(matches!(
        store.create(again).await.unwrap(),
        Created::New(_)
    ));
}
