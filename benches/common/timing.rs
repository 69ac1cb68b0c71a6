//! Timing of concurrent operations: wall time, per-operation latency, one report line.

use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt as _, TryStreamExt as _};

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

pub fn report(what: &str, n: usize, total: Duration, mut each: Vec<Duration>) {
    each.sort();
    println!(
        "{what:<44} {n:>7} ops  {:>9.0} ops/s  p50 {:>7.3} ms  p99 {:>7.3} ms",
        n as f64 / total.as_secs_f64(),
        percentile(&each, 0.50).as_secs_f64() * 1e3,
        percentile(&each, 0.99).as_secs_f64() * 1e3,
    );
}

/// Runs `op` for every item with `concurrency` in flight; returns the wall time and each
/// operation's latency.
pub async fn timed<T, F, Fut>(
    items: Vec<T>,
    concurrency: usize,
    op: F,
) -> anyhow::Result<(Duration, Vec<Duration>)>
where
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let start = Instant::now();
    let each: Vec<Duration> = stream::iter(items)
        .map(|item| {
            let fut = op(item);
            async move {
                let t = Instant::now();
                fut.await?;
                Ok::<_, anyhow::Error>(t.elapsed())
            }
        })
        .buffer_unordered(concurrency)
        .try_collect()
        .await?;
    Ok((start.elapsed(), each))
}
