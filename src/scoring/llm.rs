//! The LLM scorer: Groq (or any OpenAI-compatible endpoint) over `POST /chat/completions`.
//!
//! One pooled `reqwest` client, bearer auth, and one deadline per call that bounds every
//! attempt, every retry wait and the body read: retries on 408/409/429/498/5xx honour
//! `retry-after` (and `x-should-retry`) only while they fit before the deadline. A circuit
//! breaker opens after consecutive failures so a dead provider costs nothing while it is open;
//! a single probe closes it again. Verdicts are cached by content ([`super::cache`]).
//!
//! Every failure is a [`ScoreError`] whose code names it; [`super::combine`] turns any of them
//! into an escalation, never an approval. The API key is sent as a sensitive header and is
//! never logged or printed.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;
use tracing::{field::Empty, warn, Instrument};

use super::cache::{self, Cache, Source};
use super::guard::{self, GuardAnswer, GuardFamily, GuardModel};
use super::prompt::{self, Verdict};
use super::scan::{self, INJECTION_SCORE};
use super::{facts, Assessment, ScoreError, ScoreRequest, Scorer};
use crate::config::{LlmSettings, Secret};
use crate::domain::{Intent, Reason, ReasonSource, RiskScore, ScorerInfo};

/// Output budget for a verdict. gpt-oss reasons before answering and its reasoning counts
/// against this, so it is well above the ~100 tokens of the JSON itself.
const SCORE_MAX_TOKENS: u32 = 1024;
const ANSWER_MAX_TOKENS: u32 = 600;
/// Largest response body read; a chat completion for these prompts is a few KiB.
const MAX_BODY_BYTES: usize = 1 << 20;
/// First retry wait when the provider gives no `retry-after`; doubles per retry.
const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Models Groq has decommissioned (docs/llm.md): requests to them fail.
const RETIRED_MODELS: [&str; 2] = ["llama-3.3-70b-versatile", "llama-3.1-8b-instant"];

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

/// A model's verdict as cached: what the model said and what it cost.
#[derive(Debug, Clone)]
struct Scored {
    verdict: Verdict,
    info: ScorerInfo,
}

pub struct LlmScorer {
    client: reqwest::Client,
    endpoint: String,
    model: String,
    provider: &'static str,
    server: String,
    timeout: Duration,
    max_retries: u32,
    breaker: Breaker,
    cache: Cache<Scored>,
    guard: Option<GuardModel>,
    /// The classifier has a breaker of its own: a classifier outage must not stop scoring
    /// (and the reverse), though either one escalates.
    guard_breaker: Breaker,
    guard_cache: Cache<GuardAnswer>,
}

impl std::fmt::Debug for LlmScorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmScorer")
            .field("endpoint", &self.endpoint)
            .field("model", &self.model)
            .field("timeout", &self.timeout)
            .field("guard", &self.guard)
            .finish_non_exhaustive()
    }
}

impl LlmScorer {
    pub fn new(options: LlmOptions) -> Result<Self, ScoreError> {
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", options.api_key.expose()))
            .map_err(|_| {
                ScoreError::Unavailable(
                    "GROQ_API_KEY contains characters not allowed in an HTTP header".into(),
                )
            })?;
        // Sensitive: hyper keeps it out of HPACK tables and reqwest out of Debug output.
        auth.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, auth);
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("sentinel/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(options.timeout.min(Duration::from_secs(5)))
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| ScoreError::Unavailable(format!("cannot build the HTTP client: {e}")))?;
        match &options.guard {
            Some(g) => tracing::info!(guard_model = %g.id, "prompt-attack classifier on"),
            None => warn!("SENTINEL_GUARD_MODEL is off: no prompt-attack classifier reads the agent's text; only the built-in scan does"),
        }
        if RETIRED_MODELS.contains(&options.model.as_str()) {
            warn!(model = %options.model, "SENTINEL_LLM_MODEL names a model Groq retired on 2026-08-16; calls will fail and every open intent will escalate. Use openai/gpt-oss-120b.");
        }
        let host = reqwest::Url::parse(&options.base_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
        let provider = if host.ends_with("groq.com") {
            "groq"
        } else if host.ends_with("openai.com") {
            "openai"
        } else {
            "openai_compatible"
        };
        Ok(LlmScorer {
            client,
            endpoint: format!("{}/chat/completions", options.base_url),
            model: options.model,
            provider,
            server: host,
            timeout: options.timeout,
            max_retries: options.max_retries,
            breaker: Breaker::new(options.breaker_failures, options.breaker_cooldown)
                .reporting(crate::metrics::set_scorer_breaker_open),
            cache: Cache::new(options.cache_capacity, options.cache_ttl),
            guard_breaker: Breaker::new(options.breaker_failures, options.breaker_cooldown),
            guard_cache: Cache::new(options.cache_capacity, options.cache_ttl),
            guard: options.guard,
        })
    }

