//! A tower layer that traces and times every `sentinel.v1.Sentinel` call.
//!
//! Each call runs inside one span following the OpenTelemetry RPC conventions: named
//! `sentinel.v1.Sentinel/<Method>`, kind SERVER, with `rpc.system`, `rpc.service`,
//! `rpc.method` and, once the response headers are out, `rpc.grpc.status_code` as an integer.
//! Any code but OK marks the span ERROR with the status message (bad input included, so a
//! trace search for errors finds refused calls too). A W3C `traceparent` header makes the span
//! a child of the caller's span; the handler and every pipeline span run below it.
//!
//! The same call is timed into `sentinel_rpc_duration_seconds{method,code}`. The time (and the
//! span) runs from the request reaching the server to the response headers. For unary calls
//! that is the whole call; for the watch streams it is the time to open the stream. The code
//! is read from the `grpc-status` header: tonic sends a failed call as a trailers-only
//! response (status in the headers), and a call whose headers carry no status succeeded so far
//! (`OK`; a stream that fails later reports in its trailers, unseen here).
//!
//! Paths outside the Sentinel service (health, reflection) and unknown methods get neither a
//! span nor a metric, so a caller cannot mint span names or label values.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;
use tower::{Layer, Service};
use tracing::field::Empty;
use tracing::Span;

use crate::metrics::{self, Stopwatch};

/// `rpc.service`: the fully qualified proto service.
const SERVICE: &str = "sentinel.v1.Sentinel";
const PATH_PREFIX: &str = "/sentinel.v1.Sentinel/";

/// One method of the service: its proto name (`rpc.method`, the metric's label) and the span
/// name (`<service>/<method>`).
#[derive(Debug, PartialEq, Eq)]
struct Method {
    name: &'static str,
    span_name: &'static str,
}

macro_rules! methods {
    ($($name:literal),* $(,)?) => {
        [$(Method { name: $name, span_name: concat!("sentinel.v1.Sentinel/", $name) }),*]
    };
}

const METHODS: [Method; 8] = methods![
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
const UNKNOWN: usize = 2;

/// The method a request path names, when it is one of ours.
fn method_of(path: &str) -> Option<&'static Method> {
    let name = path.strip_prefix(PATH_PREFIX)?;
    METHODS.iter().find(|m| m.name == name)
}

/// The status code a response's headers carry (0, `OK`, when they carry none; `UNKNOWN` for
/// anything that is not a known code).
fn code_of(headers: &http::HeaderMap) -> usize {
    match headers.get("grpc-status") {
        None => 0,
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
            .filter(|n| *n < CODES.len())
            .unwrap_or(UNKNOWN),
    }
}

/// The status message of a failed call's headers (percent-decoded, as gRPC sends it).
fn message_of(headers: &http::HeaderMap) -> String {
    headers
        .get("grpc-message")
        .map(|v| {
            percent_encoding::percent_decode(v.as_bytes())
                .decode_utf8_lossy()
                .into_owned()
        })
        .unwrap_or_default()
}

/// The server span of one call, a child of the caller's W3C trace context when it sent one.
fn span_of(method: &'static Method, headers: &http::HeaderMap) -> Span {
    let span = tracing::info_span!(
        "rpc",
        otel.name = method.span_name,
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = SERVICE,
        rpc.method = method.name,
        rpc.grpc.status_code = Empty,
        otel.status_code = Empty,
        otel.status_description = Empty,
    );
    crate::telemetry::adopt_remote_parent(&span, headers);
    span
}

#[derive(Debug, Clone, Copy, Default)]
pub struct RpcLayer;

impl<S> Layer<S> for RpcLayer {
    type Service = Rpc<S>;

    fn layer(&self, inner: S) -> Rpc<S> {
        Rpc { inner }
    }
}

#[derive(Debug, Clone)]
pub struct Rpc<S> {
    inner: S,
}

impl<S, B, R> Service<http::Request<B>> for Rpc<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = RpcFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let Some(method) = method_of(request.uri().path()) else {
            return RpcFuture {
                call: self.inner.call(request),
                traced: None,
            };
        };
        let span = span_of(method, request.headers());
        let call = span.in_scope(|| self.inner.call(request));
        RpcFuture {
            call,
            traced: Some(Traced {
                method,
                span,
                started: Stopwatch::start(),
            }),
        }
    }
}

/// What a traced call carries until its response headers are out.
struct Traced {
    method: &'static Method,
    span: Span,
    /// Empty while metrics are off: the span keeps its own times.
    started: Stopwatch,
}

impl Traced {
    /// Records the call's status on its span and in the duration metric.
    fn finish<R, E>(self, response: &Result<http::Response<R>, E>) {
        let (code, message) = match response {
            Ok(r) => {
                let code = code_of(r.headers());
                (code, (code != 0).then(|| message_of(r.headers())))
            }
            Err(_) => (UNKNOWN, Some("the call failed before a response".into())),
        };
        self.span.record("rpc.grpc.status_code", code as i64);
        if let Some(message) = message {
            self.span.record("otel.status_code", "ERROR");
            self.span
                .record("otel.status_description", message.as_str());
        }
        metrics::rpc_finished(self.method.name, CODES[code], self.started);
    }
}

pin_project! {
    /// The inner call, polled inside its span; the outcome is recorded when it completes.
    pub struct RpcFuture<F> {
        #[pin]
        call: F,
        traced: Option<Traced>,
    }
}

impl<F, R, E> Future for RpcFuture<F>
where
    F: Future<Output = Result<http::Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = match this.traced {
            None => return this.call.poll(cx),
            Some(traced) => {
                let _entered = traced.span.enter();
                ready!(this.call.poll(cx))
            }
        };
        if let Some(traced) = this.traced.take() {
            traced.finish(&response);
        }
        Poll::Ready(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_methods_are_named() {
        let submit = method_of("/sentinel.v1.Sentinel/SubmitIntent").unwrap();
        assert_eq!(submit.name, "SubmitIntent");
        assert_eq!(submit.span_name, "sentinel.v1.Sentinel/SubmitIntent");
        assert_eq!(method_of("/sentinel.v1.Sentinel/Nope"), None);
        assert_eq!(method_of("/grpc.health.v1.Health/Check"), None);
    }

    #[test]
    fn status_codes_follow_the_header() {
        let mut h = http::HeaderMap::new();
        assert_eq!(CODES[code_of(&h)], "OK");
        h.insert("grpc-status", http::HeaderValue::from_static("3"));
        assert_eq!(CODES[code_of(&h)], "INVALID_ARGUMENT");
        h.insert("grpc-status", http::HeaderValue::from_static("99"));
        assert_eq!(CODES[code_of(&h)], "UNKNOWN");
        h.insert("grpc-status", http::HeaderValue::from_static("-1"));
        assert_eq!(CODES[code_of(&h)], "UNKNOWN");
    }

    #[test]
    fn status_messages_are_percent_decoded() {
        let mut h = http::HeaderMap::new();
        assert_eq!(message_of(&h), "");
        h.insert(
            "grpc-message",
            http::HeaderValue::from_static("agent_id:%20must%20not%20be%20empty"),
        );
        assert_eq!(message_of(&h), "agent_id: must not be empty");
    }
}
