//! Approval receipts end to end: every APPROVED intent carries a receipt that verifies
//! against the gateway's own `/.well-known/jwks.json`, names exactly the agent, action and
//! payload, and is the same whichever RPC or replica returns it.

use std::time::Duration;

use base64::Engine as _;
use sentinel::grpc::pb;
use sentinel::grpc::pb::IntentState;
use sentinel_receipt::{verify_receipt, Expected, Jwks, Reason, ReceiptSigner};
use serde_json::json;

use crate::helpers::{next_event, spawn_with, state, Parts};
use crate::redis_harness::{RedisServer, Replica};

const WAIT: Duration = Duration::from_secs(15);

async fn jwks(http_addr: &str) -> Jwks {
    let response = reqwest::get(format!("http://{http_addr}/.well-known/jwks.json"))
        .await
        .expect("jwks answers");
    assert_eq!(response.status(), 200);
    let cache = response.headers().get("cache-control").cloned();
    assert!(cache.is_some_and(|c| c.to_str().unwrap_or("").contains("max-age")));
    Jwks::from_json(&response.text().await.expect("body")).expect("a JWKS")
}

fn expected<'a>(agent: &'a str, action: &'a str, payload: &'a serde_json::Value) -> Expected<'a> {
    Expected {
        agent_id: agent,
        action,
        payload,
    }
}

