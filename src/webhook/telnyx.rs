//! `POST /telnyx/webhook`: voice and messaging events.
//!
//! The raw body is verified (Ed25519, see [`signature`]) before any JSON parsing; a bad,
//! stale or missing signature, or no configured key, is 401 and changes nothing: it is counted
//! in `/metrics` and logged at most once a second, never audited (anyone can send one). Verified
//! events are deduplicated by `data.id` and recorded (body kept until processed), then
//! processed in a task of their own; the answer waits for it up to [`ACK_WITHIN`]. An event
//! whose handling failed before changing anything is forgotten and answered 503, so Telnyx's
//! redelivery is processed.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use tracing::{debug, warn};

use super::signature::{self, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use super::HttpState;
use crate::domain::now_millis;
use crate::escalation::telnyx::{Envelope, EventData, Telnyx};
use crate::metrics;

/// How long a webhook id is remembered: well past Telnyx's retry window.
const DEDUPE_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long the answer waits for the event to be handled. Telnyx wants 2xx within 2 s
/// (messaging); an event still running then is acknowledged and finishes on its own.
const ACK_WITHIN: Duration = Duration::from_secs(1);

pub(super) async fn telnyx_webhook(
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
        // Unauthenticated: anyone can send these, so no audit record (the log would be
        // theirs to flood), a counter, and at most one warning a second.
        metrics::inc("sentinel_webhooks_total", &[("outcome", "rejected")]);
        warn_refused(&e);
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
    let id = envelope.data.id.clone();
    match telnyx.state().first_delivery(&id, &body, DEDUPE_TTL).await {
        Ok(true) => {
            metrics::inc("sentinel_webhooks_total", &[("outcome", "accepted")]);
            let task = state.tasks.spawn(process(telnyx.clone(), envelope.data));
            // Most events are handled within the acknowledgement window: a failure then is a
            // 503 and Telnyx redelivers. A slower one is acknowledged and settles itself.
            match tokio::time::timeout(ACK_WITHIN, task).await {
                Ok(Ok(true)) | Err(_) => (StatusCode::OK, "ok\n"),
                Ok(Ok(false)) => (StatusCode::SERVICE_UNAVAILABLE, "try again\n"),
                Ok(Err(e)) => {
                    // The handler panicked: forget the event so a redelivery is processed.
                    warn!(error = %e, "webhook handler failed");
                    let _ = telnyx.state().settle_delivery(&id, false).await;
                    (StatusCode::SERVICE_UNAVAILABLE, "try again\n")
                }
            }
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

/// Handles one first-seen event and settles its delivery: processed, or forgotten (nothing
/// changed) so that Telnyx's redelivery is processed. `true` when processed.
async fn process(telnyx: Arc<Telnyx>, data: EventData) -> bool {
    let id = data.id.clone();
    let result = telnyx.clone().handle(data).await;
    if let Err(e) = &result {
        metrics::inc("sentinel_webhooks_total", &[("outcome", "failed")]);
        warn!(event_id = %id, error = %e, "webhook not processed; a redelivery will be");
    }
    if let Err(e) = telnyx.state().settle_delivery(&id, result.is_ok()).await {
        warn!(event_id = %id, error = %e, "cannot settle a webhook delivery");
    }
    result.is_ok()
}

static LAST_REFUSAL_WARNING: AtomicI64 = AtomicI64::new(i64::MIN);
static REFUSALS_UNLOGGED: AtomicU64 = AtomicU64::new(0);

/// Logs a refused webhook, at most once a second, with the number left unlogged since.
fn warn_refused(error: &signature::SignatureError) {
    let second = now_millis() / 1000;
    let last = LAST_REFUSAL_WARNING.load(Ordering::Relaxed);
    if second > last
        && LAST_REFUSAL_WARNING
            .compare_exchange(last, second, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        let unlogged = REFUSALS_UNLOGGED.swap(0, Ordering::Relaxed);
        warn!(error = %error, unlogged, "refused a Telnyx webhook (one warning a second at most; see sentinel_webhooks_total)");
    } else {
        REFUSALS_UNLOGGED.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use ed25519_dalek::{Signer as _, SigningKey};
    use tokio_util::sync::CancellationToken;
    use tokio_util::task::TaskTracker;
    use tower::ServiceExt as _;

    use super::*;
    use crate::escalation::telnyx::state::MemoryState;
    use crate::escalation::telnyx::testing;
    use crate::scoring::fallback::FallbackScorer;
    use crate::store::MemoryStore;
    use crate::store::Store;
    use crate::webhook::signature::WebhookKey;
    use crate::webhook::{router, HttpState};
    use axum::Router;

    async fn post(app: &Router, key: &SigningKey, body: &str) -> (StatusCode, String) {
        let ts = chrono::Utc::now().timestamp().to_string();
        let sig = key.sign(format!("{ts}|{body}").as_bytes());
        let request = Request::post("/telnyx/webhook")
            .header(TIMESTAMP_HEADER, ts)
            .header(SIGNATURE_HEADER, STANDARD.encode(sig.to_bytes()))
            .body(Body::from(body.to_string()))
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let text = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&text).into_owned())
    }

    #[tokio::test]
    async fn an_event_that_failed_is_forgotten_and_its_redelivery_processed_once() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let config = testing::settings();
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let gateway = testing::gateway(store.clone());
        let state = Arc::new(MemoryState::new());
        state.fail_code_lookups(1);
        let telnyx = Telnyx::new(
            &config,
            gateway.clone(),
            Arc::new(FallbackScorer),
            state,
            TaskTracker::new(),
            CancellationToken::new(),
        )
        .unwrap();
        let app = router(HttpState {
            gateway: gateway.clone(),
            telnyx: Some(telnyx),
            tasks: TaskTracker::new(),
            webhook_key: Some(
                WebhookKey::from_base64(&STANDARD.encode(key.verifying_key().to_bytes())).unwrap(),
            ),
        });
        let body = serde_json::json!({"data": {
            "record_type": "event", "event_type": "message.received",
            "id": "3f1c1a9e-0000-4000-8000-000000000001",
            "payload": {"from": {"phone_number": "+14155550101"},
                        "to": [{"phone_number": "+14155550199"}], "text": "APPROVE 123456"}
        }})
        .to_string();
        let rejected = || async {
            store
                .audit_range(0, i64::MAX, 100)
                .await
                .unwrap()
                .iter()
                .filter(|r| r.event == "rejected" && r.channel == "sms")
                .count()
        };

        // The state is down: not processed, so not acknowledged, and not remembered.
        assert_eq!(
            post(&app, &key, &body).await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(rejected().await, 0);
        // Telnyx's redelivery is processed (the unknown code is refused and audited) ...
        assert_eq!(
            post(&app, &key, &body).await,
            (StatusCode::OK, "ok\n".into())
        );
        assert_eq!(rejected().await, 1);
        // ... once.
        assert_eq!(
            post(&app, &key, &body).await,
            (StatusCode::OK, "duplicate\n".into())
        );
        assert_eq!(rejected().await, 1);
    }
}
