//! The operator console under load: decision-to-screen latency with many consoles open, the
//! server's memory for those consoles, and the page weight.
//!
//! A plain binary (`harness = false`) against a real `sentinel serve` process (open mode, in
//! memory), so its memory can be read from `/proc/<pid>/status`.
//!
//! 1. *weight*: the inbox page, its stylesheet and its script, in bytes.
//! 2. *memory*: RSS before and after `BENCH_CONSOLES` consoles open their event stream (each
//!    with its own session and HTTP connection, as browsers do); the difference is what the
//!    open consoles cost.
//! 3. *latency*: `BENCH_DECISIONS` times: submit an intent that escalates, wait until every
//!    console has been told it is pending, then `ResolveIntent` it and time, per console,
//!    from just before the call to the moment the console reads the terminal event.
//!
//! ```text
//! cargo bench --bench console                        # 50 consoles, 200 decisions
//! BENCH_CONSOLES=200 BENCH_DECISIONS=50 cargo bench --bench console
//! ```
//!
//! Results: docs/BENCHMARKS.md.

#[allow(dead_code)] // shared helpers; this bench uses some of them
mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use common::{env_or, free_port, rss_kib};
use sentinel::grpc::convert::json_to_struct;
use sentinel::grpc::pb;
use sentinel::grpc::pb::sentinel_client::SentinelClient;
use tokio::sync::mpsc;

/// What a console reports: which intent, whether the event was the terminal one, when read.
type Seen = (String, bool, Instant);

struct Server {
    child: Child,
    http: String,
    grpc: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start() -> anyhow::Result<Server> {
    let dir = tempfile::tempdir()?;
    let (grpc, http) = (free_port()?, free_port()?);
    let log = std::fs::File::create(dir.path().join("sentinel.log"))?;
    let child = Command::new(env!("CARGO_BIN_EXE_sentinel"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SENTINEL_GRPC_ADDR", format!("127.0.0.1:{grpc}"))
        .env("SENTINEL_HTTP_ADDR", format!("127.0.0.1:{http}"))
        .env("SENTINEL_LOG", "warn")
        .env("SENTINEL_APPROVAL_TIMEOUT_SECS", "3600")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("cannot start sentinel serve")?;
    let server = Server {
        child,
        http: format!("http://127.0.0.1:{http}"),
        grpc: format!("http://127.0.0.1:{grpc}"),
        _dir: dir,
    };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !client
        .get(format!("{}/readyz", server.http))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        if Instant::now() > deadline {
            bail!("sentinel did not become ready");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(server)
}

/// A browser's first visit: the page (which starts an open-mode session) and its cookie.
async fn visit(http: &reqwest::Client, base: &str) -> anyhow::Result<(String, usize)> {
    let r = http.get(format!("{base}/console")).send().await?;
    let cookie = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').next())
        .ok_or_else(|| anyhow!("no session cookie"))?
        .to_string();
    Ok((cookie, r.bytes().await?.len()))
}

/// One console: its own connection and session, reading the event stream until it ends.
async fn console(base: String, seen: mpsc::UnboundedSender<Seen>) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    let (cookie, _) = visit(&http, &base).await?;
    let mut r = http
        .get(format!("{base}/console/events"))
        .header("cookie", cookie)
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("events: {}", r.status());
    }
    // The stream is open: report it with an empty id.
    seen.send((String::new(), false, Instant::now()))?;
    let mut buffer = String::new();
    while let Some(chunk) = r.chunk().await? {
        let now = Instant::now();
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            for data in event.lines().filter_map(|l| l.strip_prefix("data:")) {
                let v: serde_json::Value = serde_json::from_str(data.trim())?;
                let id = v["intent_id"].as_str().unwrap_or_default().to_string();
                let terminal = v["terminal"].as_bool().unwrap_or(false);
                seen.send((id, terminal, now))?;
            }
        }
    }
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let consoles: usize = env_or("BENCH_CONSOLES", 50);
    let decisions: usize = env_or("BENCH_DECISIONS", 200);
    let server = start().await?;
    let pid = server.child.id();

    // 1. Page weight.
    let http = reqwest::Client::new();
    let (_, page) = visit(&http, &server.http).await?;
    let mut weight = page;
    for asset in ["console.css", "console.js"] {
        let r = http
            .get(format!("{}/console/assets/{asset}", server.http))
            .send()
            .await?;
        weight += r.bytes().await?.len();
    }
    println!("page weight: {weight} bytes (empty inbox {page} + css + js)");
    // The same with `BENCH_WEIGHT_CARDS` pending intents on the page (they stay pending).
    let cards: usize = env_or("BENCH_WEIGHT_CARDS", 20);
    let mut grpc = SentinelClient::connect(server.grpc.clone()).await?;
    for n in 0..cards {
        grpc.submit_intent(pb::SubmitIntentRequest {
            agent_id: "bench".into(),
            action: "PAY_INVOICE".into(),
            payload: Some(json_to_struct(
                &serde_json::json!({"amount": 7500 + n, "vendor": "Acme Corp", "invoice": "INV-2026-0042"}),
            )),
            reasoning: "Quarterly licence renewal, approved in the budget review.".into(),
            ..Default::default()
        })
        .await?;
    }
    let (_, full) = visit(&http, &server.http).await?;
    println!(
        "page weight with {cards} pending cards: {} bytes (inbox {full} + css + js)",
        weight - page + full
    );

    // 2. Memory of open consoles.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib(pid)?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Seen>();
    for _ in 0..consoles {
        tokio::spawn(console(server.http.clone(), tx.clone()));
    }
    let mut open = 0;
    while open < consoles {
        let (id, _, _) = rx.recv().await.context("a console ended")?;
        if id.is_empty() {
            open += 1;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = rss_kib(pid)?;
    println!(
        "memory: RSS {before} KiB -> {after} KiB with {consoles} consoles open: {} KiB in all, {:.1} KiB each",
        after.saturating_sub(before),
        after.saturating_sub(before) as f64 / consoles as f64
    );

    // 3. Decision-to-screen latency.
    let mut samples = Vec::with_capacity(consoles * decisions);
    for n in 0..decisions {
        let intent = grpc
            .submit_intent(pb::SubmitIntentRequest {
                agent_id: "bench".into(),
                action: "DELETE_USER".into(),
                payload: Some(json_to_struct(
                    &serde_json::json!({"user_id": format!("u-{n}")}),
                )),
                ..Default::default()
            })
            .await?
            .into_inner()
            .intent
            .context("no intent")?;
        let id = intent.intent_id;
        let mut told = 0;
        while told < consoles {
            let (seen, terminal, _) = rx.recv().await.context("a console ended")?;
            if seen == id && !terminal {
                told += 1;
            }
        }
        let started = Instant::now();
        grpc.resolve_intent(pb::ResolveIntentRequest {
            intent_id: id.clone(),
            approve: false,
            ..Default::default()
        })
        .await?;
        let mut done = 0;
        while done < consoles {
            let (seen, terminal, at) = rx.recv().await.context("a console ended")?;
            if seen == id && terminal {
                samples.push(at.duration_since(started).as_secs_f64() * 1000.0);
                done += 1;
            }
        }
    }
    samples.sort_by(f64::total_cmp);
    println!(
        "decision-to-screen over {} deliveries ({consoles} consoles x {decisions} decisions): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        samples.len(),
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        samples.last().copied().unwrap_or(f64::NAN)
    );
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at the end: {}", load.trim());
    Ok(())
}
