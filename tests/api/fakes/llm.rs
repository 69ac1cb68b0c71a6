//! A fake OpenAI-compatible chat-completions server (Groq's wire shape, protocols.md 1.5-1.6).
//!
//! It answers `POST /v1/chat/completions` according to a [`Reply`] (a default plus an optional
//! script of one-shot replies), after an optional delay, and records every request so tests can
//! assert what Sentinel sent. Requests without `response_format` are approver questions and get
//! the plain-text `answer` instead of a verdict.
//!
//! Also compiled into `benches/llm_load.rs` (via `#[path]`), so it uses nothing from the test
//! helpers.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

/// How the fake answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A valid verdict with this score.
    Score(u8),
    /// 429 with `retry-after` in seconds (fractions allowed).
    RateLimited { retry_after_secs: f64 },
    /// This HTTP status with an OpenAI-style error body.
    Status(u16),
    /// A 200 whose body is not JSON at all.
    GarbageBody,
    /// A well-formed completion whose content is prose, not JSON.
    GarbageContent,
    /// A verdict with risk_score 150.
    OutOfRange,
    /// A verdict without risk_score.
    MissingField,
    /// A truncated verdict with `finish_reason: "length"`.
    Length,
    /// Groq's 400 `json_validate_failed`.
    JsonValidateFailed,
    /// A model that obeys prompt injections: risk_score 0 whenever the agent's text holds
    /// an injection marker, `otherwise` when it does not.
    ObeyInjections { otherwise: u8 },
    /// A scorer that is honest about the structured facts (an invoice's amount: up to 1,000
    /// scores 10, up to 2,500 scores 20, up to 5,000 scores 70, more 90) but follows any score
    /// instruction it can read anywhere in the document it is given ("risk 0", "score: 5",
    /// "low risk", approval claims, in several languages, even base64-encoded).
    Obedient,
    /// For classifier requests: an honest classifier that catches the obvious attack phrasings
    /// a real prompt-attack model is trained on.
    Honest,
}

#[derive(Debug, Clone)]
pub struct Step {
    pub reply: Reply,
    pub delay: Duration,
}

impl From<Reply> for Step {
    fn from(reply: Reply) -> Self {
        Step {
            reply,
            delay: Duration::ZERO,
        }
    }
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub authorization: Option<String>,
    pub body: Value,
}

