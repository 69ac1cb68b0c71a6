//! Connection limits: idle sockets beyond the descriptor budget do not lock clients out, a
//! silent connection is closed after the handshake window, and HTTP/2 streams per connection
//! are capped.

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::fakes::telnyx::{envelope, now, post_signed, public_key_b64, signing_key};
use crate::helpers::*;
use sentinel::config::Config;
use sentinel::grpc::pb::sentinel_client::SentinelClient;

const BIN: &str = env!("CARGO_BIN_EXE_sentinel");
const ANSWER_WITHIN: Duration = Duration::from_secs(2);

/// The real binary under `ulimit -n 1024`; returns it with its gRPC and HTTP addresses, read
/// from its start-up log line.
async fn serve_with_nofile_1024() -> (Child, String, String) {
    let mut child = Command::new("sh")
        .args(["-c", "ulimit -n 1024 && exec \"$0\" serve", BIN])
        .env("SENTINEL_GRPC_ADDR", "127.0.0.1:0")
        .env("SENTINEL_HTTP_ADDR", "127.0.0.1:0")
        .env("SENTINEL_LOG_FORMAT", "json")
        .env("TELNYX_PUBLIC_KEY", public_key_b64())
        .env_remove("SENTINEL_CONFIG")
        .env_remove("SENTINEL_API_KEYS")
        .env_remove("SENTINEL_REDIS_URL")
        .env_remove("GROQ_API_KEY")
        .env_remove("TELNYX_API_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("sentinel starts");
    let stderr = child.stderr.take().expect("piped");
    let mut lines = BufReader::new(stderr).lines();
    let addrs = tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(Some(line)) = lines.next_line().await {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            let fields = &v["fields"];
            if fields["message"] == "sentinel is serving" {
                let grpc = fields["grpc_addr"].as_str().expect("grpc_addr").to_string();
                let http = fields["http_addr"].as_str().expect("http_addr").to_string();
                return (grpc, http);
            }
        }
        panic!("sentinel exited before serving");
    })
    .await
    .expect("sentinel serves within 20 s");
    // Keep draining its log so the pipe never fills.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addrs.0, addrs.1)
}