    /// The instant this call must be finished by. A little under the configured timeout, so
    /// that this scorer reports its own, precise failure (and feeds its breaker) before the
    /// gateway's hard cut-off at the full timeout fires.
    fn deadline(&self) -> Instant {
        let margin = (self.timeout / 20).min(Duration::from_millis(100));
        Instant::now() + self.timeout - margin
    }

    fn timeout_error(&self) -> ScoreError {
        ScoreError::Timeout(self.timeout.as_millis() as u64)
    }

    /// One chat completion through the breaker, with retries, inside a GenAI span.
    async fn chat(
        &self,
        breaker: &Breaker,
        request: ChatRequest<'_>,
        deadline: Instant,
    ) -> Result<Completion, ScoreError> {
        let span = tracing::info_span!(
            "gen_ai.chat",
            "otel.name" = %format!("chat {}", request.model),
            "otel.kind" = "client",
            "gen_ai.operation.name" = "chat",
            "gen_ai.system" = self.provider,
            "gen_ai.provider.name" = self.provider,
            "gen_ai.request.model" = %request.model,
            "gen_ai.request.max_tokens" = request.max_completion_tokens,
            "gen_ai.request.temperature" = request.temperature,
            "gen_ai.response.model" = Empty,
            "gen_ai.response.finish_reasons" = Empty,
            "gen_ai.usage.input_tokens" = Empty,
            "gen_ai.usage.output_tokens" = Empty,
            "server.address" = %self.server,
            "error.type" = Empty,
            "sentinel.llm.attempts" = Empty,
        );
        let result = async {
            let permit = breaker.acquire().map_err(|retry_in| {
                ScoreError::Unavailable(format!(
                    "circuit breaker open after repeated {} failures; next probe in {} ms",
                    request.model,
                    retry_in.as_millis()
                ))
            })?;
            let result = self.send(&request, deadline).await;
            // A wrong answer still proves the provider is alive; only reachability counts.
            permit.record(!matches!(
                result,
                Err(ScoreError::Unavailable(_) | ScoreError::Timeout(_))
            ));
            result
        }
        .instrument(span.clone())
        .await;
        match &result {
            Ok(c) => {
                span.record("gen_ai.response.model", c.model.as_str());
                span.record(
                    "gen_ai.response.finish_reasons",
                    format!("[\"{}\"]", c.finish_reason).as_str(),
                );
                span.record("gen_ai.usage.input_tokens", c.input_tokens);
                span.record("gen_ai.usage.output_tokens", c.output_tokens);
            }
            Err(e) => {
                span.record("error.type", e.code());
            }
        }
        result
    }

