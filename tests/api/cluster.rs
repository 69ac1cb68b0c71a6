//! The same code on a real three-master Redis Cluster: the whole store contract, and two
//! replicas sharing decisions through it.

use std::sync::Arc;
use std::time::Duration;

use sentinel::grpc::pb;
use sentinel::grpc::pb::IntentState;
use sentinel::store::Store;

use crate::helpers::{collect, intent_request, next_event, state};
use crate::redis_harness::{connect, RedisCluster, Replica};

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn the_store_contract_holds_on_a_cluster_and_replicas_share_decisions() {
    let cluster = RedisCluster::start().await;
    let url = cluster.url();

    // Every contract case, each under its own key prefix on the one cluster.
    crate::store_contract::run_every_case(|case| {
        let url = url.clone();
        async move { Arc::new(connect(&url, case).await) as Arc<dyn Store> }
    })
    .await;

    // Intents land on every master: the buckets' hash tags spread over the slots.
    let a = Replica::start(&url, &[]).await;
    let b = Replica::start(&url, &[]).await;
    let (mut on_a, mut on_b) = (a.client().await, b.client().await);
    let mut ids = Vec::new();
    for _ in 0..12 {
        let request = intent_request(
            "cluster-bot",
            "PAY_INVOICE",
            serde_json::json!({"amount": 9000, "vendor": "Shady LLC"}),
        );
        ids.push(
            on_a.submit(request)
                .await
                .unwrap()
                .intent
                .unwrap()
                .intent_id,
        );
    }
    for node in &cluster.nodes {
        let client = redis::Client::open(node.url()).unwrap();
        let mut c = client.get_multiplexed_async_connection().await.unwrap();
        let keys: i64 = redis::cmd("DBSIZE").query_async(&mut c).await.unwrap();
        assert!(keys > 0, "every master holds part of the data");
    }

    // Watch on A, decide on B.
    let mut watch = on_a.watch(&ids[0]).await.unwrap();
    assert_eq!(
        next_event(&mut watch, WAIT).await.unwrap().state,
        IntentState::PendingApproval as i32
    );
    on_b.resolve(&ids[0], false, "declined on B").await.unwrap();
    let events = collect(watch, WAIT).await;
    assert_eq!(
        events.last().map(|e| e.state),
        Some(IntentState::Declined as i32)
    );

    // Listing across every master on the other replica sees all of them, newest first.
    let listed = on_b
        .list(pb::ListIntentsRequest {
            agent_id: "cluster-bot".into(),
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let listed: Vec<String> = listed.intents.iter().map(|i| i.intent_id.clone()).collect();
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(listed, newest_first);
    assert_eq!(
        state(&on_b.get(&ids[1]).await.unwrap()),
        IntentState::PendingApproval
    );
}
