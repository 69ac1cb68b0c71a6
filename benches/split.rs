//! What the channels' door through the gateway costs, and the Telnyx webhook path behind it.
//!
//! - A human decision from an escalation channel (`Gateway::record_human_decision`: one read
//!   and the compare-and-set transition) beside the same decision through `ResolveIntent`'s
//!   gateway path (`Gateway::resolve`), on the memory store and on a throwaway Redis.
//! - Signed Telnyx webhooks through the real HTTP sidecar (in-process server on port 0, memory
//!   store): verification, dedupe, a tracked handling task, an audited refusal (SMS replies
//!   with codes that do not exist, so no Telnyx API call is made). The bench checks that every
//!   reply was audited.
//! - Building a typed call command body (`commands::Command` + `Sent`, serialised).
//!
//! ```text
//! cargo bench --bench split
//! BENCH_INTENTS=500 BENCH_WEBHOOKS=500 cargo bench --bench split   # a smoke run
//! ```
//!
//! Sizes: `BENCH_INTENTS` decisions per store and path (default 5,000), `BENCH_WEBHOOKS`
//! (default and at most 4,000: the memory store keeps the last 4,096 audit records of a shard,
//! refusals that name no intent share one, and the check reads them), `BENCH_CONCURRENCY` requests in flight (default 64).
//!
//! Results and how to read them: docs/BENCHMARKS.md.

#[allow(dead_code)]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use common::timing::{report, timed};
use common::{env_or, free_port, spawn_redis};
use ed25519_dalek::{Signer as _, SigningKey};
use sentinel::app::App;
use sentinel::auth::Principal;
use sentinel::config::{ApproverConfig, Config, Secret, TelnyxSettings};
use sentinel::domain::validate::SubmitInput;
use sentinel::domain::{Channel, IntentId, IntentState};
use sentinel::escalation::telnyx::commands::{Command, Sent};
use sentinel::gateway::{Gateway, Resolution, Settings};
use sentinel::policy::PolicyPack;
use sentinel::scoring::fallback::FallbackScorer;
use sentinel::store::redis::{RedisOptions, RedisStore};
use sentinel::store::{MemoryStore, Store};
use sentinel::webhook::signature::{SIGNATURE_HEADER, TIMESTAMP_HEADER};

/// `n` intents the built-in pack escalates to a human.
async fn pending(gateway: &Gateway, n: usize) -> anyhow::Result<Vec<IntentId>> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let input = SubmitInput {
            agent_id: format!("bench-{}", i % 16),
            action: "DELETE_USER".into(),
            payload: Some(serde_json::json!({"user_id": format!("u{i}")})),
            ..Default::default()
        };
        let (intent, _) = gateway.submit(&Principal::Open, input).await?;
        anyhow::ensure!(intent.state == IntentState::PendingApproval);
        ids.push(intent.id);
    }
    Ok(ids)
}

async fn decisions(
    label: &str,
    store: Arc<dyn Store>,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    let gateway = Gateway::new(
        store,
        Arc::new(PolicyPack::builtin()),
        Arc::new(FallbackScorer),
        Settings::default(),
    );
    let gateway = &gateway;
    let ids = pending(gateway, n).await?;
    let (total, each) = timed(ids, concurrency, |id| async move {
        gateway
            .record_human_decision(&id, true, "alice", Channel::Voice)
            .await?;
        Ok(())
    })
    .await?;
    report(&format!("{label}: record_human_decision"), n, total, each);

    let ids = pending(gateway, n).await?;
    let (total, each) = timed(ids, concurrency, |id| async move {
        let resolution = Resolution {
            approve: true,
            approver: "alice".into(),
            reason: String::new(),
            expected_version: None,
            channel: Channel::Cli,
        };
        gateway
            .resolve(&Principal::Open, id.as_str(), resolution)
            .await?;
        Ok(())
    })
    .await?;
    report(
        &format!("{label}: resolve (ResolveIntent path)"),
        n,
        total,
        each,
    );
    Ok(())
}

