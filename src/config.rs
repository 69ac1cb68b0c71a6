//! Configuration: one TOML file (`SENTINEL_CONFIG`) plus environment overrides, loaded once,
//! typed and validated before anything binds. A bad value stops start-up naming the variable.
//! Secrets come only from the environment and never appear in `Debug` output or logs.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::auth::{hash_key, KeyRing, Principal};
use crate::domain::validate::Limits;

/// Bounds of `SENTINEL_WATCH_MAX_LAG_BYTES`: 64 KiB to 1 GiB.
const MIN_WATCH_LAG_BYTES: u64 = 64 * 1024;
const MAX_WATCH_LAG_BYTES: u64 = 1024 * 1024 * 1024;

/// A secret value: usable, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct LlmConfig {
    pub api_key: Option<Secret>,
    pub base_url: String,
    pub model: String,
    pub timeout: Duration,
    /// How long a verdict is reused for an identical intent (`SENTINEL_LLM_CACHE_TTL_SECS`).
    pub cache_ttl: Duration,
    /// Consecutive failed calls that open the circuit breaker (`SENTINEL_LLM_BREAKER_FAILURES`).
    pub breaker_failures: u32,
    /// How long an open breaker refuses calls (`SENTINEL_LLM_BREAKER_COOLDOWN_MS`).
    pub breaker_cooldown: Duration,
    /// The prompt-attack classifier (`SENTINEL_GUARD_MODEL`); `None` only when switched off.
    pub guard_model: Option<crate::scoring::guard::GuardModel>,
}

#[derive(Debug, Clone)]
pub struct TelnyxConfig {
    pub api_key: Option<Secret>,
    pub public_key: Option<String>,
    pub base_url: String,
    pub connection_id: Option<String>,
    pub phone_number: Option<String>,
    pub admin_phone_number: Option<String>,
    pub public_url: Option<String>,
    /// Who is phoned, in order: the `[[approvers]]` table, else `ADMIN_PHONE_NUMBER` alone.
    pub roster: Vec<ApproverConfig>,
    pub escalation: EscalationConfig,
}

/// One approver of the roster (`[[approvers]]` in the file).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproverConfig {
    pub name: String,
    /// +E.164; also the only number whose SMS replies count for this approver.
    pub phone: String,
    /// Hex SHA-256 of the approver's PIN, required to approve at or above the PIN tier.
    #[serde(default)]
    pub pin_sha256: Option<String>,
    /// Modules this approver decides; empty means all.
    #[serde(default)]
    pub modules: Vec<String>,
    /// Only intents at or above this risk score are routed to this approver.
    #[serde(default)]
    pub min_risk: u8,
    /// Lower is called first; ties keep file order.
    #[serde(default)]
    pub order: i32,
}

impl std::fmt::Debug for ApproverConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The PIN hash of a short PIN is as good as the PIN: never print it.
        f.debug_struct("ApproverConfig")
            .field("name", &self.name)
            .field("phone", &self.phone)
            .field("has_pin", &self.pin_sha256.is_some())
            .field("modules", &self.modules)
            .field("min_risk", &self.min_risk)
            .field("order", &self.order)
            .finish()
    }
}

/// Knobs of the Telnyx escalation ladder (`[escalation]` in the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscalationConfig {
    /// How long a call may ring before the next approver is tried (`SENTINEL_RING_TIMEOUT_SECS`).
    pub ring_timeout: Duration,
    /// Intents at or above this risk score need the approver's PIN to be approved
    /// (`SENTINEL_PIN_MIN_RISK`); 101 disables the PIN step. Unset: 90 when any approver
    /// has a PIN, else off (nobody could enter one) -- see [`EscalationConfig::pin_tier`].
    pub pin_min_risk: Option<u8>,
    /// Text-to-speech voice for `speak` and `gather_using_speak`.
    pub voice: String,
    /// Whether the ladder ends with an SMS with a one-time code.
    pub sms: bool,
}

