//! The HTTP sidecar (axum): health, readiness, metrics and the signed Telnyx webhook.
//!
//! `/healthz` says the process is up; `/readyz` says it can serve (the store answers);
//! `/metrics` is Prometheus text. `POST /telnyx/webhook` takes voice and messaging events:
//! the raw body is verified (Ed25519, see [`signature`]) before any JSON parsing; a bad,
//! stale or missing signature, or no configured key, is 401 and changes nothing. Verified
//! events are deduplicated by `data.id`, recorded, acknowledged at once and processed in a
//! task of their own.

pub mod metrics;
pub mod signature;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use tracing::{debug, warn};

use crate::domain::now_millis;
use crate::escalation::telnyx::voice::Envelope;
use crate::escalation::telnyx::Telnyx;
use crate::store::{AuditRecord, Store};
use signature::{WebhookKey, SIGNATURE_HEADER, TIMESTAMP_HEADER};

/// How long a webhook id is remembered: well past Telnyx's retry window.
const DEDUPE_TTL: Duration = Duration::from_secs(24 * 3600);

#[derive(Clone)]
pub struct HttpState {
    pub store: Arc<dyn Store>,
    /// The Telnyx channel; `None` when Telnyx is not configured (events are then ignored).
    pub telnyx: Option<Arc<Telnyx>>,
    /// `TELNYX_PUBLIC_KEY`; without it every webhook is refused.
    pub webhook_key: Option<WebhookKey>,
}

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/telnyx/webhook", post(telnyx_webhook))
        .with_state(state)
}

async fn metrics_text() -> ([(axum::http::HeaderName, &'static str); 1], String) {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics::render(),
    )
}

async fn telnyx_webhook(
    State(state): State<HttpState>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let now = chrono::Utc::now().timestamp();
    if let Err(e) = signature::verify(
        state.webhook_key.as_ref(),
        header(TIMESTAMP_HEADER),
        header(SIGNATURE_HEADER),
        &body,
        now,
    ) {
        metrics::inc("sentinel_webhooks_total", &[("outcome", "rejected")]);
        warn!(error = %e, "refused a Telnyx webhook");
        let record = AuditRecord {
            at: now_millis(),
            intent_id: None,
            event: "rejected".into(),
            actor: "telnyx-webhook".into(),
            channel: "webhook".into(),
            state: None,
            version: None,
            detail: format!("webhook refused: {e}"),
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), state.store.audit(record)).await;
        return (
            StatusCode::UNAUTHORIZED,
            "invalid or missing webhook signature\n",
        );
    }
    let envelope: Envelope = match serde_json::from_slice(&body) {
        Ok(envelope) => envelope,
        Err(e) => {
            metrics::inc("sentinel_webhooks_total", &[("outcome", "malformed")]);
            debug!(error = %e, "signed webhook is not a v2 event");
            return (StatusCode::BAD_REQUEST, "not a Telnyx API v2 event\n");
        }
    };
    let Some(telnyx) = state.telnyx.clone() else {
        metrics::inc("sentinel_webhooks_total", &[("outcome", "ignored")]);
        return (StatusCode::OK, "ignored\n");
    };
    match telnyx
        .state()
        .first_delivery(&envelope.data.id, &body, DEDUPE_TTL)
        .await
    {
        Ok(true) => {
            metrics::inc("sentinel_webhooks_total", &[("outcome", "accepted")]);
            tokio::spawn(telnyx.handle(envelope.data));
            (StatusCode::OK, "ok\n")
        }
        Ok(false) => {
            metrics::inc("sentinel_webhooks_total", &[("outcome", "duplicate")]);
            (StatusCode::OK, "duplicate\n")
        }
        Err(e) => {
            // Not recorded: let Telnyx deliver it again.
            warn!(error = %e, "cannot record webhook");
            (StatusCode::SERVICE_UNAVAILABLE, "try again\n")
        }
    }
}

async fn readyz(State(state): State<HttpState>) -> (StatusCode, String) {
    match tokio::time::timeout(std::time::Duration::from_secs(1), state.store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready\n".into()),
        Ok(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n")),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: store did not answer within 1s\n".into(),
        ),
    }
}
