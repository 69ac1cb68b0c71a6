//! The operator console over plain HTTP: sign-in, sessions, CSRF and Origin checks, what an
//! agent key may not do, and the answers to bad input. The browser tests
//! (`console_browser.rs`) drive the same pages through Chromium.

use reqwest::header::{COOKIE, LOCATION, ORIGIN, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;
use sentinel::grpc::pb::IntentState;

/// A cookie-carrying HTTP client of the console that never follows redirects.
struct Console {
    http: reqwest::Client,
    base: String,
    cookie: Option<String>,
}

impl Console {
    fn new(app: &TestApp) -> Console {
        Console {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: format!("http://{}", app.http_addr),
            cookie: None,
        }
    }

    fn keep_cookie(&mut self, r: &reqwest::Response) {
        if let Some(c) = r.headers().get(SET_COOKIE).and_then(|v| v.to_str().ok()) {
            self.cookie = c.split(';').next().map(str::to_string);
        }
    }

    async fn get(&mut self, path: &str) -> (StatusCode, String) {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.header(COOKIE, c);
        }
        let r = req.send().await.unwrap();
        self.keep_cookie(&r);
        (r.status(), r.text().await.unwrap())
    }

    async fn post(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
        origin: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_body(form));
        if let Some(c) = &self.cookie {
            req = req.header(COOKIE, c);
        }
        if let Some(o) = origin {
            req = req.header(ORIGIN, o);
        }
        let r = req.send().await.unwrap();
        self.keep_cookie(&r);
        r
    }

    /// A decision form (`decision`, `csrf` and `more` fields) sent from the console's own
    /// origin.
    async fn decide(
        &mut self,
        id: &str,
        decision: &str,
        csrf: &str,
        more: &[(&str, &str)],
    ) -> reqwest::Response {
        let origin = self.origin();
        let mut form = vec![("decision", decision), ("csrf", csrf)];
        form.extend_from_slice(more);
        self.post(
            &format!("/console/intents/{id}/decide"),
            &form,
            Some(&origin),
        )
        .await
    }

    fn origin(&self) -> String {
        self.base.clone()
    }

    async fn sign_in(&mut self, key: &str) -> StatusCode {
        let origin = self.origin();
        self.post(
            "/console/signin",
            &[("api_key", key), ("next", "/console")],
            Some(&origin),
        )
        .await
        .status()
    }

    /// The CSRF token of the page at `path`.
    async fn csrf(&mut self, path: &str) -> String {
        let (_, page) = self.get(path).await;
        let at = page
            .find("name=\"csrf\" value=\"")
            .expect("a form with a csrf token")
            + 19;
        page[at..at + 64].to_string()
    }
}

/// `application/x-www-form-urlencoded`, as a browser sends a form.
fn form_body(fields: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_string(),
                other => format!("%{other:02X}"),
            })
            .collect::<String>()
    };
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The intent's state as the gateway has it.
async fn state_of(client: &mut Client, id: &str) -> IntentState {
    state(&client.get(id).await.unwrap())
}

async fn pending(app: &TestApp) -> String {
    let mut alpha = app.client_with_key(ALPHA).await;
    alpha
        .submit_json(
            "alpha",
            "PAY_INVOICE",
            json!({"amount": 7500, "vendor": "Acme Corp"}),
        )
        .await
        .unwrap()
        .intent_id
}