#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    pub otlp_endpoint: Option<String>,
    pub service_name: String,
    pub log_format: LogFormat,
    /// A `tracing` filter (`SENTINEL_LOG`, else `RUST_LOG`), default `info`.
    pub log_filter: String,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub redis_url: Option<Secret>,
    pub policy_path: Option<PathBuf>,
    pub approval_timeout: Duration,
    /// How long decided intents are kept (`SENTINEL_RETENTION_HOURS`); `None`: the store's
    /// default (24 h in memory, 30 days in Redis).
    pub retention: Option<Duration>,
    pub limits: Limits,
    pub llm: LlmConfig,
    pub telnyx: TelnyxConfig,
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
}

/// The listeners' connection limits and TLS (environment only).
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// From accept to a complete first request, TLS included (`SENTINEL_HANDSHAKE_TIMEOUT_SECS`).
    pub handshake_timeout: Duration,
    /// HTTP/2 concurrent streams per gRPC connection (`SENTINEL_MAX_STREAMS_PER_CONNECTION`).
    pub max_streams_per_connection: u32,
    /// When a gRPC connection is asked to go away (`SENTINEL_GRPC_MAX_CONNECTION_AGE_SECS`).
    pub grpc_max_connection_age: Duration,
    /// How long its calls and streams may then finish (`SENTINEL_GRPC_MAX_CONNECTION_AGE_GRACE_SECS`).
    pub grpc_max_connection_age_grace: Duration,
    /// TLS for the gRPC listener (`SENTINEL_TLS_CERT`, `SENTINEL_TLS_KEY`, `SENTINEL_TLS_CLIENT_CA`).
    pub tls: Option<crate::net::tls::ServerTls>,
}

#[derive(Debug, thiserror::Error)]
#[error("{name}: {message}")]
pub struct ConfigError {
    /// The environment variable or file key at fault.
    pub name: String,
    pub message: String,
}