    /// Sends with retries until success, a non-retryable answer, or the deadline.
    async fn send(
        &self,
        request: &ChatRequest<'_>,
        deadline: Instant,
    ) -> Result<Completion, ScoreError> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            tracing::Span::current().record("sentinel.llm.attempts", attempt);
            let outcome = match tokio::time::timeout_at(deadline, self.attempt(request)).await {
                Ok(outcome) => outcome,
                Err(_) => return Err(self.timeout_error()),
            };
            let (error, wait) = match outcome {
                Attempt::Done(result) => return result,
                Attempt::Retry { error, after } => (error, after),
            };
            if attempt > self.max_retries {
                return Err(error);
            }
            let wait = wait.unwrap_or_else(|| backoff(attempt));
            if Instant::now() + wait >= deadline {
                // Waiting would outlive the deadline: fail now rather than at it.
                return Err(match error {
                    ScoreError::Unavailable(m) => ScoreError::Unavailable(format!(
                        "{m}; retrying in {} ms would pass the scorer deadline",
                        wait.as_millis()
                    )),
                    other => other,
                });
            }
            warn!(attempt, wait_ms = wait.as_millis() as u64, error = %error, "LLM call failed; retrying");
            tokio::time::sleep(wait).await;
        }
    }

    async fn attempt(&self, request: &ChatRequest<'_>) -> Attempt {
        let response = match self.client.post(&self.endpoint).json(request).send().await {
            Ok(r) => r,
            Err(e) => {
                let error = ScoreError::Unavailable(format!(
                    "cannot reach the LLM endpoint: {}",
                    e.without_url()
                ));
                return Attempt::Retry { error, after: None };
            }
        };
        let status = response.status();
        let headers = response.headers().clone();
        let body = match read_body(response).await {
            Ok(b) => b,
            Err(e) => {
                return Attempt::Retry {
                    error: ScoreError::Unavailable(e),
                    after: None,
                }
            }
        };
        if status.is_success() {
            return Attempt::Done(parse_completion(&body, request.model));
        }
        let detail = ErrorBody::describe(&body);
        let should_retry = match headers.get("x-should-retry").and_then(|v| v.to_str().ok()) {
            Some("true") => true,
            Some("false") => false,
            _ => matches!(status.as_u16(), 408 | 409 | 429 | 498) || status.is_server_error(),
        };
        if status == StatusCode::BAD_REQUEST && detail.code == "json_validate_failed" {
            return Attempt::Done(Err(ScoreError::InvalidOutput(format!(
                "the provider rejected the model's output as not matching the schema (400 json_validate_failed): {}",
                detail.message
            ))));
        }
        let error = ScoreError::Unavailable(match status {
            StatusCode::TOO_MANY_REQUESTS => {
                format!("rate limited by the LLM provider (429): {}", detail.message)
            }
            _ => format!(
                "LLM endpoint answered HTTP {}: {}",
                status.as_u16(),
                detail.message
            ),
        });
        if should_retry {
            Attempt::Retry {
                error,
                after: retry_after(&headers),
            }
        } else {
            Attempt::Done(Err(error))
        }
    }

    /// One scoring pass (cached by its exact messages): the checked-facts pass or the text pass.
    async fn pass(
        &self,
        name: &str,
        (system, user): (String, String),
        deadline: Instant,
    ) -> Result<(Scored, Source), ScoreError> {
        let key = cache::key_of(&[name, &self.model, &system, &user]);
        let work = self.cache.get_or_try(&key, || async {
            let completion = self
                .chat(
                    &self.breaker,
                    ChatRequest {
                        model: &self.model,
                        messages: vec![Message::system(&system), Message::user(&user)],
                        // Groq turns 0 into 1e-8; as deterministic as the provider allows.
                        temperature: 0.0,
                        max_completion_tokens: SCORE_MAX_TOKENS,
                        response_format: Some(prompt::response_format(&self.model)),
                        reasoning_effort: reasoning_effort(&self.model),
                    },
                    deadline,
                )
                .await?;
            let verdict =
                prompt::parse_verdict(&completion.content).map_err(ScoreError::InvalidOutput)?;
            Ok(Scored {
                verdict,
                info: ScorerInfo {
                    model: completion.model,
                    input_tokens: completion.input_tokens,
                    output_tokens: completion.output_tokens,
                    cached: false,
                },
            })
        });
        match tokio::time::timeout_at(deadline, work).await {
            Ok(result) => result,
            Err(_) => Err(self.timeout_error()),
        }
    }

    /// Runs the prompt-attack classifier over the agent's unchecked texts. `Ok(None)`: clean
    /// (or nothing to read); `Ok(Some(detail))`: an attack; `Err`: no answer to trust.
    async fn guard_check(
        &self,
        model: &GuardModel,
        texts: &[&str],
        deadline: Instant,
    ) -> Result<Option<String>, ScoreError> {
        if texts.is_empty() {
            return Ok(None);
        }
        let bodies = guard::requests(model.family, texts).map_err(ScoreError::Unavailable)?;
        let calls = bodies.iter().map(|body| async move {
            let key = cache::key_of(&["guard", &model.id, body]);
            self.guard_cache
                .get_or_try(&key, || async {
                    let messages = match model.family {
                        GuardFamily::PromptGuard => vec![Message::user(body)],
                        GuardFamily::Safeguard => vec![
                            Message::system(guard::SAFEGUARD_POLICY),
                            Message::user(body),
                        ],
                    };
                    let safeguard = model.family == GuardFamily::Safeguard;
                    let completion = self
                        .chat(
                            &self.guard_breaker,
                            ChatRequest {
                                model: &model.id,
                                messages,
                                temperature: 0.0,
                                max_completion_tokens: if safeguard {
                                    SCORE_MAX_TOKENS
                                } else {
                                    16
                                },
                                response_format: safeguard
                                    .then(|| serde_json::json!({"type": "json_object"})),
                                reasoning_effort: safeguard.then_some("low"),
                            },
                            deadline,
                        )
                        .await?;
                    guard::parse_answer(model.family, &completion.content)
                        .map_err(ScoreError::InvalidOutput)
                })
                .await
                .map(|(answer, _)| answer)
        });
        let work = futures::future::try_join_all(calls);
        let answers = match tokio::time::timeout_at(deadline, work).await {
            Ok(result) => result?,
            Err(_) => return Err(self.timeout_error()),
        };
        Ok(answers.into_iter().find_map(|a| match a {
            GuardAnswer::Attack(detail) => Some(detail),
            GuardAnswer::Clean => None,
        }))
    }
}

