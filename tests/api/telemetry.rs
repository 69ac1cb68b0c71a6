//! Traces leave by OTLP: the real binary exports spans to an in-test OTLP/gRPC collector, and
//! the agent's W3C trace context makes them part of the agent's trace.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

use crate::helpers::*;
use sentinel::grpc::pb;
use sentinel::grpc::pb::sentinel_client::SentinelClient;

/// An in-test OTLP/gRPC collector keeping every span and every resource it is sent.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Span>>>,
    resources: Arc<Mutex<Vec<Resource>>>,
}

impl Collector {
    /// Serves the collector on a free local port; returns its address and the server task.
    async fn start(&self) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(self.clone()))
            .serve_with_incoming(TcpListenerStream::new(listener));
        let task = tokio::spawn(async move {
            let _ = server.await;
        });
        (addr, task)
    }

    fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }

    /// Waits until a span matching `pick` has been exported.
    async fn span(&self, what: &str, pick: impl Fn(&Span) -> bool) -> Span {
        eventually(Duration::from_secs(20), what, || async {
            self.spans().into_iter().find(|s| pick(s))
        })
        .await
    }
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        let mut resources = self.resources.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            resources.extend(rs.resource);
            for ss in rs.scope_spans {
                spans.extend(ss.spans);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

fn value<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref()?.value.as_ref())
}

fn attr(span: &Span, key: &str) -> Option<String> {
    value(&span.attributes, key).map(|v| match v {
        Value::StringValue(s) => s.clone(),
        Value::IntValue(i) => i.to_string(),
        Value::BoolValue(b) => b.to_string(),
        other => format!("{other:?}"),
    })
}

/// An attribute exported as an integer (not a string holding digits).
fn int_attr(span: &Span, key: &str) -> Option<i64> {
    match value(&span.attributes, key)? {
        Value::IntValue(i) => Some(*i),
        _ => None,
    }
}

fn str_attr<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    match value(&span.attributes, key)? {
        Value::StringValue(s) => Some(s.as_str()),
        _ => None,
    }
}

/// The real binary, exporting to `otlp` within 50 ms of a span's end, with `env` on top.
async fn start_sentinel(
    otlp: std::net::SocketAddr,
    env: &[(&str, String)],
) -> (
    tokio::process::Child,
    SentinelClient<tonic::transport::Channel>,
) {
    let (grpc, http) = (
        crate::redis_harness::free_port(),
        crate::redis_harness::free_port(),
    );
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sentinel"))
        .arg("serve")
        .env("SENTINEL_GRPC_ADDR", format!("127.0.0.1:{grpc}"))
        .env("SENTINEL_HTTP_ADDR", format!("127.0.0.1:{http}"))
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{otlp}"))
        .env("OTEL_BSP_SCHEDULE_DELAY", "50")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{grpc}");
    let channel = eventually(
        Duration::from_secs(30),
        "the sentinel binary to accept gRPC",
        || async {
            tonic::transport::Channel::from_shared(url.clone())
                .unwrap()
                .connect()
                .await
                .ok()
        },
    )
    .await;
    (child, SentinelClient::new(channel))
}

/// A request carrying the caller's W3C trace context.
fn traced<T>(message: T, trace_id: &str, parent_span_id: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-{parent_span_id}-01")
            .parse()
            .unwrap(),
    );
    request
}