fn err(name: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        name: name.to_string(),
        message: message.into(),
    }
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
    llm: FileLlm,
    telnyx: FileTelnyx,
    auth: FileAuth,
    approvers: Vec<ApproverConfig>,
    escalation: FileEscalation,
    watch_max_lag_bytes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileEscalation {
    ring_timeout_secs: Option<u64>,
    pin_min_risk: Option<u8>,
    voice: Option<String>,
    sms: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileLlm {
    base_url: Option<String>,
    model: Option<String>,
    timeout_ms: Option<u64>,
    cache_ttl_secs: Option<u64>,
    breaker_failures: Option<u64>,
    breaker_cooldown_ms: Option<u64>,
    guard_model: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileTelnyx {
    base_url: Option<String>,
    connection_id: Option<String>,
    phone_number: Option<String>,
    admin_phone_number: Option<String>,
    public_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileAuth {
    keys: Vec<FileKey>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileKey {
    /// `agent:NAME` or `operator:NAME`.
    principal: String,
    /// Hex SHA-256 of the key (`sentinel keys hash` prints it).
    sha256: String,
}

pub const DEFAULT_GRPC_ADDR: &str = "127.0.0.1:50051";
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8080";
pub const DEFAULT_LLM_BASE_URL: &str = "https://api.groq.com/openai/v1";
pub const DEFAULT_LLM_MODEL: &str = "openai/gpt-oss-120b";
pub const DEFAULT_TELNYX_BASE_URL: &str = "https://api.telnyx.com/v2";
pub const DEFAULT_TELNYX_VOICE: &str = "Telnyx.KokoroTTS.af";

impl Config {
    /// Loads from the process environment (and the file it names).
    pub fn from_env() -> Result<Config, ConfigError> {
        Self::load(&|name| std::env::var(name).ok())
    }

    /// Loads with `env` as the environment: tests pass a map.
    pub fn load(env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &str| {
            env(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let file: FileConfig = match get("SENTINEL_CONFIG") {
            None => FileConfig::default(),
            Some(path) => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| err("SENTINEL_CONFIG", format!("cannot read {path}: {e}")))?;
                toml::from_str(&text).map_err(|e| err("SENTINEL_CONFIG", format!("{path}: {e}")))?
            }
        };

        let addr = |var: &str, file_value: Option<String>, default: &str| {
            let raw = get(var)
                .or(file_value)
                .unwrap_or_else(|| default.to_string());
            raw.parse::<SocketAddr>().map_err(|_| {
                err(
                    var,
                    format!("{raw:?} is not a socket address like 127.0.0.1:50051"),
                )
            })
        };
        let number =
            |var: &str, file_value: Option<u64>, default: u64| -> Result<u64, ConfigError> {
                let n = match get(var) {
                    Some(raw) => raw
                        .parse::<u64>()
                        .map_err(|_| err(var, format!("{raw:?} is not a whole number")))?,
                    None => file_value.unwrap_or(default),
                };
                if n == 0 {
                    return Err(err(var, "must be greater than 0"));
                }
                Ok(n)
            };
        let url = |var: &str,
                   file_value: Option<String>,
                   default: Option<&str>|
         -> Result<Option<String>, ConfigError> {
            let Some(raw) = get(var).or(file_value).or(default.map(String::from)) else {
                return Ok(None);
            };
            let parsed = reqwest::Url::parse(&raw)
                .map_err(|e| err(var, format!("{raw:?} is not a URL: {e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(err(var, format!("{raw:?} must be an http or https URL")));
            }
            Ok(Some(raw.trim_end_matches('/').to_string()))
        };

        let grpc_addr = addr("SENTINEL_GRPC_ADDR", file.grpc_addr, DEFAULT_GRPC_ADDR)?;
        let http_addr = addr("SENTINEL_HTTP_ADDR", file.http_addr, DEFAULT_HTTP_ADDR)?;

        let redis_url = match get("SENTINEL_REDIS_URL") {
            None => None,
            Some(raw) => {
                let scheme = raw.split("://").next().unwrap_or_default();
                if !raw.contains("://")
                    || !matches!(
                        scheme,
                        "redis"
                            | "rediss"
                            | "redis+cluster"
                            | "rediss+cluster"
                            | "unix"
                            | "redis+unix"
                    )
                {
                    return Err(err(
                        "SENTINEL_REDIS_URL",
                        "must be a redis://, rediss:// or redis+cluster:// URL",
                    ));
                }
                Some(Secret::new(raw))
            }
        };

        let policy_path = get("SENTINEL_POLICY").map(PathBuf::from).or(file.policy);
        if let Some(p) = &policy_path {
            if !p.is_file() {
                return Err(err(
                    "SENTINEL_POLICY",
                    format!("{} is not a readable file", p.display()),
                ));
            }
        }
        let approval_timeout = Duration::from_secs(number(
            "SENTINEL_APPROVAL_TIMEOUT_SECS",
            file.approval_timeout_secs,
            600,
        )?);
        let retention = match get("SENTINEL_RETENTION_HOURS")
            .or(file.retention_hours.map(|h| h.to_string()))
        {
            None => None,
            Some(_) => {
                let hours = number("SENTINEL_RETENTION_HOURS", file.retention_hours, 1)?;
                let retention = Duration::from_secs(hours.saturating_mul(3600));
                // Idempotency keys live 24 h: an intent must outlive its key, or a replay
                // could decide the same request again under the same id.
                if hours < 24 || retention < approval_timeout * 2 {
                    return Err(err(
                        "SENTINEL_RETENTION_HOURS",
                        "must be at least 24 (idempotency keys are kept 24 h) and at least twice the approval timeout",
                    ));
                }
                Some(retention)
            }
        };

        let llm = LlmConfig {
            api_key: get("GROQ_API_KEY").map(Secret::new),
            base_url: url(
                "SENTINEL_LLM_BASE_URL",
                file.llm.base_url,
                Some(DEFAULT_LLM_BASE_URL),
            )?
            .unwrap_or_default(),
            model: get("SENTINEL_LLM_MODEL")
                .or(file.llm.model)
                .unwrap_or_else(|| DEFAULT_LLM_MODEL.to_string()),
            timeout: Duration::from_millis(number(
                "SENTINEL_LLM_TIMEOUT_MS",
                file.llm.timeout_ms,
                3000,
            )?),
            cache_ttl: Duration::from_secs(number(
                "SENTINEL_LLM_CACHE_TTL_SECS",
                file.llm.cache_ttl_secs,
                300,
            )?),
            breaker_failures: number(
                "SENTINEL_LLM_BREAKER_FAILURES",
                file.llm.breaker_failures,
                5,
            )?
            .min(u32::MAX as u64) as u32,
            breaker_cooldown: Duration::from_millis(number(
                "SENTINEL_LLM_BREAKER_COOLDOWN_MS",
                file.llm.breaker_cooldown_ms,
                30_000,
            )?),
            guard_model: crate::scoring::guard::GuardModel::parse(
                // Read unfiltered: an empty value is an explicit "off".
                &env("SENTINEL_GUARD_MODEL")
                    .or(file.llm.guard_model)
                    .unwrap_or_else(|| crate::scoring::guard::DEFAULT_GUARD_MODEL.to_string()),
            )
            .map_err(|e| err("SENTINEL_GUARD_MODEL", e))?,
        };

        let mut telnyx = TelnyxConfig {
            api_key: get("TELNYX_API_KEY").map(Secret::new),
            public_key: get("TELNYX_PUBLIC_KEY"),
            base_url: url(
                "SENTINEL_TELNYX_BASE_URL",
                file.telnyx.base_url,
                Some(DEFAULT_TELNYX_BASE_URL),
            )?
            .unwrap_or_default(),
            connection_id: get("TELNYX_CONNECTION_ID").or(file.telnyx.connection_id),
            phone_number: get("TELNYX_PHONE_NUMBER").or(file.telnyx.phone_number),
            admin_phone_number: get("ADMIN_PHONE_NUMBER").or(file.telnyx.admin_phone_number),
            public_url: url("SENTINEL_PUBLIC_URL", file.telnyx.public_url, None)?,
            roster: Vec::new(),
            escalation: EscalationConfig {
                ring_timeout: Duration::from_secs(number(
                    "SENTINEL_RING_TIMEOUT_SECS",
                    file.escalation.ring_timeout_secs,
                    25,
                )?),
                pin_min_risk: match get("SENTINEL_PIN_MIN_RISK") {
                    Some(raw) => Some(raw.parse::<u8>().ok().filter(|n| *n <= 101).ok_or_else(
                        || {
                            err(
                                "SENTINEL_PIN_MIN_RISK",
                                format!("{raw:?} is not a risk score from 0 to 101"),
                            )
                        },
                    )?),
                    None => file.escalation.pin_min_risk,
                },
                voice: file
                    .escalation
                    .voice
                    .unwrap_or_else(|| DEFAULT_TELNYX_VOICE.to_string()),
                sms: file.escalation.sms.unwrap_or(true),
            },
        };
        for (var, value) in [
            ("TELNYX_PHONE_NUMBER", &telnyx.phone_number),
            ("ADMIN_PHONE_NUMBER", &telnyx.admin_phone_number),
        ] {
            if let Some(v) = value {
                if !is_e164(v) {
                    return Err(err(
                        var,
                        format!("{v:?} is not an E.164 number like +14155550100"),
                    ));
                }
            }
        }
        telnyx.roster = roster(
            file.approvers,
            telnyx.admin_phone_number.as_deref(),
            get("ADMIN_PIN_SHA256"),
        )?;
        if !(5..=600).contains(&telnyx.escalation.ring_timeout.as_secs()) {
            return Err(err(
                "SENTINEL_RING_TIMEOUT_SECS",
                "must be between 5 and 600 seconds (Telnyx's dial timeout range)",
            ));
        }
        if telnyx.api_key.is_some() {
            for (var, value) in [
                ("TELNYX_CONNECTION_ID", &telnyx.connection_id),
                ("TELNYX_PHONE_NUMBER", &telnyx.phone_number),
            ] {
                if value.is_none() {
                    return Err(err(var, "is required when TELNYX_API_KEY is set"));
                }
            }
        }
        if let Some(key) = &telnyx.public_key {
            use base64::Engine as _;
            let ok = base64::engine::general_purpose::STANDARD
                .decode(key)
                .is_ok_and(|bytes| bytes.len() == 32);
            if !ok {
                return Err(err(
                    "TELNYX_PUBLIC_KEY",
                    "must be the account's Base64 Ed25519 public key (32 bytes)",
                ));
            }
        }

        let log_format = match get("SENTINEL_LOG_FORMAT") {
            None => file.log_format.unwrap_or_default(),
            Some(v) => match v.as_str() {
                "json" => LogFormat::Json,
                "text" => LogFormat::Text,
                other => {
                    return Err(err(
                        "SENTINEL_LOG_FORMAT",
                        format!("{other:?} is not 'text' or 'json'"),
                    ))
                }
            },
        };
        let telemetry = TelemetryConfig {
            otlp_endpoint: url("OTEL_EXPORTER_OTLP_ENDPOINT", None, None)?,
            service_name: get("OTEL_SERVICE_NAME").unwrap_or_else(|| "sentinel".to_string()),
            log_format,
            log_filter: get("SENTINEL_LOG")
                .or_else(|| get("RUST_LOG"))
                .unwrap_or_else(|| "info".to_string()),
        };

        let mut keys = BTreeMap::new();
        for (i, k) in file.auth.keys.into_iter().enumerate() {
            let name = format!("auth.keys[{i}]");
            let principal = Principal::parse(&k.principal)
                .ok_or_else(|| err(&name, "principal must be 'agent:NAME' or 'operator:NAME'"))?;
            let hash = k.sha256.trim().to_ascii_lowercase();
            if hash.len() != 64 || !hash.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(err(&name, "sha256 must be 64 hex characters"));
            }
            keys.insert(hash, principal);
        }
        if let Some(raw) = get("SENTINEL_API_KEYS") {
            for (i, entry) in raw
                .split([';', ','])
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .enumerate()
            {
                let (principal, key) = entry.rsplit_once('=').ok_or_else(|| {
                    err(
                        "SENTINEL_API_KEYS",
                        format!(
                            "entry {} must be 'agent:NAME=KEY' or 'operator:NAME=KEY'",
                            i + 1
                        ),
                    )
                })?;
                let principal = Principal::parse(principal).ok_or_else(|| {
                    err(
                        "SENTINEL_API_KEYS",
                        format!(
                            "entry {}: principal must be 'agent:NAME' or 'operator:NAME'",
                            i + 1
                        ),
                    )
                })?;
                if key.trim().len() < 16 {
                    return Err(err(
                        "SENTINEL_API_KEYS",
                        format!("entry {}: keys must be at least 16 characters", i + 1),
                    ));
                }
                keys.insert(hash_key(key.trim()), principal);
            }
        }

        let tls = match (
            get("SENTINEL_TLS_CERT"),
            get("SENTINEL_TLS_KEY"),
            get("SENTINEL_TLS_CLIENT_CA"),
        ) {
            (None, None, None) => None,
            (Some(_), None, _) => {
                return Err(err(
                    "SENTINEL_TLS_KEY",
                    "is required when SENTINEL_TLS_CERT is set",
                ))
            }
            (None, Some(_), _) => {
                return Err(err(
                    "SENTINEL_TLS_CERT",
                    "is required when SENTINEL_TLS_KEY is set",
                ))
            }
            (None, None, Some(_)) => {
                return Err(err(
                    "SENTINEL_TLS_CLIENT_CA",
                    "needs SENTINEL_TLS_CERT and SENTINEL_TLS_KEY (client certificates are only checked over TLS)",
                ))
            }
            (Some(cert), Some(key), ca) => Some(
                crate::net::tls::ServerTls::from_pem_files(
                    std::path::Path::new(&cert),
                    std::path::Path::new(&key),
                    ca.as_deref().map(std::path::Path::new),
                )
                .map_err(|e| err(e.variable, e.message))?,
            ),
        };
        let net = NetConfig {
            handshake_timeout: Duration::from_secs(number(
                "SENTINEL_HANDSHAKE_TIMEOUT_SECS",
                None,
                10,
            )?),
            max_streams_per_connection: u32::try_from(number(
                "SENTINEL_MAX_STREAMS_PER_CONNECTION",
                None,
                1000,
            )?)
            .map_err(|_| err("SENTINEL_MAX_STREAMS_PER_CONNECTION", "is too large"))?,
            grpc_max_connection_age: Duration::from_secs(number(
                "SENTINEL_GRPC_MAX_CONNECTION_AGE_SECS",
                None,
                1800,
            )?),
            grpc_max_connection_age_grace: Duration::from_secs(number(
                "SENTINEL_GRPC_MAX_CONNECTION_AGE_GRACE_SECS",
                None,
                60,
            )?),
            tls,
        };

        let max_watches_per_agent = number(
            "SENTINEL_MAX_WATCHES_PER_AGENT",
            None,
            crate::gateway::limits::DEFAULT_MAX_WATCHES as u64,
        )?
        .min(usize::MAX as u64) as usize;
        let agent_rate_limit = match get("SENTINEL_AGENT_RATE_LIMIT") {
            None => None,
            Some(raw) => Some(
                raw.parse::<std::num::NonZeroU32>()
                    .map_err(|_| {
                        err(
                            "SENTINEL_AGENT_RATE_LIMIT",
                            format!("{raw:?} is not a whole number of requests per second above 0 (unset it for no limit)"),
                        )
                    })?,
            ),
        };

        let watch_max_lag_bytes = number(
            "SENTINEL_WATCH_MAX_LAG_BYTES",
            file.watch_max_lag_bytes,
            crate::grpc::stream::DEFAULT_MAX_LAG_BYTES as u64,
        )?;
        // One event with a full set of labels must fit, or no follower could ever keep up.
        if !(MIN_WATCH_LAG_BYTES..=MAX_WATCH_LAG_BYTES).contains(&watch_max_lag_bytes) {
            return Err(err(
                "SENTINEL_WATCH_MAX_LAG_BYTES",
                format!("must be between {MIN_WATCH_LAG_BYTES} and {MAX_WATCH_LAG_BYTES}"),
            ));
        }

        Ok(Config {
            grpc_addr,
            http_addr,
            redis_url,
            policy_path,
            approval_timeout,
            retention,
            limits: file.limits.unwrap_or_default(),
            llm,
            telnyx,
            telemetry,
            keys: KeyRing::new(keys),
            net,
            max_watches_per_agent,
            agent_rate_limit,
            watch_max_lag_bytes: watch_max_lag_bytes as usize,
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

/// The PIN tier when none is configured and some approver has a PIN: critical risk.
pub const DEFAULT_PIN_MIN_RISK: u8 = 90;

impl EscalationConfig {
    /// The risk score from which an approval needs the approver's PIN (101: never).
    pub fn pin_tier(&self, roster: &[ApproverConfig]) -> u8 {
        match self.pin_min_risk {
            Some(tier) => tier,
            None if roster.iter().any(|a| a.pin_sha256.is_some()) => DEFAULT_PIN_MIN_RISK,
            None => 101,
        }
    }
}

/// The roster: the file's `[[approvers]]`, validated and sorted by `order`; without any,
/// `ADMIN_PHONE_NUMBER` (with `ADMIN_PIN_SHA256`) as the only approver.
fn roster(
    approvers: Vec<ApproverConfig>,
    admin: Option<&str>,
    admin_pin: Option<String>,
) -> Result<Vec<ApproverConfig>, ConfigError> {
    let pin_ok = |p: &str| p.len() == 64 && p.chars().all(|c| c.is_ascii_hexdigit());
    if let Some(pin) = &admin_pin {
        if !pin_ok(pin) {
            return Err(err(
                "ADMIN_PIN_SHA256",
                "must be 64 hex characters (sha256 of the PIN)",
            ));
        }
    }
    if approvers.is_empty() {
        return Ok(admin
            .map(|phone| ApproverConfig {
                name: "admin".into(),
                phone: phone.to_string(),
                pin_sha256: admin_pin.map(|p| p.to_ascii_lowercase()),
                modules: Vec::new(),
                min_risk: 0,
                order: 0,
            })
            .into_iter()
            .collect());
    }
    let mut out = Vec::with_capacity(approvers.len());
    for (i, mut a) in approvers.into_iter().enumerate() {
        let name = |field: &str| format!("approvers[{i}].{field}");
        if a.name.trim().is_empty() {
            return Err(err(&name("name"), "must not be empty"));
        }
        if !is_e164(&a.phone) {
            return Err(err(
                &name("phone"),
                format!("{:?} is not an E.164 number like +14155550100", a.phone),
            ));
        }
        if let Some(pin) = &a.pin_sha256 {
            if !pin_ok(pin) {
                return Err(err(
                    &name("pin_sha256"),
                    "must be 64 hex characters (sha256 of the PIN)",
                ));
            }
        }
        if a.min_risk > 100 {
            return Err(err(&name("min_risk"), "must be a risk score from 0 to 100"));
        }
        if out.iter().any(|o: &ApproverConfig| o.name == a.name) {
            return Err(err(
                &name("name"),
                format!(
                    "{:?} is used twice; progress lines and decisions name approvers",
                    a.name
                ),
            ));
        }
        if out.iter().any(|o: &ApproverConfig| o.phone == a.phone) {
            return Err(err(
                &name("phone"),
                "two approvers share this number; SMS replies could not be told apart",
            ));
        }
        a.pin_sha256 = a.pin_sha256.map(|p| p.to_ascii_lowercase());
        out.push(a);
    }
    out.sort_by_key(|a| a.order);
    Ok(out)
}

fn is_e164(s: &str) -> bool {
    s.len() >= 8
        && s.len() <= 16
        && s.starts_with('+')
        && s[1..].chars().all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load(&|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_start_with_nothing_set() {
        let c = load(&[]).unwrap();
        assert_eq!(c.grpc_addr.to_string(), DEFAULT_GRPC_ADDR);
        assert_eq!(c.http_addr.to_string(), DEFAULT_HTTP_ADDR);
        assert_eq!(c.approval_timeout, Duration::from_secs(600));
        assert_eq!(c.llm.model, "openai/gpt-oss-120b");
        assert_eq!(c.llm.timeout, Duration::from_millis(3000));
        assert!(c.keys.is_open() && c.redis_url.is_none() && c.llm.api_key.is_none());
    }

    #[test]
    fn the_guard_model_is_on_by_default_and_off_only_when_asked() {
        use crate::scoring::guard::{GuardFamily, DEFAULT_GUARD_MODEL};
        let default = load(&[]).unwrap().llm.guard_model.expect("on by default");
        assert_eq!(default.id, DEFAULT_GUARD_MODEL);
        for off in ["off", "", "none"] {
            assert_eq!(
                load(&[("SENTINEL_GUARD_MODEL", off)])
                    .unwrap()
                    .llm
                    .guard_model,
                None
            );
        }
        let safeguard = load(&[("SENTINEL_GUARD_MODEL", "openai/gpt-oss-safeguard-20b")])
            .unwrap()
            .llm
            .guard_model
            .unwrap();
        assert_eq!(safeguard.family, GuardFamily::Safeguard);
        let err = load(&[("SENTINEL_GUARD_MODEL", "llama-3.3-70b-versatile")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("SENTINEL_GUARD_MODEL"), "{err}");
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [
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
        ] {
            let e = load(&[(var, value)]).unwrap_err();
            assert_eq!(e.name, var, "{e}");
        }
    }

    #[test]
    fn roster_comes_from_the_file_or_the_admin_number() {
        let c = load(&[("ADMIN_PHONE_NUMBER", "+14155550100")]).unwrap();
        assert_eq!(c.telnyx.roster.len(), 1);
        assert_eq!(c.telnyx.roster[0].phone, "+14155550100");
        assert_eq!(c.telnyx.escalation.ring_timeout, Duration::from_secs(25));
        // Nobody has a PIN: the PIN tier is off unless configured.
        assert_eq!(c.telnyx.escalation.pin_tier(&c.telnyx.roster), 101);
        let c = load(&[
            ("ADMIN_PHONE_NUMBER", "+14155550100"),
            ("ADMIN_PIN_SHA256", &"b".repeat(64)),
        ])
        .unwrap();
        assert_eq!(
            c.telnyx.escalation.pin_tier(&c.telnyx.roster),
            DEFAULT_PIN_MIN_RISK
        );
        let c = load(&[
            ("ADMIN_PHONE_NUMBER", "+14155550100"),
            ("SENTINEL_PIN_MIN_RISK", "70"),
        ])
        .unwrap();
        assert_eq!(c.telnyx.escalation.pin_tier(&c.telnyx.roster), 70);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sentinel.toml");
        std::fs::write(
            &path,
            format!(
                "[escalation]\nring_timeout_secs = 10\n\n[[approvers]]\nname = \"bob\"\nphone = \"+14155550102\"\norder = 2\n\n[[approvers]]\nname = \"alice\"\nphone = \"+14155550101\"\npin_sha256 = \"{}\"\nmodules = [\"VaultKeeper\"]\nmin_risk = 60\norder = 1\n",
                "A".repeat(64)
            ),
        )
        .unwrap();
        let c = load(&[
            ("SENTINEL_CONFIG", path.to_str().unwrap()),
            ("ADMIN_PHONE_NUMBER", "+14155550100"),
        ])
        .unwrap();
        let names: Vec<_> = c.telnyx.roster.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["alice", "bob"]);
        assert_eq!(
            c.telnyx.roster[0].pin_sha256.as_deref(),
            Some("a".repeat(64).as_str())
        );
        assert_eq!(c.telnyx.escalation.ring_timeout, Duration::from_secs(10));
        assert!(!format!("{c:?}").contains(&"a".repeat(64)));

        std::fs::write(
            &path,
            "[[approvers]]\nname = \"x\"\nphone = \"+14155550101\"\n\n[[approvers]]\nname = \"x\"\nphone = \"+14155550102\"\n",
        )
        .unwrap();
        let e = load(&[("SENTINEL_CONFIG", path.to_str().unwrap())]).unwrap_err();
        assert_eq!(e.name, "approvers[1].name");
        std::fs::write(&path, "[[approvers]]\nname = \"x\"\nphone = \"555\"\n").unwrap();
        let e = load(&[("SENTINEL_CONFIG", path.to_str().unwrap())]).unwrap_err();
        assert_eq!(e.name, "approvers[0].phone");
        for (var, value) in [
            ("SENTINEL_RING_TIMEOUT_SECS", "2"),
            ("SENTINEL_PIN_MIN_RISK", "300"),
            ("ADMIN_PIN_SHA256", "1234"),
            ("TELNYX_PUBLIC_KEY", "bm90IGEga2V5"),
        ] {
            assert_eq!(load(&[(var, value)]).unwrap_err().name, var);
        }
        // A Telnyx key needs the voice app and the caller id.
        assert_eq!(
            load(&[("TELNYX_API_KEY", "KEY0123")]).unwrap_err().name,
            "TELNYX_CONNECTION_ID"
        );
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
