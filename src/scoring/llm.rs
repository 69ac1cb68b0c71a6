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
use crate::macros::debug_showing;
use crate::outbound::{retry_after, Breaker, Failure, GaveUp, RetryPolicy, MAX_RETRY_AFTER};

/// Output budget for a verdict. gpt-oss reasons before answering and its reasoning counts
/// against this, so it is well above the ~100 tokens of the JSON itself.
const SCORE_MAX_TOKENS: u32 = 1024;
const ANSWER_MAX_TOKENS: u32 = 600;
/// Largest response body read; a chat completion for these prompts is a few KiB.
const MAX_BODY_BYTES: usize = 1 << 20;
/// First retry wait when the provider gives no `retry-after`; doubles per retry, plus jitter.
const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Models Groq has decommissioned (docs/llm.md): requests to them fail.
const RETIRED_MODELS: [&str; 2] = ["llama-3.3-70b-versatile", "llama-3.1-8b-instant"];

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
    retry: RetryPolicy,
    breaker: Breaker,
    cache: Cache<Scored>,
    guard: Option<GuardModel>,
    /// The classifier has a breaker of its own: a classifier outage must not stop scoring
    /// (and the reverse), though either one escalates.
    guard_breaker: Breaker,
    guard_cache: Cache<GuardAnswer>,
}

debug_showing!(LlmScorer {
    endpoint,
    model,
    timeout,
    guard
});

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
            retry: RetryPolicy {
                name: "llm",
                retries: options.max_retries,
                first_wait: BACKOFF_BASE,
                max_wait: BACKOFF_MAX,
                // Any wait is honoured that fits the deadline.
                longest_retry_after: MAX_RETRY_AFTER,
            },
            breaker: Breaker::new(
                "llm scorer",
                options.breaker_failures,
                options.breaker_cooldown,
            )
            .reporting(crate::metrics::set_scorer_breaker_open),
            cache: Cache::new(options.cache_capacity, options.cache_ttl),
            guard_breaker: Breaker::new(
                "prompt-attack classifier",
                options.breaker_failures,
                options.breaker_cooldown,
            ),
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
            "gen_ai.provider.name" = self.provider,
            "gen_ai.request.model" = %request.model,
            "gen_ai.request.max_tokens" = i64::from(request.max_completion_tokens),
            "gen_ai.request.temperature" = request.temperature,
            "gen_ai.response.model" = Empty,
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
                if !c.finish_reason.is_empty() {
                    crate::telemetry::set_string_array(
                        &span,
                        "gen_ai.response.finish_reasons",
                        [c.finish_reason.clone()],
                    );
                }
                span.record("gen_ai.usage.input_tokens", i64::from(c.input_tokens));
                span.record("gen_ai.usage.output_tokens", i64::from(c.output_tokens));
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
        let sent = self.retry.run(deadline, |attempt| {
            tracing::Span::current().record("sentinel.llm.attempts", i64::from(attempt));
            self.attempt(request)
        });
        sent.await.map_err(|gave_up| match gave_up {
            GaveUp::Failed(error) => error,
            // Waiting would outlive the deadline: fail now rather than at it.
            GaveUp::WaitTooLong {
                error: ScoreError::Unavailable(m),
                wait,
            } => ScoreError::Unavailable(format!(
                "{m}; retrying in {} ms would pass the scorer deadline",
                wait.as_millis()
            )),
            GaveUp::WaitTooLong { error, .. } => error,
            GaveUp::Deadline => self.timeout_error(),
        })
    }

    async fn attempt(&self, request: &ChatRequest<'_>) -> Result<Completion, Failure<ScoreError>> {
        let response = match self.client.post(&self.endpoint).json(request).send().await {
            Ok(r) => r,
            Err(e) => {
                return Err(Failure::transient(ScoreError::Unavailable(format!(
                    "cannot reach the LLM endpoint: {}",
                    e.without_url()
                ))));
            }
        };
        let status = response.status();
        let headers = response.headers().clone();
        let body = match read_body(response).await {
            Ok(b) => b,
            Err(e) => return Err(Failure::transient(ScoreError::Unavailable(e))),
        };
        if status.is_success() {
            return parse_completion(&body, request.model).map_err(Failure::fatal);
        }
        let detail = ErrorBody::describe(&body);
        let should_retry = match headers.get("x-should-retry").and_then(|v| v.to_str().ok()) {
            Some("true") => true,
            Some("false") => false,
            _ => matches!(status.as_u16(), 408 | 409 | 429 | 498) || status.is_server_error(),
        };
        if status == StatusCode::BAD_REQUEST && detail.code == "json_validate_failed" {
            return Err(Failure::fatal(ScoreError::InvalidOutput(format!(
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
        Err(if should_retry {
            Failure::retry_after(error, retry_after(&headers))
        } else {
            Failure::fatal(error)
        })
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

mod options;
mod wire;

pub use options::LlmOptions;
use wire::{parse_completion, read_body, ChatRequest, Completion, ErrorBody, Message};

#[cfg(test)]
mod tests;
