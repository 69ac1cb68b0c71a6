//! `ListIntents` latency when the store keeps many decided intents: a selective filter (one
//! agent's pending intents) must read that agent's index, not the retention window.
//!
//! A plain binary (`harness = false`). It starts a `redis-server` on a free loopback port,
//! fills it through the store with `BENCH_FILL` decided intents of `BENCH_AGENTS` agents
//! (`BENCH_FILL_CONCURRENCY` creations in flight on the store's one multiplexed connection),
//! adds 5 pending intents of one more agent, builds the real app in process on port 0, and
//! times `BENCH_LISTS` sequential `ListIntents` calls over gRPC for each filter below.
//!
//! ```text
//! cargo bench --bench list                             # 200,000 decided intents, Redis
//! BENCH_STORE=memory cargo bench --bench list          # the same on the in-memory store
//! BENCH_FILL=20000 BENCH_LISTS=200 cargo bench --bench list
//! ```
//!
//! Results and how to read them: docs/BENCHMARKS.md.

#[allow(dead_code)] // shared helpers; this bench uses some of them
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use common::{env_or, free_port, spawn_redis};
use futures::StreamExt as _;
use sentinel::app::App;
use sentinel::config::Config;
use sentinel::domain::{
    now_millis, Channel, DecidedBy, DeciderKind, Intent, IntentId, IntentState, RiskScore,
};
use sentinel::grpc::pb;
use sentinel::grpc::pb::sentinel_client::SentinelClient;
use sentinel::policy::PolicyPack;
use sentinel::scoring::fallback::FallbackScorer;
use sentinel::store::redis::{RedisOptions, RedisStore};
use sentinel::store::{MemoryStore, Store};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const NEEDLE: &str = "needle-agent";

