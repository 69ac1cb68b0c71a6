//! The HTTP sidecar (axum): health, readiness, metrics and the signed Telnyx webhook.
//!
//! `/healthz` says the process is up; `/readyz` says it can serve (the store answers, asked
//! through the gateway); `/metrics` is Prometheus text ([`health`]). `POST /telnyx/webhook`
//! takes voice and messaging events ([`telnyx`]): verified over the raw body ([`signature`]),
//! deduplicated, and handed to the Telnyx channel in a tracked task.
//! `GET /.well-known/jwks.json` publishes the receipt verification keys ([`jwks`]).

mod health;
mod jwks;
pub mod signature;
mod telnyx;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use tokio_util::task::TaskTracker;

use crate::escalation::telnyx::Telnyx;
use crate::gateway::Gateway;
use signature::WebhookKey;

#[derive(Clone)]
pub struct HttpState {
    pub gateway: Arc<Gateway>,
    /// The Telnyx channel; `None` when Telnyx is not configured (events are then ignored).
    pub telnyx: Option<Arc<Telnyx>>,
    /// `TELNYX_PUBLIC_KEY`; without it every webhook is refused.
    pub webhook_key: Option<WebhookKey>,
    /// Webhook handling tasks; the app waits for them at shutdown.
    pub tasks: TaskTracker,
}

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics_text))
        .route("/.well-known/jwks.json", get(jwks::jwks))
        .route("/telnyx/webhook", post(telnyx::telnyx_webhook))
        .with_state(state)
}