fn reasoning_effort(model: &str) -> Option<&'static str> {
    // Only gpt-oss takes low/medium/high; qwen3 takes none/default; others reject the field.
    prompt::supports_strict_schema(model).then_some("low")
}

#[async_trait]
impl Scorer for LlmScorer {
    fn name(&self) -> &str {
        &self.model
    }

    fn is_remote(&self) -> bool {
        true
    }

    async fn score(&self, request: &ScoreRequest<'_>) -> Result<Assessment, ScoreError> {
        let deadline = self.deadline();
        let texts = facts::unchecked_texts(request);
        let guard = async {
            match &self.guard {
                Some(model) => Some(self.guard_check(model, &texts, deadline).await),
                None => None,
            }
        };
        // The three calls run at once: the classifier adds no round trip of its own.
        let (checked, text, guard) = tokio::join!(
            self.pass("facts", prompt::facts_messages(request), deadline),
            self.pass("text", prompt::text_messages(request), deadline),
            guard,
        );
        let (checked, checked_source) = checked?;
        let (text, text_source) = text?;
        let info = ScorerInfo {
            model: checked.info.model.clone(),
            input_tokens: checked.info.input_tokens + text.info.input_tokens,
            output_tokens: checked.info.output_tokens + text.info.output_tokens,
            cached: checked_source == Source::Cached && text_source == Source::Cached,
        };
        let guard = guard.map(|g| {
            (
                self.guard
                    .as_ref()
                    .map(|m| m.id.as_str())
                    .unwrap_or_default(),
                g,
            )
        });
        Ok(assess(request, checked.verdict, text.verdict, guard, info))
    }

    async fn answer_question(&self, intent: &Intent, question: &str) -> Result<String, ScoreError> {
        let deadline = self.deadline();
        let (system, user) = prompt::answer_messages(intent, question);
        let call = self.chat(
            &self.breaker,
            ChatRequest {
                model: &self.model,
                messages: vec![Message::system(&system), Message::user(&user)],
                temperature: 0.3,
                max_completion_tokens: ANSWER_MAX_TOKENS,
                response_format: None,
                reasoning_effort: reasoning_effort(&self.model),
            },
            deadline,
        );
        let completion = match tokio::time::timeout_at(deadline, call).await {
            Ok(result) => result?,
            Err(_) => return Err(self.timeout_error()),
        };
        prompt::clean_answer(&completion.content).map_err(ScoreError::InvalidOutput)
    }
}

