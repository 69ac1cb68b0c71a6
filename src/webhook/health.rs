//! Readiness and the Prometheus endpoint.

use axum::extract::State;
use axum::http::StatusCode;

use super::HttpState;
use crate::metrics;

pub(super) async fn metrics_text() -> ([(axum::http::HeaderName, &'static str); 1], String) {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics::render(),
    )
}

pub(super) async fn readyz(State(state): State<HttpState>) -> (StatusCode, String) {
    match tokio::time::timeout(std::time::Duration::from_secs(1), state.gateway.ready()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready\n".into()),
        Ok(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n")),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: store did not answer within 1s\n".into(),
        ),
    }
}
