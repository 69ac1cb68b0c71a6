//! `sentinel receipt verify`: checks an approval receipt for a script, with the same code
//! the Rust client uses (`sentinel-receipt`). Exit 0: valid; 1: invalid, the reason
//! (`bad_signature`, `expired`, `payload_mismatch`, `action_mismatch`, `agent_mismatch`,
//! `unknown_kid`, `malformed`) first on stderr; 2: the inputs could not be read.

use std::io::Read as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use sentinel_receipt::{verify_receipt, Expected, Jwks};

use super::output::outln;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The compact JWS, or `-` to read it from stdin.
    #[arg(long)]
    receipt: String,
    /// The gateway's key set: an http(s) URL (`http://host:8080/.well-known/jwks.json`) or a
    /// file holding a JWKS or one JWK.
    #[arg(long)]
    jwks: String,
    /// The action about to be executed.
    #[arg(long)]
    action: String,
    /// The agent the receipt must have been issued to.
    #[arg(long)]
    agent: String,
    /// The payload about to be executed: JSON, or `@file` holding it.
    #[arg(long)]
    payload: String,
    /// Print the outcome (and the claims when valid) as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub async fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let inputs = async {
        let receipt = read_receipt(&args.receipt)?;
        let payload = read_payload(&args.payload)?;
        let keys = read_jwks(&args.jwks).await?;
        anyhow::Ok((receipt, payload, keys))
    };
    let (receipt, payload, keys) = match inputs.await {
        Ok(inputs) => inputs,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let expected = Expected {
        agent_id: &args.agent,
        action: &args.action,
        payload: &payload,
    };
    match verify_receipt(&receipt, &keys, &expected) {
        Ok(verified) => {
            if args.json {
                outln!(
                    "{}",
                    serde_json::json!({"valid": true, "kid": verified.kid, "claims": verified.claims})
                );
            } else {
                let c = &verified.claims;
                outln!(
                    "valid: {} may {} (intent {}, approved by {}{}), expires {}",
                    c.sub,
                    c.act,
                    c.jti,
                    c.dby.kind,
                    if c.dby.approver.is_empty() {
                        String::new()
                    } else {
                        format!(" {}", c.dby.approver)
                    },
                    c.exp
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(invalid) => {
            if args.json {
                outln!(
                    "{}",
                    serde_json::json!({"valid": false, "reason": invalid.reason.as_str(), "message": invalid.message})
                );
            }
            eprintln!("invalid: {invalid}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn read_receipt(arg: &str) -> anyhow::Result<String> {
    let text = if arg == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("--receipt: cannot read stdin")?;
        s
    } else {
        arg.to_string()
    };
    let text = text.trim().to_string();
    anyhow::ensure!(!text.is_empty(), "--receipt: is empty");
    Ok(text)
}

fn read_payload(arg: &str) -> anyhow::Result<serde_json::Value> {
    let text = match arg.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("--payload: cannot read {path}"))?,
        None => arg.to_string(),
    };
    serde_json::from_str(&text).context("--payload: not JSON")
}

async fn read_jwks(arg: &str) -> anyhow::Result<Jwks> {
    if arg.starts_with("http://") || arg.starts_with("https://") {
        return sentinel_receipt::fetch_jwks(arg, Duration::from_secs(10))
            .await
            .context("--jwks");
    }
    let text =
        std::fs::read_to_string(arg).with_context(|| format!("--jwks: cannot read {arg}"))?;
    Jwks::from_json(&text).context("--jwks")
}