#[tokio::test]
async fn spans_are_exported_over_otlp_and_join_the_callers_trace() {
    let collector = Collector::default();
    let (otlp, server) = collector.start().await;

    // A phone channel too, so the escalation's span can be checked against the same trace.
    let telnyx = crate::fakes::telnyx::FakeTelnyx::start().await;
    let (child, mut client) = start_sentinel(
        otlp,
        &[
            ("OTEL_SERVICE_NAME", "sentinel-test".into()),
            ("SENTINEL_LOG_FORMAT", "json".into()),
            ("TELNYX_API_KEY", crate::fakes::telnyx::API_KEY.into()),
            ("TELNYX_PUBLIC_KEY", crate::fakes::telnyx::public_key_b64()),
            ("SENTINEL_TELNYX_BASE_URL", telnyx.base_url()),
            (
                "TELNYX_CONNECTION_ID",
                crate::fakes::telnyx::CONNECTION_ID.into(),
            ),
            (
                "TELNYX_PHONE_NUMBER",
                crate::fakes::telnyx::CALLER_ID.into(),
            ),
            ("ADMIN_PHONE_NUMBER", crate::fakes::telnyx::ALICE.into()),
            ("SENTINEL_PUBLIC_URL", "http://127.0.0.1:9".into()),
        ],
    )
    .await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let request = traced(
        intent_request("traced-bot", "DROP_TABLE", json!({"table": "t"})),
        trace_id,
        "00f067aa0ba902b7",
    );
    let intent = client
        .submit_intent(request)
        .await
        .unwrap()
        .into_inner()
        .intent
        .unwrap();

    // A graceful stop flushes the exporter.
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // JSON logs on request.
    let first_line = String::from_utf8_lossy(&out.stderr)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(
        serde_json::from_str::<serde_json::Value>(&first_line).is_ok(),
        "{first_line}"
    );

    let spans = collector.spans();
    let submit = spans
        .iter()
        .find(|s| {
            s.name == "submit" && attr(s, "intent_id").as_deref() == Some(intent.intent_id.as_str())
        })
        .unwrap_or_else(|| {
            panic!(
                "a submit span for the intent among {:?}",
                spans.iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        });
    assert_eq!(
        hex::encode(&submit.trace_id),
        trace_id,
        "joins the caller's trace"
    );
    assert_eq!(attr(submit, "agent_id").as_deref(), Some("traced-bot"));
    assert_eq!(attr(submit, "module").as_deref(), Some("OpsGuard"));
    assert_eq!(attr(submit, "state").as_deref(), Some("DECLINED"));
    assert_eq!(attr(submit, "risk_score").as_deref(), Some("100"));
    assert!(spans
        .iter()
        .any(|s| s.name == "policy" && hex::encode(&s.trace_id) == trace_id));
    server.abort();
}

#[tokio::test]
async fn rpc_spans_follow_the_opentelemetry_conventions() {
    let collector = Collector::default();
    let (otlp, server) = collector.start().await;
    let (_child, mut client) = start_sentinel(
        otlp,
        &[
            ("SENTINEL_ENVIRONMENT", "staging".into()),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "service.namespace=safety,deployment.environment.name=overridden".into(),
            ),
        ],
    )
    .await;

    // A pending intent, submitted from the caller's trace.
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let caller_span = "b7ad6b7169203331";
    let pending = client
        .submit_intent(traced(
            intent_request("ops", "DELETE_USER", json!({"user_id": "u-1"})),
            trace_id,
            caller_span,
        ))
        .await
        .unwrap()
        .into_inner()
        .intent
        .unwrap();
    // Bad input.
    let refused = client
        .submit_intent(intent_request("", "DELETE_USER", json!({"user_id": "u-2"})))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    // A decision and a withdrawal later, each in a trace of its own.
    let resolve = pb::ResolveIntentRequest {
        intent_id: pending.intent_id.clone(),
        approve: true,
        reason: "checked".into(),
        ..Default::default()
    };
    client.resolve_intent(resolve).await.unwrap();
    let withdrawn = client
        .submit_intent(intent_request(
            "ops",
            "DELETE_USER",
            json!({"user_id": "u-3"}),
        ))
        .await
        .unwrap()
        .into_inner()
        .intent
        .unwrap();
    client
        .cancel_intent(pb::CancelIntentRequest {
            intent_id: withdrawn.intent_id.clone(),
            reason: String::new(),
        })
        .await
        .unwrap();

    let is_rpc = |s: &Span, method: &str| s.name == format!("sentinel.v1.Sentinel/{method}");
    let submit_rpc = collector
        .span("the SubmitIntent span", |s| {
            is_rpc(s, "SubmitIntent") && hex::encode(&s.trace_id) == trace_id
        })
        .await;
    assert_eq!(submit_rpc.kind, SpanKind::Server as i32);
    assert_eq!(hex::encode(&submit_rpc.parent_span_id), caller_span);
    assert_eq!(str_attr(&submit_rpc, "rpc.system"), Some("grpc"));
    assert_eq!(
        str_attr(&submit_rpc, "rpc.service"),
        Some("sentinel.v1.Sentinel")
    );
    assert_eq!(str_attr(&submit_rpc, "rpc.method"), Some("SubmitIntent"));
    assert_eq!(int_attr(&submit_rpc, "rpc.grpc.status_code"), Some(0));
    assert_ne!(
        submit_rpc.status.as_ref().map(|s| s.code),
        Some(StatusCode::Error as i32)
    );
    let submit = collector
        .span("the gateway's submit span", |s| {
            s.name == "submit" && attr(s, "intent_id").as_deref() == Some(&pending.intent_id)
        })
        .await;
    assert_eq!(
        submit.parent_span_id, submit_rpc.span_id,
        "runs inside the RPC span"
    );
    assert_eq!(
        int_attr(&submit, "risk_score"),
        Some(i64::from(pending.risk_score))
    );

    let refused_rpc = collector
        .span("the refused SubmitIntent span", |s| {
            is_rpc(s, "SubmitIntent") && int_attr(s, "rpc.grpc.status_code") == Some(3)
        })
        .await;
    let status = refused_rpc.status.as_ref().expect("a span status");
    assert_eq!(status.code, StatusCode::Error as i32);
    assert!(status.message.contains("agent_id"), "{}", status.message);

    // The decision happens in another trace and links back to the submission.
    let resolve_rpc = collector
        .span("the ResolveIntent span", |s| is_rpc(s, "ResolveIntent"))
        .await;
    assert_ne!(hex::encode(&resolve_rpc.trace_id), trace_id);
    assert_eq!(int_attr(&resolve_rpc, "rpc.grpc.status_code"), Some(0));
    let resolved = collector
        .span("the gateway's resolve span", |s| {
            s.name == "resolve" && s.trace_id == resolve_rpc.trace_id
        })
        .await;
    let link = resolved.links.first().expect("a link to the submission");
    assert_eq!(hex::encode(&link.trace_id), trace_id);
    assert_eq!(link.span_id, submit.span_id);
    let cancelled = collector
        .span("the gateway's cancel span", |s| {
            s.name == "cancel" && attr(s, "intent_id").as_deref() == Some(&withdrawn.intent_id)
        })
        .await;
    assert_eq!(cancelled.links.len(), 1, "linked to its submission");

    let resources = collector.resources.lock().unwrap().clone();
    let resource = resources.first().expect("a resource");
    let resource_attr = |key: &str| match value(&resource.attributes, key) {
        Some(Value::StringValue(s)) => Some(s.clone()),
        _ => None,
    };
    assert_eq!(resource_attr("service.name").as_deref(), Some("sentinel"));
    assert_eq!(
        resource_attr("service.version").as_deref(),
        Some(env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        resource_attr("deployment.environment.name").as_deref(),
        Some("staging"),
        "SENTINEL_ENVIRONMENT wins over OTEL_RESOURCE_ATTRIBUTES"
    );
    assert_eq!(
        resource_attr("service.namespace").as_deref(),
        Some("safety")
    );

    // Only attributes that mean something: none of the tracing crate's bookkeeping.
    for span in collector.spans() {
        for a in &span.attributes {
            let noise = ["busy_ns", "idle_ns", "target"].contains(&a.key.as_str())
                || a.key.starts_with("thread.")
                || a.key.starts_with("code.");
            assert!(!noise, "{} carries {}", span.name, a.key);
        }
    }
    server.abort();
}

#[tokio::test]
async fn an_expiry_links_to_the_submission() {
    let collector = Collector::default();
    let (otlp, server) = collector.start().await;
    let (_child, mut client) =
        start_sentinel(otlp, &[("SENTINEL_APPROVAL_TIMEOUT_SECS", "1".into())]).await;
    let trace_id = "5b8efff798038103d269b633813fc60c";
    let pending = client
        .submit_intent(traced(
            intent_request("ops", "DELETE_USER", json!({"user_id": "u-1"})),
            trace_id,
            "eee19b7ec3c1b174",
        ))
        .await
        .unwrap()
        .into_inner()
        .intent
        .unwrap();

    let expired = collector
        .span("the expiry's span", |s| {
            s.name == "expire" && attr(s, "intent_id").as_deref() == Some(&pending.intent_id)
        })
        .await;
    assert_eq!(attr(&expired, "state").as_deref(), Some("EXPIRED"));
    assert_ne!(
        hex::encode(&expired.trace_id),
        trace_id,
        "a trace of its own"
    );
    let link = expired.links.first().expect("a link to the submission");
    assert_eq!(hex::encode(&link.trace_id), trace_id);
    server.abort();
}
