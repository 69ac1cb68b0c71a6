//! Readiness and the metrics endpoint.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

use super::HttpState;
use crate::metrics;

/// `/metrics`: OpenMetrics when the scraper asks for it (`Accept`), Prometheus text otherwise.
pub(super) async fn metrics_text(
    headers: HeaderMap,
) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    let accept = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let format = metrics::Format::from_accept(accept);
    (
        [(axum::http::header::CONTENT_TYPE, format.content_type())],
        metrics::render(format),
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
