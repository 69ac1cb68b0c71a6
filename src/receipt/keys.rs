//! Where the signing key comes from, in order: `SENTINEL_RECEIPT_KEY`; with Redis, the key
//! the first replica generated and stored with `SET NX` (every replica converges on it);
//! otherwise a key generated for this process. The key itself is never logged, only its
//! `kid`.
//!
//! A replica may start while Redis is down (readiness says so): the shared key is then
//! loaded in the background, and until it is, approvals are refused as UNAVAILABLE and
//! `/readyz` reports the replica not ready.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use sentinel_receipt::ReceiptSigner;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::Receipts;
use crate::config::Config;
use crate::store::redis::{Redis, RedisOptions};
use crate::store::StoreError;

/// The background loader: ends at shutdown (not when the key is in, so that `App::run`,
/// which stops everything when any task ends, keeps serving).
pub type Loader = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// How often the background loader asks Redis again.
const RETRY: Duration = Duration::from_millis(500);

/// The receipts the configuration asks for, and, when the shared key could not be read from
/// Redis yet, the task that keeps trying (run it until `shutdown`).
pub async fn open_receipts(
    config: &Config,
    shutdown: CancellationToken,
) -> anyhow::Result<(Arc<Receipts>, Option<Loader>)> {
    let settings = &config.receipt;
    let receipts = Arc::new(Receipts::new(
        &settings.previous_keys,
        settings.issuer.clone(),
        settings.ttl,
    ));
    let url = match (&settings.key, config.store.redis_url()) {
        (Some(seed), _) => {
            installed(&receipts, seed.0, "SENTINEL_RECEIPT_KEY");
            return Ok((receipts, None));
        }
        (None, None) => {
            let signer = installed(&receipts, rand::random(), "generated");
            warn!(kid = signer.kid(), "no SENTINEL_RECEIPT_KEY and no Redis: receipts are signed with a key generated for this process; they stop verifying once it restarts");
            return Ok((receipts, None));
        }
        (None, Some(url)) => url,
    };
    let redis = Redis::open(url, &RedisOptions::default())
        .await
        .context("SENTINEL_REDIS_URL: the receipt signing key")?;
    let candidate: [u8; 32] = rand::random();
    match shared_seed(&redis, &candidate).await {
        Ok(seed) => {
            installed(&receipts, seed, "redis");
            Ok((receipts, None))
        }
        Err(e) => {
            warn!(error = %e, "cannot read the receipt signing key from redis yet; approvals are refused until it can");
            let loader: Loader = {
                let receipts = receipts.clone();
                Box::pin(async move {
                    loop {
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            _ = tokio::time::sleep(RETRY) => {}
                        }
                        if let Ok(seed) = shared_seed(&redis, &candidate).await {
                            installed(&receipts, seed, "redis");
                            break;
                        }
                    }
                    shutdown.cancelled().await;
                })
            };
            Ok((receipts, Some(loader)))
        }
    }
}

fn installed<'a>(receipts: &'a Receipts, seed: [u8; 32], source: &str) -> &'a ReceiptSigner {
    let signer = receipts.install(ReceiptSigner::from_seed(&seed));
    info!(kid = signer.kid(), source, "receipt signing key loaded");
    signer
}

/// The key every replica on this Redis signs with: the first to ask stores its candidate
/// (`SET NX`), everyone reads back whichever won.
async fn shared_seed(redis: &Redis, candidate: &[u8; 32]) -> Result<[u8; 32], StoreError> {
    let engine = base64::engine::general_purpose::STANDARD;
    let key = redis.key(0, "receipt:key");
    let _: Option<String> = redis
        .query(
            "receipt key",
            redis::cmd("SET")
                .arg(&key)
                .arg(engine.encode(candidate))
                .arg("NX"),
        )
        .await?;
    let stored: Option<String> = redis
        .query("receipt key", redis::cmd("GET").arg(&key))
        .await?;
    stored
        .and_then(|s| engine.decode(s.trim()).ok())
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| StoreError::Corrupt(format!("{key} does not hold a base64 32-byte seed")))
}
