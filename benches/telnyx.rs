//! The cost of keeping Telnyx escalations alive across replicas, on a real Redis: arming and
//! disarming call watchdogs, one replica's poll of the watchdog index and of lapsed claims
//! (which every replica runs each second, whatever the load), and the claim heartbeat.
//!
//! A plain binary (`harness = false`) against the Redis `TelnyxState` on a throwaway
//! `redis-server` (loopback, no fsync). Sizes: `BENCH_CALLS` armed watchdogs and held claims
//! (default 10,000), `BENCH_POLLS` polls (default 200), `BENCH_CONCURRENCY` requests in flight
//! (default 64).
//!
//! ```text
//! cargo bench --bench telnyx
//! BENCH_CALLS=1000 BENCH_POLLS=50 cargo bench --bench telnyx   # a smoke run
//! ```
//!
//! Results and how to read them: docs/BENCHMARKS.md.

mod common;

use std::time::{Duration, Instant};

use anyhow::Context as _;
use common::timing::{report, timed};
use common::{cpu_seconds, env_or, free_port, spawn_redis};
use sentinel::domain::{now_millis, IntentId};
use sentinel::escalation::telnyx::state::redis::RedisTelnyxState;
use sentinel::escalation::telnyx::state::{TelnyxState, Watchdog, WatchdogKind};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let calls: usize = env_or("BENCH_CALLS", 10_000);
    let polls: usize = env_or("BENCH_POLLS", 200);
    let concurrency: usize = env_or("BENCH_CONCURRENCY", 64);

    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let mut redis = spawn_redis(port, dir.path(), "no")?;
    let url = sentinel::config::RedisUrl::parse(&format!("redis://127.0.0.1:{port}"))?;
    let mut state = None;
    for _ in 0..100 {
        if let Ok(s) = RedisTelnyxState::connect(&url, Default::default()).await {
            if s.expired_claims(now_millis(), 1).await.is_ok() {
                state = Some(s);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let state = state.context("redis-server did not start")?;
    let state = &state;
    println!("telnyx state on redis: {calls} calls, {polls} polls, {concurrency} in flight");

    let watchdogs: Vec<Watchdog> = (0..calls)
        .map(|n| Watchdog {
            kind: WatchdogKind::Ring,
            intent: IntentId::generate(),
            call_control_id: format!("v3:bench-call-{n}"),
        })
        .collect();
    // Due in an hour: armed but not yet due while the polls run.
    let later = now_millis() + 3_600_000;
    let (total, each) = timed(watchdogs.clone(), concurrency, |w| async move {
        Ok(state.arm_watchdog(&w, later).await?)
    })
    .await?;
    report("arm watchdog", calls, total, each);

    let (total, each) = timed((0..polls).collect(), 1, |_| async move {
        state
            .due_watchdogs(now_millis(), Duration::from_secs(30), 100)
            .await?;
        Ok(())
    })
    .await?;
    report(
        &format!("poll watchdogs ({calls} armed, none due)"),
        polls,
        total,
        each,
    );

    let intents: Vec<IntentId> = watchdogs.iter().map(|w| w.intent.clone()).collect();
    let ttl = Duration::from_secs(15);
    let (total, each) = timed(intents.clone(), concurrency, |i| async move {
        anyhow::ensure!(state.claim(&i, "bench-replica", ttl).await?, "claim lost");
        Ok(())
    })
    .await?;
    report("claim", calls, total, each);
    let (total, each) = timed(intents.clone(), concurrency, |i| async move {
        anyhow::ensure!(
            state.renew_claim(&i, "bench-replica", ttl).await?,
            "renewal lost"
        );
        Ok(())
    })
    .await?;
    report("renew claim (heartbeat)", calls, total, each);
    let (total, each) = timed((0..polls).collect(), 1, |_| async move {
        state.expired_claims(now_millis(), 100).await?;
        Ok(())
    })
    .await?;
    report(
        &format!("poll lapsed claims ({calls} live)"),
        polls,
        total,
        each,
    );

    // Everything falls due at once: leased in batches of 100 until none is left.
    let start = Instant::now();
    let mut fired = 0;
    let mut each = Vec::new();
    loop {
        let t = Instant::now();
        let due = state
            .due_watchdogs(later, Duration::from_secs(30), 100)
            .await?;
        each.push(t.elapsed());
        if due.is_empty() {
            break;
        }
        fired += due.len();
        for w in &due {
            state.disarm_watchdog(w).await?;
        }
    }
    anyhow::ensure!(fired == calls, "{fired} of {calls} watchdogs handed out");
    report(
        "lease + disarm every due watchdog",
        fired,
        start.elapsed(),
        each,
    );

    println!(
        "redis-server CPU over the whole run: {:.2} s",
        cpu_seconds(redis.id())
    );
    let _ = redis.kill();
    let _ = redis.wait();
    Ok(())
}
