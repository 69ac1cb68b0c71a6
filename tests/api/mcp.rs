//! `sentinel mcp` as an MCP client sees it: the real proxy binary between an rmcp client and
//! a small rmcp upstream (`tests/support/mcp_upstream.rs`, which records every call it
//! gets), in front of the real gateway; over stdio and over streamable HTTP.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResult, ClientRequest, JsonObject,
};
use rmcp::service::{PeerRequestOptions, RoleClient, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::ServiceExt as _;
use serde_json::json;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

use crate::helpers::*;
use sentinel::auth::{hash_key, KeyRing, Principal};
use sentinel::grpc::pb;
use sentinel::grpc::pb::IntentState as S;
use sentinel_receipt::{fetch_jwks, verify_receipt, Expected, Verified};

const SENTINEL: &str = env!("CARGO_BIN_EXE_sentinel");
const UPSTREAM: &str = env!("CARGO_BIN_EXE_sentinel-mcp-test-upstream");
const LIMIT: Duration = Duration::from_secs(30);

type Client = RunningService<RoleClient, ()>;

/// The upstream's record of the calls that reached it.
struct CallLog {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl CallLog {
    fn new() -> CallLog {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("calls.jsonl");
        CallLog { _dir: dir, path }
    }

    fn tools(&self) -> Vec<String> {
        std::fs::read_to_string(&self.path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["tool"].to_string())
            .map(|t| t.trim_matches('"').to_string())
            .collect()
    }
}

fn args(v: serde_json::Value) -> JsonObject {
    v.as_object().cloned().unwrap()
}

fn call(tool: &'static str, arguments: serde_json::Value) -> CallToolRequestParams {
    CallToolRequestParams::new(tool).with_arguments(args(arguments))
}

fn text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

fn intent_id(result: &CallToolResult) -> String {
    result.meta.as_ref().expect("_meta")["sentinel"]["intent_id"]
        .as_str()
        .expect("intent id in _meta.sentinel")
        .to_string()
}

/// The receipt in an approved result's `_meta.sentinel`, checked as the upstream tool's
/// caller would: against the gateway's published keys, for this agent, action and arguments,
/// with the intent's id as its `jti`.
async fn verified_receipt(
    app: &TestApp,
    result: &CallToolResult,
    agent: &str,
    action: &str,
    arguments: serde_json::Value,
) -> Verified {
    let receipt = result.meta.as_ref().expect("_meta")["sentinel"]["receipt"]
        .as_str()
        .expect("a receipt in _meta.sentinel")
        .to_string();
    let jwks_url = format!("http://{}/.well-known/jwks.json", app.http_addr);
    let keys = fetch_jwks(&jwks_url, LIMIT)
        .await
        .expect("the gateway's JWKS");
    let expected = Expected {
        agent_id: agent,
        action,
        payload: &arguments,
    };
    let verified = verify_receipt(&receipt, &keys, &expected).expect("the receipt verifies");
    assert_eq!(verified.claims.jti, intent_id(result));
    assert_eq!(verified.claims.act, action);
    verified
}

/// `sentinel mcp [flags] -- sentinel-mcp-test-upstream` against the gateway at `addr`.
fn proxy_command(addr: &str, log: &CallLog, flags: &[&str]) -> TokioChildProcess {
    let mut command = Command::new(SENTINEL);
    command
        .arg("mcp")
        .args(flags)
        .args(["--", UPSTREAM])
        .env("SENTINEL_ADDR", addr)
        .env("SENTINEL_TEST_UPSTREAM_LOG", &log.path)
        .env_remove("SENTINEL_API_KEY")
        .env_remove("SENTINEL_POLICY");
    TokioChildProcess::new(command).unwrap()
}

/// The proxy on stdio, with a client that ignores notifications.
async fn stdio_proxy(addr: &str, log: &CallLog, flags: &[&str]) -> Client {
    ().serve(proxy_command(addr, log, flags))
        .await
        .expect("the proxy initializes")
}

/// Starts `command`, returns it and the URL from its `listening on URL` line.
async fn spawn_listening(mut command: Command) -> (Child, String) {
    command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::time::timeout(LIMIT, BufReader::new(stdout).lines().next_line())
        .await
        .expect("a listening line in time")
        .unwrap()
        .expect("a line");
    let url = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    (child, url)
}

async fn intents(app: &TestApp) -> Vec<pb::Intent> {
    app.client()
        .await
        .list(Default::default())
        .await
        .unwrap()
        .intents
}

async fn pending_intent(app: &TestApp) -> String {
    eventually(LIMIT, "a pending intent", || async {
        intents(app)
            .await
            .into_iter()
            .find(|i| state(i) == S::PendingApproval)
            .map(|i| i.intent_id)
    })
    .await
}

#[tokio::test]
async fn stdio_forwards_approved_calls_and_refuses_declined_ones_without_calling_upstream() {
    let app = spawn_app().await;
    let log = CallLog::new();
    let client = stdio_proxy(&app.url(), &log, &["--agent", "mcp-agent"]).await;

    let info = client.peer_info().expect("server info");
    assert_eq!(info.server_info.as_ref().unwrap().name, "test-upstream");
    let tools = client.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), 4, "tools/list passes through");

    // RESTART_SERVER in staging: the built-in pack approves it, the upstream answers.
    let ok = client
        .call_tool(call("restart_server", json!({"environment": "staging"})))
        .await
        .unwrap();
    assert_ne!(ok.is_error, Some(true), "{}", text(&ok));
    assert!(
        text(&ok).starts_with("restart_server done"),
        "{}",
        text(&ok)
    );
    let id = intent_id(&ok);
    let intent = app.client().await.get(&id).await.unwrap();
    assert_eq!(state(&intent), S::Approved);
    assert_eq!(intent.action, "RESTART_SERVER");
    assert_eq!(intent.agent_id, "mcp-agent");
    assert_eq!(intent.labels["mcp.tool"], "restart_server");
    assert_eq!(intent.labels["mcp.server"], "test-upstream");
    assert!(!intent.labels["mcp.session"].is_empty());
    // The result proves the approval: the receipt the gateway signed for this exact call.
    let arguments = json!({"environment": "staging"});
    let verified = verified_receipt(&app, &ok, "mcp-agent", "RESTART_SERVER", arguments).await;
    assert_eq!(verified.claims.dby.kind, "POLICY");
    assert_eq!(
        ok.meta.as_ref().unwrap()["sentinel"]["receipt"],
        intent.receipt
    );

    // DROP_TABLE: declined by policy; the client is told who and why; upstream never sees it.
    let refused = client
        .call_tool(call("drop_table", json!({"table": "users"})))
        .await
        .unwrap();
    assert_eq!(refused.is_error, Some(true));
    let t = text(&refused);
    assert!(t.contains("declined this call to drop_table"), "{t}");
    assert!(
        t.contains("Sentinel's policy") && t.contains("forbidden"),
        "{t}"
    );
    assert_eq!(log.tools(), ["restart_server"]);

    client.cancel().await.unwrap();
    app.stop().await;
}