/// Combines the two passes, the classifier and the scan into the scorer's assessment.
///
/// The score is the maximum of the checked-facts pass, the text pass and the policy floor:
/// what the agent wrote can raise it, never lower it. A detection (classifier or scan) raises
/// it to at least [`INJECTION_SCORE`]; a classifier that gave no usable answer makes the
/// assessment advisory (it may escalate, never approve).
fn assess(
    request: &ScoreRequest<'_>,
    checked: Verdict,
    text: Verdict,
    guard: Option<(&str, Result<Option<String>, ScoreError>)>,
    info: ScorerInfo,
) -> Assessment {
    let scores = format!(
        "{} scored the checked facts {} and the agent's text {}",
        info.model, checked.score, text.score
    );
    let mut score = checked.score.max(text.score).max(request.floor);
    let mut analysis = checked.analysis;
    if text.score > checked.score {
        analysis.push_str(&format!(" Text review: {}", text.analysis));
    }
    let mut detections = Vec::new();
    let mut unavailable = None;
    match guard {
        Some((model, Ok(Some(detail)))) => detections.push(format!("classifier {model}: {detail}")),
        Some((model, Err(e))) => unavailable = Some(format!("classifier {model} failed: {e}")),
        Some((_, Ok(None))) | None => {}
    }
    let signals = scan::injection_signals(request.draft);
    if !signals.is_empty() {
        detections.push(format!("scan: {}", signals.join(", ")));
    }
    let reason = if !detections.is_empty() {
        score = score.max(RiskScore::new(INJECTION_SCORE).expect("constant in range"));
        analysis.push_str(" Caution: the agent's own text tries to steer its review, so its claims should not be trusted.");
        let mut message = format!(
            "the agent's text looks like an attempt to steer the reviewer ({}); {scores}; raised to at least {INJECTION_SCORE}",
            detections.join("; ")
        );
        if let Some(u) = &unavailable {
            message.push_str(&format!("; {u}"));
        }
        Reason::new(ReasonSource::Scorer, "prompt_injection_suspected", message)
    } else if let Some(u) = &unavailable {
        analysis.push_str(
            " The prompt-attack check of the agent's text did not answer, so a human must decide.",
        );
        Reason::new(
            ReasonSource::Scorer,
            "injection_check_unavailable",
            format!("{u}; {scores}; escalated"),
        )
    } else {
        Reason::new(ReasonSource::Scorer, "llm_assessment", scores)
    };
    Assessment {
        score,
        analysis,
        reason,
        info: Some(info),
        advisory: unavailable.is_some(),
    }
}

enum Attempt {
    Done(Result<Completion, ScoreError>),
    Retry {
        error: ScoreError,
        after: Option<Duration>,
    },
}

/// Exponential backoff with up to 25 % jitter, so a fleet of replicas does not retry in step.
fn backoff(attempt: u32) -> Duration {
    let base = BACKOFF_BASE
        .saturating_mul(1 << attempt.saturating_sub(1).min(10))
        .min(BACKOFF_MAX);
    base.mul_f64(1.0 + rand::random::<f64>() * 0.25)
}

/// `retry-after-ms` (milliseconds) or `retry-after` (seconds); HTTP-date values are ignored.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
    };
    number("retry-after-ms")
        .map(|ms| Duration::from_secs_f64(ms / 1000.0))
        .or_else(|| number("retry-after").map(|s| Duration::from_secs_f64(s.min(3600.0))))
}

