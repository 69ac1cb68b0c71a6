//! The LLM scorer: on only with `GROQ_API_KEY`; every knob is checked whether or not it is on,
//! so a typo does not wait for the day a key is added.

use std::time::Duration;

use serde::Deserialize;

use super::env::Env;
use super::guard::{GuardModel, DEFAULT_GUARD_MODEL};
use super::{ConfigError, Secret};

pub const DEFAULT_LLM_BASE_URL: &str = "https://api.groq.com/openai/v1";
pub const DEFAULT_LLM_MODEL: &str = "openai/gpt-oss-120b";

#[derive(Debug, Clone)]
pub struct LlmConfig {
    /// The deadline of one scoring call (`SENTINEL_LLM_TIMEOUT_MS`); the gateway bounds any
    /// scorer by it, the fallback included.
    pub timeout: Duration,
    /// The Groq scorer; `None` without `GROQ_API_KEY` (the deterministic fallback runs).
    pub scorer: Option<LlmSettings>,
}

/// What the LLM scorer is built from.
#[derive(Debug, Clone)]
pub struct LlmSettings {
    pub api_key: Secret,
    /// Without the trailing slash (`SENTINEL_LLM_BASE_URL`).
    pub base_url: String,
    pub model: String,
    /// How long a verdict is reused for an identical intent (`SENTINEL_LLM_CACHE_TTL_SECS`).
    pub cache_ttl: Duration,
    /// Consecutive failed calls that open the circuit breaker (`SENTINEL_LLM_BREAKER_FAILURES`).
    pub breaker_failures: u32,
    /// How long an open breaker refuses calls (`SENTINEL_LLM_BREAKER_COOLDOWN_MS`).
    pub breaker_cooldown: Duration,
    /// The prompt-attack classifier (`SENTINEL_GUARD_MODEL`); `None` only when switched off.
    pub guard_model: Option<GuardModel>,
}

/// `[llm]` in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct FileLlm {
    base_url: Option<String>,
    model: Option<String>,
    timeout_ms: Option<u64>,
    cache_ttl_secs: Option<u64>,
    breaker_failures: Option<u64>,
    breaker_cooldown_ms: Option<u64>,
    guard_model: Option<String>,
}

pub(super) fn load(env: &Env<'_>, file: FileLlm) -> Result<LlmConfig, ConfigError> {
    let base_url = env
        .url(
            "SENTINEL_LLM_BASE_URL",
            file.base_url,
            Some(DEFAULT_LLM_BASE_URL),
        )?
        .unwrap_or_default();
    let model = env
        .get("SENTINEL_LLM_MODEL")
        .or(file.model)
        .unwrap_or_else(|| DEFAULT_LLM_MODEL.to_string());
    let timeout =
        Duration::from_millis(env.number("SENTINEL_LLM_TIMEOUT_MS", file.timeout_ms, 3000)?);
    let cache_ttl =
        Duration::from_secs(env.number("SENTINEL_LLM_CACHE_TTL_SECS", file.cache_ttl_secs, 300)?);
    let breaker_failures = env
        .number("SENTINEL_LLM_BREAKER_FAILURES", file.breaker_failures, 5)?
        .min(u32::MAX as u64) as u32;
    let breaker_cooldown = Duration::from_millis(env.number(
        "SENTINEL_LLM_BREAKER_COOLDOWN_MS",
        file.breaker_cooldown_ms,
        30_000,
    )?);
    let guard_model = GuardModel::parse(
        // Read unfiltered: an empty value is an explicit "off".
        &env.raw("SENTINEL_GUARD_MODEL")
            .or(file.guard_model)
            .unwrap_or_else(|| DEFAULT_GUARD_MODEL.to_string()),
    )
    .map_err(|e| ConfigError::new("SENTINEL_GUARD_MODEL", e))?;
    let scorer = env.get("GROQ_API_KEY").map(|key| LlmSettings {
        api_key: Secret::new(key),
        base_url,
        model,
        cache_ttl,
        breaker_failures,
        breaker_cooldown,
        guard_model,
    });
    Ok(LlmConfig { timeout, scorer })
}

#[cfg(test)]
mod tests {
    use super::super::tests::load;
    use std::time::Duration;

    const KEY: (&str, &str) = ("GROQ_API_KEY", "gsk_0123456789");

    #[test]
    fn the_scorer_is_on_only_with_a_key_and_takes_the_defaults() {
        let c = load(&[]).unwrap();
        assert!(c.llm.scorer.is_none());
        assert_eq!(c.llm.timeout, Duration::from_millis(3000));
        let s = load(&[KEY]).unwrap().llm.scorer.expect("a key turns it on");
        assert_eq!(s.model, "openai/gpt-oss-120b");
        assert_eq!(s.base_url, super::DEFAULT_LLM_BASE_URL);
        assert_eq!(s.api_key.expose(), "gsk_0123456789");
    }

    #[test]
    fn the_guard_model_is_on_by_default_and_off_only_when_asked() {
        use super::super::guard::{GuardFamily, DEFAULT_GUARD_MODEL};
        let guard = |vars: &[(&str, &str)]| {
            let mut all = vars.to_vec();
            all.push(KEY);
            load(&all).unwrap().llm.scorer.expect("key set").guard_model
        };
        let default = guard(&[]).expect("on by default");
        assert_eq!(default.id, DEFAULT_GUARD_MODEL);
        for off in ["off", "", "none"] {
            assert_eq!(guard(&[("SENTINEL_GUARD_MODEL", off)]), None);
        }
        let safeguard = guard(&[("SENTINEL_GUARD_MODEL", "openai/gpt-oss-safeguard-20b")]).unwrap();
        assert_eq!(safeguard.family, GuardFamily::Safeguard);
        // A bad id stops start-up even while the scorer is off.
        let err = load(&[("SENTINEL_GUARD_MODEL", "llama-3.3-70b-versatile")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("SENTINEL_GUARD_MODEL"), "{err}");
    }
}