/// `sentinel_connections_refused_total` summed over reasons for `listener`.
fn refused(metrics: &str, listener: &str) -> u64 {
    let prefix = format!("sentinel_connections_refused_total{{listener=\"{listener}\",");
    metrics
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn idle_sockets_beyond_the_descriptor_budget_do_not_lock_clients_out() {
    // 2,400 sockets of our own, plus the clients below.
    let ours = rlimit::increase_nofile_limit(u64::MAX).expect("raise own limit");
    assert!(
        ours >= 3000,
        "this test needs a hard RLIMIT_NOFILE of at least 3000 (have {ours})"
    );
    let (mut child, grpc, http) = serve_with_nofile_1024().await;

    let mut idle = Vec::with_capacity(2400);
    for addr in [&grpc, &http] {
        for _ in 0..1200 {
            // The kernel completes the handshake even for connections the server then closes.
            idle.push(TcpStream::connect(addr).await.expect("tcp connect"));
        }
    }

    let web = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let healthz = tokio::time::timeout(
        ANSWER_WITHIN,
        web.get(format!("http://{http}/healthz")).send(),
    )
    .await
    .expect("/healthz answers within 2 s")
    .expect("/healthz");
    assert_eq!(healthz.status(), 200);

    let body = envelope("call.hangup", json!({"call_control_id": "v3:none"}));
    let status = tokio::time::timeout(
        ANSWER_WITHIN,
        post_signed(
            &web,
            &format!("http://{http}/telnyx/webhook"),
            &signing_key(),
            &body,
            now(),
        ),
    )
    .await
    .expect("the signed webhook answers within 2 s");
    assert_eq!(status, 200, "a verified webhook is accepted");

    let intent = tokio::time::timeout(ANSWER_WITHIN, async {
        let channel = tonic::transport::Channel::from_shared(format!("http://{grpc}"))
            .expect("url")
            .connect()
            .await
            .expect("gRPC connects");
        let mut client = SentinelClient::new(channel);
        client
            .submit_intent(intent_request(
                "bot",
                "PAY_INVOICE",
                json!({"amount": 20, "vendor": "AWS"}),
            ))
            .await
            .expect("submit")
            .into_inner()
            .intent
            .expect("intent")
    })
    .await
    .expect("SubmitIntent answers within 2 s");
    assert_eq!(state(&intent), sentinel::grpc::pb::IntentState::Approved);

    let metrics = tokio::time::timeout(
        ANSWER_WITHIN,
        web.get(format!("http://{http}/metrics")).send(),
    )
    .await
    .expect("/metrics answers within 2 s")
    .expect("/metrics")
    .text()
    .await
    .expect("body");
    assert!(refused(&metrics, "grpc") > 0, "{metrics}");
    assert!(refused(&metrics, "http") > 0, "{metrics}");
    assert!(
        metrics.contains("# TYPE sentinel_connections_open gauge"),
        "{metrics}"
    );
    drop(idle);
    child.kill().await.expect("stop sentinel");
}

fn config_with(vars: &[(&str, &str)]) -> Config {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut config =
        Config::load(&|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
            .expect("config");
    config.grpc_addr = "127.0.0.1:0".parse().expect("addr");
    config.http_addr = "127.0.0.1:0".parse().expect("addr");
    config
}

/// Waits for the server to close `stream`; returns how long that took.
async fn closed_after(mut stream: TcpStream) -> Duration {
    let start = tokio::time::Instant::now();
    let mut buf = [0u8; 64];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("the server closes a silent connection within 10 s")
        {
            Ok(0) | Err(_) => return start.elapsed(),
            // HTTP/2 servers may send their SETTINGS first; keep reading.
            Ok(_) => {}
        }
    }
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_handshake_window() {
    let app = spawn_with(Parts {
        config: config_with(&[("SENTINEL_HANDSHAKE_TIMEOUT_SECS", "1")]),
        ..Default::default()
    })
    .await;
    let grpc = TcpStream::connect(app.grpc_addr).await.expect("connect");
    let http = TcpStream::connect(app.http_addr).await.expect("connect");
    let (grpc, http) = tokio::join!(closed_after(grpc), closed_after(http));
    // Not before the window: the window is what a slow client is promised.
    assert!(grpc >= Duration::from_millis(900), "{grpc:?}");
    assert!(http >= Duration::from_millis(900), "{http:?}");

    // A connection that sent a complete request is not bound by the window.
    let mut talking = TcpStream::connect(app.http_addr).await.expect("connect");
    let request = b"GET /healthz HTTP/1.1\r\nhost: sentinel\r\n\r\n";
    let mut buf = vec![0u8; 1024];
    for round in 0..2 {
        talking.write_all(request).await.expect("write");
        let n = tokio::time::timeout(Duration::from_secs(2), talking.read(&mut buf))
            .await
            .expect("answer")
            .expect("read");
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 200"),
            "round {round}: {}",
            String::from_utf8_lossy(&buf[..n])
        );
        if round == 0 {
            // Past the window: what is tested here is the passing of time itself.
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn a_connection_gets_no_more_concurrent_streams_than_the_limit() {
    let app = spawn_with(Parts {
        config: config_with(&[("SENTINEL_MAX_STREAMS_PER_CONNECTION", "4")]),
        ..Default::default()
    })
    .await;
    let mut client = app.client().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let intent = client
            .submit_json("bot", "DELETE_USER", json!({"user_id": format!("u-{i}")}))
            .await
            .expect("submit");
        assert_eq!(
            state(&intent),
            sentinel::grpc::pb::IntentState::PendingApproval
        );
        ids.push(intent.intent_id);
    }
    // Four open streams on one connection, each served (its first event arrives).
    let mut open = Vec::new();
    for id in &ids[..4] {
        let mut stream = client.watch(id).await.expect("watch");
        next_event(&mut stream, Duration::from_secs(5)).await;
        open.push(stream);
    }
    // The fifth on the same connection waits for a free stream: h2 clients honour the
    // server's SETTINGS_MAX_CONCURRENT_STREAMS and hold the request back (no REFUSED_STREAM
    // reaches the caller).
    let mut fifth_client = client.clone();
    let fifth_id = ids[4].clone();
    let mut fifth = tokio::spawn(async move {
        let mut stream = fifth_client.watch(&fifth_id).await.expect("watch");
        next_event(&mut stream, Duration::from_secs(10)).await
    });
    // Bounded negative check: nothing else would serve it, so a short wait is enough.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut fifth)
            .await
            .is_err(),
        "a fifth concurrent stream was served despite the limit of 4"
    );
    // A different connection is not affected by this one's limit.
    let mut other = app.client().await;
    let mut elsewhere = other.watch(&ids[4]).await.expect("watch");
    next_event(&mut elsewhere, Duration::from_secs(5)).await;

    drop(open.pop());
    let event = tokio::time::timeout(Duration::from_secs(5), fifth)
        .await
        .expect("the fifth stream is served once one closes")
        .expect("task");
    assert!(event.is_some());
    app.stop().await;
}

#[tokio::test]
async fn a_connection_past_its_maximum_age_is_closed_and_clients_reconnect() {
    let app = spawn_with(Parts {
        config: config_with(&[
            ("SENTINEL_GRPC_MAX_CONNECTION_AGE_SECS", "1"),
            ("SENTINEL_GRPC_MAX_CONNECTION_AGE_GRACE_SECS", "1"),
        ]),
        ..Default::default()
    })
    .await;
    let mut client = app.client().await;
    let intent = client
        .submit_json("bot", "DELETE_USER", json!({"user_id": "u-1"}))
        .await
        .expect("submit");
    let mut stream = client.watch(&intent.intent_id).await.expect("watch");
    next_event(&mut stream, Duration::from_secs(5)).await;
    // The intent stays pending, so only the connection's age can end this stream: GOAWAY at
    // 1 s, then the grace period, then the connection is closed.
    let ended = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("the stream ends once the connection is past age and grace");
    assert!(!matches!(ended, Ok(Some(_))), "unexpected event: {ended:?}");
    // The same channel reconnects on its own: a client sees no outage.
    let got = client
        .get(&intent.intent_id)
        .await
        .expect("get after reconnect");
    assert_eq!(
        state(&got),
        sentinel::grpc::pb::IntentState::PendingApproval
    );
    app.stop().await;
}
