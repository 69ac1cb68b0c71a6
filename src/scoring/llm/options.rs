//! The scorer's options, built once from the typed settings.

use super::*;

/// Everything the scorer needs; built from [`LlmSettings`] or by tests.
#[derive(Debug, Clone)]
pub struct LlmOptions {
    /// Without the trailing `/chat/completions`, e.g. `https://api.groq.com/openai/v1`.
    pub base_url: String,
    pub api_key: Secret,
    pub model: String,
    /// The whole call's deadline, retries included.
    pub timeout: Duration,
    /// Retries after the first attempt (the groq SDK's default is 2).
    pub max_retries: u32,
    /// Consecutive failed calls that open the breaker.
    pub breaker_failures: u32,
    /// How long an open breaker refuses calls before letting one probe through.
    pub breaker_cooldown: Duration,
    pub cache_ttl: Duration,
    pub cache_capacity: usize,
    /// The prompt-attack classifier; `None` only when explicitly switched off.
    pub guard: Option<GuardModel>,
}

impl LlmOptions {
    /// Options with the defaults for everything but the endpoint, key, model and deadline.
    pub fn new(
        base_url: impl Into<String>,
        api_key: Secret,
        model: impl Into<String>,
        timeout: Duration,
    ) -> Self {
        LlmOptions {
            base_url: base_url.into().trim_end_matches('/').to_string(),
            api_key,
            model: model.into(),
            timeout,
            max_retries: 2,
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(30),
            cache_ttl: Duration::from_secs(300),
            cache_capacity: 10_000,
            guard: GuardModel::parse(guard::DEFAULT_GUARD_MODEL).unwrap_or_default(),
        }
    }

    /// The configured scorer with `timeout` as the whole call's deadline.
    pub fn from_settings(settings: &LlmSettings, timeout: Duration) -> Self {
        LlmOptions {
            base_url: settings.base_url.clone(),
            api_key: settings.api_key.clone(),
            model: settings.model.clone(),
            timeout,
            breaker_failures: settings.breaker_failures,
            breaker_cooldown: settings.breaker_cooldown,
            cache_ttl: settings.cache_ttl,
            guard: settings.guard_model.clone(),
            ..Self::new(String::new(), settings.api_key.clone(), "", timeout)
        }
    }
}