#[tokio::test]
async fn approved_intents_carry_a_receipt_that_verifies_against_the_jwks() {
    let app = crate::helpers::spawn_app().await;
    let keys = jwks(&app.http_addr.to_string()).await;
    assert_eq!(keys.keys.len(), 1);
    let key = &keys.keys[0];
    assert_eq!((key.kty.as_str(), key.crv.as_str()), ("OKP", "Ed25519"));
    assert_eq!(key.alg.as_deref(), Some("EdDSA"));
    let mut client = app.client().await;

    // Policy approves a small payment to a trusted vendor.
    let payload = json!({"amount": 420, "vendor": "AWS", "memo": "ec2"});
    let intent = client
        .submit_json("billing-bot", "PAY_INVOICE", payload.clone())
        .await
        .unwrap();
    assert_eq!(state(&intent), IntentState::Approved);
    let verified = verify_receipt(
        &intent.receipt,
        &keys,
        &expected("billing-bot", "PAY_INVOICE", &payload),
    )
    .expect("the receipt verifies");
    let claims = &verified.claims;
    assert_eq!(claims.jti, intent.intent_id);
    assert_eq!(
        (claims.iss.as_str(), claims.dby.kind.as_str()),
        ("sentinel", "POLICY")
    );
    assert_eq!(claims.exp - claims.iat, 300);

    // The same receipt from GetIntent and from a watch's first event.
    assert_eq!(
        client.get(&intent.intent_id).await.unwrap().receipt,
        intent.receipt
    );
    let mut watch = client.watch(&intent.intent_id).await.unwrap();
    let first = next_event(&mut watch, WAIT).await.expect("an event");
    // Events leave the receipt out (they stay small); GetIntent has it.
    assert!(first.intent.expect("intent").receipt.is_empty());

    // It proves nothing else: another payload, action or agent, or a tampered body.
    for (agent, action, other, reason) in [
        (
            "billing-bot",
            "PAY_INVOICE",
            json!({"amount": 4200, "vendor": "AWS", "memo": "ec2"}),
            Reason::PayloadMismatch,
        ),
        (
            "billing-bot",
            "EXPORT_CSV",
            payload.clone(),
            Reason::ActionMismatch,
        ),
        (
            "ops-bot",
            "PAY_INVOICE",
            payload.clone(),
            Reason::AgentMismatch,
        ),
    ] {
        let e =
            verify_receipt(&intent.receipt, &keys, &expected(agent, action, &other)).unwrap_err();
        assert_eq!(e.reason, reason, "{e}");
    }
    let mut parts: Vec<&str> = intent.receipt.split('.').collect();
    let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
        serde_json::to_vec(&sentinel_receipt::Claims {
            exp: claims.exp + 86_400,
            ..claims.clone()
        })
        .unwrap(),
    );
    parts[1] = &forged;
    let e = verify_receipt(
        &parts.join("."),
        &keys,
        &expected("billing-bot", "PAY_INVOICE", &payload),
    )
    .unwrap_err();
    assert_eq!(e.reason, Reason::BadSignature);

    // Intents that are not approved carry none.
    let declined = client
        .submit_json("ops-bot", "DROP_TABLE", json!({"table": "users"}))
        .await
        .unwrap();
    assert_eq!(state(&declined), IntentState::Declined);
    assert!(declined.receipt.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_human_approval_is_signed_with_the_configured_key() {
    let seed = [7u8; 32];
    let retired = ReceiptSigner::from_seed(&[8u8; 32]);
    let mut parts = Parts::default();
    parts.config.receipt.key = Some(sentinel::config::receipt::ReceiptSeed(seed));
    parts.config.receipt.issuer = "sentinel-eu-1".into();
    parts.config.receipt.ttl = Duration::from_secs(60);
    let retired_public = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&retired.jwk().x)
        .unwrap();
    parts.config.receipt.previous_keys = vec![retired_public.try_into().unwrap()];
    let app = spawn_with(parts).await;
    let keys = jwks(&app.http_addr.to_string()).await;
    let current = ReceiptSigner::from_seed(&seed);
    let kids: Vec<&str> = keys.keys.iter().map(|k| k.kid.as_str()).collect();
    assert_eq!(kids, [current.kid(), retired.kid()]);

    let mut client = app.client().await;
    let payload = json!({"amount": 9000, "vendor": "Shady LLC"});
    let pending = client
        .submit_json("billing-bot", "PAY_INVOICE", payload.clone())
        .await
        .unwrap();
    assert_eq!(state(&pending), IntentState::PendingApproval);
    assert!(pending.receipt.is_empty());
    let mut watch = client.watch(&pending.intent_id).await.unwrap();
    next_event(&mut watch, WAIT)
        .await
        .expect("the current state first");

    let approved = client
        .resolve(&pending.intent_id, true, "checked")
        .await
        .unwrap();
    let verified = verify_receipt(
        &approved.receipt,
        &keys,
        &expected("billing-bot", "PAY_INVOICE", &payload),
    )
    .expect("verifies");
    assert_eq!(verified.kid, current.kid());
    assert_eq!(verified.claims.iss, "sentinel-eu-1");
    assert_eq!(verified.claims.exp - verified.claims.iat, 60);
    assert_eq!(verified.claims.dby.kind, "HUMAN");
    assert!(!verified.claims.dby.approver.is_empty());
    let last = next_event(&mut watch, WAIT).await.expect("the approval");
    assert_eq!(last.state, pb::IntentState::Approved as i32);
    assert!(last.intent.expect("intent").receipt.is_empty());
    let read = client.get(&pending.intent_id).await.unwrap();
    assert_eq!(read.receipt, approved.receipt);
    app.stop().await;
}

#[tokio::test]
async fn replicas_on_one_redis_sign_with_one_generated_key() {
    let redis = RedisServer::start().await;
    let a = Replica::start(&redis.url(), &[]).await;
    let b = Replica::start(&redis.url(), &[]).await;
    let (keys_a, keys_b) = (jwks(&a.http_addr).await, jwks(&b.http_addr).await);
    assert_eq!(keys_a, keys_b);

    let payload = json!({"amount": 99, "vendor": "Stripe"});
    let mut on_a = a.client().await;
    let intent = on_a
        .submit_json("billing-bot", "PAY_INVOICE", payload.clone())
        .await
        .unwrap();
    assert_eq!(state(&intent), IntentState::Approved);
    // Read through the other replica: the stored receipt, verified with its key set.
    let mut on_b = b.client().await;
    let read = on_b.get(&intent.intent_id).await.unwrap();
    assert_eq!(read.receipt, intent.receipt);
    verify_receipt(
        &read.receipt,
        &keys_b,
        &expected("billing-bot", "PAY_INVOICE", &payload),
    )
    .expect("verifies");
    assert!(
        !a.log().contains(&redis_seed(&redis).await),
        "the key is never logged"
    );
}

