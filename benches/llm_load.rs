//! Load benchmark: 1,000 intents in flight at once, every one scored by a fake LLM that takes
//! 300 ms. Reports Sentinel's own added latency (end-to-end SubmitIntent time minus the LLM's
//! 300 ms, and minus what the same load costs when sent straight to the fake) and memory.
//!
//! `cargo bench --bench llm_load` runs the measurement (release build). Under `cargo test
//! --all-targets` (no `--bench` argument) it runs a 20-intent smoke pass and prints nothing,
//! so CI checks that it still works without paying for a load run.
//!
//! A plain `main` (harness = false) rather than criterion: the quantity is a latency
//! distribution under one burst of concurrency, not a per-iteration time, and criterion's
//! repeat-until-stable loop would re-run a 1,000-connection burst hundreds of times.

#[path = "../tests/api/fakes/llm.rs"]
mod fake;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fake::{FakeLlm, Reply};
use sentinel::app::App;
use sentinel::config::{Config, Secret, DEFAULT_LLM_MODEL};
use sentinel::grpc::convert::json_to_struct;
use sentinel::grpc::pb;
use sentinel::grpc::pb::sentinel_client::SentinelClient;
use sentinel::policy::PolicyPack;
use sentinel::scoring::llm::{LlmOptions, LlmScorer};
use sentinel::store::MemoryStore;
use tonic::transport::Channel;

const LLM_LATENCY: Duration = Duration::from_millis(300);
const CHANNELS: usize = 16;

/// The same allocator as the `sentinel` binary, so the numbers are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    // LLM_LOAD_IN_FLIGHT overrides the 1,000 for exploring (e.g. to find the knee).
    let in_flight = std::env::var("LLM_LOAD_IN_FLIGHT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    // LLM_LOAD_ONLY=classifier measures only what the prompt-attack classifier adds.
    if full && std::env::var("LLM_LOAD_ONLY").is_ok_and(|v| v == "classifier") {
        runtime.block_on(classifier_overhead(true));
        return;
    }
    runtime.block_on(run(if full { in_flight } else { 20 }, full));
}

