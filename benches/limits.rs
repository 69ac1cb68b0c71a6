//! What the per-caller limits cost on the request path, load generator included.
//!
//! ```text
//! cargo bench --bench limits                 # in-process limiters, then the Redis limiter
//! BENCH_OPS=200000 BENCH_TASKS=8 cargo bench --bench limits
//! ```
//!
//! * `local rate limiter`: `BENCH_TASKS` tasks each admit `BENCH_OPS` submissions spread over
//!   `BENCH_AGENTS` agents through the `governor` limiter (never refusing): ns per admission.
//! * `watch slots`: the same tasks take and release a watch slot per operation, all for one
//!   principal (the most contended case): ns per acquire + release.
//! * `redis rate limiter`: `BENCH_REDIS_OPS` admissions through the Lua token bucket on a
//!   throwaway redis-server, `BENCH_TASKS` at a time: per-call latency p50 / p99 and rate.
//!
//! Results: docs/BENCHMARKS.md.

mod common;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{cpu_seconds, env_or, free_port, spawn_redis};
use sentinel::auth::Principal;
use sentinel::gateway::limits::{Admission, LocalRateLimiter, RateLimiter, WatchLimiter};
use sentinel::store::redis::ratelimit::RedisRateLimiter;
use sentinel::store::redis::RedisOptions;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        println!("limits: a benchmark; run it with `cargo bench --bench limits`");
        return Ok(());
    }
    let tasks: usize = env_or("BENCH_TASKS", 4);
    let ops: usize = env_or("BENCH_OPS", 200_000);
    let agents: usize = env_or("BENCH_AGENTS", 1_000).max(1);
    let redis_ops: usize = env_or("BENCH_REDIS_OPS", 20_000);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let names: Arc<Vec<String>> = Arc::new((0..agents).map(|i| format!("agent-{i}")).collect());

        let local = Arc::new(LocalRateLimiter::new(NonZeroU32::new(u32::MAX).expect("nonzero")));
        let started = Instant::now();
        let mut handles = Vec::new();
        for t in 0..tasks {
            let (local, names) = (local.clone(), names.clone());
            handles.push(tokio::spawn(async move {
                let mut refused = 0usize;
                for i in 0..ops {
                    let name = &names[(i * 7 + t) % names.len()];
                    if !matches!(local.admit(name).await, Ok(Admission::Allowed)) {
                        refused += 1;
                    }
                }
                refused
            }));
        }
        let mut refused = 0;
        for h in handles {
            refused += h.await?;
        }
        let total = (tasks * ops) as f64;
        println!(
            "local rate limiter: {tasks} tasks x {ops} admissions over {agents} agents: {:.0} ns each, {:.2} M/s, {refused} refused",
            started.elapsed().as_nanos() as f64 / total,
            total / started.elapsed().as_secs_f64() / 1e6
        );

        let watches = WatchLimiter::new(usize::MAX);
        let started = Instant::now();
        let mut handles = Vec::new();
        for _ in 0..tasks {
            let watches = watches.clone();
            handles.push(tokio::spawn(async move {
                let caller = Principal::Operator("dashboard".into());
                for _ in 0..ops {
                    drop(watches.acquire(&caller).expect("unlimited"));
                }
            }));
        }
        for h in handles {
            h.await?;
        }
        println!(
            "watch slots: {tasks} tasks x {ops} acquire + release, one principal: {:.0} ns each",
            started.elapsed().as_nanos() as f64 / total
        );

        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let mut server = spawn_redis(port, dir.path(), "everysec")?;
        let url = sentinel::config::RedisUrl::parse(&format!("redis://127.0.0.1:{port}"))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let limiter = loop {
            let limiter = RedisRateLimiter::connect(
                &url,
                RedisOptions { prefix: "benchlimits".into(), ..Default::default() },
                NonZeroU32::new(1_000_000).expect("nonzero"),
            )
            .await?;
            if limiter.admit("warm-up").await.is_ok() || Instant::now() > deadline {
                break Arc::new(limiter);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let started = Instant::now();
        let mut handles = Vec::new();
        for t in 0..tasks {
            let (limiter, names) = (limiter.clone(), names.clone());
            handles.push(tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(redis_ops / tasks);
                for i in 0..redis_ops / tasks {
                    let name = &names[(i * 7 + t) % names.len()];
                    let at = Instant::now();
                    let ok = limiter.admit(name).await;
                    latencies.push((at.elapsed(), ok.is_ok()));
                }
                latencies
            }));
        }
        let mut latencies = Vec::new();
        for h in handles {
            latencies.extend(h.await?);
        }
        let elapsed = started.elapsed();
        let failed = latencies.iter().filter(|(_, ok)| !ok).count();
        let mut times: Vec<Duration> = latencies.into_iter().map(|(d, _)| d).collect();
        times.sort();
        let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
        println!(
            "redis rate limiter: {} admissions, {tasks} at a time: {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, {failed} failed",
            times.len(),
            times.len() as f64 / elapsed.as_secs_f64(),
            pct(0.5).as_secs_f64() * 1e3,
            pct(0.99).as_secs_f64() * 1e3
        );
        println!(
            "bench process CPU: {:.1} s (redis-server not included)",
            cpu_seconds(std::process::id())
        );
        let _ = server.kill();
        let _ = server.wait();
        anyhow::Ok(())
    })
}
