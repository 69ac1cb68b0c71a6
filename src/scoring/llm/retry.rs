//! Retries of one chat completion: what to do after an attempt, backoff with jitter, `Retry-After`, and a bounded body read.

use super::*;

pub(super) enum Attempt {
    Done(Result<Completion, ScoreError>),
    Retry {
        error: ScoreError,
        after: Option<Duration>,
    },
}

/// Exponential backoff with up to 25 % jitter, so a fleet of replicas does not retry in step.
pub(super) fn backoff(attempt: u32) -> Duration {
    let base = BACKOFF_BASE
        .saturating_mul(1 << attempt.saturating_sub(1).min(10))
        .min(BACKOFF_MAX);
    base.mul_f64(1.0 + rand::random::<f64>() * 0.25)
}

/// `retry-after-ms` (milliseconds) or `retry-after` (seconds); HTTP-date values are ignored.
pub(super) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
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
