//! What `sentinel mcp` adds to a tool call: the same policy-approved call (`restart_server`
//! in staging, which the built-in pack approves without a scorer or a human) sent by an rmcp
//! client straight to the upstream over stdio, and through `sentinel mcp` in front of a
//! gateway running in process (memory store). The difference is the proxy's cost: the extra
//! stdio hop, the intent's `SubmitIntent` round trip and the forwarding. A third path sends
//! the same intent with `SubmitIntent` alone (one tonic client, loopback), the part of the
//! added cost that is the gateway's.
//!
//! ```text
//! cargo bench --bench mcp                  # BENCH_CALLS=2000 sequential calls per path
//! ```
//!
//! Calls are sequential (one client, one in flight) so each latency is one call's. The two
//! paths alternate in blocks of `BENCH_BLOCK` calls (default 100), so a change in the
//! machine's load during the run weighs on both alike. Results: docs/BENCHMARKS.md.

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
use sentinel::grpc::convert::json_to_struct;
use sentinel::grpc::pb;
use sentinel::grpc::pb::sentinel_client::SentinelClient;
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

/// `n` calls numbered from `first`, each one's latency appended to `each`.
async fn calls(
    client: &RunningService<RoleClient, ()>,
    n: usize,
    first: usize,
    each: &mut Vec<Duration>,
) -> anyhow::Result<()> {
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
    Ok(())
}

/// `n` `SubmitIntent`s of the intent a proxied call makes, each one's latency appended.
async fn submits(
    client: &mut SentinelClient<tonic::transport::Channel>,
    n: usize,
    first: usize,
    each: &mut Vec<Duration>,
) -> anyhow::Result<()> {
    for i in first..first + n {
        let request = pb::SubmitIntentRequest {
            agent_id: "bench".into(),
            action: "RESTART_SERVER".into(),
            payload: Some(json_to_struct(
                &serde_json::json!({"environment": "staging", "n": i}),
            )),
            reasoning: "MCP tools/call of restart_server on server test-upstream".into(),
            idempotency_key: format!("bench-submit-{i}"),
            ..Default::default()
        };
        let t = Instant::now();
        let intent = client.submit_intent(request).await?.into_inner().intent;
        each.push(t.elapsed());
        anyhow::ensure!(
            intent.is_some_and(|i| i.state == pb::IntentState::Approved as i32),
            "submission {i} was not approved"
        );
    }
    Ok(())
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
    let mut proxy = Command::new(SENTINEL);
    proxy
        .args(["mcp", "--agent", "bench", "--", UPSTREAM])
        .env("SENTINEL_ADDR", &addr)
        .env_remove("SENTINEL_API_KEY")
        .env_remove("SENTINEL_POLICY");
    let proxied = ().serve(TokioChildProcess::new(proxy)?).await?;

    let mut grpc = SentinelClient::connect(addr.clone()).await?;

    let block: usize = env_or("BENCH_BLOCK", 100).max(1);
    let (mut direct_each, mut proxied_each) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let mut submit_each = Vec::with_capacity(n);
    calls(&direct, warmup, 0, &mut Vec::new()).await?;
    calls(&proxied, warmup, 0, &mut Vec::new()).await?;
    submits(&mut grpc, warmup, 0, &mut Vec::new()).await?;
    let mut done = 0;
    while done < n {
        let k = block.min(n - done);
        calls(&direct, k, warmup + done, &mut direct_each).await?;
        calls(&proxied, k, warmup + done, &mut proxied_each).await?;
        submits(&mut grpc, k, warmup + done, &mut submit_each).await?;
        done += k;
    }
    direct.cancel().await?;
    proxied.cancel().await?;
    direct_each.sort();
    proxied_each.sort();
    submit_each.sort();

    line("direct to the upstream (stdio)", &direct_each);
    line("through sentinel mcp (approved)", &proxied_each);
    line("SubmitIntent alone (gRPC)", &submit_each);
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
