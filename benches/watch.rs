//! `WatchDecision` at scale: memory per open stream, and how fast a decision reaches its
//! watchers within one replica and across replicas.
//!
//! A plain binary (`harness = false`). The servers are real `sentinel serve` processes (the
//! release binary Cargo builds for benches, with its own allocator and runtime), so their
//! memory can be read from `/proc/<pid>/status` without the load generator in it. Redis runs
//! as a throwaway `redis-server` on a free loopback port.
//!
//! 1. *streams*: for each store, create pending intents (`DELETE_USER`, which the built-in
//!    pack escalates), read the replica's RSS, open `BENCH_STREAMS` watches over
//!    `BENCH_CONNECTIONS` HTTP/2 connections, wait until every one has its first event, read
//!    RSS again: the difference over the streams is the cost of one stream. Then decline every
//!    intent and check each stream gets exactly one terminal event and then ends. Two rounds,
//!    so the second shows whether the first left anything behind.
//! 2. *latency*: `BENCH_WATCHERS` watchers per intent on replica A, `BENCH_DECISIONS`
//!    `ResolveIntent` calls at `BENCH_RATE` per second on replica B (or on A), time from just
//!    before the call to the terminal event at each watcher.
//! 3. *stall* (only when named in `BENCH_PHASES`): for each store, a fresh server; a
//!    `WatchDecisions` reader on its own connection that never reads; `BENCH_STALL_SUBMITS`
//!    submissions with `BENCH_STALL_PAYLOAD` bytes of payload each; the server's RSS before,
//!    at its peak (sampled every 20 ms) and after the reader goes. The same run without the
//!    reader tells the reader's share from what the store itself keeps.
//!
//! ```text
//! cargo bench --bench watch                          # both phases, full size (about 1 minute)
//! BENCH_QUICK=1 cargo bench --bench watch            # a smoke run (about 20 s)
//! BENCH_PHASES=streams BENCH_STREAMS=20000 cargo bench --bench watch
//! BENCH_WATCHERS_PER_INTENT=10 cargo bench --bench watch
//! BENCH_PHASES=stall cargo bench --bench watch      # a stalled WatchDecisions reader
//! ```
//!
//! Results and how to read them: docs/BENCHMARKS.md.

mod common;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use common::{cpu_seconds, env_or, free_port, rss_kib, spawn_redis};
use futures::StreamExt as _;
use sentinel::grpc::convert::json_to_struct;
use sentinel::grpc::pb;
use sentinel::grpc::pb::sentinel_client::SentinelClient;
use tokio::task::JoinSet;
use tonic::transport::Channel;

type Client = SentinelClient<Channel>;

/// The servers are `sentinel serve` processes with their own allocator; the load generator
/// uses the same one as the other benches.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Settings {
    phases: String,
    stores: String,
    streams: usize,
    per_intent: usize,
    rounds: usize,
    connections: usize,
    decisions: usize,
    watchers: usize,
    rate: f64,
    latency_modes: String,
    /// Bounds every wait of a phase: nothing here can hang.
    timeout: Duration,
    server_log: String,
    /// Watchers waiting for their first event at once.
    opening: usize,
    stall_submits: usize,
    stall_payload: usize,
}