#[tokio::test]
async fn nothing_a_browser_sends_decides_without_an_operator_session_and_its_token() {
    let app = secured().await;
    let id = pending(&app).await;
    let decide = format!("/console/intents/{id}/decide");
    let mut olivia = Console::new(&app);
    let origin = olivia.origin();

    // No session: back to sign-in, nothing decided.
    let r = olivia
        .post(&decide, &[("decision", "decline")], Some(&origin))
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let (status, page) = olivia.get(&format!("/console/intents/{id}")).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");

    // A wrong key is refused, naming the field; the right one starts a strict session.
    assert_eq!(olivia.sign_in("wrong").await, StatusCode::UNAUTHORIZED);
    let r = olivia
        .post("/console/signin", &[("api_key", OPS)], Some(&origin))
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let set = r.headers()[SET_COOKIE].to_str().unwrap().to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(!set.contains(OPS));
    let (status, inbox) = olivia.get("/console").await;
    assert_eq!(status, StatusCode::OK);
    assert!(inbox.contains(&id) && inbox.contains("Approve") && !inbox.contains(OPS));
    let token = olivia.csrf("/console").await;

    // Without the token, with a wrong one, or from a foreign origin: refused.
    for (form, from) in [
        (vec![("decision", "decline")], origin.as_str()),
        (
            vec![("decision", "decline"), ("csrf", "0".repeat(64).as_str())],
            origin.as_str(),
        ),
        (
            vec![("decision", "decline"), ("csrf", token.as_str())],
            "http://evil.example",
        ),
    ] {
        let r = olivia.post(&decide, &form, Some(from)).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }
    let mut ops = app.client_with_key(OPS).await;
    assert_eq!(state_of(&mut ops, &id).await, IntentState::PendingApproval);

    // An agent key reads its intents but has no buttons and cannot decide.
    let mut alpha = Console::new(&app);
    assert_eq!(alpha.sign_in(ALPHA).await, StatusCode::SEE_OTHER);
    let (_, agent_inbox) = alpha.get("/console").await;
    assert!(agent_inbox.contains(&id) && !agent_inbox.contains(">Approve<"));
    let agent_token = alpha.csrf("/console").await;
    let r = alpha
        .decide(&id, "approve", &agent_token, &[("confirm", "1")])
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(state_of(&mut ops, &id).await, IntentState::PendingApproval);

    // The operator declines; GetIntent names her and the console channel.
    let r = olivia
        .decide(&id, "decline", &token, &[("reason", "unknown vendor")])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        r.headers()[LOCATION],
        format!("/console/intents/{id}").as_str()
    );
    let decided = ops.get(&id).await.unwrap();
    assert_eq!(state(&decided), IntentState::Declined);
    assert_eq!(decided_by(&decided), ("olivia", "console"));

    // A replay gets the "already decided" answer; the page has no buttons any more.
    let r = olivia
        .decide(&id, "approve", &token, &[("confirm", "1")])
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("already DECLINED (by olivia via console)"),
        "{text}"
    );
    let (_, page) = olivia.get(&format!("/console/intents/{id}")).await;
    assert!(!page.contains(">Approve<") && page.contains("unknown vendor"));

    // Unknown ids are a 404 page; signing out ends the session.
    let (status, _) = olivia
        .get("/console/intents/01a23835-7019-736d-be4c-3d1731400000")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let r = olivia
        .post("/console/signout", &[("csrf", &token)], Some(&origin))
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, page) = olivia.get("/console").await;
    assert!(page.contains("API key"), "{page}");
    app.stop().await;
}

#[tokio::test]
async fn high_risk_approvals_ask_for_a_confirmation_first() {
    let app = secured().await;
    let id = pending(&app).await; // risk 90: at the default PIN tier
    let mut olivia = Console::new(&app);
    olivia.sign_in(OPS).await;
    let token = olivia.csrf("/console").await;
    let r = olivia.decide(&id, "approve", &token, &[]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("Confirm approval"));
    let mut ops = app.client_with_key(OPS).await;
    assert_eq!(state_of(&mut ops, &id).await, IntentState::PendingApproval);
    let r = olivia
        .decide(&id, "approve", &token, &[("confirm", "1")])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(state_of(&mut ops, &id).await, IntentState::Approved);
    app.stop().await;
}

#[tokio::test]
async fn open_mode_says_so_and_the_page_is_light_and_locked_down() {
    let app = spawn_app().await;
    let mut console = Console::new(&app);
    let r = console
        .http
        .get(format!("{}/console", console.base))
        .send()
        .await
        .unwrap();
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("default-src 'self'") && csp.contains("script-src 'self'"));
    let (status, page) = console.get("/console").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("The gateway is OPEN"));
    assert!(!page.contains("<script>") && !page.contains("style=\""));
    let (_, css) = console.get("/console/assets/console.css").await;
    let (_, js) = console.get("/console/assets/console.js").await;
    let weight = page.len() + css.len() + js.len();
    assert!(weight < 100 * 1024, "page weight {weight} bytes");
    app.stop().await;
}
