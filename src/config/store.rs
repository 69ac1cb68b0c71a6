//! Where intents are kept: in this process, or in Redis (one node or a Cluster), and for how
//! long decided intents are kept.

use std::time::Duration;

use super::env::Env;
use super::{ConfigError, Secret};

/// `SENTINEL_REDIS_URL`, read once: one node, or the seed nodes of a Cluster. URLs may carry
/// a password, so it never prints.
#[derive(Clone, PartialEq, Eq)]
pub enum RedisUrl {
    Single(Secret),
    Cluster(Vec<Secret>),
}

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RedisUrl::Single(_) => f.write_str("Single(<redacted>)"),
            RedisUrl::Cluster(nodes) => write!(f, "Cluster({} nodes)", nodes.len()),
        }
    }
}

impl RedisUrl {
    const SCHEMES: [&'static str; 4] = ["redis", "rediss", "unix", "redis+unix"];
    const CLUSTER_SCHEMES: [(&'static str, &'static str); 2] = [
        ("redis+cluster://", "redis://"),
        ("rediss+cluster://", "rediss://"),
    ];

    /// Reads `redis://host:port/db` (one node), `redis+cluster://host1:port1,host2:port2`
    /// or a comma-separated list of `redis://` URLs (a Cluster, by its seed nodes).
    pub fn parse(raw: &str) -> Result<RedisUrl, ConfigError> {
        let raw = raw.trim();
        let bad = |why: &str| ConfigError::new("SENTINEL_REDIS_URL", why);
        for (cluster_scheme, plain) in Self::CLUSTER_SCHEMES {
            if let Some(rest) = raw.strip_prefix(cluster_scheme) {
                let (auth, hosts) = match rest.rsplit_once('@') {
                    Some((auth, hosts)) => (format!("{auth}@"), hosts),
                    None => (String::new(), rest),
                };
                let nodes: Vec<Secret> = hosts
                    .trim_end_matches('/')
                    .split(',')
                    .map(str::trim)
                    .filter(|h| !h.is_empty())
                    .map(|h| Secret::new(format!("{plain}{auth}{h}")))
                    .collect();
                if nodes.is_empty() {
                    return Err(bad("a cluster URL needs at least one host:port"));
                }
                return Ok(RedisUrl::Cluster(nodes));
            }
        }
        let mut nodes = Vec::new();
        for url in raw.split(',').map(str::trim).filter(|u| !u.is_empty()) {
            match url.split_once("://") {
                Some((scheme, _)) if Self::SCHEMES.contains(&scheme) => {
                    nodes.push(Secret::new(url))
                }
                _ => return Err(bad("must be a redis://, rediss:// or redis+cluster:// URL")),
            }
        }
        match nodes.len() {
            0 => Err(bad("must be a redis://, rediss:// or redis+cluster:// URL")),
            1 => Ok(RedisUrl::Single(nodes.remove(0))),
            _ => Ok(RedisUrl::Cluster(nodes)),
        }
    }

    /// The node URLs: the one node, or a Cluster's seed nodes.
    pub fn nodes(&self) -> Vec<String> {
        match self {
            RedisUrl::Single(url) => vec![url.expose().to_string()],
            RedisUrl::Cluster(nodes) => nodes.iter().map(|n| n.expose().to_string()).collect(),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(url: &str) -> Vec<String> {
        RedisUrl::parse(url).unwrap().nodes()
    }

    #[test]
    fn cluster_urls_name_every_seed_node() {
        let cluster = RedisUrl::parse("redis+cluster://:pw@127.0.0.1:7000,127.0.0.1:7001/");
        assert!(matches!(cluster, Ok(RedisUrl::Cluster(_))));
        assert_eq!(
            nodes("redis+cluster://:pw@127.0.0.1:7000,127.0.0.1:7001/"),
            ["redis://:pw@127.0.0.1:7000", "redis://:pw@127.0.0.1:7001"]
        );
        assert_eq!(
            nodes("redis://a:1, redis://b:2"),
            ["redis://a:1", "redis://b:2"]
        );
        let single = RedisUrl::parse("redis://h:6379/2").unwrap();
        assert_eq!(single, RedisUrl::Single(Secret::new("redis://h:6379/2")));
        assert!(!format!("{:?}", RedisUrl::parse("redis://:secret@h").unwrap()).contains("secret"));
        for bad in [
            "localhost:6379",
            "redis+cluster://",
            "redis://a:1,b:2",
            "http://h",
        ] {
            let e = RedisUrl::parse(bad).unwrap_err();
            assert_eq!(e.name, "SENTINEL_REDIS_URL", "{bad}");
        }
    }
}
