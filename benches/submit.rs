//! `SubmitIntent` throughput and latency with the Redis store, load generator included.
//!
//! A plain binary (`harness = false`): it starts a `redis-server` on a free loopback port (or
//! uses `SENTINEL_REDIS_URL`), builds the real app in process on port 0, and drives it with
//! `BENCH_CONCURRENCY` gRPC callers over `BENCH_CONNECTIONS` HTTP/2 connections for
//! `BENCH_SECS` seconds after a warm-up. Every request is a policy-decided payment (500 to
//! AWS: approved without the scorer), so the numbers are Sentinel + Redis, not an LLM.
//!
//! ```text
//! cargo bench --bench submit                          # defaults: 10 s, 64 callers, 4 connections
//! BENCH_FSYNC=always cargo bench --bench submit       # AOF fsync on every write
//! BENCH_IDEMPOTENCY=1 cargo bench --bench submit      # every request carries a fresh key
//! BENCH_STORE=memory cargo bench --bench submit       # the same without Redis, for comparison
//! BENCH_METRICS=off cargo bench --bench submit        # SENTINEL_METRICS=off: nothing recorded
//! ```
//!
//! Results and how to read them: docs/BENCHMARKS.md.

mod common;

use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{cpu_seconds, env_or, free_port, spawn_redis};
use sentinel::app::App;
use sentinel::config::Config;
use sentinel::grpc::convert::json_to_struct;
use sentinel::grpc::pb;
use sentinel::grpc::pb::sentinel_client::SentinelClient;
use sentinel::policy::PolicyPack;
use sentinel::scoring::fallback::FallbackScorer;
use sentinel::store::redis::{RedisOptions, RedisStore};
use sentinel::store::{MemoryStore, Store};

