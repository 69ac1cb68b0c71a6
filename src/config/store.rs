//! Where intents are kept: in this process, or in Redis (one node or a Cluster), and for how
//! long decided intents are kept.

use std::time::Duration;

use super::env::Env;
use super::{ConfigError, Secret};

/// A Redis URL whose scheme was checked (`SENTINEL_REDIS_URL`); it may carry a password, so
/// it never prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisUrl(Secret);

impl RedisUrl {
    const SCHEMES: [&'static str; 6] = [
        "redis",
        "rediss",
        "redis+cluster",
        "rediss+cluster",
        "unix",
        "redis+unix",
    ];

    pub fn parse(raw: &str) -> Result<RedisUrl, ConfigError> {
        match raw.split_once("://") {
            Some((scheme, _)) if Self::SCHEMES.contains(&scheme) => Ok(RedisUrl(Secret::new(raw))),
            _ => Err(ConfigError::new(
                "SENTINEL_REDIS_URL",
                "must be a redis://, rediss:// or redis+cluster:// URL",
            )),
        }
    }

    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreBackend {
    /// One replica's memory: lost on restart, not shared.
    Memory,
    Redis(RedisUrl),
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub backend: StoreBackend,
    /// How long decided intents are kept (`SENTINEL_RETENTION_HOURS`); `None`: the store's
    /// default (24 h in memory, 30 days in Redis).
    pub retention: Option<Duration>,
}

impl StoreConfig {
    pub fn redis_url(&self) -> Option<&RedisUrl> {
        match &self.backend {
            StoreBackend::Memory => None,
            StoreBackend::Redis(url) => Some(url),
        }
    }
}

pub(super) fn load(
    env: &Env<'_>,
    file_retention_hours: Option<u64>,
    approval_timeout: Duration,
) -> Result<StoreConfig, ConfigError> {
    let backend = match env.get("SENTINEL_REDIS_URL") {
        None => StoreBackend::Memory,
        Some(raw) => StoreBackend::Redis(RedisUrl::parse(&raw)?),
    };
    let retention = match env
        .get("SENTINEL_RETENTION_HOURS")
        .or(file_retention_hours.map(|h| h.to_string()))
    {
        None => None,
        Some(_) => {
            let hours = env.number("SENTINEL_RETENTION_HOURS", file_retention_hours, 1)?;
            let retention = Duration::from_secs(hours.saturating_mul(3600));
            // Idempotency keys live 24 h: an intent must outlive its key, or a replay
            // could decide the same request again under the same id.
            if hours < 24 || retention < approval_timeout * 2 {
                return Err(ConfigError::new(
                    "SENTINEL_RETENTION_HOURS",
                    "must be at least 24 (idempotency keys are kept 24 h) and at least twice the approval timeout",
                ));
            }
            Some(retention)
        }
    };
    Ok(StoreConfig { backend, retention })
}
