//! The whole configuration: the file, then the environment, section by section.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::env::Env;
use super::{
    auth, limits, llm, net, receipt, store, telemetry, telnyx, ConfigError, LlmConfig, LogFormat,
    NetConfig, StoreConfig, TelemetryConfig, TelnyxSettings,
};
use crate::auth::KeyRing;
use crate::domain::validate::Limits;

#[derive(Debug, Clone)]
pub struct Config {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// Where intents live and for how long (`SENTINEL_REDIS_URL`, `SENTINEL_RETENTION_HOURS`).
    pub store: StoreConfig,
    pub policy_path: Option<PathBuf>,
    pub approval_timeout: Duration,
    pub limits: Limits,
    pub llm: LlmConfig,
    /// The phone and SMS channel; `None` without `TELNYX_API_KEY`.
    pub telnyx: Option<TelnyxSettings>,
    /// The key Telnyx signs webhooks with (`TELNYX_PUBLIC_KEY`), decoded and checked; without
    /// it every webhook is refused.
    pub telnyx_public_key: Option<ed25519_dalek::VerifyingKey>,
    pub telemetry: TelemetryConfig,
    pub keys: KeyRing,
    pub net: NetConfig,
    /// Open watch streams (WatchDecision and WatchDecisions) per principal on one replica
    /// (`SENTINEL_MAX_WATCHES_PER_AGENT`).
    pub max_watches_per_agent: usize,
    /// Submissions per second per agent, burst the same (`SENTINEL_AGENT_RATE_LIMIT`); `None`:
    /// unlimited.
    pub agent_rate_limit: Option<std::num::NonZeroU32>,
    /// Bytes of events a `WatchDecisions` stream may have waiting for its client before it is
    /// ended with RESOURCE_EXHAUSTED (`SENTINEL_WATCH_MAX_LAG_BYTES`).
    pub watch_max_lag_bytes: usize,
    /// Approval receipts: issuer, lifetime, signing key (`SENTINEL_RECEIPT_*`).
    pub receipt: receipt::ReceiptConfig,
    /// Whether metrics are recorded (`SENTINEL_METRICS=on|off`, on by default). Off, `/metrics`
    /// still answers with the build and the up gauges.
    pub metrics: bool,
}

/// The file's shape. Secrets are deliberately absent: they come from the environment.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileConfig {
    grpc_addr: Option<String>,
    http_addr: Option<String>,
    policy: Option<PathBuf>,
    approval_timeout_secs: Option<u64>,
    retention_hours: Option<u64>,
    log_format: Option<LogFormat>,
    limits: Option<Limits>,
    llm: llm::FileLlm,
    telnyx: telnyx::FileTelnyx,
    auth: auth::FileAuth,
    approvers: Vec<telnyx::FileApprover>,
    escalation: telnyx::FileEscalation,
    watch_max_lag_bytes: Option<u64>,
}

pub const DEFAULT_GRPC_ADDR: &str = "127.0.0.1:50051";
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8080";

impl Config {
    /// Loads from the process environment (and the file it names).
    pub fn from_env() -> Result<Config, ConfigError> {
        Self::load(&|name| std::env::var(name).ok())
    }

