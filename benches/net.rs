//! What the listeners' defences cost and what they protect: latency of a new connection plus
//! one `SubmitIntent` (plaintext and TLS), the same while 1,000 idle sockets hold the gRPC
//! listener, and unary calls on one established connection (the IO wrapper's per-read cost).
//!
//! A plain binary (`harness = false`) with the in-memory store, the real app in process on
//! port 0, certificates made at run time:
//!
//! ```text
//! cargo bench --bench net                 # BENCH_CONNECTS=300 BENCH_CALLS=3000 by default
//! ```
//!
//! Results: docs/BENCHMARKS.md.

#[allow(dead_code)]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::env_or;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use sentinel::app::App;
use sentinel::cli::client::{channel, ClientTls};
use sentinel::config::Config;
use sentinel::grpc::convert::json_to_struct;
use sentinel::grpc::pb;
use sentinel::grpc::pb::sentinel_client::SentinelClient;
use sentinel::net::tls::ServerTls;
use sentinel::policy::PolicyPack;
use sentinel::scoring::fallback::FallbackScorer;
use sentinel::store::MemoryStore;
use tonic::transport::Channel;

fn request() -> pb::SubmitIntentRequest {
    pb::SubmitIntentRequest {
        agent_id: "bench".into(),
        action: "PAY_INVOICE".into(),
        payload: Some(json_to_struct(
            &serde_json::json!({"amount": 20, "vendor": "AWS"}),
        )),
        reasoning: "bench".into(),
        ..Default::default()
    }
}

async fn start(tls: Option<ServerTls>) -> anyhow::Result<App> {
    let mut config = Config::ephemeral();
    config.net.tls = tls;
    App::build_with(
        config,
        Arc::new(PolicyPack::builtin()),
        Arc::new(MemoryStore::new()),
        Arc::new(FallbackScorer),
    )
    .await
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
    println!(
        "{name:<48} n={:<5} p50={:>7.3} ms  p99={:>7.3} ms  max={:>7.3} ms",
        samples.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
}

async fn connect_and_submit(
    addr: &str,
    tls: &ClientTls,
    n: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let mut client = SentinelClient::new(channel(addr, tls).await?);
        client.submit_intent(request()).await?;
        samples.push(start.elapsed());
    }
    Ok(samples)
}

async fn established(channel: Channel, n: usize) -> anyhow::Result<Vec<Duration>> {
    let mut client = SentinelClient::new(channel);
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        client.submit_intent(request()).await?;
        samples.push(start.elapsed());
    }
    Ok(samples)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let connects: usize = env_or("BENCH_CONNECTS", 300);
    let calls: usize = env_or("BENCH_CALLS", 3000);
    rlimit::increase_nofile_limit(u64::MAX)?;

    let plain = start(None).await?;
    let addr = format!("http://{}", plain.grpc_addr());
    report(
        "new connection + SubmitIntent, plaintext",
        connect_and_submit(&addr, &ClientTls::default(), connects).await?,
    );
    let ch = channel(&addr, &ClientTls::default()).await?;
    report(
        "SubmitIntent on one connection",
        established(ch, calls).await?,
    );

    let mut idle = Vec::with_capacity(1000);
    for _ in 0..1000 {
        idle.push(tokio::net::TcpStream::connect(plain.grpc_addr()).await?);
    }
    report(
        "new connection + SubmitIntent, 1,000 idle sockets",
        connect_and_submit(&addr, &ClientTls::default(), connects).await?,
    );
    drop(idle);
    plain.shutdown_token().cancel();

    let dir = tempfile::TempDir::new()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "bench CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
    let key = KeyPair::generate()?;
    let cert = CertificateParams::new(vec!["localhost".to_string()])?.signed_by(&key, &ca)?;
    let paths = ["ca.pem", "server.pem", "server.key"].map(|f| dir.path().join(f));
    std::fs::write(&paths[0], ca.pem())?;
    std::fs::write(&paths[1], cert.pem())?;
    std::fs::write(&paths[2], key.serialize_pem())?;
    let tls = start(Some(ServerTls::from_pem_files(&paths[1], &paths[2], None)?)).await?;
    let addr = format!("https://localhost:{}", tls.grpc_addr().port());
    let client_tls = ClientTls {
        ca_cert: Some(paths[0].clone()),
        ..Default::default()
    };
    report(
        "new connection + SubmitIntent, TLS",
        connect_and_submit(&addr, &client_tls, connects).await?,
    );
    let ch = channel(&addr, &client_tls).await?;
    report(
        "SubmitIntent on one TLS connection",
        established(ch, calls).await?,
    );
    tls.shutdown_token().cancel();
    Ok(())
}