async fn webhooks(n: usize, concurrency: usize) -> anyhow::Result<()> {
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let mut config = Config::ephemeral();
    // Nothing here calls Telnyx; a closed port makes sure of it.
    let mut telnyx = TelnyxSettings::new(
        Secret::new("KEY"),
        format!("http://127.0.0.1:{}", free_port()?),
        "1",
        "+14155550199",
    );
    config.telnyx_public_key = Some(key.verifying_key());
    telnyx.roster = vec![ApproverConfig {
        name: "alice".into(),
        phone: "+14155550101".into(),
        pin_sha256: None,
        modules: vec![],
        min_risk: 0,
        order: 0,
    }];
    config.telnyx = Some(telnyx);
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let app = App::build_with(
        config,
        Arc::new(PolicyPack::builtin()),
        store.clone(),
        Arc::new(FallbackScorer),
    )
    .await?;
    let url = format!("http://{}/telnyx/webhook", app.http_addr());
    let shutdown = app.shutdown_token();
    let server = tokio::spawn(app.run());
    let http = reqwest::Client::new();
    let (http, url, key) = (&http, &url, &key);
    let (total, each) = timed((0..n).collect(), concurrency, |i| async move {
        let body = serde_json::json!({"data": {
            "record_type": "event", "event_type": "message.received",
            "id": format!("bench-{i}"),
            "payload": {"from": {"phone_number": "+14155550101"},
                        "to": [{"phone_number": "+14155550199"}],
                        "text": format!("APPROVE {:06}", i % 1_000_000)}
        }})
        .to_string();
        let ts = chrono::Utc::now().timestamp().to_string();
        let signature = key.sign(format!("{ts}|{body}").as_bytes());
        let response = http
            .post(url)
            .header(TIMESTAMP_HEADER, ts)
            .header(SIGNATURE_HEADER, STANDARD.encode(signature.to_bytes()))
            .body(body)
            .send()
            .await?;
        anyhow::ensure!(response.status() == 200, "{}", response.status());
        Ok(())
    })
    .await?;
    report("signed SMS webhook -> audited refusal", n, total, each);
    shutdown.cancel();
    server.await??;
    // Shutdown drained every handling task: every refusal is on record.
    let audited = store
        .audit_range(0, i64::MAX, n * 4)
        .await?
        .iter()
        .filter(|r| r.event == "rejected" && r.channel == "sms")
        .count();
    anyhow::ensure!(audited == n, "{audited} of {n} refusals audited");
    Ok(())
}

fn command_bodies(n: usize) -> anyhow::Result<()> {
    let text = "Sentinel needs your decision. Risk score 92 out of 100. Module VaultKeeper. \
                Action pay invoice. The agent billing-bot says: amount 9000; vendor Acme.";
    let start = Instant::now();
    let mut bytes = 0;
    for i in 0..n {
        let command = Command::menu(text, "Telnyx.KokoroTTS.af");
        let sent = Sent {
            command: &command,
            client_state: "eyJpIjoiMDE5MGYyZDIiLCJhIjowLCJwIjoxfQ==".into(),
            command_id: format!("gather_using_speak-e-{i}"),
        };
        bytes += serde_json::to_value(&sent)?.to_string().len();
    }
    let total = start.elapsed();
    println!(
        "{:<44} {n:>7} ops  {:>9.0} ops/s  {:>7.2} us each ({} bytes avg)",
        "menu command body (typed, serialised)",
        n as f64 / total.as_secs_f64(),
        total.as_secs_f64() * 1e6 / n as f64,
        bytes / n.max(1),
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let intents: usize = env_or("BENCH_INTENTS", 5_000);
    // The memory store keeps the last 4,096 audit records of a shard (refusals that name no
    // intent share one): the webhook check reads them all.
    let hooks: usize = env_or("BENCH_WEBHOOKS", 4_000);
    anyhow::ensure!(hooks <= 4_000, "BENCH_WEBHOOKS is at most 4000");
    let concurrency: usize = env_or("BENCH_CONCURRENCY", 64);
    println!("split: {intents} intents, {hooks} webhooks, {concurrency} in flight");

    decisions("memory", Arc::new(MemoryStore::new()), intents, concurrency).await?;

    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let mut redis = spawn_redis(port, dir.path(), "no")?;
    let url = sentinel::config::RedisUrl::parse(&format!("redis://127.0.0.1:{port}"))?;
    let mut store = None;
    for _ in 0..100 {
        let options = RedisOptions {
            prefix: format!("split{}", std::process::id()),
            ..RedisOptions::default()
        };
        if let Ok(s) = RedisStore::connect(&url, options).await {
            if s.ping().await.is_ok() {
                store = Some(s);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let store = store.context("redis-server did not start")?;
    let result = decisions("redis", Arc::new(store), intents, concurrency).await;
    let _ = redis.kill();
    let _ = redis.wait();
    result?;

    webhooks(hooks, concurrency).await?;
    command_bodies(100_000)?;
    Ok(())
}