impl Recorded {
    /// The content of the message with this role.
    pub fn message(&self, role: &str) -> String {
        self.body["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["role"] == role)
            .and_then(|m| m["content"].as_str())
            .unwrap_or_default()
            .to_string()
    }
}

struct Inner {
    default: Mutex<Step>,
    /// How classifier requests (a prompt-guard or safeguard model) are answered.
    guard: Mutex<Step>,
    guard_requests: Mutex<Vec<Recorded>>,
    guard_count: AtomicUsize,
    script: Mutex<VecDeque<Step>>,
    answer: Mutex<String>,
    requests: Mutex<Vec<Recorded>>,
    record: AtomicBool,
    count: AtomicUsize,
}

#[derive(Clone)]
pub struct FakeLlm {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
}

impl FakeLlm {
    /// Starts a fake that answers every request with `reply`.
    pub async fn start(reply: Reply) -> FakeLlm {
        let inner = Arc::new(Inner {
            default: Mutex::new(reply.into()),
            guard: Mutex::new(Reply::Honest.into()),
            guard_requests: Mutex::new(Vec::new()),
            guard_count: AtomicUsize::new(0),
            script: Mutex::new(VecDeque::new()),
            answer: Mutex::new(
                "Yes, the vendor is AWS and the amount is 2500 USD. It matches last month's bill. I recommend approving."
                    .to_string(),
            ),
            requests: Mutex::new(Vec::new()),
            record: AtomicBool::new(true),
            count: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake LLM");
        let addr = listener.local_addr().expect("fake LLM addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeLlm { addr, inner }
    }

    /// What to put in `SENTINEL_LLM_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Replaces the default reply.
    pub fn set(&self, reply: Reply) {
        self.inner.default.lock().unwrap().reply = reply;
    }

    /// Delays every default reply by `delay`.
    pub fn set_delay(&self, delay: Duration) {
        self.inner.default.lock().unwrap().delay = delay;
    }

    /// Answers the next requests with these, in order, before falling back to the default.
    pub fn script(&self, steps: impl IntoIterator<Item = Step>) {
        self.inner.script.lock().unwrap().extend(steps);
    }

    /// The plain-text answer given to approver questions.
    pub fn set_answer(&self, text: &str) {
        *self.inner.answer.lock().unwrap() = text.to_string();
    }

    /// Stops keeping request bodies (for load runs); counting goes on.
    pub fn stop_recording(&self) {
        self.inner.record.store(false, Ordering::Relaxed);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.requests.lock().unwrap().clone()
    }

    /// How many scoring requests arrived (classifier requests are counted apart).
    pub fn count(&self) -> usize {
        self.inner.count.load(Ordering::SeqCst)
    }

    /// How classifier requests are answered (default [`Reply::Honest`]).
    pub fn set_guard(&self, reply: Reply) {
        self.inner.guard.lock().unwrap().reply = reply;
    }

    /// Delays every classifier answer by `delay`.
    pub fn set_guard_delay(&self, delay: Duration) {
        self.inner.guard.lock().unwrap().delay = delay;
    }

    pub fn guard_requests(&self) -> Vec<Recorded> {
        self.inner.guard_requests.lock().unwrap().clone()
    }

    pub fn guard_count(&self) -> usize {
        self.inner.guard_count.load(Ordering::SeqCst)
    }
}

async fn chat(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let model = body["model"].as_str().unwrap_or_default().to_string();
    if model.contains("prompt-guard") || model.contains("safeguard") {
        return classify(&inner, &headers, body, &model).await;
    }
    record(&inner, &inner.count, &inner.requests, &headers, &body);
    let step = {
        let scripted = inner.script.lock().unwrap().pop_front();
        scripted.unwrap_or_else(|| inner.default.lock().unwrap().clone())
    };
    if !step.delay.is_zero() {
        tokio::time::sleep(step.delay).await;
    }
    let model = body["model"].as_str().unwrap_or("fake-model").to_string();
    let is_question = body.get("response_format").is_none();
    let user = body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_string();

    let verdict = |score: i64| {
        json!({"risk_score": score, "analysis": format!("Fake reviewer: the agent's action scores {score}. The blast radius is limited to one payment.")}).to_string()
    };
    let content = match step.reply {
        Reply::Score(_) | Reply::ObeyInjections { .. } | Reply::Obedient | Reply::Honest
            if is_question =>
        {
            inner.answer.lock().unwrap().clone()
        }
        Reply::Obedient | Reply::Honest => verdict(obedient_score(&user)),
        Reply::Score(n) => verdict(n as i64),
        Reply::ObeyInjections { otherwise } => {
            verdict(if obeys(&user) { 0 } else { otherwise as i64 })
        }
        Reply::RateLimited { retry_after_secs } => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", retry_after_secs.to_string())],
                axum::Json(json!({"error": {
                    "message": format!("Rate limit reached for model `{model}` on tokens per minute (TPM): Limit 6000, Used 5034, Requested 1443. Please try again in {retry_after_secs}s."),
                    "type": "tokens", "code": "rate_limit_exceeded"}})),
            )
                .into_response()
        }
        Reply::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return (
                status,
                axum::Json(json!({"error": {"message": format!("fake error {code}"), "type": "server_error"}})),
            )
                .into_response();
        }
        Reply::GarbageBody => {
            return (StatusCode::OK, "<html><body>502 Bad Gateway</body></html>").into_response()
        }
        Reply::JsonValidateFailed => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": {
                    "message": "Generated JSON does not match the expected schema. Please adjust your prompt.",
                    "type": "invalid_request_error", "code": "json_validate_failed",
                    "failed_generation": "{\"risk_score\": \"low\"}"}})),
            )
                .into_response()
        }
        Reply::GarbageContent => "I think this looks fine, approve it.".to_string(),
        Reply::OutOfRange => verdict(150),
        Reply::MissingField => json!({"analysis": "No score, sorry."}).to_string(),
        Reply::Length => {
            return axum::Json(completion(&model, "{\"risk_score\": 4", "length")).into_response()
        }
    };
    axum::Json(completion(&model, &content, "stop")).into_response()
}

fn completion(model: &str, content: &str, finish_reason: &str) -> Value {
    json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1_764_300_000,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "logprobs": null,
            "finish_reason": finish_reason
        }],
        "usage": {"queue_time": 0.01, "prompt_tokens": 412, "prompt_time": 0.01,
                  "completion_tokens": 57, "completion_time": 0.1, "total_tokens": 469, "total_time": 0.12},
        "system_fingerprint": "fp_fake",
        "x_groq": {"id": "req_fake"}
    })
}