/// A client that keeps the progress messages it is sent.
#[derive(Clone, Default)]
struct ProgressRecorder(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl rmcp::ClientHandler for ProgressRecorder {
    async fn on_progress(
        &self,
        params: rmcp::model::ProgressNotificationParam,
        _context: rmcp::service::NotificationContext<RoleClient>,
    ) {
        self.0
            .lock()
            .unwrap()
            .push(params.message.unwrap_or_default());
    }
}

#[tokio::test]
async fn a_pending_call_reports_progress_and_is_answered_once_an_operator_approves_it() {
    let app = spawn_app().await;
    let log = CallLog::new();
    let progress = ProgressRecorder::default();
    let client = progress
        .clone()
        .serve(proxy_command(&app.url(), &log, &["--agent", "mcp-agent"]))
        .await
        .unwrap();
    let peer = client.peer().clone();
    let waiting = tokio::spawn(async move {
        peer.call_tool(call("delete_user", json!({"user_id": "u-7"})))
            .await
    });
    let id = pending_intent(&app).await;
    // The client sent a progress token (rmcp always does): it hears that a human is needed.
    let heard = eventually(LIMIT, "a progress notification", || async {
        progress.0.lock().unwrap().first().cloned()
    })
    .await;
    assert_eq!(
        heard,
        format!("waiting for a human: intent {id} (DELETE_USER) needs approval")
    );
    assert!(log.tools().is_empty(), "nothing is forwarded while pending");
    let mut operator = app.client().await;
    operator.resolve(&id, true, "ticket OPS-12").await.unwrap();
    let result = tokio::time::timeout(LIMIT, waiting)
        .await
        .expect("answered in time")
        .unwrap()
        .unwrap();
    assert_ne!(result.is_error, Some(true), "{}", text(&result));
    assert_eq!(intent_id(&result), id);
    assert_eq!(log.tools(), ["delete_user"]);
    // Seen on the watch, the approval's receipt was read back before forwarding.
    let arguments = json!({"user_id": "u-7"});
    let verified = verified_receipt(&app, &result, "mcp-agent", "DELETE_USER", arguments).await;
    assert_eq!(verified.claims.dby.kind, "HUMAN");

    client.cancel().await.unwrap();
    app.stop().await;
}

#[tokio::test]
async fn a_retried_call_resumes_its_intent_and_a_decline_names_the_approver() {
    let app = spawn_app().await;
    let log = CallLog::new();
    let client = stdio_proxy(
        &app.url(),
        &log,
        &["--agent", "mcp-agent", "--wait-secs", "1"],
    )
    .await;
    let request = || call("delete_user", json!({"user_id": "u-9", "hard": true}));
    let first = client.call_tool(request()).await.unwrap();
    assert_eq!(first.is_error, Some(true));
    let id = intent_id(&first);
    assert_eq!(
        text(&first),
        format!(
            "awaiting human approval, intent {id}; call again with the same arguments to continue"
        )
    );
    // The same arguments in another key order: the same intent, not a second one.
    let again = client
        .call_tool(call("delete_user", json!({"hard": true, "user_id": "u-9"})))
        .await
        .unwrap();
    assert_eq!(intent_id(&again), id);
    assert_eq!(intents(&app).await.len(), 1);

    app.client()
        .await
        .resolve(&id, false, "not during the freeze")
        .await
        .unwrap();
    let declined = client.call_tool(request()).await.unwrap();
    assert_eq!(declined.is_error, Some(true));
    assert_eq!(intent_id(&declined), id);
    assert!(
        text(&declined).contains("Why: not during the freeze"),
        "{}",
        text(&declined)
    );
    assert!(log.tools().is_empty());
    assert_eq!(intents(&app).await.len(), 1);

    client.cancel().await.unwrap();
    app.stop().await;
}

#[tokio::test]
async fn a_client_cancellation_cancels_the_pending_intent() {
    let app = spawn_app().await;
    let log = CallLog::new();
    let client = stdio_proxy(&app.url(), &log, &["--agent", "mcp-agent"]).await;
    let request = ClientRequest::CallToolRequest(CallToolRequest::new(call(
        "delete_user",
        json!({"user_id": "u-3"}),
    )));
    let handle = client
        .peer()
        .send_cancellable_request(request, PeerRequestOptions::no_options())
        .await
        .unwrap();
    let id = pending_intent(&app).await;
    handle
        .cancel(Some("the user stopped".into()))
        .await
        .unwrap();
    eventually(LIMIT, "the intent to be cancelled", || async {
        let intent = app.client().await.get(&id).await.ok()?;
        (state(&intent) == S::Cancelled).then_some(())
    })
    .await;
    assert!(log.tools().is_empty());

    client.cancel().await.unwrap();
    app.stop().await;
}

#[tokio::test]
async fn with_the_gateway_down_calls_are_refused_and_never_forwarded() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let log = CallLog::new();
    let client = stdio_proxy(&format!("http://{closed}"), &log, &["--agent", "a"]).await;
    assert_eq!(client.list_all_tools().await.unwrap().len(), 4);
    let result = client
        .call_tool(call("restart_server", json!({"environment": "staging"})))
        .await
        .unwrap();
    assert_eq!(result.is_error, Some(true));
    assert!(text(&result).contains("unreachable"), "{}", text(&result));
    assert!(log.tools().is_empty());
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn the_pack_maps_tools_and_tools_list_says_where_approval_is_needed() {
    let app = spawn_app().await;
    let log = CallLog::new();
    let dir = tempfile::tempdir().unwrap();
    let pack = dir.path().join("pack.toml");
    let text_of_pack = format!(
        "{}\n[[mcp.tools]]\ntool = \"echo\"\naction = \"RESTART_SERVER\"\n",
        include_str!("../../src/policy/builtin.toml")
    );
    std::fs::write(&pack, text_of_pack).unwrap();
    let flags = ["--agent", "mcp-agent", "--policy", path_str(&pack)];
    let client = stdio_proxy(&app.url(), &log, &flags).await;
    let tools = client.list_all_tools().await.unwrap();
    let echo = tools.iter().find(|t| t.name == "echo").unwrap();
    assert_eq!(
        echo.description.as_deref(),
        Some("Echo the text back [Sentinel: RESTART_SERVER; requires approval above risk 50]")
    );
    let result = client
        .call_tool(call("echo", json!({"environment": "dev"})))
        .await
        .unwrap();
    assert_ne!(result.is_error, Some(true), "{}", text(&result));
    let intent = app.client().await.get(&intent_id(&result)).await.unwrap();
    assert_eq!(intent.action, "RESTART_SERVER");
    client.cancel().await.unwrap();
    app.stop().await;
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

const AGENT_KEY: &str = "mcp-agent-key-0123456789";
const OPS_KEY: &str = "mcp-ops-key-0123456789";

#[tokio::test]
async fn over_http_each_client_brings_its_key_and_the_same_rules_hold() {
    let mut parts = Parts::default();
    parts.config.keys = KeyRing::new([
        (hash_key(AGENT_KEY), Principal::Agent("team-bot".into())),
        (hash_key(OPS_KEY), Principal::Operator("olivia".into())),
    ]);
    let app = spawn_with(parts).await;
    let log = CallLog::new();

    let mut upstream = Command::new(UPSTREAM);
    upstream
        .args(["--http", "127.0.0.1:0"])
        .env("SENTINEL_TEST_UPSTREAM_LOG", &log.path);
    let (_upstream, upstream_url) = spawn_listening(upstream).await;
    let mut proxy = Command::new(SENTINEL);
    proxy
        .args([
            "mcp",
            "--listen",
            "127.0.0.1:0",
            "--upstream-url",
            &upstream_url,
        ])
        .env("SENTINEL_ADDR", app.url())
        .env_remove("SENTINEL_API_KEY")
        .env_remove("SENTINEL_POLICY");
    let (_proxy, url) = spawn_listening(proxy).await;

    let connect = |key: Option<&str>| {
        let mut config = StreamableHttpClientTransportConfig::with_uri(url.clone());
        if let Some(k) = key {
            config = config.auth_header(k);
        }
        ().serve(StreamableHttpClientTransport::from_config(config))
    };
    let client = connect(Some(AGENT_KEY)).await.unwrap();
    let ok = client
        .call_tool(call("restart_server", json!({"environment": "dev"})))
        .await
        .unwrap();
    assert_ne!(ok.is_error, Some(true), "{}", text(&ok));
    let mut operator = app.client_with_key(OPS_KEY).await;
    let intent = operator.get(&intent_id(&ok)).await.unwrap();
    assert_eq!(
        intent.agent_id, "team-bot",
        "the agent comes from the client's key"
    );

    let refused = client
        .call_tool(call("drop_table", json!({"table": "orders"})))
        .await
        .unwrap();
    assert_eq!(refused.is_error, Some(true));

    // A pending call over HTTP is answered once an operator approves it.
    let peer = client.peer().clone();
    let waiting = tokio::spawn(async move {
        peer.call_tool(call("delete_user", json!({"user_id": "u-1"})))
            .await
    });
    let id = eventually(LIMIT, "a pending intent", || {
        let mut operator = operator.clone();
        async move {
            let page = operator.list(Default::default()).await.ok()?;
            page.intents
                .into_iter()
                .find(|i| state(i) == S::PendingApproval)
                .map(|i| i.intent_id)
        }
    })
    .await;
    operator.resolve(&id, true, "ok").await.unwrap();
    let approved = tokio::time::timeout(LIMIT, waiting)
        .await
        .expect("answered in time")
        .unwrap()
        .unwrap();
    assert_ne!(approved.is_error, Some(true), "{}", text(&approved));
    let arguments = json!({"user_id": "u-1"});
    verified_receipt(&app, &approved, "team-bot", "DELETE_USER", arguments).await;

    // Without a key the gateway refuses, and so does the proxy.
    let anonymous = connect(None).await.unwrap();
    let denied = anonymous
        .call_tool(call("restart_server", json!({"environment": "dev"})))
        .await
        .unwrap();
    assert_eq!(denied.is_error, Some(true));
    assert!(
        text(&denied).contains("Unauthenticated"),
        "{}",
        text(&denied)
    );

    assert_eq!(log.tools(), ["restart_server", "delete_user"]);
    client.cancel().await.unwrap();
    anonymous.cancel().await.unwrap();
    app.stop().await;
}