async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    if response
        .content_length()
        .is_some_and(|n| n > MAX_BODY_BYTES as u64)
    {
        return Err("LLM response body is larger than 1 MiB".into());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("reading the LLM response failed: {}", e.without_url()))?
    {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err("LLM response body is larger than 1 MiB".into());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// What one successful chat completion gave.
#[derive(Debug)]
struct Completion {
    content: String,
    model: String,
    finish_reason: String,
    input_tokens: u32,
    output_tokens: u32,
}

fn parse_completion(body: &[u8], requested_model: &str) -> Result<Completion, ScoreError> {
    let invalid = |m: String| ScoreError::InvalidOutput(m);
    let response: ChatResponse = serde_json::from_slice(body).map_err(|e| {
        invalid(format!(
            "the response is not a chat completion ({} bytes): {e}",
            body.len()
        ))
    })?;
    let choice = response
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| invalid("the response has no choices".into()))?;
    let finish_reason = choice.finish_reason.unwrap_or_default();
    if finish_reason == "length" {
        return Err(invalid(
            "the model ran out of output tokens (finish_reason length); its answer is truncated"
                .into(),
        ));
    }
    let content = choice
        .message
        .and_then(|m| m.content)
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| {
            invalid(format!(
                "the model returned no content (finish_reason {finish_reason:?})"
            ))
        })?;
    let usage = response.usage.unwrap_or_default();
    Ok(Completion {
        content,
        model: response
            .model
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| requested_model.to_string()),
        finish_reason,
        input_tokens: clamp_u32(usage.prompt_tokens),
        output_tokens: clamp_u32(usage.completion_tokens),
    })
}

fn clamp_u32(n: Option<u64>) -> u32 {
    n.unwrap_or(0).min(u32::MAX as u64) as u32
}

// ------------------------------------------------------------------------- wire types

#[derive(Debug, Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: Vec<Message<'a>>,
    temperature: f32,
    /// `max_tokens` is deprecated on Groq; `messages[].name` is rejected, so there is none.
    max_completion_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_effort: Option<&'static str>,
}

#[derive(Debug, Serialize)]
struct Message<'a> {
    role: &'static str,
    content: &'a str,
}

impl<'a> Message<'a> {
    fn system(content: &'a str) -> Self {
        Message {
            role: "system",
            content,
        }
    }
    fn user(content: &'a str) -> Self {
        Message {
            role: "user",
            content,
        }
    }
}

#[derive(Debug, Deserialize)]
struct ChatResponse {
    model: Option<String>,
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<Usage>,
}

#[derive(Debug, Deserialize)]
struct Choice {
    message: Option<ChoiceMessage>,
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ChoiceMessage {
    content: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Usage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
}

/// `{"error": {"message", "type", "code"}}`, read leniently: an unreadable body is described
/// by its size only (it could echo the prompt, which carries the agent's text).
#[derive(Debug, Default)]
struct ErrorBody {
    message: String,
    code: String,
}

impl ErrorBody {
    fn describe(body: &[u8]) -> ErrorBody {
        let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let error = &value["error"];
        let text = |v: &Value| {
            v.as_str()
                .unwrap_or_default()
                .chars()
                .take(300)
                .collect::<String>()
        };
        let message = text(&error["message"]);
        ErrorBody {
            message: if message.is_empty() {
                format!("no error message ({} byte body)", body.len())
            } else {
                message
            },
            code: text(&error["code"]),
        }
    }
}

// ------------------------------------------------------------------------- breaker

/// A consecutive-failure circuit breaker, lock-free. Closed: calls pass and failures are
/// counted. Open (after `threshold` failures in a row): calls fail at once until the cooldown
/// ends. Then one probe passes; its success closes the breaker, its failure re-opens it.
struct Breaker {
    threshold: u32,
    cooldown: Duration,
    epoch: std::time::Instant,
    failures: AtomicU32,
    /// Milliseconds since `epoch` until which the breaker is open; 0 when closed.
    open_until: AtomicU64,
    probing: AtomicBool,
    /// Told when the breaker opens (`true`) or closes (`false`); feeds a gauge.
    on_change: fn(bool),
}

struct Permit<'a> {
    breaker: &'a Breaker,
    probe: bool,
    recorded: bool,
}

impl Breaker {
    fn new(threshold: u32, cooldown: Duration) -> Self {
        Breaker {
            threshold: threshold.max(1),
            cooldown,
            epoch: std::time::Instant::now(),
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            probing: AtomicBool::new(false),
            on_change: |_| {},
        }
    }

    /// The same breaker, telling `on_change` when it opens or closes.
    fn reporting(self, on_change: fn(bool)) -> Self {
        Breaker { on_change, ..self }
    }