async fn run(in_flight: usize, report: bool) {
    let fake = FakeLlm::start(Reply::Score(20)).await;
    fake.set_delay(LLM_LATENCY);
    fake.stop_recording();

    let timeout = Duration::from_secs(10);
    let mut config = Config::ephemeral();
    config.llm.timeout = timeout;
    let mut options = LlmOptions::new(
        fake.base_url(),
        Secret::new("gsk_bench"),
        DEFAULT_LLM_MODEL,
        timeout,
    );
    // Every intent is distinct anyway; no cache so each one pays for its call.
    options.cache_capacity = 0;
    let scorer = Arc::new(LlmScorer::new(options).expect("scorer"));
    let app = App::build_with(
        config,
        Arc::new(PolicyPack::builtin()),
        Arc::new(MemoryStore::new()),
        scorer,
    )
    .await
    .expect("app");
    let url = format!("http://{}", app.grpc_addr());
    let shutdown = app.shutdown_token();
    let server = tokio::spawn(app.run());

    let mut clients = Vec::new();
    for _ in 0..CHANNELS {
        let channel = Channel::from_shared(url.clone())
            .expect("url")
            .connect()
            .await
            .expect("connect");
        clients.push(SentinelClient::new(channel));
    }
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sentinel_call = |_: usize| {
        let i = next.fetch_add(1, Ordering::Relaxed);
        submit(clients[i % CHANNELS].clone(), i)
    };

    // The same calls straight at the fake: the harness's own cost (loopback HTTP, timer
    // granularity, two CPUs shared with the load generator), to subtract.
    let direct = reqwest::Client::new();
    let direct_url = format!("{}/chat/completions", fake.base_url());
    let direct_call = |i: usize| {
        let (direct, url) = (direct.clone(), direct_url.clone());
        async move {
            let body = serde_json::json!({"model": "m", "response_format": {"type": "json_object"},
                "messages": [{"role": "user", "content": format!("direct {i}")}]});
            let r = direct
                .post(&url)
                .json(&body)
                .send()
                .await
                .expect("fake answers");
            assert!(r.status().is_success());
            r.bytes().await.expect("body");
        }
    };

    // Warm-up: both connection pools hold enough connections, allocator and lazy statics settle.
    burst(in_flight, direct_call).await;
    burst(in_flight, sentinel_call).await;

    // Steady state: arrivals at the rate that keeps `in_flight` intents waiting on the LLM
    // (Little's law: rate = in_flight / 300 ms), for three seconds.
    let rate = in_flight as f64 / LLM_LATENCY.as_secs_f64();
    let duration = if report {
        Duration::from_secs(3)
    } else {
        Duration::from_millis(300)
    };
    let cpu_start = cpu_secs();
    let (steady_base, _) = steady(rate, duration, direct_call).await;
    let cpu_direct = cpu_secs() - cpu_start;
    let rss_before = rss_kib("VmRSS");
    let peak = Arc::new(AtomicU64::new(0));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib("VmRSS"), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let calls_before = fake.count();
    let cpu_start = cpu_secs();
    let (steady_e2e, steady_max) = steady(rate, duration, sentinel_call).await;
    let cpu_sentinel = cpu_secs() - cpu_start;
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.await;
    let steady_calls = fake.count() - calls_before;
    let steady_failed = NOT_SCORED.swap(0, Ordering::Relaxed);

    // The same arrival rate on a policy-decided path (trusted vendor, small amount: approved
    // without the scorer), to separate the LLM layer's cost from the rest of the pipeline.
    let policy_call = |_: usize| {
        let i = next.fetch_add(1, Ordering::Relaxed);
        submit_policy_decided(clients[i % CHANNELS].clone(), i)
    };
    let cpu_start = cpu_secs();
    let (policy_e2e, _) = steady(rate, duration, policy_call).await;
    let cpu_policy = cpu_secs() - cpu_start;

    // Worst case: all of them arrive in the same instant.
    let burst_base = burst(in_flight, direct_call).await;
    let started = Instant::now();
    let burst_e2e = burst(in_flight, sentinel_call).await;
    let burst_wall = started.elapsed();

    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
    if !report {
        return;
    }

    println!(
        "llm_load: fake LLM latency {} ms, {CHANNELS} gRPC channels, {} worker threads",
        LLM_LATENCY.as_millis(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!(
        "steady: {:.0} intents/s for {} s ({} intents), at most {steady_max} in flight at once",
        rate,
        duration.as_secs(),
        steady_e2e.len()
    );
    println!("  LLM calls {steady_calls}, intents not approved by the scorer (timeouts under overload) {steady_failed}");
    print_latency(&steady_e2e, &steady_base);
    let per = |cpu: f64, n: usize| cpu * 1e6 / n.max(1) as f64;
    println!(
        "  CPU per intent (whole process): {:.0} us through Sentinel, {:.0} us direct to the fake; Sentinel's own share {:.0} us",
        per(cpu_sentinel, steady_e2e.len()),
        per(cpu_direct, steady_base.len()),
        per(cpu_sentinel, steady_e2e.len()) - per(cpu_direct, steady_base.len())
    );
    let mut policy_ms: Vec<f64> = policy_e2e
        .iter()
        .map(|d| d.as_secs_f64() * 1000.0)
        .collect();
    policy_ms.sort_by(|a, b| a.total_cmp(b));
    let at = |p: f64| {
        policy_ms[((policy_ms.len() as f64 * p).ceil() as usize).clamp(1, policy_ms.len()) - 1]
    };
    println!(
        "  policy-decided path at the same rate (no LLM): {:.0} us CPU per intent, SubmitIntent p50 {:.2} ms, p99 {:.2} ms; the LLM layer's own CPU share {:.0} us",
        per(cpu_policy, policy_e2e.len()),
        at(0.50),
        at(0.99),
        per(cpu_sentinel, steady_e2e.len()) - per(cpu_direct, steady_base.len()) - per(cpu_policy, policy_e2e.len())
    );
    let peak = peak.load(Ordering::Relaxed).max(rss_before);
    println!(
        "  RSS before {:.1} MiB, peak {:.1} MiB (+{:.1} MiB, {:.1} KiB per intent in flight; the process includes the fake and the load generator)",
        rss_before as f64 / 1024.0,
        peak as f64 / 1024.0,
        (peak - rss_before) as f64 / 1024.0,
        (peak - rss_before) as f64 / steady_max.max(1) as f64
    );
    println!(
        "burst: {in_flight} intents submitted in the same instant, done in {:.0} ms",
        burst_wall.as_secs_f64() * 1000.0
    );
    println!(
        "  intents not approved by the scorer {}",
        NOT_SCORED.load(Ordering::Relaxed)
    );
    print_latency(&burst_e2e, &burst_base);
    classifier_overhead(report).await;
}

/// What the prompt-attack classifier adds: scorer and classifier each answer in 50 ms, and
/// every intent is submitted one after the other (no queueing), with the classifier on and
/// off. The classifier runs in parallel with the two scoring passes, so the difference is the
/// cost of one more concurrent request, not of one more round trip.
async fn classifier_overhead(report: bool) {
    const STAND_IN: Duration = Duration::from_millis(50);
    let n = if report { 300 } else { 5 };
    let mut p50 = Vec::new();
    for guard in [false, true] {
        let fake = FakeLlm::start(Reply::Score(20)).await;
        fake.set_delay(STAND_IN);
        fake.set_guard_delay(STAND_IN);
        fake.stop_recording();
        let timeout = Duration::from_secs(10);
        let mut config = Config::ephemeral();
        config.llm.timeout = timeout;
        let mut options = LlmOptions::new(
            fake.base_url(),
            Secret::new("gsk_bench"),
            DEFAULT_LLM_MODEL,
            timeout,
        );
        options.cache_capacity = 0;
        if !guard {
            options.guard = None;
        }
        let app = App::build_with(
            config,
            Arc::new(PolicyPack::builtin()),
            Arc::new(MemoryStore::new()),
            Arc::new(LlmScorer::new(options).expect("scorer")),
        )
        .await
        .expect("app");
        let url = format!("http://{}", app.grpc_addr());
        let shutdown = app.shutdown_token();
        let server = tokio::spawn(app.run());
        let channel = Channel::from_shared(url)
            .expect("url")
            .connect()
            .await
            .expect("connect");
        let client = SentinelClient::new(channel);
        // Warm the connections to the fake.
        submit_invoice(client.clone(), 1500, 0).await;
        let mut times = Vec::with_capacity(n);
        for i in 0..n {
            let started = Instant::now();
            submit_invoice(client.clone(), 1500 + i % 3000, i + 1).await;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(|a, b| a.total_cmp(b));
        let pct =
            |p: f64| times[((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1];
        if report {
            println!(
                "classifier {}: 50 ms scorer + 50 ms classifier stand-ins, {n} sequential intents: SubmitIntent p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms ({} classifier requests)",
                if guard { "on" } else { "off" },
                pct(0.50),
                pct(0.90),
                pct(0.99),
                fake.guard_count()
            );
        }
        p50.push(pct(0.50));
        shutdown.cancel();
        let _ = server.await;
    }
    if report {
        println!(
            "  added by the classifier at p50: {:.2} ms",
            p50[1] - p50[0]
        );
    }
}

fn print_latency(e2e: &[Duration], base: &[Duration]) {
    let over = |v: &[Duration]| -> Vec<f64> {
        let mut out: Vec<f64> = v
            .iter()
            .map(|d| d.saturating_sub(LLM_LATENCY).as_secs_f64() * 1000.0)
            .collect();
        out.sort_by(|a, b| a.total_cmp(b));
        out
    };
    let (e2e, base) = (over(e2e), over(base));
    let pct = |v: &[f64], p: f64| v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1];
    for (name, v) in [
        ("SubmitIntent - 300 ms", &e2e),
        ("direct to fake - 300 ms", &base),
    ] {
        println!(
            "  {name}: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            pct(v, 0.50),
            pct(v, 0.90),
            pct(v, 0.99),
            v[v.len() - 1]
        );
    }
    println!(
        "  Sentinel's added latency (difference): p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms",
        pct(&e2e, 0.50) - pct(&base, 0.50),
        pct(&e2e, 0.90) - pct(&base, 0.90),
        pct(&e2e, 0.99) - pct(&base, 0.99)
    );
}

/// Open-loop load: starts `rate` tasks per second for `duration`, whatever the earlier ones
/// are doing, and returns each one's latency and the largest number in flight at once.
async fn steady<F, Fut>(rate: f64, duration: Duration, make: F) -> (Vec<Duration>, usize)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let max = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let total = (rate * duration.as_secs_f64()) as usize;
    let tick = Duration::from_millis(5);
    let per_tick = rate * tick.as_secs_f64();
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::with_capacity(total);
    let mut owed = 0.0;
    while tasks.len() < total {
        interval.tick().await;
        owed += per_tick;
        while owed >= 1.0 && tasks.len() < total {
            owed -= 1.0;
            let work = make(tasks.len());
            let (in_flight, max) = (in_flight.clone(), max.clone());
            tasks.push(tokio::spawn(async move {
                let now = in_flight.fetch_add(1, Ordering::Relaxed) + 1;
                max.fetch_max(now, Ordering::Relaxed);
                let started = Instant::now();
                work.await;
                in_flight.fetch_sub(1, Ordering::Relaxed);
                started.elapsed()
            }));
        }
    }
    let mut out = Vec::with_capacity(total);
    for t in tasks {
        out.push(t.await.expect("task"));
    }
    (out, max.load(Ordering::Relaxed))
}

/// Starts `n` tasks at once and returns each one's latency.
async fn burst<F, Fut>(n: usize, make: F) -> Vec<Duration>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let gate = Arc::new(tokio::sync::Barrier::new(n + 1));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let gate = gate.clone();
            let work = make(i);
            tokio::spawn(async move {
                gate.wait().await;
                let started = Instant::now();
                work.await;
                started.elapsed()
            })
        })
        .collect();
    gate.wait().await;
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.expect("task"));
    }
    out
}

