//! A fake Telnyx API and a "phone" that plays the approver by posting signed webhooks.
//!
//! The fake behaves like the real API where Sentinel depends on it (protocols.md 2-3): bearer
//! auth (401 / 10009), `{"data": ...}` envelopes, `{"errors": [...]}` bodies with string
//! codes, `command_id` dedupe on dial, 90034 for audio commands before `call.answered`,
//! 90018 for commands after the hang-up, E.164 checks (10016), Base64 `client_state`.
//! Tests can queue failures (e.g. 429 or 503) for the next requests.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey};
use sentinel::config::{ApproverConfig, Config, PinHash, Secret, TelnyxSettings};
use serde_json::{json, Value};

use crate::helpers::within;

/// How long the fake waits for the app to do what a test expects.
const WAIT: Duration = Duration::from_secs(10);

pub const API_KEY: &str = "KEYfake0123456789";
pub const CONNECTION_ID: &str = "1494404757140276705";
pub const CALLER_ID: &str = "+14155550199";
pub const ALICE: &str = "+14155550101";
pub const BOB: &str = "+14155550102";

/// The test account's webhook signing key (the real one lives at Telnyx).
pub fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

pub fn public_key_b64() -> String {
    STANDARD.encode(signing_key().verifying_key().to_bytes())
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Request {
    pub path: String,
    /// `dial`, `sms`, or the call action (`speak`, `gather_using_speak`, `hangup`, ...).
    pub kind: String,
    pub call_control_id: Option<String>,
    pub body: Value,
}

#[derive(Debug, Default)]
struct CallState {
    to: String,
    answered: bool,
    ended: bool,
    /// The latest `client_state` a command set: Telnyx puts it in every later webhook.
    client_state: Option<String>,
}

#[derive(Default)]
struct Inner {
    requests: Vec<Request>,
    calls: HashMap<String, CallState>,
    dial_commands: HashMap<String, String>,
    failures: VecDeque<(u16, &'static str)>,
    /// The `retry-after` header on injected 429s.
    retry_after: Option<String>,
    /// Failures answered after the request was carried out (a lost response).
    failures_after: VecDeque<(u16, &'static str)>,
    /// Dial requests received, including ones deduplicated by `command_id`.
    dial_attempts: usize,
    /// Call commands refused because of the call's state: (action, call id, error code).
    refused: Vec<(String, String, &'static str)>,
    next_id: u64,
    /// How long a dial waits before it is answered (a slow Telnyx).
    dial_delay: std::time::Duration,
}

#[derive(Clone)]
pub struct FakeTelnyx {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

impl FakeTelnyx {
    pub async fn start() -> FakeTelnyx {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new()
            .route("/v2/calls", post(dial))
            .route("/v2/calls/{id}/actions/{action}", post(action))
            .route("/v2/messages", post(message))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeTelnyx { addr, inner }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v2", self.addr)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every dial from now on is answered only after `delay`.
    pub fn delay_dials(&self, delay: std::time::Duration) {
        self.lock().dial_delay = delay;
    }

    /// The next requests fail with these statuses and error codes, in order.
    pub fn fail_next(&self, failures: &[(u16, &'static str)]) {
        self.lock().failures.extend(failures.iter().copied());
    }

    /// The next requests are carried out, then answered with these errors (the response was
    /// lost): only `command_id` keeps a retry from doing it twice.
    pub fn fail_after_next(&self, failures: &[(u16, &'static str)]) {
        self.lock().failures_after.extend(failures.iter().copied());
    }

    /// Dial requests received, duplicates included.
    pub fn dial_attempts(&self) -> usize {
        self.lock().dial_attempts
    }

    /// Asserts that every dial and call command Sentinel sent carried a `command_id` and that
    /// none was refused for a missing parameter.
    pub fn assert_commands_identified(&self) {
        let inner = self.lock();
        for r in inner.requests.iter().filter(|r| r.kind != "sms") {
            assert!(
                r.body["command_id"].as_str().is_some_and(|c| !c.is_empty()),
                "{} without command_id: {}",
                r.kind,
                r.body
            );
        }
        let missing: Vec<_> = inner.refused.iter().filter(|r| r.2 == "10004").collect();
        assert!(
            missing.is_empty(),
            "refused for missing parameters: {missing:?}"
        );
    }

    /// Injected 429s carry this `retry-after` (default `0`).
    pub fn set_retry_after(&self, value: &str) {
        self.lock().retry_after = Some(value.to_string());
    }

    /// Call commands refused for the call's state: (action, call id, error code).
    pub fn refused(&self) -> Vec<(String, String, &'static str)> {
        self.lock().refused.clone()
    }

    pub fn requests(&self) -> Vec<Request> {
        self.lock().requests.clone()
    }

    pub fn count(&self, kind: &str, ccid: Option<&str>) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.kind == kind && (ccid.is_none() || r.call_control_id.as_deref() == ccid))
            .count()
    }

    /// Waits (up to 10 s) for the `n`-th (1-based) request matching `kind` and `ccid`.
    pub async fn wait_for(&self, kind: &str, ccid: Option<&str>, n: usize) -> Request {
        let found = within(WAIT, || async {
            self.requests()
                .into_iter()
                .filter(|r| {
                    r.kind == kind && (ccid.is_none() || r.call_control_id.as_deref() == ccid)
                })
                .nth(n - 1)
        })
        .await;
        found.unwrap_or_else(|| panic!("no {kind} #{n} for {ccid:?}; got {:#?}", self.requests()))
    }

    /// Waits for the `n`-th (1-based) dial to `to` and returns the phone that rings.
    pub async fn phone(&self, app_http: SocketAddr, to: &str, n: usize) -> Phone {
        let dial = within(WAIT, || async {
            self.requests()
                .into_iter()
                .filter(|r| r.kind == "dial" && r.body["to"] == to)
                .nth(n - 1)
        })
        .await
        .unwrap_or_else(|| panic!("{to} was never dialled ({n}); got {:#?}", self.requests()));
        Phone {
            fake: self.clone(),
            webhook: format!("http://{app_http}/telnyx/webhook"),
            ccid: dial.call_control_id.clone().expect("dial has an id"),
            to: to.to_string(),
            client_state: dial.body["client_state"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            http: reqwest::Client::new(),
            key: signing_key(),
            sent: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// SMS bodies sent to `to`.
    pub fn texts_to(&self, to: &str) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|r| r.kind == "sms" && r.body["to"] == to)
            .map(|r| r.body["text"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

/// Sentinel configured against `fake` with `roster`; short ring timeout; PIN tier off.
pub fn config(fake: &FakeTelnyx, roster: Vec<ApproverConfig>) -> Config {
    let mut c = Config::ephemeral();
    let mut telnyx = TelnyxSettings::new(
        Secret::new(API_KEY),
        fake.base_url(),
        CONNECTION_ID,
        CALLER_ID,
    );
    telnyx.roster = roster;
    telnyx.escalation.ring_timeout = Duration::from_secs(5);
    telnyx.escalation.pin_min_risk = Some(101);
    c.telnyx = Some(telnyx);
    c.telnyx_public_key = Some(signing_key().verifying_key());
    c
}

pub fn approver(name: &str, phone: &str, pin: Option<&str>) -> ApproverConfig {
    ApproverConfig {
        name: name.into(),
        phone: phone.into(),
        pin_sha256: pin.map(PinHash::of_pin),
        modules: vec![],
        min_risk: 0,
        order: 0,
    }
}

fn error(status: u16, code: &str, title: &str) -> Response {
    error_after(status, code, title, "0")
}

fn error_after(status: u16, code: &str, title: &str, retry_after: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (
        status,
        Json(json!({"errors": [{"code": code, "title": title, "detail": title}]})),
    )
        .into_response();
    if status == StatusCode::TOO_MANY_REQUESTS {
        response
            .headers_mut()
            .insert("retry-after", retry_after.parse().expect("header"));
    }
    response
}

/// Bearer auth and queued failures, shared by every route.
fn gate(inner: &mut Inner, headers: &HeaderMap) -> Option<Response> {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bearer {API_KEY}")) {
        return Some(error(401, "10009", "Authentication failed"));
    }
    let retry_after = inner.retry_after.clone().unwrap_or_else(|| "0".into());
    inner
        .failures
        .pop_front()
        .map(|(status, code)| error_after(status, code, "Injected failure", &retry_after))
}

fn e164(s: &str) -> bool {
    s.starts_with('+') && s.len() >= 8 && s[1..].chars().all(|c| c.is_ascii_digit())
}

async fn dial(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let delay = inner.lock().unwrap_or_else(|e| e.into_inner()).dial_delay;
    tokio::time::sleep(delay).await;
    let mut inner = inner.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(refused) = gate(&mut inner, &headers) {
        return refused;
    }
    inner.dial_attempts += 1;
    for field in ["connection_id", "to", "from"] {
        if body[field].as_str().is_none_or(str::is_empty) {
            return error(422, "10004", "Missing required parameter");
        }
    }
    if body["connection_id"] != CONNECTION_ID {
        return error(422, "10015", "Invalid connection_id");
    }
    let to = body["to"].as_str().unwrap_or_default().to_string();
    if !e164(&to) || !e164(body["from"].as_str().unwrap_or_default()) {
        return error(422, "10016", "Phone number must be in +E.164 format");
    }
    let client_state = body["client_state"].as_str().unwrap_or_default();
    if STANDARD.decode(client_state).is_err() {
        return error(422, "10032", "client_state must be Base64");
    }
    let command_id = body["command_id"].as_str().unwrap_or_default().to_string();
    let ccid = match inner.dial_commands.get(&command_id) {
        // Telnyx ignores a dial with a command_id it has seen: no second call.
        Some(existing) if !command_id.is_empty() => existing.clone(),
        _ => {
            inner.next_id += 1;
            let ccid = format!("v3:fake-call-{}", inner.next_id);
            inner.dial_commands.insert(command_id, ccid.clone());
            inner.calls.insert(
                ccid.clone(),
                CallState {
                    to,
                    ..Default::default()
                },
            );
            inner.requests.push(Request {
                path: "/v2/calls".into(),
                kind: "dial".into(),
                call_control_id: Some(ccid.clone()),
                body: body.clone(),
            });
            ccid
        }
    };
    if let Some((status, code)) = inner.failures_after.pop_front() {
        return error(status, code, "Injected failure after the call was placed");
    }
    Json(json!({"data": {
        "record_type": "call",
        "call_control_id": ccid,
        "call_leg_id": uuid::Uuid::new_v4().to_string(),
        "call_session_id": uuid::Uuid::new_v4().to_string(),
        "is_alive": false,
        "client_state": client_state,
    }}))
    .into_response()
}

async fn action(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut inner = inner.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(refused) = gate(&mut inner, &headers) {
        return refused;
    }
    let refusal = match inner.calls.get(&id) {
        None => Some(("90015", "Invalid call_control_id")),
        Some(call) if call.ended => Some(("90018", "Call has already ended")),
        Some(call) if action != "hangup" && !call.answered => {
            Some(("90034", "Call not answered yet"))
        }
        Some(_) => None,
    };
    if let Some((code, title)) = refusal {
        inner.refused.push((action, id, code));
        return error(422, code, title);
    }
    if let Some(field) = missing_parameter(&action, &body) {
        inner.refused.push((action, id, "10004"));
        return error(422, "10004", &format!("Missing required parameter {field}"));
    }
    let Some(call) = inner.calls.get_mut(&id) else {
        return error(422, "90015", "Invalid call_control_id");
    };
    if let Some(cs) = body["client_state"].as_str() {
        if STANDARD.decode(cs).is_err() {
            return error(422, "10032", "client_state must be Base64");
        }
    }
    if let Some(cs) = body["client_state"].as_str() {
        call.client_state = Some(cs.to_string());
    }
    if action == "hangup" {
        call.ended = true;
    }
    inner.requests.push(Request {
        path: format!("/v2/calls/{id}/actions/{action}"),
        kind: action,
        call_control_id: Some(id),
        body,
    });
    Json(json!({"data": {"result": "ok"}})).into_response()
}

/// The parameter a call action lacks, if any. Telnyx requires `payload` and `voice` on speak
/// and gather_using_speak and `parameters` on gather_using_ai; this fake also requires the
/// `command_id` that Sentinel promises on every command (so retries are deduplicated).
fn missing_parameter(action: &str, body: &Value) -> Option<&'static str> {
    let present = |f: &str| match &body[f] {
        Value::String(s) => !s.is_empty(),
        Value::Null => false,
        _ => true,
    };
    let required: &[&'static str] = match action {
        "speak" | "gather_using_speak" => &["command_id", "payload", "voice"],
        "gather_using_ai" => &["command_id", "parameters"],
        _ => &["command_id"],
    };
    required.iter().copied().find(|f| !present(f))
}

async fn message(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut inner = inner.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(refused) = gate(&mut inner, &headers) {
        return refused;
    }
    let to = body["to"].as_str().unwrap_or_default().to_string();
    if !e164(&to) || body["text"].as_str().is_none_or(str::is_empty) {
        return error(422, "10016", "Invalid destination or empty text");
    }
    inner.next_id += 1;
    let id = format!("msg-{}", inner.next_id);
    inner.requests.push(Request {
        path: "/v2/messages".into(),
        kind: "sms".into(),
        call_control_id: None,
        body: body.clone(),
    });
    Json(json!({"data": {
        "record_type": "message", "id": id, "direction": "outbound", "type": "SMS",
        "text": body["text"], "from": {"phone_number": body["from"]},
        "to": [{"phone_number": to, "status": "queued"}], "errors": []
    }}))
    .into_response()
}

/// The approver's phone: posts the webhooks Telnyx would send for one call, signed with the
/// test key. Answering and hanging up also update the fake's view of the call.
#[derive(Clone)]
pub struct Phone {
    fake: FakeTelnyx,
    pub webhook: String,
    pub ccid: String,
    pub to: String,
    pub client_state: String,
    http: reqwest::Client,
    key: SigningKey,
    /// Every body posted, for replays.
    pub sent: Arc<Mutex<Vec<String>>>,
}

impl Phone {
    /// A signed `event_type` webhook for this call with extra payload fields, carrying the
    /// `client_state` the latest command set (as Telnyx does), else the dial's.
    pub fn event(&self, event_type: &str, extra: Value) -> String {
        let latest = self
            .fake
            .lock()
            .calls
            .get(&self.ccid)
            .and_then(|c| c.client_state.clone());
        let client_state = latest.unwrap_or_else(|| self.client_state.clone());
        self.event_with_state(event_type, extra, &client_state)
    }

    /// Like [`Phone::event`] with this `client_state`.
    pub fn event_with_state(&self, event_type: &str, extra: Value, client_state: &str) -> String {
        let mut payload = json!({
            "call_control_id": self.ccid,
            "call_leg_id": "428c31b6-7af4-11e9-b9a1-02420a0f7768",
            "call_session_id": "428c31b6-7af4-11e9-b9a1-02420a0f7769",
            "connection_id": CONNECTION_ID,
            "client_state": client_state,
            "from": CALLER_ID,
            "to": self.to,
        });
        if let (Some(p), Some(extra)) = (payload.as_object_mut(), extra.as_object()) {
            p.extend(extra.clone());
        }
        envelope(event_type, payload)
    }

    /// Posts a body signed now; returns the HTTP status.
    pub async fn post(&self, body: &str) -> u16 {
        self.sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(body.to_string());
        post_signed(&self.http, &self.webhook, &self.key, body, now()).await
    }

    pub async fn send(&self, event_type: &str, extra: Value) -> u16 {
        let body = self.event(event_type, extra);
        self.post(&body).await
    }

    pub async fn initiated(&self) {
        assert_eq!(
            self.send(
                "call.initiated",
                json!({"direction": "outgoing", "state": "bridging"})
            )
            .await,
            200
        );
    }

    pub async fn answered(&self) {
        self.set(|c| c.answered = true);
        assert_eq!(
            self.send("call.answered", json!({"state": "answered"}))
                .await,
            200
        );
    }

    pub async fn detection(&self, result: &str) {
        assert_eq!(
            self.send("call.machine.detection.ended", json!({"result": result}))
                .await,
            200
        );
    }

    /// Answers as a person: `call.answered` then machine detection `human`.
    pub async fn pick_up(&self) {
        self.initiated().await;
        self.answered().await;
        self.detection("human").await;
    }

    pub async fn press(&self, digits: &str) {
        for d in digits.chars() {
            assert_eq!(
                self.send("call.dtmf.received", json!({"digit": d.to_string()}))
                    .await,
                200
            );
        }
        assert_eq!(
            self.send(
                "call.gather.ended",
                json!({"digits": digits, "status": "valid"})
            )
            .await,
            200
        );
    }

    pub async fn say(&self, question: &str) {
        let extra = json!({
            "status": "valid",
            "result": {"question": question},
            "message_history": [{"role": "assistant", "content": "What would you like to know?"}, {"role": "user", "content": question}],
        });
        assert_eq!(self.send("call.ai_gather.ended", extra).await, 200);
    }

    /// A final transcript of the approver's words (`transcription_start`).
    pub async fn transcript(&self, text: &str) {
        let extra = json!({"transcription_data": {"transcript": text, "is_final": true, "confidence": 0.97, "transcription_track": "inbound"}});
        assert_eq!(self.send("call.transcription", extra).await, 200);
    }

    pub async fn speak_ended(&self) {
        assert_eq!(
            self.send("call.speak.ended", json!({"status": "completed"}))
                .await,
            200
        );
    }

    pub async fn hangup(&self, cause: &str) {
        self.set(|c| c.ended = true);
        let extra = json!({"hangup_cause": cause, "hangup_source": "callee", "sip_hangup_cause": "unspecified", "state": "hangup", "call_quality_stats": null});
        assert_eq!(self.send("call.hangup", extra).await, 200);
    }

    /// The far end is gone, but no webhook says so yet.
    pub fn drop_line(&self) {
        self.set(|c| c.ended = true);
    }

    /// The intent id this call's `client_state` names.
    pub fn client_state_intent(&self) -> String {
        client_state(&self.client_state)["i"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn set(&self, f: impl FnOnce(&mut CallState)) {
        if let Some(c) = self.fake.lock().calls.get_mut(&self.ccid) {
            f(c);
        }
    }

    /// The text of the latest `gather_using_speak` prompt (waits for the `n`-th).
    pub async fn prompt(&self, n: usize) -> String {
        let r = self
            .fake
            .wait_for("gather_using_speak", Some(&self.ccid), n)
            .await;
        r.body["payload"].as_str().unwrap_or_default().to_string()
    }
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

pub fn envelope(event_type: &str, payload: Value) -> String {
    json!({
        "data": {
            "record_type": "event",
            "event_type": event_type,
            "id": uuid::Uuid::new_v4().to_string(),
            "occurred_at": chrono::Utc::now().to_rfc3339(),
            "payload": payload,
        },
        "meta": {"attempt": 1, "delivered_to": "http://sentinel/telnyx/webhook"}
    })
    .to_string()
}

/// Posts `body` with Telnyx's headers, signed by `key` at `timestamp`; returns the status.
pub async fn post_signed(
    http: &reqwest::Client,
    url: &str,
    key: &SigningKey,
    body: &str,
    timestamp: i64,
) -> u16 {
    post_signed_text(http, url, key, body, timestamp).await.0
}

/// Like [`post_signed`], with the response text.
pub async fn post_signed_text(
    http: &reqwest::Client,
    url: &str,
    key: &SigningKey,
    body: &str,
    timestamp: i64,
) -> (u16, String) {
    let ts = timestamp.to_string();
    let signature = key.sign(&[ts.as_bytes(), b"|", body.as_bytes()].concat());
    post_with_text(
        http,
        url,
        Some(&ts),
        Some(&STANDARD.encode(signature.to_bytes())),
        body,
    )
    .await
}

/// Posts `body` with exactly these headers; returns the status.
pub async fn post_with(
    http: &reqwest::Client,
    url: &str,
    ts: Option<&str>,
    sig: Option<&str>,
    body: &str,
) -> u16 {
    post_with_text(http, url, ts, sig, body).await.0
}

async fn post_with_text(
    http: &reqwest::Client,
    url: &str,
    ts: Option<&str>,
    sig: Option<&str>,
    body: &str,
) -> (u16, String) {
    let mut request = http
        .post(url)
        .header("content-type", "application/json")
        .header("user-agent", "telnyx-webhooks")
        .body(body.to_string());
    if let Some(ts) = ts {
        request = request.header("telnyx-timestamp", ts);
    }
    if let Some(sig) = sig {
        request = request.header("telnyx-signature-ed25519", sig);
    }
    let response = request.send().await.expect("webhook post");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// An inbound SMS from `from` as Telnyx posts it.
pub fn sms_received(from: &str, text: &str) -> String {
    sms_received_to(from, CALLER_ID, text)
}

/// An inbound SMS from `from` to `to`.
pub fn sms_received_to(from: &str, to: &str, text: &str) -> String {
    envelope(
        "message.received",
        json!({
            "record_type": "message", "direction": "inbound", "type": "SMS",
            "id": uuid::Uuid::new_v4().to_string(),
            "from": {"phone_number": from, "carrier": "T-MOBILE USA, INC.", "line_type": "Wireless"},
            "to": [{"phone_number": to, "status": "webhook_delivered"}],
            "text": text, "errors": []
        }),
    )
}

/// A running Sentinel wired to a fresh fake Telnyx.
pub struct Setup {
    pub app: crate::helpers::TestApp,
    pub fake: FakeTelnyx,
    pub client: crate::helpers::Client,
    /// The gateway's clock, which the Telnyx channel reads too: approval deadlines, ring and
    /// detection watchdogs and escalation claims pass when the test moves it. Retries of
    /// Telnyx requests wait in real time.
    pub clock: Arc<sentinel::domain::ManualClock>,
}

impl Setup {
    pub async fn start(roster: Vec<ApproverConfig>, tweak: impl FnOnce(&mut Config)) -> Setup {
        let fake = FakeTelnyx::start().await;
        let (mut parts, clock) = crate::helpers::Parts::with_manual_clock();
        parts.config = config(&fake, roster);
        tweak(&mut parts.config);
        let app = crate::helpers::spawn_with(parts).await;
        let client = app.client().await;
        Setup {
            app,
            fake,
            client,
            clock,
        }
    }

    /// Alice alone on the roster.
    pub async fn alice() -> Setup {
        Setup::start(vec![approver("alice", ALICE, None)], |_| {}).await
    }

    /// Alice, then Bob.
    pub async fn alice_and_bob() -> Setup {
        Setup::start(
            vec![approver("alice", ALICE, None), approver("bob", BOB, None)],
            |_| {},
        )
        .await
    }

    /// Submits an intent that escalates (an invoice of `amount` to an unknown vendor: risk 90
    /// from 5000 up) and returns its id and a watch on it.
    pub async fn escalate(
        &mut self,
        amount: i64,
    ) -> (String, tonic::Streaming<sentinel::grpc::pb::DecisionEvent>) {
        let intent = self
            .client
            .submit_json(
                "billing-bot",
                "PAY_INVOICE",
                json!({"amount": amount, "vendor": "Acme Corp", "environment": "production"}),
            )
            .await
            .expect("submit");
        assert_eq!(
            crate::helpers::state(&intent),
            sentinel::grpc::pb::IntentState::PendingApproval
        );
        let watch = self.client.watch(&intent.intent_id).await.expect("watch");
        (intent.intent_id, watch)
    }

    pub async fn phone(&self, to: &str, n: usize) -> Phone {
        self.fake.phone(self.app.http_addr, to, n).await
    }

    /// Alice does not answer and Bob's line is busy: the ladder falls through to SMS, and both
    /// are texted.
    pub async fn no_answer_then_busy(&self) {
        let alice = self.phone(ALICE, 1).await;
        alice.initiated().await;
        alice.hangup("timeout").await;
        let bob = self.phone(BOB, 1).await;
        bob.initiated().await;
        bob.hangup("user_busy").await;
        self.fake.wait_for("sms", None, 2).await;
    }

    /// Moves the clock on by `step` at a time until the `n`-th `kind` request about `ccid`
    /// reached the fake: for a watchdog armed by work the test cannot see finish. Time moves
    /// only a little past the watchdog, and nothing waits in real time for it.
    pub async fn advance_until(&self, step: Duration, kind: &str, ccid: &str, n: usize) {
        let what = format!("{kind} on {ccid} as the clock moves");
        crate::helpers::eventually(Duration::from_secs(20), &what, || {
            self.clock.advance(step);
            std::future::ready((self.fake.count(kind, Some(ccid)) >= n).then_some(()))
        })
        .await;
    }

    pub async fn state_of(&mut self, id: &str) -> sentinel::grpc::pb::IntentState {
        crate::helpers::state(&self.client.get(id).await.expect("get"))
    }
}

/// Reads a watch to its end (the terminal event); returns the intent's progress lines from the
/// audit log (lines written before the watch began or after the decision are there too) and
/// the decided intent.
pub async fn finish(
    s: &Setup,
    watch: tonic::Streaming<sentinel::grpc::pb::DecisionEvent>,
) -> (Vec<String>, sentinel::grpc::pb::Intent) {
    let events = crate::helpers::collect(watch, Duration::from_secs(30)).await;
    let last = events.last().expect("events");
    assert!(
        last.terminal,
        "the watch ended on a terminal event: {events:#?}"
    );
    let intent = last.intent.clone().expect("intent");
    s.fake.assert_commands_identified();
    (s.progress(&intent.intent_id).await, intent)
}

impl Setup {
    /// The intent's progress lines, oldest first, as the audit log has them.
    pub async fn progress(&self, id: &str) -> Vec<String> {
        let records = self
            .app
            .store
            .audit_range(0, i64::MAX, 10_000)
            .await
            .expect("audit");
        records
            .into_iter()
            .filter(|r| {
                r.event == "progress" && r.intent_id.as_ref().is_some_and(|i| i.as_str() == id)
            })
            .map(|r| r.detail)
            .collect()
    }

    /// Waits until the intent's progress has a line equal to `line` (or panics after 10 s).
    pub async fn wait_progress(&self, id: &str, line: &str) {
        let seen = within(WAIT, || async {
            self.progress(id)
                .await
                .iter()
                .any(|l| l.starts_with(line))
                .then_some(())
        })
        .await;
        if seen.is_none() {
            panic!(
                "no progress line {line:?} in {:#?}",
                self.progress(id).await
            );
        }
    }
}

impl Setup {
    /// Posts a signed inbound SMS from `from`.
    pub async fn text_in(&self, from: &str, text: &str) {
        self.text_in_to(from, CALLER_ID, text).await
    }

    /// Posts a signed inbound SMS from `from` to `to`.
    pub async fn text_in_to(&self, from: &str, to: &str, text: &str) {
        let url = format!("http://{}/telnyx/webhook", self.app.http_addr);
        let body = sms_received_to(from, to, text);
        let status = post_signed(&reqwest::Client::new(), &url, &signing_key(), &body, now()).await;
        assert_eq!(status, 200);
    }

    /// Waits until the audit log holds `n` `rejected` records on `channel`: the barrier that
    /// shows ignored input was processed (and refused) before the test looks at the intent.
    pub async fn wait_rejected(&self, channel: &str, n: usize) {
        let count = || async {
            self.app
                .store
                .audit_range(0, i64::MAX, 10_000)
                .await
                .expect("audit")
                .iter()
                .filter(|r| r.event == "rejected" && r.channel == channel)
                .count()
        };
        if within(WAIT, || async { (count().await >= n).then_some(()) })
            .await
            .is_none()
        {
            panic!(
                "expected {n} rejected {channel} records, got {}",
                count().await
            );
        }
    }
}

/// Asserts that, for each of `expected`, some progress line starts with it.
pub fn assert_progress(details: &[String], expected: &[&str]) {
    for line in expected {
        assert!(
            details.iter().any(|d| d.starts_with(line)),
            "no progress line {line:?} in {details:#?}"
        );
    }
}

/// Reads the watch to its end and asserts a human decision through `channel`; returns the
/// progress lines.
pub async fn finish_decided(
    s: &Setup,
    watch: tonic::Streaming<sentinel::grpc::pb::DecisionEvent>,
    state: sentinel::grpc::pb::IntentState,
    approver: &str,
    channel: &str,
) -> Vec<String> {
    let (details, intent) = finish(s, watch).await;
    assert_decided(
        &intent,
        state,
        sentinel::grpc::pb::DeciderKind::Human,
        approver,
        channel,
    );
    details
}

/// Asserts the intent's final state and who decided it through what.
pub fn assert_decided(
    intent: &sentinel::grpc::pb::Intent,
    state: sentinel::grpc::pb::IntentState,
    kind: sentinel::grpc::pb::DeciderKind,
    approver: &str,
    channel: &str,
) {
    assert_eq!(intent.state, state as i32, "{intent:#?}");
    let by = intent.decided_by.clone().expect("decided_by");
    assert_eq!(
        (by.kind, by.approver.as_str(), by.channel.as_str()),
        (kind as i32, approver, channel)
    );
}

/// Decodes a `client_state` value as Sentinel writes it.
pub fn client_state(b64: &str) -> Value {
    serde_json::from_slice(&STANDARD.decode(b64).expect("base64")).expect("json")
}

/// The one-time code in an SMS Sentinel sent (the word after `APPROVE`).
pub fn code_in(text: &str) -> String {
    text.split_whitespace()
        .skip_while(|w| *w != "APPROVE")
        .nth(1)
        .expect("a code after APPROVE")
        .to_string()
}
