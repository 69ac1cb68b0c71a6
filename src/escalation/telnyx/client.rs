//! A small Telnyx API v2 client: dial, call commands and SMS, with bearer auth.
//!
//! Telnyx API v2 wire rules (docs/telnyx.md): bodies are wrapped in
//! `{"data": ...}`, errors are `{"errors": [{"code": "90018", ...}]}` with string codes,
//! 429 is retried (honouring `retry-after`), and a command on a call that already ended
//! (422 / 90018) counts as done. Dials and commands carry a `command_id`, so retrying them
//! cannot place a second call; an SMS has no idempotency key and is retried only on 429,
//! which Telnyx rejects before processing.

use std::time::Duration;

use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::debug;

use crate::config::Secret;
use crate::macros::debug_showing;
use crate::metrics;
use crate::outbound::{self, Failure, GaveUp, RetryPolicy};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// One request, its retries and their waits: a dial that has not gone out by then is worse
/// than moving down the ladder.
const CALL_DEADLINE: Duration = Duration::from_secs(30);
const RETRY: RetryPolicy = RetryPolicy {
    name: "telnyx",
    retries: 2,
    first_wait: Duration::from_millis(500),
    max_wait: Duration::from_secs(2),
    // The longest `retry-after` we honour; a longer wait is worse than moving down the ladder.
    longest_retry_after: Duration::from_secs(8),
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// Telnyx answered with an error body.
    #[error("telnyx {status}: {code} {title}{}", if .detail.is_empty() { String::new() } else { format!(" ({})", .detail) })]
    Api {
        status: u16,
        code: String,
        title: String,
        detail: String,
    },
    #[error("telnyx unreachable: {0}")]
    Transport(String),
    #[error("telnyx returned an unexpected body: {0}")]
    Decode(String),
}

impl ClientError {
    /// The first error code, `""` when there is none.
    pub fn code(&self) -> &str {
        match self {
            ClientError::Api { code, .. } => code,
            _ => "",
        }
    }
}

/// What a call command achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandOutcome {
    Done,
    /// 422 / 90018: the call had already ended. Nothing left to do, which is success.
    CallEnded,
}

/// The parts of `POST /v2/calls` Sentinel sets.
#[derive(Debug, Clone)]
pub struct Dial<'a> {
    pub connection_id: &'a str,
    pub to: &'a str,
    pub from: &'a str,
    pub webhook_url: Option<&'a str>,
    pub client_state: &'a str,
    pub command_id: &'a str,
    pub timeout_secs: u64,
    pub time_limit_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Dialled {
    pub call_control_id: String,
    #[serde(default)]
    pub call_session_id: Option<String>,
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    key: Secret,
}

debug_showing!(Client { base });

