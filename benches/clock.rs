//! What reading the time through the injected clock costs on the request path.
//!
//! ```text
//! cargo bench --bench clock
//! BENCH_OPS=5000000 cargo bench --bench clock
//! ```
//!
//! * `now_millis`: the direct wall-clock read the gateway used before: ns per call.
//! * `SystemClock via Arc<dyn Clock>`: the same read through the trait object the gateway and
//!   the memory store hold now: ns per call.
//! * `ManualClock via Arc<dyn Clock>`: the tests' clock (a `watch` channel read): ns per call.
//! * `ManualClock wake`: `BENCH_SLEEPERS` tasks sleep on the manual clock; one `advance` wakes
//!   them all: µs until the last has woken.
//!
//! Results: docs/BENCHMARKS.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sentinel::domain::{now_millis, Clock, ManualClock, SystemClock};

#[allow(dead_code)] // shared helpers; this bench uses one of them
mod common;
use common::env_or;

fn per_call(ops: usize, mut f: impl FnMut() -> i64) -> f64 {
    let start = Instant::now();
    let mut sum = 0i64;
    for _ in 0..ops {
        sum = sum.wrapping_add(std::hint::black_box(f()));
    }
    std::hint::black_box(sum);
    start.elapsed().as_nanos() as f64 / ops as f64
}

fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        println!("clock: a benchmark; run it with `cargo bench --bench clock`");
        return Ok(());
    }
    let ops: usize = env_or("BENCH_OPS", 2_000_000);
    let sleepers: usize = env_or("BENCH_SLEEPERS", 1_000);

    let system: Arc<dyn Clock> = SystemClock::shared();
    let manual_clock = Arc::new(ManualClock::starting_now());
    let manual: Arc<dyn Clock> = manual_clock.clone();
    println!("{ops} reads each");
    println!(
        "now_millis                      {:>8.1} ns",
        per_call(ops, now_millis)
    );
    println!(
        "SystemClock via Arc<dyn Clock>  {:>8.1} ns",
        per_call(ops, || system.now())
    );
    println!(
        "ManualClock via Arc<dyn Clock>  {:>8.1} ns",
        per_call(ops, || manual.now())
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let woke = runtime.block_on(async {
        let start_at = manual_clock.now();
        let mut tasks = Vec::with_capacity(sleepers);
        for _ in 0..sleepers {
            let clock = manual_clock.clone();
            tasks.push(tokio::spawn(async move {
                clock.sleep_until(start_at, start_at + 1_000).await;
            }));
        }
        // Let every task reach its sleep before time moves.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        manual_clock.advance(Duration::from_secs(1));
        for t in tasks {
            t.await?;
        }
        anyhow::Ok(started.elapsed())
    })?;
    println!(
        "ManualClock wake of {sleepers} sleepers {:>8.1} µs",
        woke.as_secs_f64() * 1e6
    );
    Ok(())
}
