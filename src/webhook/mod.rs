//! The HTTP sidecar (axum): health, readiness and, with Telnyx (issue 5), the signed webhook.
//!
//! `/healthz` says the process is up; `/readyz` says it can serve (the store answers).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;

use crate::store::Store;

#[derive(Clone)]
pub struct HttpState {
    pub store: Arc<dyn Store>,
}

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(state)
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