/// The same allocator as the `sentinel` binary, so the numbers are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A throwaway redis-server for the run; killed on drop.
struct Server {
    child: Child,
    _dir: tempfile::TempDir,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_redis(fsync: &str) -> anyhow::Result<Server> {
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let child = spawn_redis(port, dir.path(), fsync)?;
    std::thread::sleep(Duration::from_millis(300));
    Ok(Server {
        child,
        _dir: dir,
        port,
    })
}

fn request(n: u64, idempotency: bool) -> pb::SubmitIntentRequest {
    pb::SubmitIntentRequest {
        agent_id: format!("bench-{}", n % 16),
        action: "PAY_INVOICE".into(),
        payload: Some(json_to_struct(
            &serde_json::json!({"amount": 500, "vendor": "AWS", "invoice": n}),
        )),
        reasoning: "monthly bill".into(),
        idempotency_key: if idempotency {
            format!("bench-{n}")
        } else {
            String::new()
        },
        ..Default::default()
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`. `cargo test --all-targets` runs this binary too, without
    // it: a load test does not belong in the test suite, so do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("submit: a benchmark; run it with `cargo bench --bench submit`");
        return Ok(());
    }
    let secs: u64 = env_or("BENCH_SECS", 10);
    let concurrency: usize = env_or("BENCH_CONCURRENCY", 64);
    let connections: usize = env_or("BENCH_CONNECTIONS", 4);
    let fsync: String = env_or("BENCH_FSYNC", "everysec".to_string());
    let idempotency = env_or("BENCH_IDEMPOTENCY", 0u8) == 1;
    let memory = env_or("BENCH_STORE", "redis".to_string()) == "memory";
    let metrics = env_or("BENCH_METRICS", "on".to_string()) != "off";
    let runtime = tokio::runtime::Runtime::new()?;

    let (server, url) = match (memory, std::env::var("SENTINEL_REDIS_URL").ok()) {
        (true, _) => (None, None),
        (false, Some(url)) => (None, Some(url)),
        (false, None) => {
            let s = start_redis(&fsync)?;
            let url = format!("redis://127.0.0.1:{}", s.port);
            (Some(s), Some(url))
        }
    };

    let redis_pid = server.as_ref().map(|s| s.child.id());
    runtime.block_on(async move {
        let store: Arc<dyn Store> = match &url {
            None => Arc::new(MemoryStore::new()),
            Some(url) => Arc::new(RedisStore::connect(&sentinel::config::RedisUrl::parse(url)?, RedisOptions { prefix: format!("bench{}", std::process::id()), ..RedisOptions::default() }).await?),
        };
        let mut config = Config::ephemeral();
        config.metrics = metrics;
        // BENCH_RATE_LIMIT=N: a per-agent submission limit high enough never to refuse, to see
        // what checking it costs (in process; with SENTINEL_REDIS_URL set, through Redis).
        config.agent_rate_limit = std::num::NonZeroU32::new(env_or("BENCH_RATE_LIMIT", 0u32));
        if let Some(url) = url.clone().filter(|_| config.agent_rate_limit.is_some()) {
            config.store.backend = sentinel::config::StoreBackend::Redis(sentinel::config::RedisUrl::parse(&url)?);
        }
        let app = App::build_with(config, Arc::new(PolicyPack::builtin()), store, Arc::new(FallbackScorer)).await?;
        let addr = format!("http://{}", app.grpc_addr());
        let shutdown = app.shutdown_token();
        let serving = tokio::spawn(app.run());

        let mut channels = Vec::new();
        for _ in 0..connections.max(1) {
            channels.push(tonic::transport::Channel::from_shared(addr.clone())?.connect().await?);
        }

        let counter = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let measuring = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let mut callers = Vec::new();
        for c in 0..concurrency {
            let mut client = SentinelClient::new(channels[c % channels.len()].clone());
            let (counter, errors, measuring, stop) = (counter.clone(), errors.clone(), measuring.clone(), stop.clone());
            callers.push(tokio::spawn(async move {
                let mut latencies: Vec<u32> = Vec::with_capacity(200_000);
                while !stop.load(Ordering::Relaxed) {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let started = Instant::now();
                    let ok = match client.submit_intent(request(n, idempotency)).await {
                        Ok(r) => r.into_inner().intent.is_some_and(|i| i.state == pb::IntentState::Approved as i32),
                        Err(_) => false,
                    };
                    if measuring.load(Ordering::Relaxed) {
                        if ok {
                            latencies.push(started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                        } else {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                latencies
            }));
        }

        tokio::time::sleep(Duration::from_secs(2)).await; // warm-up: connections, scripts, allocators
        let me = std::process::id();
        let (cpu_me, cpu_redis) = (cpu_seconds(me), redis_pid.map(cpu_seconds).unwrap_or(0.0));
        measuring.store(true, Ordering::Relaxed);
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs(secs)).await;
        measuring.store(false, Ordering::Relaxed);
        let elapsed = started.elapsed().as_secs_f64();
        let (cpu_me, cpu_redis) = (cpu_seconds(me) - cpu_me, redis_pid.map(cpu_seconds).unwrap_or(0.0) - cpu_redis);
        stop.store(true, Ordering::Relaxed);

        let mut all = Vec::new();
        for caller in callers {
            all.extend(caller.await?);
        }
        all.sort_unstable();
        shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), serving).await;

        println!("store            {}", if memory { "memory".to_string() } else { format!("redis (appendfsync {fsync})") });
        println!("callers          {concurrency} over {connections} connections, idempotency keys: {idempotency}, metrics: {}", if metrics { "on" } else { "off" });
        println!("duration         {elapsed:.1} s");
        println!("approved         {} ({:.0}/s), errors {}", all.len(), all.len() as f64 / elapsed, errors.load(Ordering::Relaxed));
        println!(
            "latency ms       p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
            percentile(&all, 0.50),
            percentile(&all, 0.90),
            percentile(&all, 0.99),
            percentile(&all, 0.999),
            percentile(&all, 1.0)
        );
        println!(
            "cpu              sentinel+loadgen {:.0}% of a core, redis-server {:.0}% (2 cores = 200%)",
            cpu_me / elapsed * 100.0,
            cpu_redis / elapsed * 100.0
        );
        anyhow::Ok(())
    })?;
    drop(server);
    Ok(())
}