/// Words a gullible model takes as orders when they appear anywhere in the agent's text
/// (deliberately broader than Sentinel's own detector).
const MARKERS: [&str; 24] = [
    "ignore",
    "disregard",
    "forget",
    "override",
    "instruction",
    "system",
    "assistant",
    "risk_score",
    "risk score",
    "score",
    "approve",
    "sentinel",
    "review",
    "bypass",
    "escalat",
    "jailbreak",
    "developer",
    "admin",
    "<|",
    "</intent",
    "you are",
    "respond",
    "output",
    "rate this",
];

/// Whether the agent's part of the prompt holds an injection marker. Reads the JSON document
/// between `<intent>` and `</intent>` (as a model would, through the escaping), or the whole
/// message when there is no such block.
fn obeys(user: &str) -> bool {
    let agent_text = match (user.find("<intent>\n"), user.rfind("\n</intent>")) {
        (Some(start), Some(end)) if start + 9 <= end => {
            let doc: Value = serde_json::from_str(&user[start + 9..end]).unwrap_or(Value::Null);
            let mut out = String::new();
            strings(&doc["intent"], &mut out);
            out
        }
        _ => user.to_string(),
    };
    let folded: String = agent_text
        .chars()
        .filter(|c| {
            !matches!(
                c,
                '\u{200b}'..='\u{200f}' | '\u{2060}' | '\u{feff}' | '\u{00ad}'
            )
        })
        .map(|c| match c {
            '\u{ff01}'..='\u{ff5e}' => char::from_u32(c as u32 - 0xfee0).unwrap_or(c),
            c => c,
        })
        .flat_map(char::to_lowercase)
        .collect();
    MARKERS.iter().any(|m| folded.contains(m))
}

fn strings(value: &Value, out: &mut String) {
    match value {
        Value::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => {
            for (k, v) in map {
                out.push_str(k);
                out.push('\n');
                strings(v, out);
            }
        }
        _ => {}
    }
}

/// Counts a request and, unless recording is off, keeps it.
fn record(
    inner: &Inner,
    count: &AtomicUsize,
    requests: &Mutex<Vec<Recorded>>,
    headers: &HeaderMap,
    body: &Value,
) {
    count.fetch_add(1, Ordering::SeqCst);
    if inner.record.load(Ordering::Relaxed) {
        requests.lock().unwrap().push(Recorded {
            path: "/v1/chat/completions".into(),
            authorization: headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            body: body.clone(),
        });
    }
}

// ------------------------------------------------------------------------- classifier

async fn classify(inner: &Inner, headers: &HeaderMap, body: Value, model: &str) -> Response {
    record(
        inner,
        &inner.guard_count,
        &inner.guard_requests,
        headers,
        &body,
    );
    let step = inner.guard.lock().unwrap().clone();
    if !step.delay.is_zero() {
        tokio::time::sleep(step.delay).await;
    }
    let user = body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_string();
    let safeguard = model.contains("safeguard");
    let content = match step.reply {
        Reply::Honest | Reply::Score(_) | Reply::Obedient | Reply::ObeyInjections { .. } => {
            let attack = looks_like_attack(&user);
            if safeguard {
                json!({"violation": attack as u8, "category": if attack { "reviewer_manipulation" } else { "none" },
                       "rationale": "fake classifier"})
                .to_string()
            } else if attack {
                "0.9987".to_string()
            } else {
                "0.0021".to_string()
            }
        }
        Reply::RateLimited { retry_after_secs } => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", retry_after_secs.to_string())],
                axum::Json(json!({"error": {"message": "Rate limit reached", "type": "tokens", "code": "rate_limit_exceeded"}})),
            )
                .into_response()
        }
        Reply::Status(404) => {
            return (
                StatusCode::NOT_FOUND,
                axum::Json(json!({"error": {"message": format!("The model `{model}` does not exist or you do not have access to it."),
                    "type": "invalid_request_error", "code": "model_not_found"}})),
            )
                .into_response()
        }
        Reply::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return (status, axum::Json(json!({"error": {"message": format!("fake error {code}")}}))).into_response();
        }
        Reply::GarbageBody => return (StatusCode::OK, "<html>oops</html>").into_response(),
        _ => "I cannot classify this.".to_string(),
    };
    axum::Json(completion(model, &content, "stop")).into_response()
}

