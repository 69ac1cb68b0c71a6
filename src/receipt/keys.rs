//! Where the signing key comes from, in order: `SENTINEL_RECEIPT_KEY`; with Redis, the key
//! the first replica generated and stored with `SET NX` (every replica converges on it);
//! otherwise a key generated for this process. The key itself is never logged, only its
//! `kid`.

use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use sentinel_receipt::ReceiptSigner;
use tracing::{info, warn};

use super::Receipts;
use crate::config::Config;
use crate::store::redis::{Redis, RedisOptions};

/// How long start-up keeps asking Redis for the shared key before giving up.
const SHARED_KEY_WAIT: Duration = Duration::from_secs(15);

/// The receipts the configuration asks for.
pub async fn open_receipts(config: &Config) -> anyhow::Result<Receipts> {
    let settings = &config.receipt;
    let (seed, source) = match (&settings.key, config.store.redis_url()) {
        (Some(seed), _) => (seed.0, "SENTINEL_RECEIPT_KEY"),
        (None, Some(url)) => (
            shared_seed(url.expose())
                .await
                .context("SENTINEL_REDIS_URL: cannot read or store the receipt signing key")?,
            "redis",
        ),
        (None, None) => (rand::random(), "generated"),
    };
    let receipts = Receipts::new(
        ReceiptSigner::from_seed(&seed),
        &settings.previous_keys,
        settings.issuer.clone(),
        settings.ttl,
    );
    info!(
        kid = receipts.kid(),
        source,
        issuer = %settings.issuer,
        previous_keys = settings.previous_keys.len(),
        "receipt signing key loaded"
    );
    if source == "generated" {
        warn!(kid = receipts.kid(), "no SENTINEL_RECEIPT_KEY and no Redis: receipts are signed with a key generated for this process; they stop verifying once it restarts");
    }
    Ok(receipts)
}

/// The key every replica on this Redis signs with: the first to start stores a fresh seed
/// (`SET NX`), everyone reads back whichever won.
async fn shared_seed(url: &str) -> anyhow::Result<[u8; 32]> {
    let engine = base64::engine::general_purpose::STANDARD;
    let (redis, _) = Redis::open(url, &RedisOptions::default()).await?;
    let key = redis.key(0, "receipt:key");
    let candidate = engine.encode(rand::random::<[u8; 32]>());
    let deadline = tokio::time::Instant::now() + SHARED_KEY_WAIT;
    loop {
        let attempt = async {
            let _: Option<String> = redis
                .query(
                    "receipt key",
                    redis::cmd("SET").arg(&key).arg(&candidate).arg("NX"),
                )
                .await?;
            redis
                .query::<Option<String>>("receipt key", redis::cmd("GET").arg(&key))
                .await
        };
        match attempt.await {
            Ok(Some(stored)) => {
                let bytes = engine
                    .decode(stored.trim())
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .with_context(|| format!("{key} does not hold a base64 32-byte seed"))?;
                return Ok(bytes);
            }
            Ok(None) => {} // deleted between SET and GET: try again
            Err(e) if tokio::time::Instant::now() < deadline => {
                warn!(error = %e, "waiting for redis to load the receipt signing key");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}
