//! What the client adds over a bare gRPC call: `Client::guard` against `SubmitIntent` on the
//! generated stub, for the same policy-approved intent (PAY_INVOICE 420 to AWS), one call at
//! a time, interleaved so both see the same machine. The difference of the percentiles is
//! the client's own cost (request building, idempotency key, the Decision).
//!
//!     cargo bench -p sentinel-client --bench guard              # starts target/{release,debug}/sentinel
//!     SENTINEL_BENCH_TARGET=http://host:50051 cargo bench -p sentinel-client --bench guard
//!
//! `BENCH_N` (default 5000) calls of each kind after `BENCH_WARMUP` (500).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use sentinel_client::proto::SubmitIntentRequest;
use sentinel_client::{json_to_struct, Client, GuardRequest};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn start_gateway() -> (Child, String) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target");
    let binary = std::env::var_os("SENTINEL_BIN")
        .map(PathBuf::from)
        .or_else(|| {
            ["release", "debug"]
                .iter()
                .map(|p| root.join(p).join("sentinel"))
                .find(|p| p.exists())
        })
        .expect("no sentinel binary: `cargo build --release` or set SENTINEL_BENCH_TARGET");
    println!("gateway: {}", binary.display());
    let mut child = Command::new(binary)
        .arg("serve")
        .env_clear()
        .env("SENTINEL_GRPC_ADDR", "127.0.0.1:0")
        .env("SENTINEL_HTTP_ADDR", "127.0.0.1:0")
        .env("SENTINEL_LOG_FORMAT", "json")
        .env("SENTINEL_LOG", "warn,sentinel::app=info")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("sentinel serve starts");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let Ok(record) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if record["fields"]["message"] == "sentinel is serving" {
            let addr = record["fields"]["grpc_addr"].as_str().unwrap().to_string();
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return (child, format!("http://{addr}"));
        }
    }
    panic!("the gateway did not start");
}

fn pct(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n = env_usize("BENCH_N", 5000);
    let warmup = env_usize("BENCH_WARMUP", 500);
    let (_child, target) = match std::env::var("SENTINEL_BENCH_TARGET") {
        Ok(t) => (None, t),
        Err(_) => {
            let (child, t) = start_gateway().await;
            (Some(child), t)
        }
    };
    let client = Client::connect(&target).await.expect("connects");
    let mut raw = client.raw();
    let payload = serde_json::json!({"amount": 420, "vendor": "AWS"});

    let mut bare = Vec::with_capacity(n);
    let mut guarded = Vec::with_capacity(n);
    for i in 0..warmup + n {
        let started = Instant::now();
        let request = client.request(
            SubmitIntentRequest {
                agent_id: "bench-bot".into(),
                action: "PAY_INVOICE".into(),
                payload: Some(json_to_struct(&payload)),
                idempotency_key: format!("bare-{i}-{}", std::process::id()),
                ..Default::default()
            },
            Some(Duration::from_secs(10)),
        );
        let response = raw.submit_intent(request).await.expect("bare submit");
        let took_bare = started.elapsed();
        assert!(response.into_inner().intent.is_some());

        let started = Instant::now();
        let decision = client
            .guard(GuardRequest::new(
                "bench-bot",
                "PAY_INVOICE",
                payload.clone(),
            ))
            .await
            .expect("guard");
        let took_guard = started.elapsed();
        assert!(decision.approved && decision.receipt.is_some());
        if i >= warmup {
            bare.push(took_bare);
            guarded.push(took_guard);
        }
    }
    bare.sort();
    guarded.sort();
    println!("{n} calls each, after {warmup} warm-up calls, interleaved");
    println!("{:<24}{:>10}{:>10}{:>10}", "", "p50 µs", "p90 µs", "p99 µs");
    for (name, samples) in [("bare SubmitIntent", &bare), ("Client::guard", &guarded)] {
        println!(
            "{name:<24}{:>10.1}{:>10.1}{:>10.1}",
            us(pct(samples, 0.5)),
            us(pct(samples, 0.9)),
            us(pct(samples, 0.99))
        );
    }
    println!(
        "{:<24}{:>10.1}{:>10.1}{:>10.1}",
        "added by the client",
        us(pct(&guarded, 0.5)) - us(pct(&bare, 0.5)),
        us(pct(&guarded, 0.9)) - us(pct(&bare, 0.9)),
        us(pct(&guarded, 0.99)) - us(pct(&bare, 0.99))
    );
}