    fn now(&self) -> u64 {
        // +1 so that "now" is never the closed marker 0.
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// A permit to call, or how long until the next probe may go.
    fn acquire(&self) -> Result<Permit<'_>, Duration> {
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 {
            return Ok(Permit {
                breaker: self,
                probe: false,
                recorded: false,
            });
        }
        let now = self.now();
        if now < until {
            return Err(Duration::from_millis(until - now));
        }
        match self
            .probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Ok(Permit {
                breaker: self,
                probe: true,
                recorded: false,
            }),
            // Another call is probing right now.
            Err(_) => Err(Duration::ZERO),
        }
    }

    fn open(&self) {
        let previous = self.open_until.swap(
            self.now() + self.cooldown.as_millis() as u64,
            Ordering::AcqRel,
        );
        if previous == 0 {
            (self.on_change)(true);
            warn!(
                failures = self.failures.load(Ordering::Relaxed),
                cooldown_ms = self.cooldown.as_millis() as u64,
                "LLM circuit breaker opened: open intents escalate to humans without calling the provider"
            );
        }
    }
}

impl Permit<'_> {
    fn record(mut self, ok: bool) {
        self.recorded = true;
        let b = self.breaker;
        if ok {
            b.failures.store(0, Ordering::Release);
            if b.open_until.swap(0, Ordering::AcqRel) != 0 {
                (b.on_change)(false);
                tracing::info!("LLM circuit breaker closed: the provider answers again");
            }
        } else {
            let failures = b.failures.fetch_add(1, Ordering::AcqRel) + 1;
            if self.probe || failures >= b.threshold {
                b.open();
            }
        }
        if self.probe {
            b.probing.store(false, Ordering::Release);
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        // Dropped unrecorded means the caller gave up (its deadline or the client went away):
        // no evidence either way, but the probe slot must be freed.
        if !self.recorded && self.probe {
            self.breaker.probing.store(false, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_opens_after_consecutive_failures_and_probes_once() {
        let b = Breaker::new(2, Duration::from_millis(0));
        b.acquire().unwrap().record(false);
        b.acquire().unwrap().record(true); // success resets the count
        b.acquire().unwrap().record(false);
        assert_eq!(b.open_until.load(Ordering::Acquire), 0);
        b.acquire().unwrap().record(false);
        assert_ne!(b.open_until.load(Ordering::Acquire), 0);
        // Cooldown 0: one probe may go, a second must wait for it.
        let probe = b.acquire().unwrap();
        assert!(probe.probe);
        assert!(b.acquire().is_err());
        probe.record(true);
        assert_eq!(b.open_until.load(Ordering::Acquire), 0);
        assert!(!b.acquire().unwrap().probe);
    }

    #[test]
    fn open_breaker_refuses_until_cooldown() {
        let b = Breaker::new(1, Duration::from_secs(60));
        b.acquire().unwrap().record(false);
        let wait = b.acquire().err().unwrap();
        assert!(wait > Duration::from_secs(50));
    }

    #[test]
    fn retry_after_headers() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", HeaderValue::from_static("150"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(150)));
        let mut h = HeaderMap::new();
        h.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2026 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn completions_are_validated() {
        let ok = br#"{"model":"m","choices":[{"message":{"content":"{}"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#;
        let c = parse_completion(ok, "req").unwrap();
        assert_eq!(
            (c.input_tokens, c.output_tokens, c.model.as_str()),
            (3, 4, "m")
        );
        let length = br#"{"choices":[{"message":{"content":"{\"risk"},"finish_reason":"length"}]}"#;
        assert!(matches!(
            parse_completion(length, "m"),
            Err(ScoreError::InvalidOutput(_))
        ));
        assert!(matches!(
            parse_completion(b"<html>", "m"),
            Err(ScoreError::InvalidOutput(_))
        ));
        assert!(matches!(
            parse_completion(br#"{"choices":[]}"#, "m"),
            Err(ScoreError::InvalidOutput(_))
        ));
    }

    #[test]
    fn debug_output_has_no_key() {
        let options = LlmOptions::new(
            "http://127.0.0.1:9",
            Secret::new("gsk_topsecret"),
            "m",
            Duration::from_secs(1),
        );
        let scorer = LlmScorer::new(options.clone()).unwrap();
        assert!(!format!("{scorer:?}{options:?}").contains("topsecret"));
    }
}