    /// Loads with `env` as the environment: tests pass a map.
    pub fn load(env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let env = Env::new(env);
        let file: FileConfig = match env.get("SENTINEL_CONFIG") {
            None => FileConfig::default(),
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    ConfigError::new("SENTINEL_CONFIG", format!("cannot read {path}: {e}"))
                })?;
                toml::from_str(&text)
                    .map_err(|e| ConfigError::new("SENTINEL_CONFIG", format!("{path}: {e}")))?
            }
        };

        let grpc_addr = env.addr("SENTINEL_GRPC_ADDR", file.grpc_addr, DEFAULT_GRPC_ADDR)?;
        let http_addr = env.addr("SENTINEL_HTTP_ADDR", file.http_addr, DEFAULT_HTTP_ADDR)?;
        let policy_path = env
            .get("SENTINEL_POLICY")
            .map(PathBuf::from)
            .or(file.policy);
        if let Some(p) = &policy_path {
            if !p.is_file() {
                return Err(ConfigError::new(
                    "SENTINEL_POLICY",
                    format!("{} is not a readable file", p.display()),
                ));
            }
        }
        let approval_timeout = Duration::from_secs(env.number(
            "SENTINEL_APPROVAL_TIMEOUT_SECS",
            file.approval_timeout_secs,
            600,
        )?);
        let store = store::load(&env, file.retention_hours, approval_timeout)?;
        let llm = llm::load(&env, file.llm)?;
        let (telnyx, telnyx_public_key) =
            telnyx::load(&env, file.telnyx, file.escalation, file.approvers)?;

        let telemetry = telemetry::load(&env, file.log_format)?;
        let keys = auth::load(&env, file.auth)?;
        let net = net::load(&env)?;
        let caller = limits::load(&env, file.watch_max_lag_bytes)?;
        let receipt = receipt::load(&env)?;
        let metrics = env.switch("SENTINEL_METRICS", true)?;

        Ok(Config {
            grpc_addr,
            http_addr,
            store,
            policy_path,
            approval_timeout,
            limits: file.limits.unwrap_or_default(),
            llm,
            telnyx,
            telnyx_public_key,
            telemetry,
            keys,
            net,
            max_watches_per_agent: caller.max_watches_per_agent,
            agent_rate_limit: caller.agent_rate_limit,
            watch_max_lag_bytes: caller.watch_max_lag_bytes,
            receipt,
            metrics,
        })
    }

    /// A configuration for tests and embedding: defaults, ports chosen by the OS.
    pub fn ephemeral() -> Config {
        let mut c = Self::load(&|_| None).expect("defaults are valid");
        c.grpc_addr = "127.0.0.1:0".parse().expect("literal");
        c.http_addr = "127.0.0.1:0".parse().expect("literal");
        c
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;

    pub(crate) fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load(&|k| map.get(k).cloned())
    }

    /// Loads each `(variable, value)` alone: every one must be refused with an error naming
    /// its variable. Returns the errors in order.
    pub(crate) fn refused(cases: &[(&str, &str)]) -> Vec<ConfigError> {
        cases
            .iter()
            .map(|&(var, value)| {
                let e = load(&[(var, value)]).unwrap_err();
                assert_eq!(e.name, var, "{e}");
                e
            })
            .collect()
    }

    #[test]
    fn defaults_start_with_nothing_set() {
        let c = load(&[]).unwrap();
        assert_eq!(c.grpc_addr.to_string(), DEFAULT_GRPC_ADDR);
        assert_eq!(c.http_addr.to_string(), DEFAULT_HTTP_ADDR);
        assert_eq!(c.approval_timeout, Duration::from_secs(600));
        assert_eq!(c.llm.timeout, Duration::from_millis(3000));
        assert!(c.keys.is_open() && c.store.redis_url().is_none() && c.llm.scorer.is_none());
        assert!(c.metrics, "metrics are on unless switched off");
    }

    #[test]
    fn metrics_switch_off_and_on() {
        for (value, on) in [("off", false), ("OFF", false), ("on", true), (" On ", true)] {
            let c = load(&[("SENTINEL_METRICS", value)]).unwrap();
            assert_eq!(c.metrics, on, "SENTINEL_METRICS={value:?}");
        }
    }

    #[test]
    fn bad_values_name_the_variable() {
        refused(&[
            ("SENTINEL_GRPC_ADDR", "nonsense"),
            ("SENTINEL_APPROVAL_TIMEOUT_SECS", "ten"),
            ("SENTINEL_APPROVAL_TIMEOUT_SECS", "0"),
            ("SENTINEL_LLM_TIMEOUT_MS", "-5"),
            ("SENTINEL_LLM_BASE_URL", "not a url"),
            ("SENTINEL_REDIS_URL", "localhost:6379"),
            ("SENTINEL_POLICY", "/does/not/exist.toml"),
            ("ADMIN_PHONE_NUMBER", "555-1234"),
            ("SENTINEL_API_KEYS", "agent:bot"),
            ("SENTINEL_LOG_FORMAT", "xml"),
            ("SENTINEL_RETENTION_HOURS", "0"),
            ("SENTINEL_RETENTION_HOURS", "12"),
            ("SENTINEL_RETENTION_HOURS", "week"),
            ("SENTINEL_LLM_CACHE_TTL_SECS", "soon"),
            ("SENTINEL_LLM_BREAKER_FAILURES", "0"),
            ("SENTINEL_LLM_BREAKER_COOLDOWN_MS", "1.5"),
            ("SENTINEL_MAX_WATCHES_PER_AGENT", "0"),
            ("SENTINEL_MAX_WATCHES_PER_AGENT", "many"),
            ("SENTINEL_AGENT_RATE_LIMIT", "0"),
            ("SENTINEL_AGENT_RATE_LIMIT", "2.5"),
            ("SENTINEL_METRICS", "maybe"),
        ]);
    }

    #[test]
    fn secrets_are_redacted() {
        let c = load(&[
            ("GROQ_API_KEY", "gsk_supersecretvalue"),
            ("SENTINEL_API_KEYS", "operator:alice=alice-key-0123456789"),
        ])
        .unwrap();
        let dump = format!("{c:?}");
        assert!(!dump.contains("supersecret"), "{dump}");
        assert!(!dump.contains("alice-key-0123456789"), "{dump}");
        assert_eq!(c.keys.len(), 1);
    }
}
