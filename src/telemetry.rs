//! Logging and tracing: one `init` returning a guard that flushes spans on drop.
//!
//! `tracing` spans cover every RPC and pipeline step. With `OTEL_EXPORTER_OTLP_ENDPOINT` set
//! they are exported over OTLP/gRPC under a resource naming the service, its version and its
//! deployment environment; W3C trace context is read from incoming gRPC metadata so an
//! agent's trace continues through Sentinel, and later work on an intent (a decision, a
//! cancellation, an expiry) links back to the trace of its submission.

use std::time::Duration;

use opentelemetry::propagation::Extractor;
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::resource::{EnvResourceDetector, TelemetryResourceDetector};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogFormat, TelemetryConfig};

const SERVICE_NAME: &str = "service.name";
const SERVICE_VERSION: &str = "service.version";
const DEPLOYMENT_ENVIRONMENT_NAME: &str = "deployment.environment.name";

/// Flushes and shuts the exporter down (under a timeout) when dropped.
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            // Shutdown blocks on the exporter; never let a dead collector hang the exit.
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = provider.shutdown();
                let _ = tx.send(());
            });
            let _ = rx.recv_timeout(Duration::from_secs(3));
        }
    }
}

/// Installs the global subscriber. Must run inside the tokio runtime (the OTLP exporter
/// needs it). Calling it twice is harmless: the second call keeps the first subscriber.
pub fn init(config: &TelemetryConfig) -> anyhow::Result<TelemetryGuard> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let filter = EnvFilter::try_new(&config.log_filter).map_err(|e| {
        anyhow::anyhow!("SENTINEL_LOG: invalid filter {:?}: {e}", config.log_filter)
    })?;
    let fmt_layer = match config.log_format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed(),
    };

    let provider = match &config.otlp_endpoint {
        None => None,
        Some(endpoint) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.clone())
                .with_timeout(Duration::from_secs(5))
                .build()?;
            Some(
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(resource(config))
                    .build(),
            )
        }
    };
    let otel_layer = provider.as_ref().map(|p| {
        opentelemetry::global::set_tracer_provider(p.clone());
        // Spans carry what the conventions name, not the tracing crate's bookkeeping:
        // no busy/idle times, thread ids, source locations or module targets.
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("sentinel"))
            .with_tracked_inactivity(false)
            .with_threads(false)
            .with_location(false)
            .with_target(false)
    });

    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt_layer)
        .with(otel_layer)
        .try_init();
    Ok(TelemetryGuard { provider })
}

/// What every exported span says about the process. Lowest precedence first: Sentinel's
/// defaults (`service.name` `sentinel`, `service.version` of this build), then
/// `OTEL_RESOURCE_ATTRIBUTES` (and the SDK's `telemetry.sdk.*`), then the explicit settings
/// `OTEL_SERVICE_NAME` and `SENTINEL_ENVIRONMENT` (`deployment.environment.name`).
fn resource(config: &TelemetryConfig) -> Resource {
    let mut explicit = Vec::new();
    if let Some(name) = &config.service_name {
        explicit.push(KeyValue::new(SERVICE_NAME, name.clone()));
    }
    if let Some(environment) = &config.environment {
        explicit.push(KeyValue::new(
            DEPLOYMENT_ENVIRONMENT_NAME,
            environment.clone(),
        ));
    }
    Resource::builder_empty()
        .with_attributes([
            KeyValue::new(SERVICE_NAME, "sentinel"),
            KeyValue::new(SERVICE_VERSION, env!("CARGO_PKG_VERSION")),
        ])
        .with_detectors(&[
            Box::new(TelemetryResourceDetector),
            Box::new(EnvResourceDetector::new()),
        ])
        .with_attributes(explicit)
        .build()
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Makes `span` a child of the W3C trace context (`traceparent`) in a request's headers
/// (gRPC metadata travels as HTTP/2 headers).
pub fn adopt_remote_parent(span: &tracing::Span, headers: &http::HeaderMap) {
    let parent =
        opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)));
    let _ = span.set_parent(parent);
}

/// The W3C `traceparent` of the current span, if it is being traced.
pub fn current_traceparent() -> Option<String> {
    let context = tracing::Span::current().context();
    let mut carrier = std::collections::HashMap::new();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&context, &mut carrier));
    carrier.remove("traceparent")
}

/// The trace context a W3C `traceparent` names (empty when it is malformed).
fn context_of(traceparent: &str) -> opentelemetry::Context {
    let carrier =
        std::collections::HashMap::from([("traceparent".to_string(), traceparent.to_string())]);
    opentelemetry::global::get_text_map_propagator(|p| p.extract(&carrier))
}

/// Makes `span` a child of the trace named by a W3C `traceparent`.
pub fn adopt_traceparent(span: &tracing::Span, traceparent: &str) {
    let _ = span.set_parent(context_of(traceparent));
}

/// Links `span` to the span a W3C `traceparent` names: work that happens later in another
/// trace (a decision, a cancellation, an expiry) points back at the submission it concerns.
/// A malformed `traceparent` adds nothing.
pub fn link_to_traceparent(span: &tracing::Span, traceparent: &str) {
    let context = context_of(traceparent);
    span.add_link(context.span().span_context().clone());
}

/// Sets a string-array attribute on `span` (a `tracing` field cannot hold an array), such as
/// `gen_ai.response.finish_reasons`.
pub fn set_string_array(
    span: &tracing::Span,
    key: &'static str,
    values: impl IntoIterator<Item = String>,
) {
    let values = values
        .into_iter()
        .map(opentelemetry::StringValue::from)
        .collect();
    span.set_attribute(
        key,
        opentelemetry::Value::Array(opentelemetry::Array::String(values)),
    );
}
