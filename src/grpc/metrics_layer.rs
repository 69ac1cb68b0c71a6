//! A tower layer that times every `sentinel.v1.Sentinel` call into
//! `sentinel_rpc_duration_seconds{method,code}`.
//!
//! The time runs from the request reaching the server to the response headers. For unary
//! calls that is the whole call; for the watch streams it is the time to open the stream.
//! The code is read from the `grpc-status` header: tonic sends a failed call as a
//! trailers-only response (status in the headers), and a call whose headers carry no status
//! succeeded so far (`OK`; a stream that fails later reports in its trailers, unseen here).
//! Paths outside the Sentinel service (health, reflection) and unknown methods are not
//! recorded, so a caller cannot mint label values.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tower::{Layer, Service};

use crate::metrics;

const SERVICE_PREFIX: &str = "/sentinel.v1.Sentinel/";
const METHODS: [&str; 8] = [
    "SubmitIntent",
    "WatchDecision",
    "GetIntent",
    "ListIntents",
    "ResolveIntent",
    "CancelIntent",
    "WatchDecisions",
    "GetIntentHistory",
];
/// gRPC status names by code number.
const CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// The proto method name of a request path, when it is one of ours.
fn method_of(path: &str) -> Option<&'static str> {
    let name = path.strip_prefix(SERVICE_PREFIX)?;
    METHODS.iter().copied().find(|m| *m == name)
}

/// The status name a response's headers carry (`OK` when they carry none).
fn code_of(headers: &http::HeaderMap) -> &'static str {
    match headers.get("grpc-status") {
        None => CODES[0],
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
            .and_then(|n| CODES.get(n).copied())
            .unwrap_or("UNKNOWN"),
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct RpcMetricsLayer;

impl<S> Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;

    fn layer(&self, inner: S) -> RpcMetrics<S> {
        RpcMetrics { inner }
    }
}

#[derive(Debug, Clone)]
pub struct RpcMetrics<S> {
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, R> Service<http::Request<B>> for RpcMetrics<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = method_of(request.uri().path());
        let started = Instant::now();
        let call = self.inner.call(request);
        Box::pin(async move {
            let response = call.await;
            if let Some(method) = method {
                let code = match &response {
                    Ok(r) => code_of(r.headers()),
                    Err(_) => "UNKNOWN",
                };
                metrics::rpc_finished(method, code, started.elapsed());
            }
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_methods_are_named() {
        assert_eq!(
            method_of("/sentinel.v1.Sentinel/SubmitIntent"),
            Some("SubmitIntent")
        );
        assert_eq!(method_of("/sentinel.v1.Sentinel/Nope"), None);
        assert_eq!(method_of("/grpc.health.v1.Health/Check"), None);
    }

    #[test]
    fn status_names_follow_the_header() {
        let mut h = http::HeaderMap::new();
        assert_eq!(code_of(&h), "OK");
        h.insert("grpc-status", http::HeaderValue::from_static("3"));
        assert_eq!(code_of(&h), "INVALID_ARGUMENT");
        h.insert("grpc-status", http::HeaderValue::from_static("99"));
        assert_eq!(code_of(&h), "UNKNOWN");
    }
}