impl Settings {
    fn from_env() -> Settings {
        let quick = env_or("BENCH_QUICK", 0u8) == 1;
        Settings {
            phases: env_or("BENCH_PHASES", "streams,latency".to_string()),
            stores: env_or("BENCH_STORES", "memory,redis".to_string()),
            streams: env_or("BENCH_STREAMS", if quick { 1_000 } else { 10_000 }),
            per_intent: env_or("BENCH_WATCHERS_PER_INTENT", 1usize).max(1),
            rounds: env_or("BENCH_ROUNDS", if quick { 1 } else { 2 }),
            connections: env_or("BENCH_CONNECTIONS", 8usize).max(1),
            decisions: env_or("BENCH_DECISIONS", if quick { 200 } else { 2_000 }),
            watchers: env_or("BENCH_WATCHERS", if quick { 2 } else { 4 }).max(1),
            rate: env_or("BENCH_RATE", 200.0f64).clamp(1.0, 10_000.0),
            latency_modes: env_or(
                "BENCH_LATENCY_MODES",
                "memory-same,redis-same,redis-cross".to_string(),
            ),
            timeout: Duration::from_secs(env_or("BENCH_TIMEOUT_SECS", 180)),
            server_log: env_or("BENCH_SERVER_LOG", "info".to_string()),
            opening: env_or("BENCH_OPENING", 256),
            stall_submits: env_or("BENCH_STALL_SUBMITS", if quick { 2_000 } else { 8_000 }),
            stall_payload: env_or("BENCH_STALL_PAYLOAD", 10_000usize).min(16 * 1024),
        }
    }
}

