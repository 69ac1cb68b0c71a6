//! The chat-completions wire types (OpenAI-compatible, as Groq serves them) and parsing an answer.

use super::*;

/// What one successful chat completion gave.
#[derive(Debug)]
pub(super) struct Completion {
    pub(super) content: String,
    pub(super) model: String,
    pub(super) finish_reason: String,
    pub(super) input_tokens: u32,
    pub(super) output_tokens: u32,
}

pub(super) fn parse_completion(
    body: &[u8],
    requested_model: &str,
) -> Result<Completion, ScoreError> {
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

pub(super) fn clamp_u32(n: Option<u64>) -> u32 {
    n.unwrap_or(0).min(u32::MAX as u64) as u32
}

// ------------------------------------------------------------------------- wire types

#[derive(Debug, Serialize)]
pub(super) struct ChatRequest<'a> {
    pub(super) model: &'a str,
    pub(super) messages: Vec<Message<'a>>,
    pub(super) temperature: f32,
    /// `max_tokens` is deprecated on Groq; `messages[].name` is rejected, so there is none.
    pub(super) max_completion_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) response_format: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) reasoning_effort: Option<&'static str>,
}

#[derive(Debug, Serialize)]
pub(super) struct Message<'a> {
    pub(super) role: &'static str,
    pub(super) content: &'a str,
}

impl<'a> Message<'a> {
    pub(super) fn system(content: &'a str) -> Self {
        Message {
            role: "system",
            content,
        }
    }
    pub(super) fn user(content: &'a str) -> Self {
        Message {
            role: "user",
            content,
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct ChatResponse {
    pub(super) model: Option<String>,
    #[serde(default)]
    pub(super) choices: Vec<Choice>,
    pub(super) usage: Option<Usage>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Choice {
    pub(super) message: Option<ChoiceMessage>,
    pub(super) finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ChoiceMessage {
    pub(super) content: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Usage {
    pub(super) prompt_tokens: Option<u64>,
    pub(super) completion_tokens: Option<u64>,
}

/// `{"error": {"message", "type", "code"}}`, read leniently: an unreadable body is described
/// by its size only (it could echo the prompt, which carries the agent's text).
#[derive(Debug, Default)]
pub(super) struct ErrorBody {
    pub(super) message: String,
    pub(super) code: String,
}

impl ErrorBody {
    pub(super) fn describe(body: &[u8]) -> ErrorBody {
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

/// Reads a response body of at most 1 MiB.
pub(super) async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
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