/// The seed the replicas share, read from Redis as an operator could.
async fn redis_seed(redis: &RedisServer) -> String {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let seed: String = redis::cmd("GET")
        .arg("sentinel:{b0}:receipt:key")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!seed.is_empty());
    seed
}

/// `sentinel receipt verify` as a script runs it; returns the exit code and stderr.
async fn cli_verify(receipt: &str, jwks: &str, agent: &str, payload: &str) -> (i32, String) {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_sentinel"));
    command
        .args(["receipt", "verify", "--receipt", "-", "--jwks", jwks])
        .args([
            "--action",
            "PAY_INVOICE",
            "--agent",
            agent,
            "--payload",
            payload,
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().expect("the CLI starts");
    {
        use tokio::io::AsyncWriteExt as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(receipt.as_bytes()).await.unwrap();
    }
    let out = child.wait_with_output().await.unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_cli_verifies_a_receipt_and_names_why_one_fails() {
    let app = crate::helpers::spawn_app().await;
    let url = format!("http://{}/.well-known/jwks.json", app.http_addr);
    let payload = r#"{"vendor": "AWS", "amount": 420}"#;
    let intent = app
        .client()
        .await
        .submit_json(
            "billing-bot",
            "PAY_INVOICE",
            serde_json::from_str(payload).unwrap(),
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let payload_file = dir.path().join("payload.json");
    std::fs::write(&payload_file, payload).unwrap();
    let at_file = format!("@{}", payload_file.display());

    let (code, stderr) = cli_verify(&intent.receipt, &url, "billing-bot", &at_file).await;
    assert_eq!(code, 0, "{stderr}");
    for (receipt, agent, payload, reason) in [
        (
            intent.receipt.as_str(),
            "billing-bot",
            r#"{"vendor": "AWS", "amount": 4200}"#,
            "payload_mismatch",
        ),
        (
            intent.receipt.as_str(),
            "ops-bot",
            payload,
            "agent_mismatch",
        ),
        ("not-a-receipt", "billing-bot", payload, "malformed"),
    ] {
        let (code, stderr) = cli_verify(receipt, &url, agent, payload).await;
        assert_eq!(code, 1, "{stderr}");
        assert!(
            stderr.starts_with(&format!("invalid: {reason}")),
            "{stderr}"
        );
    }

    // A key set from a file: another gateway's key is an unknown kid; an old receipt of a
    // known key is expired.
    let signer = ReceiptSigner::from_seed(&[3; 32]);
    let jwks_file = dir.path().join("jwks.json");
    std::fs::write(
        &jwks_file,
        serde_json::to_string(&Jwks {
            keys: vec![signer.jwk().clone()],
        })
        .unwrap(),
    )
    .unwrap();
    let jwks_file = jwks_file.display().to_string();
    let (code, stderr) = cli_verify(&intent.receipt, &jwks_file, "billing-bot", payload).await;
    assert_eq!(
        (code, stderr.starts_with("invalid: unknown_kid")),
        (1, true),
        "{stderr}"
    );
    let claims = sentinel_receipt::Claims {
        iat: 1_700_000_000,
        exp: 1_700_000_300,
        ..verify_receipt(
            &intent.receipt,
            &jwks(&app.http_addr.to_string()).await,
            &expected(
                "billing-bot",
                "PAY_INVOICE",
                &serde_json::from_str(payload).unwrap(),
            ),
        )
        .unwrap()
        .claims
    };
    let (code, stderr) =
        cli_verify(&signer.sign(&claims), &jwks_file, "billing-bot", payload).await;
    assert_eq!(
        (code, stderr.starts_with("invalid: expired")),
        (1, true),
        "{stderr}"
    );

    // Inputs that cannot be read are a usage error, not a verdict.
    let (code, stderr) = cli_verify(&intent.receipt, &url, "billing-bot", "{not json").await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--payload"), "{stderr}");
    app.stop().await;
}
