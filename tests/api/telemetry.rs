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
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

use crate::helpers::*;
use sentinel::grpc::pb::sentinel_client::SentinelClient;

#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Span>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            for ss in rs.scope_spans {
                spans.extend(ss.spans);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

fn attr(span: &Span, key: &str) -> Option<String> {
    span.attributes.iter().find(|a| a.key == key).and_then(|a| {
        match a.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.clone()),
            Value::IntValue(i) => Some(i.to_string()),
            Value::BoolValue(b) => Some(b.to_string()),
            other => Some(format!("{other:?}")),
        }
    })
}

#[tokio::test]
async fn spans_are_exported_over_otlp_and_join_the_callers_trace() {
    let collector = Collector::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp = listener.local_addr().unwrap();
    let server = tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(collector.clone()))
        .serve_with_incoming(TcpListenerStream::new(listener));
    let server = tokio::spawn(server);

    // A phone channel too, so the escalation's span can be checked against the same trace.
    let telnyx = crate::fakes::telnyx::FakeTelnyx::start().await;
    let (grpc, http) = (
        crate::redis_harness::free_port(),
        crate::redis_harness::free_port(),
    );
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sentinel"))
        .arg("serve")
        .env("SENTINEL_GRPC_ADDR", format!("127.0.0.1:{grpc}"))
        .env("SENTINEL_HTTP_ADDR", format!("127.0.0.1:{http}"))
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{otlp}"))
        .env("OTEL_SERVICE_NAME", "sentinel-test")
        .env("SENTINEL_LOG_FORMAT", "json")
        .env("TELNYX_API_KEY", crate::fakes::telnyx::API_KEY)
        .env("TELNYX_PUBLIC_KEY", crate::fakes::telnyx::public_key_b64())
        .env("SENTINEL_TELNYX_BASE_URL", telnyx.base_url())
        .env("TELNYX_CONNECTION_ID", crate::fakes::telnyx::CONNECTION_ID)
        .env("TELNYX_PHONE_NUMBER", crate::fakes::telnyx::CALLER_ID)
        .env("ADMIN_PHONE_NUMBER", crate::fakes::telnyx::ALICE)
        .env("SENTINEL_PUBLIC_URL", "http://127.0.0.1:9")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let url = format!("http://127.0.0.1:{grpc}");
    let channel = crate::helpers::eventually(
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
    let mut client = SentinelClient::new(channel);
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut request = tonic::Request::new(intent_request(
        "traced-bot",
        "DROP_TABLE",
        json!({"table": "t"}),
    ));
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-00f067aa0ba902b7-01")
            .parse()
            .unwrap(),
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

    let spans = collector.spans.lock().unwrap().clone();
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