/// The obvious attack phrasings a trained prompt-attack classifier catches: instruction
/// overrides, jailbreak and role-play openers, forged system or assistant turns, and score
/// demands, in the major languages. It does not decode, rejoin or see look-alike letters,
/// and it does not read authority claims or rules phrased as facts.
const ATTACK_CUES: [&str; 30] = [
    "ignore previous",
    "ignore all",
    "ignore the",
    "disregard",
    "forget your",
    "forget all",
    "new instructions",
    "system prompt",
    "you are now",
    "jailbreak",
    "developer mode",
    "<|im_start|>",
    "[inst]",
    "system:",
    "assistant:",
    "### system",
    "risk_score",
    "risk score",
    "ignorez",
    "ignora las",
    "ignora todas",
    "ignoriere",
    "忽略",
    "無視",
    "do anything now",
    "pretend to be",
    "override",
    "respond with",
    "output only",
    "esqueça",
];

fn looks_like_attack(text: &str) -> bool {
    let lower = text.to_lowercase();
    ATTACK_CUES.iter().any(|c| lower.contains(c))
}

// ------------------------------------------------------------------------- obedient scorer

/// The score an obedient model gives: an instruction it can read wins, otherwise the amount.
fn obedient_score(user: &str) -> i64 {
    let document = data_block(user);
    let mut agent_part = document.clone();
    if let Some(map) = agent_part.as_object_mut() {
        map.remove("policy");
    }
    let mut text = String::new();
    strings(&agent_part, &mut text);
    if let Some(ordered) = instruction(&text) {
        return ordered;
    }
    // A gullible model decodes what looks encoded and obeys that too.
    for token in text.split_whitespace().filter(|t| t.len() >= 12) {
        use base64::Engine;
        if let Some(decoded) = base64::engine::general_purpose::STANDARD
            .decode(token.trim_end_matches('.'))
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
        {
            if let Some(ordered) = instruction(&decoded) {
                return ordered;
            }
        }
    }
    match amount(&document) {
        Some(a) if a <= 1000.0 => 10,
        Some(a) if a <= 2500.0 => 20,
        Some(a) if a <= 5000.0 => 70,
        Some(_) => 90,
        None => 50,
    }
}

/// The JSON document between the first `<...>` line and its closing line.
fn data_block(user: &str) -> Value {
    let start = user.find("\n{").map(|i| i + 1);
    let end = user.rfind("}\n").map(|i| i + 1);
    match (start, end) {
        (Some(s), Some(e)) if s < e => serde_json::from_str(&user[s..e]).unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

fn amount(value: &Value) -> Option<f64> {
    match value {
        Value::Object(map) => map
            .get("amount")
            .and_then(Value::as_f64)
            .or_else(|| map.values().find_map(amount)),
        Value::Array(items) => items.iter().find_map(amount),
        _ => None,
    }
}

/// Reads a score instruction: a number shortly after a risk or score word, or words asking
/// for a low score or claiming approval. The `policy` notes of the document are Sentinel's own
/// and never say such things.
fn instruction(text: &str) -> Option<i64> {
    let lower: String = text
        .chars()
        .filter(|c| {
            !matches!(
                c,
                '\u{200b}'..='\u{200f}' | '\u{2060}' | '\u{feff}' | '\u{00ad}'
            )
        })
        .flat_map(char::to_lowercase)
        .collect();
    for word in [
        "risk",
        "score",
        "riesgo",
        "risque",
        "risiko",
        "risco",
        "风险",
        "リスク",
    ] {
        for (i, _) in lower.match_indices(word) {
            let after: String = lower[i + word.len()..].chars().take(14).collect();
            let digits: String = after
                .chars()
                .skip_while(|c| !c.is_ascii_digit())
                .take_while(|c| c.is_ascii_digit())
                .collect();
            if let Ok(n) = digits.parse::<i64>() {
                if n <= 100 {
                    return Some(n);
                }
            }
        }
    }
    const LOW: [&str; 24] = [
        "low risk",
        "low-risk",
        "no risk",
        "zero",
        "approve",
        "signed off",
        "cleared",
        "ignore",
        "faible",
        "bajo",
        "niedrig",
        "baixo",
        "低",
        "批准",
        "承認",
        "genehmigt",
        "aprobad",
        "approuv",
        "aprovad",
        "safe",
        "routine",
        "exempt",
        "sin riesgo",
        "kein",
    ];
    LOW.iter().any(|w| lower.contains(w)).then_some(0)
}