impl Client {
    pub fn new(base_url: &str, key: Secret) -> Result<Client, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("sentinel/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        Ok(Client {
            http,
            base: base_url.trim_end_matches('/').to_string(),
            key,
        })
    }

    /// `POST /calls`. Answering-machine detection is always on: a voicemail must never be
    /// mistaken for a person.
    pub async fn dial(&self, dial: &Dial<'_>) -> Result<Dialled, ClientError> {
        let mut body = json!({
            "connection_id": dial.connection_id,
            "to": dial.to,
            "from": dial.from,
            "from_display_name": "Sentinel",
            "client_state": dial.client_state,
            "command_id": dial.command_id,
            "timeout_secs": dial.timeout_secs,
            "time_limit_secs": dial.time_limit_secs,
            "answering_machine_detection": "detect",
        });
        if let Some(url) = dial.webhook_url {
            body["webhook_url"] = json!(url);
            body["webhook_url_method"] = json!("POST");
        }
        let data = self
            .post("dial", self.url(&["calls"])?, &body, true)
            .await?;
        serde_json::from_value(data).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// `POST /calls/{call_control_id}/actions/{action}`; `body` gets nothing added.
    pub async fn command(
        &self,
        call_control_id: &str,
        action: &str,
        body: &impl serde::Serialize,
    ) -> Result<CommandOutcome, ClientError> {
        let url = self.url(&["calls", call_control_id, "actions", action])?;
        let body = serde_json::to_value(body).map_err(|e| ClientError::Decode(e.to_string()))?;
        match self.post(action, url, &body, true).await {
            Ok(_) => Ok(CommandOutcome::Done),
            Err(ClientError::Api {
                status: 422, code, ..
            }) if code == "90018" => {
                debug!(action, "call already ended; command counts as done");
                Ok(CommandOutcome::CallEnded)
            }
            Err(e) => Err(e),
        }
    }

    /// `POST /messages`; returns the message id.
    pub async fn send_sms(
        &self,
        from: &str,
        to: &str,
        text: &str,
        webhook_url: Option<&str>,
    ) -> Result<String, ClientError> {
        let mut body = json!({ "from": from, "to": to, "text": text, "type": "SMS" });
        if let Some(url) = webhook_url {
            body["webhook_url"] = json!(url);
        }
        let data = self
            .post("sms", self.url(&["messages"])?, &body, false)
            .await?;
        Ok(data
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string())
    }

    fn url(&self, segments: &[&str]) -> Result<Url, ClientError> {
        let mut url = Url::parse(&self.base)
            .map_err(|e| ClientError::Transport(format!("bad base URL: {e}")))?;
        url.path_segments_mut()
            .map_err(|_| ClientError::Transport("base URL cannot have a path".into()))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// Posts `body`, unwraps `data`, retries 429 (and 5xx / transport errors when the request
    /// is idempotent) under [`RETRY`].
    async fn post(
        &self,
        op: &str,
        url: Url,
        body: &Value,
        idempotent: bool,
    ) -> Result<Value, ClientError> {
        let deadline = tokio::time::Instant::now() + CALL_DEADLINE;
        let sent = RETRY.run(deadline, |_| {
            self.attempt(op, url.clone(), body, idempotent)
        });
        sent.await.map_err(|gave_up| match gave_up {
            // Asked to wait longer than we would: fail now so the ladder moves on.
            GaveUp::Failed(error) | GaveUp::WaitTooLong { error, .. } => error,
            GaveUp::Deadline => {
                ClientError::Transport(format!("no answer within {} s", CALL_DEADLINE.as_secs()))
            }
        })
    }

    async fn attempt(
        &self,
        op: &str,
        url: Url,
        body: &Value,
        idempotent: bool,
    ) -> Result<Value, Failure<ClientError>> {
        let result = self
            .http
            .post(url)
            .bearer_auth(self.key.expose())
            .json(body)
            .send()
            .await;
        let (error, retry_after) = match result {
            Err(e) => (ClientError::Transport(without_url(e)), None),
            Ok(response) => {
                let status = response.status();
                let retry_after = outbound::retry_after(response.headers());
                let bytes = response
                    .bytes()
                    .await
                    .map_err(|e| Failure::fatal(ClientError::Transport(without_url(e))))?;
                if status.is_success() {
                    metrics::inc(
                        "sentinel_telnyx_requests_total",
                        &[("op", op), ("outcome", "ok")],
                    );
                    let mut value: Value = serde_json::from_slice(&bytes)
                        .map_err(|e| Failure::fatal(ClientError::Decode(e.to_string())))?;
                    return Ok(value
                        .get_mut("data")
                        .map(Value::take)
                        .unwrap_or(Value::Null));
                }
                (api_error(status, &bytes), retry_after)
            }
        };
        let retryable = match &error {
            ClientError::Api { status, .. } => *status == 429 || (idempotent && *status >= 500),
            ClientError::Transport(_) => idempotent,
            ClientError::Decode(_) => false,
        };
        let outcome = match &error {
            ClientError::Api { status, .. } => status.to_string(),
            _ => "transport".to_string(),
        };
        metrics::inc(
            "sentinel_telnyx_requests_total",
            &[("op", op), ("outcome", &outcome)],
        );
        Err(if retryable {
            Failure::retry_after(error, retry_after)
        } else {
            Failure::fatal(error)
        })
    }
}

/// reqwest errors print the URL; ours holds no secret, but keep logs short and uniform.
fn without_url(e: reqwest::Error) -> String {
    e.without_url().to_string()
}

fn api_error(status: StatusCode, body: &[u8]) -> ClientError {
    #[derive(Deserialize)]
    struct Errors {
        #[serde(default)]
        errors: Vec<ErrorItem>,
    }
    #[derive(Deserialize)]
    struct ErrorItem {
        #[serde(default)]
        code: Value,
        #[serde(default)]
        title: String,
        #[serde(default)]
        detail: String,
    }
    let first = serde_json::from_slice::<Errors>(body)
        .ok()
        .and_then(|e| e.errors.into_iter().next());
    match first {
        Some(item) => ClientError::Api {
            status: status.as_u16(),
            // The spec says string; accept a number too rather than lose the code.
            code: match item.code {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                _ => String::new(),
            },
            title: item.title,
            detail: item.detail,
        },
        None => ClientError::Api {
            status: status.as_u16(),
            code: String::new(),
            title: status.canonical_reason().unwrap_or("error").to_string(),
            detail: String::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_are_parsed() {
        let e = api_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            br#"{"errors":[{"code":"90018","title":"Call has already ended","detail":"x"}]}"#,
        );
        assert_eq!(e.code(), "90018");
        let e = api_error(StatusCode::BAD_GATEWAY, b"<html>");
        assert!(matches!(e, ClientError::Api { status: 502, .. }));
    }

    #[test]
    fn call_ids_are_one_path_segment() {
        let c = Client::new("http://127.0.0.1:1/v2/", Secret::new("k")).unwrap();
        let url = c.url(&["calls", "v3:a/b?c", "actions", "hangup"]).unwrap();
        assert_eq!(url.path(), "/v2/calls/v3:a%2Fb%3Fc/actions/hangup");
    }
}
