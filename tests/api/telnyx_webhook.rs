//! The signed webhook: forged, stale, tampered and replayed deliveries change nothing;
//! health, readiness and metrics.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey};
use sentinel::grpc::pb::IntentState;
use serde_json::json;

use crate::fakes::telnyx::*;
use crate::helpers::*;

#[tokio::test]
async fn forged_stale_tampered_and_replayed_webhooks_change_nothing() {
    let mut s = Setup::alice().await;
    let (id, watch) = s.escalate(7500).await;
    let phone = s.phone(ALICE, 1).await;
    let http = reqwest::Client::new();
    let url = phone.webhook.clone();

    // Answer for real, so that a forged "1" would otherwise approve.
    phone.pick_up().await;
    phone.prompt(1).await;

    let press_1 = phone.event(
        "call.gather.ended",
        json!({"digits": "1", "status": "valid"}),
    );
    let ts = now().to_string();
    let good_sig = STANDARD.encode(
        signing_key()
            .sign(format!("{ts}|{press_1}").as_bytes())
            .to_bytes(),
    );
    let stranger = SigningKey::from_bytes(&[9u8; 32]);
    let tampered = press_1.replace(r#""attempt":1"#, r#""attempt":2"#);
    assert_ne!(tampered, press_1);
    let other_ts = (now() - 1).to_string();

    let refused_before = refusals(&http, &s).await;
    // Refusals are synchronous: a 401 means the event was never accepted.
    for (what, status) in [
        (
            "no headers",
            post_with(&http, &url, None, None, &press_1).await,
        ),
        (
            "no signature",
            post_with(&http, &url, Some(&ts), None, &press_1).await,
        ),
        (
            "a stranger's key",
            post_signed(&http, &url, &stranger, &press_1, now()).await,
        ),
        (
            "stale",
            post_signed(&http, &url, &signing_key(), &press_1, now() - 301).await,
        ),
        (
            "from the future",
            post_signed(&http, &url, &signing_key(), &press_1, now() + 301).await,
        ),
        (
            "tampered body",
            post_with(&http, &url, Some(&ts), Some(&good_sig), &tampered).await,
        ),
        (
            "other timestamp",
            post_with(&http, &url, Some(&other_ts), Some(&good_sig), &press_1).await,
        ),
        (
            "garbage signature",
            post_with(
                &http,
                &url,
                Some(&ts),
                Some("bm90IGEgc2lnbmF0dXJl"),
                &press_1,
            )
            .await,
        ),
    ] {
        assert_eq!(status, 401, "{what}");
    }
    assert_eq!(s.state_of(&id).await, IntentState::PendingApproval);
    // Counted (other tests in this process refuse webhooks too, hence at least) ...
    assert!(refusals(&http, &s).await >= refused_before + 8);
    // ... but never audited: unauthenticated senders must not be able to fill the audit log.
    let audited = s
        .app
        .store
        .audit_range(0, i64::MAX, 10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.channel == "webhook")
        .count();
    assert_eq!(audited, 0);

    // Replays of accepted events (same data.id, freshly signed) are acknowledged, not redone.
    let sent = phone.sent.lock().unwrap().clone();
    for body in &sent {
        assert_eq!(
            post_signed_text(&http, &url, &signing_key(), body, now()).await,
            (200, "duplicate\n".to_string())
        );
    }
    assert_eq!(s.fake.count("gather_using_speak", Some(&phone.ccid)), 1);

    // A "3" about a call Sentinel never placed is ignored; then the real "1" decides.
    let mut unknown = phone.clone();
    unknown.ccid = "v3:never-dialled".into();
    unknown.client_state = String::new();
    assert_eq!(
        unknown
            .send(
                "call.gather.ended",
                json!({"digits": "3", "status": "valid"})
            )
            .await,
        200
    );
    assert_eq!(
        post_with(&http, &url, Some(&ts), Some(&good_sig), &press_1).await,
        200
    );
    finish_decided(&s, watch, IntentState::Approved, "alice", "voice").await;

    let metrics = http
        .get(format!("http://{}/metrics", s.app.http_addr))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    assert!(metrics.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = metrics.text().await.unwrap();
    for series in [
        "sentinel_webhooks_total{outcome=\"rejected\"}",
        "sentinel_webhooks_total{outcome=\"duplicate\"}",
        "sentinel_escalation_decisions_total{channel=\"voice\",decision=\"approved\"}",
        "sentinel_telnyx_requests_total{op=\"dial\",outcome=\"ok\"}",
    ] {
        assert!(text.contains(series), "no {series} in {text}");
    }
    s.app.stop().await;
}

#[tokio::test]
async fn without_a_public_key_every_webhook_is_refused() {
    let app = spawn_app().await;
    let http = reqwest::Client::new();
    let url = format!("http://{}/telnyx/webhook", app.http_addr);
    let body = envelope("call.answered", json!({"call_control_id": "v3:x"}));
    assert_eq!(
        post_signed(&http, &url, &signing_key(), &body, now()).await,
        401
    );
    for path in ["healthz", "readyz", "metrics"] {
        let r = http
            .get(format!("http://{}/{path}", app.http_addr))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    app.stop().await;
}

/// `sentinel_webhooks_total{outcome="rejected"}` as `/metrics` shows it.
async fn refusals(http: &reqwest::Client, s: &Setup) -> u64 {
    let text = http
        .get(format!("http://{}/metrics", s.app.http_addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("sentinel_webhooks_total{outcome=\"rejected\"} "))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0)
}