/// Submits a distinct invoice of `amount` to AWS; returns its state.
async fn submit_invoice(mut client: SentinelClient<Channel>, amount: usize, i: usize) -> i32 {
    let payload =
        serde_json::json!({"amount": amount, "vendor": "AWS", "invoice_id": format!("INV-{i}")});
    let response = client
        .submit_intent(pb::SubmitIntentRequest {
            agent_id: "bench-bot".into(),
            action: "PAY_INVOICE".into(),
            payload: Some(json_to_struct(&payload)),
            reasoning: "monthly compute bill".into(),
            ..Default::default()
        })
        .await
        .expect("submit");
    response.into_inner().intent.expect("intent").state
}

/// An open invoice (1000 < amount < 5000 to AWS: policy leaves it to the scorer).
async fn submit(client: SentinelClient<Channel>, i: usize) {
    if submit_invoice(client, 1001 + (i % 3998), i).await != pb::IntentState::Approved as i32 {
        // Overload (e.g. a debug build) shows up as scorer timeouts: count them, don't panic.
        NOT_SCORED.fetch_add(1, Ordering::Relaxed);
    }
}

/// A trusted-vendor invoice of at most 1000: approved by policy without the scorer.
async fn submit_policy_decided(client: SentinelClient<Channel>, i: usize) {
    let state = submit_invoice(client, 1 + (i % 999), i).await;
    assert_eq!(state, pb::IntentState::Approved as i32, "policy fast path");
}

static NOT_SCORED: AtomicU64 = AtomicU64::new(0);

/// User + system CPU time of this process, in seconds (from /proc/self/stat, in clock ticks).
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let after = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}