fn intent(agent: &str, state: IntentState) -> Intent {
    let now = now_millis();
    let decided = state.is_terminal();
    Intent {
        id: IntentId::generate(),
        agent_id: agent.to_string(),
        action: "PAY_INVOICE".into(),
        module: "VaultKeeper".into(),
        payload: serde_json::json!({"amount": 500, "vendor": "AWS"}),
        reasoning: "monthly invoice".into(),
        labels: Default::default(),
        idempotency_key: None,
        body_hash: "bench".into(),
        state,
        risk_score: RiskScore::new(10).unwrap_or(RiskScore::MIN),
        reasons: Vec::new(),
        analysis: "small amount to a trusted vendor".into(),
        decided_by: decided.then(|| DecidedBy::new(DeciderKind::Policy, "", Channel::Policy)),
        decision_reason: String::new(),
        policy_version: "builtin@bench".into(),
        version: 1,
        created_at: now,
        decided_at: decided.then_some(now),
        expires_at: (!decided).then_some(now + 3_600_000),
        scorer: None,
        trace_parent: None,
        receipt: None,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn main() -> anyhow::Result<()> {
    // `cargo test --all-targets` runs this binary without `--bench`: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("list: a benchmark; run it with `cargo bench --bench list`");
        return Ok(());
    }
    let fill: usize = env_or("BENCH_FILL", 200_000);
    let agents: usize = env_or("BENCH_AGENTS", 1_000usize).max(1);
    let in_flight: usize = env_or("BENCH_FILL_CONCURRENCY", 256usize).max(1);
    let lists: usize = env_or("BENCH_LISTS", 500usize).max(1);
    let memory = env_or("BENCH_STORE", "redis".to_string()) == "memory";
    let runtime = tokio::runtime::Runtime::new()?;

    let dir = tempfile::tempdir()?;
    let mut redis = None;
    let url = if memory {
        None
    } else {
        let port = free_port()?;
        redis = Some(spawn_redis(port, dir.path(), "everysec")?);
        std::thread::sleep(Duration::from_millis(300));
        Some(format!("redis://127.0.0.1:{port}"))
    };

    let result = runtime.block_on(async move {
        let store: Arc<dyn Store> = match &url {
            None => Arc::new(MemoryStore::new()),
            Some(url) => Arc::new(
                RedisStore::connect(
                    &sentinel::config::RedisUrl::parse(url)?,
                    RedisOptions {
                        prefix: "benchlist".into(),
                        ..RedisOptions::default()
                    },
                )
                .await?,
            ),
        };

        let started = Instant::now();
        let created: Vec<anyhow::Result<()>> = futures::stream::iter(0..fill)
            .map(|n| {
                let store = store.clone();
                async move {
                    // The needle agent has decided intents too: its pending ones are few
                    // among many of its own.
                    let agent = if n % 1_000 == 0 {
                        NEEDLE.to_string()
                    } else {
                        format!("agent-{}", n % agents)
                    };
                    store
                        .create(intent(&agent, IntentState::Approved))
                        .await
                        .map(|_| ())
                        .map_err(anyhow::Error::from)
                }
            })
            .buffer_unordered(in_flight)
            .collect()
            .await;
        created.into_iter().collect::<anyhow::Result<()>>()?;
        let fill_secs = started.elapsed().as_secs_f64();
        for _ in 0..5 {
            store
                .create(intent(NEEDLE, IntentState::PendingApproval))
                .await?;
        }
        println!(
            "list benchmark: {} store, {fill} decided intents of {agents} agents filled in {fill_secs:.1} s ({:.0}/s), 5 pending of {NEEDLE}; load average {}",
            if memory { "memory" } else { "redis" },
            fill as f64 / fill_secs,
            std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
        );

        let app = App::build_with(
            Config::ephemeral(),
            Arc::new(PolicyPack::builtin()),
            store,
            Arc::new(FallbackScorer),
        )
        .await?;
        let addr = format!("http://{}", app.grpc_addr());
        let shutdown = app.shutdown_token();
        let serving = tokio::spawn(app.run());
        let channel = tonic::transport::Channel::from_shared(addr)?.connect().await?;
        let mut client = SentinelClient::new(channel);

        let pending = pb::IntentState::PendingApproval as i32;
        let needle_total = fill.div_ceil(1_000) + 5;
        let cases: Vec<(&str, pb::ListIntentsRequest, usize)> = vec![
            (
                "agent + PENDING_APPROVAL (the target)",
                pb::ListIntentsRequest {
                    agent_id: NEEDLE.into(),
                    states: vec![pending],
                    ..Default::default()
                },
                5,
            ),
            (
                "PENDING_APPROVAL, any agent",
                pb::ListIntentsRequest {
                    states: vec![pending],
                    ..Default::default()
                },
                5,
            ),
            (
                "agent only, first page (up to 50)",
                pb::ListIntentsRequest {
                    agent_id: NEEDLE.into(),
                    page_size: 50,
                    ..Default::default()
                },
                needle_total.min(50),
            ),
            (
                "no filter, page of 50",
                pb::ListIntentsRequest {
                    page_size: 50,
                    ..Default::default()
                },
                (fill + 5).min(50),
            ),
            (
                "agent + PENDING + module (checked after the index)",
                pb::ListIntentsRequest {
                    agent_id: NEEDLE.into(),
                    states: vec![pending],
                    module: "VaultKeeper".into(),
                    ..Default::default()
                },
                5,
            ),
        ];
        for (name, request, expected) in cases {
            let mut samples = Vec::with_capacity(lists);
            for _ in 0..lists {
                let t = Instant::now();
                let page = client.list_intents(request.clone()).await?.into_inner();
                samples.push(t.elapsed());
                anyhow::ensure!(
                    page.intents.len() == expected,
                    "{name}: expected {expected} intents, got {}",
                    page.intents.len()
                );
            }
            samples.sort();
            println!(
                "  {name:<52} p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  ({lists} calls, {expected} intents each)",
                percentile(&samples, 0.50),
                percentile(&samples, 0.99),
                percentile(&samples, 1.0)
            );
        }
        shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), serving).await;
        anyhow::Ok(())
    });
    if let Some(mut child) = redis.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
    result.context("list benchmark")
}
