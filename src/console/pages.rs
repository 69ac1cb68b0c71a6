//! The console's HTML, rendered on the server with maud (every interpolation is escaped).
//! No inline script or style: the Content-Security-Policy set in [`security_headers`] allows
//! only the embedded `console.css` and `console.js`. Risk is drawn with a `<meter>` (a
//! coloured bar the browser styles, no inline width) beside its number and level.

use axum::http::{header, HeaderValue};
use axum::response::Response;
use maud::{html, Markup, DOCTYPE};

use super::session::Session;
use crate::domain::{Intent, IntentState, Millis};
use crate::gateway::{Glance, HistoryRecord};

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

/// Adds the console's security headers to every console response.
pub async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// What every page's frame knows about the viewer.
pub struct Viewer<'a> {
    pub session: Option<&'a Session>,
    /// No API keys are configured: every page says so.
    pub open: bool,
}

impl Viewer<'_> {
    fn may_decide(&self) -> bool {
        self.session.is_some_and(|s| s.principal.is_operator())
    }

    fn csrf(&self) -> &str {
        self.session.map(|s| s.csrf.as_str()).unwrap_or_default()
    }
}

/// The frame of every page: header, open-mode banner, sign-out, then `body`.
pub fn layout(viewer: &Viewer, title: &str, page: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Sentinel" }
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body data-page=(page) {
                header.top {
                    a.brand href="/console" { "Sentinel console" }
                    @if let Some(s) = viewer.session {
                        span.who { "Signed in as " strong { (s.principal) }
                            @if !s.principal.is_operator() { " (read-only)" } }
                        @if !viewer.open {
                            form.signout method="post" action="/console/signout" {
                                input type="hidden" name="csrf" value=(viewer.csrf());
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                @if viewer.open {
                    p.banner.open role="alert" {
                        "The gateway is OPEN: no API keys are configured, so anyone who can reach it may submit and decide. Set SENTINEL_API_KEYS before exposing it."
                    }
                }
                main { (body) }
            }
        }
    }
}

pub fn sign_in(viewer: &Viewer, next: &str, error: Option<&str>) -> Markup {
    layout(
        viewer,
        "Sign in",
        "signin",
        html! {
            h1 { "Sign in" }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form.signin method="post" action="/console/signin" {
                label for="api_key" { "API key" }
                input #api_key type="password" name="api_key" autocomplete="off" required;
                input type="hidden" name="next" value=(next);
                button type="submit" { "Sign in" }
            }
            p.hint { "Operator keys see and decide every intent; an agent key sees its own intents, read-only. The key is checked once and never kept in the page." }
        },
    )
}

/// The header numbers, also served alone for live refresh.
pub fn glance(g: &Glance) -> Markup {
    let plus = if g.capped { "+" } else { "" };
    html! {
        div #glance.glance {
            span.stat { strong #pending-count { (g.pending) (plus) } " pending" }
            span.stat { "Last hour: "
                @if g.decided_last_hour.is_empty() { "no decisions" }
                @for (i, (state, who, n)) in g.decided_last_hour.iter().enumerate() {
                    @if i > 0 { ", " }
                    span class=(format!("outcome {}", state_class(*state))) { (n) " " (state.as_str().to_lowercase()) " by " (who) }
                }
            }
            span.stat { "Median time to a human decision: "
                @match g.median_human_ms { Some(ms) => (duration(ms)), None => "none yet" } }
        }
    }
}

pub fn inbox(viewer: &Viewer, g: &Glance, pending: &[Intent], more: bool, now: Millis) -> Markup {
    layout(
        viewer,
        "Inbox",
        "inbox",
        html! {
            (glance(g))
            section.inbox {
                h2 { "Pending approval" }
                p #inbox-empty.empty hidden[!pending.is_empty()] { "Nothing waits for a decision." }
                @if more {
                    p.hint { "Showing the " (pending.len()) " newest; older ones: sentinel list --state PENDING_APPROVAL, or open one by id." }
                }
                div #cards {
                    @for intent in pending { (card(viewer, intent, now)) }
                }
            }
            section.feed {
                h2 { "Live feed" }
                div.filters {
                    label { "State " select #f-state {
                        option value="" { "all" }
                        @for s in IntentState::ALL { option value=(s.as_str()) { (s.as_str()) } }
                    } }
                    label { "Agent " input #f-agent type="text"; }
                    label { "Module " input #f-module type="text"; }
                    label { "Intent id " input #f-id type="search"; }
                }
                ol #feed.feed reversed {}
            }
        },
    )
}

/// One pending intent as a card: everything an approver needs, and the decision form.
pub fn card(viewer: &Viewer, intent: &Intent, now: Millis) -> Markup {
    let id = intent.id.as_str();
    html! {
        article.card id=(format!("card-{id}")) data-intent=(id) {
            header {
                a.intent-id href=(format!("/console/intents/{id}")) { (id) }
                span class=(format!("state {}", state_class(intent.state))) { (intent.state.as_str()) }
            }
            dl.facts {
                dt { "Agent" } dd.agent { (intent.agent_id) }
                dt { "Action" } dd.action { (intent.action) }
                dt { "Module" } dd.module { (intent.module) }
                dt { "Risk" } dd { (risk(intent)) }
                dt { "Policy" } dd { (intent.policy_version) }
                @if let Some(deadline) = intent.expires_at {
                    dt { "Deadline" } dd { time.countdown data-deadline=(deadline) data-now=(now) { (duration(deadline - now)) " left" } }
                }
            }
            @if !intent.analysis.is_empty() { p.analysis { (intent.analysis) } }
            (reasons(intent))
            @if !intent.labels.is_empty() {
                ul.labels { @for (k, v) in &intent.labels { li { (k) "=" (v) } } }
            }
            @if !intent.payload.is_null() {
                details.payload open {
                    summary { "Payload: the agent's words, unverified" }
                    pre.agent-words { (serde_json::to_string_pretty(&intent.payload).unwrap_or_default()) }
                }
            }
            @if !intent.reasoning.is_empty() {
                blockquote.agent-words { span.said { "The agent says: " } (intent.reasoning) }
            }
            @if intent.state == IntentState::PendingApproval && viewer.may_decide() {
                (decide_form(viewer, intent, false))
            }
        }
    }
}

fn decide_form(viewer: &Viewer, intent: &Intent, confirm: bool) -> Markup {
    html! {
        form.decide method="post" action=(format!("/console/intents/{}/decide", intent.id)) {
            input type="hidden" name="csrf" value=(viewer.csrf());
            @if confirm { input type="hidden" name="confirm" value="1"; }
            label { "Reason" input name="reason" type="text" maxlength="500"; }
            div.buttons {
                button.approve type="submit" name="decision" value="approve" { "Approve" }
                button.decline type="submit" name="decision" value="decline" { "Decline" }
            }
        }
    }
}

/// A high-risk approval asks again before it is sent.
pub fn confirm(viewer: &Viewer, intent: &Intent, reason: &str, now: Millis) -> Markup {
    let id = intent.id.as_str();
    layout(
        viewer,
        "Confirm approval",
        "confirm",
        html! {
            h1 { "Confirm a high-risk approval" }
            p.warning role="alert" { "Risk " (intent.risk_score.get()) "/100 is at or above the PIN tier. Approve intent " (id) " only if you are sure." }
            (card(&Viewer { session: None, open: viewer.open }, intent, now))
            form.decide method="post" action=(format!("/console/intents/{id}/decide")) {
                input type="hidden" name="csrf" value=(viewer.csrf());
                input type="hidden" name="confirm" value="1";
                input type="hidden" name="decision" value="approve";
                label { "Reason" input name="reason" type="text" maxlength="500" value=(reason); }
                div.buttons {
                    button.approve #confirm-approve type="submit" { "Confirm approval" }
                    a.cancel href=(format!("/console/intents/{id}")) { "Cancel" }
                }
            }
        },
    )
}

/// One intent's story: its card (with the buttons while it is pending) and its timeline.
pub fn intent_page(
    viewer: &Viewer,
    intent: &Intent,
    history: &[HistoryRecord],
    now: Millis,
) -> Markup {
    layout(
        viewer,
        &format!("Intent {}", intent.id),
        "intent",
        html! {
            div #intent-page data-intent=(intent.id.as_str()) {
                (card(viewer, intent, now))
                @if let Some(by) = &intent.decided_by {
                    p.decided { (intent.state.as_str()) " by "
                        strong.decider { @if by.approver.is_empty() { (by.kind.as_str()) } @else { (by.approver) } }
                        " via " span.channel { (by.channel) }
                        @if !intent.decision_reason.is_empty() { ": " (intent.decision_reason) } }
                }
                section.timeline {
                    h2 { "Timeline" }
                    ol #timeline {
                        li.entry.assessed {
                            time { (clock(intent.created_at)) }
                            " " span.kind { "assessed" } " risk " (intent.risk_score.get()) "/100"
                            @if let Some(s) = &intent.scorer { ", scorer " (s.model) @if s.cached { " (cached)" } }
                            @for r in &intent.reasons {
                                " · " span.source { (format!("{:?}", r.source).to_lowercase()) }
                                @if !r.rule.is_empty() { " rule " code { (r.rule) } }
                                " " code { (r.code) }
                            }
                        }
                        @for r in history {
                            li class=(format!("entry {}", r.event)) {
                                time { (clock(r.at)) }
                                " " span.kind { (r.event) }
                                @if let Some(s) = r.state { " " span class=(format!("state {}", state_class(s))) { (s.as_str()) } }
                                " " span.actor { (r.actor) " via " (r.channel) }
                                @if !r.detail.is_empty() { " " span.detail { (r.detail) } }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// A page with one message: a refusal, an error, the answer to a lost race.
pub fn message(viewer: &Viewer, title: &str, text: &str, back: Option<&str>) -> Markup {
    layout(
        viewer,
        title,
        "message",
        html! {
            h1 { (title) }
            p.message role="alert" { (text) }
            p { a href=(back.unwrap_or("/console")) { "Back" } }
        },
    )
}

fn risk(intent: &Intent) -> Markup {
    let score = intent.risk_score.get();
    let level = intent.risk_score.level().as_str();
    html! {
        span class=(format!("risk {}", level.to_lowercase())) {
            meter min="0" max="100" low="31" high="70" optimum="0" value=(score) { (score) }
            " " strong.score { (score) } "/100 " span.level { (level) }
        }
    }
}

fn reasons(intent: &Intent) -> Markup {
    html! {
        @if !intent.reasons.is_empty() {
            ul.reasons {
                @for r in &intent.reasons {
                    li { code { (r.code) } " "
                        span.source { (format!("{:?}", r.source).to_lowercase()) }
                        @if !r.rule.is_empty() { " rule " code { (r.rule) } }
                        ": " (r.message) }
                }
            }
        }
    }
}

pub fn state_class(s: IntentState) -> &'static str {
    match s {
        IntentState::Analyzing => "analyzing",
        IntentState::PendingApproval => "pending",
        IntentState::Approved => "approved",
        IntentState::Declined => "declined",
        IntentState::Expired => "expired",
        IntentState::Cancelled => "cancelled",
    }
}

/// `1h 02m`, `4m 05s`, `12s`.
fn duration(ms: Millis) -> String {
    let s = (ms.max(0) + 999) / 1000;
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, min, sec) => format!("{min}m {sec:02}s"),
        (h, min, _) => format!("{h}h {min:02}m"),
    }
}

/// UTC wall-clock time of a record, to the millisecond.
fn clock(at: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(at)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string())
        .unwrap_or_default()
}