/// A child process killed on drop, with a scratch directory for its files.
struct Proc {
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

async fn start_redis() -> anyhow::Result<(Proc, String)> {
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let child = spawn_redis(port, dir.path(), "everysec")?;
    let proc = Proc { child, dir };
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if Instant::now() > deadline {
            bail!("redis-server did not start listening on {port}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok((proc, format!("redis://127.0.0.1:{port}")))
}

/// One `sentinel serve` process.
struct Replica {
    proc: Proc,
    grpc: String,
}

impl Replica {
    async fn start(redis_url: Option<&str>, log_filter: &str) -> anyhow::Result<Replica> {
        let dir = tempfile::tempdir()?;
        let (grpc, http) = (free_port()?, free_port()?);
        let log = std::fs::File::create(dir.path().join("sentinel.log"))?;
        let mut command = Command::new(env!("CARGO_BIN_EXE_sentinel"));
        command
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("SENTINEL_GRPC_ADDR", format!("127.0.0.1:{grpc}"))
            .env("SENTINEL_HTTP_ADDR", format!("127.0.0.1:{http}"))
            .env("SENTINEL_LOG", log_filter)
            // Longer than any phase: nothing may expire while it is being watched.
            .env("SENTINEL_APPROVAL_TIMEOUT_SECS", "3600")
            // Every stream is opened by the same (open-mode) principal.
            .env("SENTINEL_MAX_WATCHES_PER_AGENT", "1000000")
            .stdout(Stdio::null())
            .stderr(log);
        // Allocator tuning (for example MIMALLOC_PURGE_DELAY=0) reaches the server.
        command.envs(std::env::vars().filter(|(k, _)| k.starts_with("MIMALLOC_")));
        if let Some(url) = redis_url {
            command.env("SENTINEL_REDIS_URL", url);
        }
        let child = command.spawn().context("cannot start sentinel serve")?;
        let replica = Replica {
            proc: Proc { child, dir },
            grpc: format!("http://127.0.0.1:{grpc}"),
        };
        let http_client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = http_client
                .get(format!("http://127.0.0.1:{http}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return Ok(replica);
            }
            if Instant::now() > deadline {
                bail!("sentinel did not become ready:\n{}", replica.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.proc.dir.path().join("sentinel.log")).unwrap_or_default()
    }

    /// `BENCH_CONNECTIONS` separate HTTP/2 connections (a tonic `Channel` is one connection).
    async fn clients(&self, n: usize) -> anyhow::Result<Vec<Client>> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let channel = Channel::from_shared(self.grpc.clone())?.connect().await?;
            out.push(SentinelClient::new(channel));
        }
        Ok(out)
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Lets RSS settle (allocator and kernel bookkeeping) before it is read.
async fn settled_rss(pid: u32) -> anyhow::Result<u64> {
    tokio::time::sleep(Duration::from_secs(2)).await;
    rss_kib(pid)
}

/// Submits `count` escalated intents, 64 at a time; every one must be pending.
async fn create_pending(clients: &[Client], count: usize) -> anyhow::Result<Vec<String>> {
    let clients = clients.to_vec();
    let ids: Vec<anyhow::Result<String>> = futures::stream::iter(0..count)
        .map(|n| {
            let mut client = clients[n % clients.len()].clone();
            async move {
                let request = pb::SubmitIntentRequest {
                    agent_id: format!("bench-watch-{}", n % 16),
                    action: "DELETE_USER".into(),
                    payload: Some(json_to_struct(
                        &serde_json::json!({"user_id": format!("u-{n}")}),
                    )),
                    reasoning: "offboarding".into(),
                    ..Default::default()
                };
                let intent = client
                    .submit_intent(request)
                    .await?
                    .into_inner()
                    .intent
                    .ok_or_else(|| anyhow!("SubmitIntent answered without an intent"))?;
                if intent.state != pb::IntentState::PendingApproval as i32 {
                    bail!("DELETE_USER was not escalated: state {}", intent.state);
                }
                Ok(intent.intent_id)
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    ids.into_iter().collect()
}

/// What one watcher saw.
#[derive(Default)]
struct Seen {
    first: bool,
    terminal_at: Option<Instant>,
    terminals: usize,
    /// The server ended the stream cleanly after the terminal event.
    closed: bool,
    error: Option<String>,
}

/// Opens a watch, reports its first event, then reads until the stream ends or `deadline`.
async fn watch(
    mut client: Client,
    id: String,
    opened: Arc<AtomicUsize>,
    opening: tokio::sync::OwnedSemaphorePermit,
    deadline: tokio::time::Instant,
) -> Seen {
    let mut opening = Some(opening);
    let mut seen = Seen::default();
    let call = client.watch_decision(pb::WatchDecisionRequest { intent_id: id });
    let mut stream = match tokio::time::timeout_at(deadline, call).await {
        Ok(Ok(r)) => r.into_inner(),
        Ok(Err(status)) => {
            seen.error = Some(format!("WatchDecision: {status}"));
            return seen;
        }
        Err(_) => {
            seen.error = Some("WatchDecision did not answer".into());
            return seen;
        }
    };
    // A pending intent has a handful of events at most; the bound only guards the loop.
    for _ in 0..64 {
        match tokio::time::timeout_at(deadline, stream.message()).await {
            Ok(Ok(Some(event))) => {
                if !seen.first {
                    seen.first = true;
                    opened.fetch_add(1, Ordering::Relaxed);
                    opening.take();
                    if event.state != pb::IntentState::PendingApproval as i32 {
                        seen.error = Some(format!("first event in state {}", event.state));
                    }
                }
                if event.terminal {
                    seen.terminals += 1;
                    seen.terminal_at.get_or_insert_with(Instant::now);
                }
            }
            Ok(Ok(None)) => {
                seen.closed = seen.terminals > 0;
                return seen;
            }
            Ok(Err(status)) => {
                seen.error = Some(format!("stream failed: {status}"));
                return seen;
            }
            Err(_) => {
                seen.error = Some("stream still open at the deadline".into());
                return seen;
            }
        }
    }
    seen.error = Some("more than 64 events on one intent".into());
    seen
}

/// Opens `per_intent` watchers on every intent, spread over the clients. Returns when every
/// watcher has its first event (or at the deadline), with the watcher tasks still running.
async fn open_watchers(
    clients: &[Client],
    ids: &[String],
    per_intent: usize,
    max_opening: usize,
    deadline: tokio::time::Instant,
) -> anyhow::Result<(JoinSet<(usize, Seen)>, Duration)> {
    let opened = Arc::new(AtomicUsize::new(0));
    let opening = Arc::new(tokio::sync::Semaphore::new(max_opening.max(1)));
    let mut tasks = JoinSet::new();
    let started = Instant::now();
    let total = ids.len() * per_intent;
    for (i, id) in ids.iter().enumerate() {
        for w in 0..per_intent {
            let client = clients[(i * per_intent + w) % clients.len()].clone();
            let (id, opened) = (id.clone(), opened.clone());
            // Watchers arrive over time in real life: at most `max_opening` wait for their
            // first event at once, so the server's transient buffers for opening a stream
            // (request decoding, headers) are not all alive together and counted as if
            // they were part of every open stream.
            let permit = tokio::time::timeout_at(deadline, opening.clone().acquire_owned())
                .await
                .map_err(|_| anyhow!("watchers still opening at the phase deadline"))??;
            tasks.spawn(async move { (i, watch(client, id, opened, permit, deadline).await) });
        }
    }
    while opened.load(Ordering::Relaxed) < total {
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "only {} of {total} watchers got their first event in time",
                opened.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok((tasks, started.elapsed()))
}

async fn resolve(client: &mut Client, id: String) -> anyhow::Result<()> {
    let intent = client
        .resolve_intent(pb::ResolveIntentRequest {
            intent_id: id,
            approve: false,
            reason: "benchmark".into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .intent
        .ok_or_else(|| anyhow!("ResolveIntent answered without an intent"))?;
    if intent.state != pb::IntentState::Declined as i32 {
        bail!("resolved intent is in state {}", intent.state);
    }
    Ok(())
}

/// Waits for every watcher and checks each got exactly one terminal event, then an end.
async fn finish_watchers(
    mut tasks: JoinSet<(usize, Seen)>,
    expected: usize,
) -> anyhow::Result<Vec<(usize, Seen)>> {
    let mut all = Vec::with_capacity(expected);
    while let Some(done) = tasks.join_next().await {
        all.push(done?);
    }
    let terminal = all.iter().filter(|(_, s)| s.terminals == 1).count();
    let closed = all.iter().filter(|(_, s)| s.closed).count();
    let errors: Vec<&String> = all.iter().filter_map(|(_, s)| s.error.as_ref()).collect();
    println!(
        "  terminal events {terminal} of {expected}; streams ended after it {closed}; errors {}",
        errors.len()
    );
    if let Some(e) = errors.first() {
        println!("  first error: {e}");
    }
    if terminal != expected || closed != expected || !errors.is_empty() {
        bail!("not every watcher saw exactly one terminal event and then the end of its stream");
    }
    Ok(all)
}

fn kib(v: u64) -> String {
    if v >= 10 * 1024 {
        format!("{:.1} MiB", v as f64 / 1024.0)
    } else {
        format!("{v} KiB")
    }
}

async fn streams_phase(s: &Settings, store: &str) -> anyhow::Result<()> {
    let redis = match store {
        "memory" => None,
        "redis" => Some(start_redis().await?),
        other => bail!("BENCH_STORES: unknown store {other:?} (memory, redis)"),
    };
    let replica = Replica::start(redis.as_ref().map(|(_, u)| u.as_str()), &s.server_log).await?;
    let clients = replica.clients(s.connections).await?;
    let pid = replica.proc.pid();
    let intents = s.streams.div_ceil(s.per_intent);
    let streams = intents * s.per_intent;
    println!(
        "\n== streams: {store} store, {streams} streams ({intents} intents x {} watchers) over {} connections; load average {}",
        s.per_intent,
        s.connections,
        load_average()
    );
    println!("  sentinel RSS at start {}", kib(rss_kib(pid)?));
    for round in 1..=s.rounds {
        let deadline = tokio::time::Instant::now() + s.timeout;
        let created = Instant::now();
        let ids = create_pending(&clients, intents).await?;
        let create_secs = created.elapsed().as_secs_f64();
        let before = settled_rss(pid).await?;
        let cpu = cpu_seconds(pid);
        let (tasks, open_time) =
            open_watchers(&clients, &ids, s.per_intent, s.opening, deadline).await?;
        let open_cpu = cpu_seconds(pid) - cpu;
        let after = settled_rss(pid).await?;
        let grown = after.saturating_sub(before);
        println!(
            "  round {round}: {intents} intents created in {create_secs:.1} s; RSS before watches {}",
            kib(before)
        );
        println!(
            "  round {round}: {streams} streams open, all with their first event, in {:.2} s ({:.0} us of server CPU each)",
            open_time.as_secs_f64(),
            open_cpu / streams as f64 * 1e6
        );
        println!(
            "  round {round}: RSS with the streams open {} (+{}): {:.2} KiB per stream",
            kib(after),
            kib(grown),
            grown as f64 / streams as f64
        );
        let resolved = Instant::now();
        let results: Vec<anyhow::Result<()>> = futures::stream::iter(ids.into_iter().enumerate())
            .map(|(n, id)| {
                let mut client = clients[n % clients.len()].clone();
                async move { resolve(&mut client, id).await }
            })
            .buffer_unordered(64)
            .collect()
            .await;
        results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
        let seen = tokio::time::timeout_at(deadline, finish_watchers(tasks, streams))
            .await
            .map_err(|_| anyhow!("watchers still running at the phase deadline"))??;
        drop(seen);
        println!(
            "  round {round}: all {intents} intents declined and all streams ended in {:.2} s",
            resolved.elapsed().as_secs_f64()
        );
        println!(
            "  round {round}: RSS after the streams ended {}",
            kib(settled_rss(pid).await?)
        );
    }
    if let Some((redis, _)) = &redis {
        println!("  redis-server RSS {}", kib(rss_kib(redis.pid())?));
    }
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn summary(label: &str, mut samples: Vec<Duration>) {
    samples.sort_unstable();
    println!(
        "  {label:<24} n {:>6}  p50 {:>6.2} ms  p90 {:>6.2} ms  p99 {:>6.2} ms  max {:>7.2} ms",
        samples.len(),
        percentile(&samples, 0.50),
        percentile(&samples, 0.90),
        percentile(&samples, 0.99),
        percentile(&samples, 1.0)
    );
}

async fn latency_phase(s: &Settings, mode: &str) -> anyhow::Result<()> {
    let (redis, cross) = match mode {
        "memory-same" => (None, false),
        "redis-same" => (Some(start_redis().await?), false),
        "redis-cross" => (Some(start_redis().await?), true),
        other => bail!(
            "BENCH_LATENCY_MODES: unknown mode {other:?} (memory-same, redis-same, redis-cross)"
        ),
    };
    let url = redis.as_ref().map(|(_, u)| u.as_str());
    let a = Replica::start(url, &s.server_log).await?;
    let b = match cross {
        true => Some(Replica::start(url, &s.server_log).await?),
        false => None,
    };
    let watch_clients = a.clients(s.connections).await?;
    let resolver = b.as_ref().unwrap_or(&a);
    let resolve_clients = resolver.clients(s.connections.min(4)).await?;
    println!(
        "\n== latency: {mode}: {} decisions at {}/s, {} watchers each on replica A, resolved on replica {}; load average {}",
        s.decisions,
        s.rate,
        s.watchers,
        if cross { "B" } else { "A" },
        load_average()
    );
    let deadline = tokio::time::Instant::now() + s.timeout;
    let ids = create_pending(&watch_clients, s.decisions).await?;
    let (watchers, _) =
        open_watchers(&watch_clients, &ids, s.watchers, s.opening, deadline).await?;

    let pids: Vec<u32> = [Some(&a), b.as_ref()]
        .into_iter()
        .flatten()
        .map(|r| r.proc.pid())
        .chain(redis.as_ref().map(|(p, _)| p.pid()))
        .collect();
    let cpu_before: Vec<f64> = pids.iter().map(|p| cpu_seconds(*p)).collect();
    let period = Duration::from_secs_f64(1.0 / s.rate);
    let started = tokio::time::Instant::now();
    let mut resolves = JoinSet::new();
    for (i, id) in ids.iter().enumerate() {
        tokio::time::sleep_until(started + period * i as u32).await;
        let mut client = resolve_clients[i % resolve_clients.len()].clone();
        let id = id.clone();
        // Open loop: a slow resolve does not delay the next one.
        resolves.spawn(async move {
            let at = Instant::now();
            let outcome = resolve(&mut client, id).await;
            (i, at, at.elapsed(), outcome)
        });
    }
    let mut sent_at = HashMap::with_capacity(ids.len());
    let mut rpc = Vec::with_capacity(ids.len());
    while let Some(done) = resolves.join_next().await {
        let (i, at, took, outcome) = done?;
        outcome?;
        sent_at.insert(i, at);
        rpc.push(took);
    }
    let seen = tokio::time::timeout_at(deadline, finish_watchers(watchers, ids.len() * s.watchers))
        .await
        .map_err(|_| anyhow!("watchers still running at the phase deadline"))??;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu: Vec<f64> = pids
        .iter()
        .zip(&cpu_before)
        .map(|(p, before)| (cpu_seconds(*p) - before) / elapsed * 100.0)
        .collect();

    let mut reach = Vec::with_capacity(seen.len());
    let mut last_per_decision: HashMap<usize, Duration> = HashMap::new();
    for (i, s) in &seen {
        if let (Some(arrived), Some(sent)) = (s.terminal_at, sent_at.get(i)) {
            let took = arrived.saturating_duration_since(*sent);
            reach.push(took);
            let last = last_per_decision.entry(*i).or_default();
            *last = (*last).max(took);
        }
    }
    summary("ResolveIntent call", rpc);
    summary("decision -> each watcher", reach);
    summary(
        "decision -> last watcher",
        last_per_decision.into_values().collect(),
    );
    let names = [
        "replica A",
        if cross { "replica B" } else { "redis" },
        "redis",
    ];
    let cpu_line: Vec<String> = cpu
        .iter()
        .zip(names)
        .map(|(c, n)| format!("{n} {c:.0}%"))
        .collect();
    println!(
        "  cpu over {elapsed:.1} s: {} (2 cores = 200%)",
        cpu_line.join(", ")
    );
    Ok(())
}

/// Highest RSS (KiB) of `pid` seen until `stop` fires, sampled every 20 ms.
fn rss_sampler(
    pid: u32,
    stop: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut peak = 0;
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        loop {
            tokio::select! {
                _ = stop.cancelled() => return peak,
                _ = tick.tick() => peak = peak.max(rss_kib(pid).unwrap_or(0)),
            }
        }
    })
}

/// `count` policy-approved submissions carrying `payload_bytes` of payload, 32 in flight.
async fn submit_with_payload(
    clients: &[Client],
    count: usize,
    payload_bytes: usize,
    tag: &str,
) -> anyhow::Result<()> {
    let note = "x".repeat(payload_bytes);
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(0..count)
        .map(|n| {
            let mut client = clients[n % clients.len()].clone();
            let payload = serde_json::json!({"amount": 5, "vendor": "AWS", "note": note});
            let agent = format!("bench-{tag}-{}", n % 16);
            async move {
                let request = pb::SubmitIntentRequest {
                    agent_id: agent,
                    action: "PAY_INVOICE".into(),
                    payload: Some(json_to_struct(&payload)),
                    reasoning: "r".repeat(200),
                    ..Default::default()
                };
                client.submit_intent(request).await?;
                Ok(())
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    results.into_iter().collect()
}

async fn stall_phase(s: &Settings, store: &str, stalled: bool) -> anyhow::Result<()> {
    let redis = match store {
        "redis" => Some(start_redis().await?),
        _ => None,
    };
    let replica = Replica::start(redis.as_ref().map(|r| r.1.as_str()), &s.server_log).await?;
    let pid = replica.proc.pid();
    let clients = replica.clients(4).await?;
    // Warm the allocator, the connections and the store's scripts with the same shape.
    submit_with_payload(&clients, 500, s.stall_payload, "warm").await?;
    let before = settled_rss(pid).await?;
    let mut reader = None;
    if stalled {
        // Its own connection: only this stream stops reading.
        let channel = Channel::from_shared(replica.grpc.clone())?
            .connect()
            .await?;
        let mut client = SentinelClient::new(channel);
        let stream = client
            .watch_decisions(pb::WatchDecisionsRequest::default())
            .await?
            .into_inner();
        reader = Some((client, stream));
    }
    let stop = tokio_util::sync::CancellationToken::new();
    let sampler = rss_sampler(pid, stop.clone());
    let started = Instant::now();
    tokio::time::timeout(
        s.timeout,
        submit_with_payload(&clients, s.stall_submits, s.stall_payload, "stall"),
    )
    .await
    .context("submissions did not finish in time")??;
    let elapsed = started.elapsed();
    let at_end = settled_rss(pid).await?;
    stop.cancel();
    let peak = sampler.await?.max(at_end);
    let mut outcome = "no reader".to_string();
    if let Some((client, mut stream)) = reader.take() {
        // What the reader finds when it reads again: what was in flight, then the end.
        let mut delivered = 0u64;
        outcome = loop {
            match tokio::time::timeout(Duration::from_secs(10), stream.message()).await {
                Ok(Ok(Some(_))) => delivered += 1,
                Ok(Ok(None)) => break format!("ended cleanly after {delivered} events"),
                Ok(Err(status)) => break format!("{:?} after {delivered} events", status.code()),
                Err(_) => break format!("still open after {delivered} events"),
            }
        };
        drop(stream);
        drop(client);
    }
    let after = settled_rss(pid).await?;
    println!(
        "\n[stall: {store}, {}] {} submissions of {} B payload in {:.1} s ({:.0}/s)",
        if stalled {
            "stalled WatchDecisions reader"
        } else {
            "no reader"
        },
        s.stall_submits,
        s.stall_payload,
        elapsed.as_secs_f64(),
        s.stall_submits as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  server RSS: before {}, peak {} (+{}), after the reader went {} (+{})",
        kib(before),
        kib(peak),
        kib(peak.saturating_sub(before)),
        kib(after),
        kib(after.saturating_sub(before))
    );
    println!("  reader: {outcome}; load average {}", load_average());
    Ok(())
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`. `cargo test --all-targets` runs this binary too, without
    // it: a load test does not belong in the test suite, so do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("watch: a benchmark; run it with `cargo bench --bench watch`");
        return Ok(());
    }
    let settings = Settings::from_env();
    let runtime = tokio::runtime::Runtime::new()?;
    let run = async {
        println!(
            "watch benchmark: load average at start {}; sentinel = {}",
            load_average(),
            env!("CARGO_BIN_EXE_sentinel")
        );
        // What the memory store's per-intent channel holds in each of its 64 slots.
        println!(
            "size_of DecisionEvent {} bytes, Intent {} bytes",
            std::mem::size_of::<sentinel::domain::DecisionEvent>(),
            std::mem::size_of::<sentinel::domain::Intent>()
        );
        if settings.phases.split(',').any(|p| p.trim() == "streams") {
            for store in settings.stores.split(',').map(str::trim) {
                streams_phase(&settings, store).await?;
            }
        }
        if settings.phases.split(',').any(|p| p.trim() == "stall") {
            for store in settings.stores.split(',').map(str::trim) {
                for stalled in [false, true] {
                    stall_phase(&settings, store, stalled).await?;
                }
            }
        }
        if settings.phases.split(',').any(|p| p.trim() == "latency") {
            for mode in settings.latency_modes.split(',').map(str::trim) {
                latency_phase(&settings, mode).await?;
            }
        }
        println!("\nload average at the end {}", load_average());
        anyhow::Ok(())
    };
    runtime.block_on(async {
        // On Ctrl-C, drop the run so every server and redis-server it started is killed.
        tokio::select! {
            done = run => done,
            _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
        }
    })?;
    // Leave no stream task behind the child processes' deaths.
    runtime.shutdown_timeout(Duration::from_secs(5));
    Ok(())
}
