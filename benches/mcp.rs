//! What `sentinel mcp` adds to a tool call: the same policy-approved call (`restart_server`
//! in staging, which the built-in pack approves without a scorer or a human) sent by an rmcp
//! client straight to the upstream over stdio, and through `sentinel mcp` in front of a
//! gateway running in process (memory store). The difference is the proxy's cost: the extra
//! stdio hop, the intent's `SubmitIntent` round trip and the forwarding.
//!
//! ```text
//! cargo bench --bench mcp                  # BENCH_CALLS=2000 sequential calls per path
//! ```
//!
//! Calls are sequential (one client, one in flight) so each latency is one call's. Results:
//! docs/BENCHMARKS.md.

#[allow(dead_code)] // shared helpers; this bench uses some of them
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::env_or;
use common::timing::percentile;
use rmcp::model::CallToolRequestParams;
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::ServiceExt as _;
use sentinel::app::App;
use sentinel::config::Config;
use sentinel::policy::PolicyPack;
use sentinel::scoring::fallback::FallbackScorer;
use sentinel::store::MemoryStore;
use tokio::process::Command;

/// The same allocator as the `sentinel` binary, so the in-process gateway's numbers are the
/// binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SENTINEL: &str = env!("CARGO_BIN_EXE_sentinel");
const UPSTREAM: &str = env!("CARGO_BIN_EXE_sentinel-mcp-test-upstream");

async fn calls(
    client: &RunningService<RoleClient, ()>,
    n: usize,
    first: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut each = Vec::with_capacity(n);
    for i in first..first + n {
        let args = serde_json::json!({"environment": "staging", "n": i});
        let request = CallToolRequestParams::new("restart_server")
            .with_arguments(args.as_object().cloned().unwrap_or_default());
        let t = Instant::now();
        let result = client.call_tool(request).await?;
        each.push(t.elapsed());
        anyhow::ensure!(
            result.is_error != Some(true),
            "call {i} was refused: {result:?}"
        );
    }
    each.sort();
    Ok(each)
}

fn line(what: &str, each: &[Duration]) {
    let ms = |p| percentile(each, p).as_secs_f64() * 1e3;
    println!(
        "{what:<34} n={:<6} p50 {:>7.3} ms  p90 {:>7.3} ms  p99 {:>7.3} ms",
        each.len(),
        ms(0.50),
        ms(0.90),
        ms(0.99)
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = env_or("BENCH_CALLS", 2000);
    let warmup = n / 10;
    let app = App::build_with(
        Config::ephemeral(),
        Arc::new(PolicyPack::builtin()),
        Arc::new(MemoryStore::new()),
        Arc::new(FallbackScorer),
    )
    .await?;
    let addr = format!("http://{}", app.grpc_addr());
    let shutdown = app.shutdown_token();
    let running = tokio::spawn(app.run());

    let direct = ().serve(TokioChildProcess::new(Command::new(UPSTREAM))?).await?;
    calls(&direct, warmup, 0).await?;
    let direct_each = calls(&direct, n, warmup).await?;
    direct.cancel().await?;

    let mut proxy = Command::new(SENTINEL);
    proxy
        .args(["mcp", "--agent", "bench", "--", UPSTREAM])
        .env("SENTINEL_ADDR", &addr)
        .env_remove("SENTINEL_API_KEY")
        .env_remove("SENTINEL_POLICY");
    let proxied = ().serve(TokioChildProcess::new(proxy)?).await?;
    calls(&proxied, warmup, 0).await?;
    let proxied_each = calls(&proxied, n, warmup).await?;
    proxied.cancel().await?;

    line("direct to the upstream (stdio)", &direct_each);
    line("through sentinel mcp (approved)", &proxied_each);
    let added = |p| {
        (percentile(&proxied_each, p).as_secs_f64() - percentile(&direct_each, p).as_secs_f64())
            * 1e3
    };
    println!(
        "added by the proxy: p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms",
        added(0.50),
        added(0.90),
        added(0.99)
    );
    shutdown.cancel();
    running.await??;
    Ok(())
}
