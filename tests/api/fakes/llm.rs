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

    /// How many requests arrived.
    pub fn count(&self) -> usize {
        self.inner.count.load(Ordering::SeqCst)
    }
}

async fn chat(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    inner.count.fetch_add(1, Ordering::SeqCst);
    if inner.record.load(Ordering::Relaxed) {
        inner.requests.lock().unwrap().push(Recorded {
            path: "/v1/chat/completions".into(),
            authorization: headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            body: body.clone(),
        });
    }
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
        Reply::Score(_) | Reply::ObeyInjections { .. } if is_question => inner.answer.lock().unwrap().clone(),
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
