//! The console's pages and forms: sign-in and sign-out, the inbox, one intent's story, the
//! live-insertion fragments and the decision. Every read and decision goes through the
//! gateway with the session's principal, so the console can do nothing gRPC could not.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use maud::Markup;
use serde::Deserialize;

use super::csrf::{same_origin, token_matches};
use super::pages::{self, Viewer};
use super::session::{clear_cookie, set_cookie, Session};
use super::ConsoleState;
use crate::domain::{Channel, IntentState};
use crate::gateway::{GatewayError, IntentFilter, Resolution};

/// The most pending intents the inbox page carries (newest first): about 2 KiB each, so the
/// page stays under 100 KB; the header counts them all, and later ones arrive live.
const INBOX_LIMIT: u32 = 40;

/// The sign-in form: the API key, and the page asked for before it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct SignInForm {
    api_key: String,
    next: String,
}

/// `?next=`: the console page to return to after signing in.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct NextQuery {
    next: String,
}

/// The decision form of an intent page, and of its high-risk confirmation (`confirm=1`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct DecideForm {
    csrf: String,
    decision: String,
    reason: String,
    confirm: String,
}

/// A form that carries nothing but its CSRF token (sign-out).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct CsrfForm {
    csrf: String,
}

fn html(status: StatusCode, markup: Markup) -> Response {
    (status, Html(markup.into_string())).into_response()
}

/// The session the request carries; in open mode one is made on the spot (its cookie is
/// returned to set), so forms still carry a CSRF token.
fn session_of(state: &ConsoleState, headers: &HeaderMap) -> Option<(Session, Option<HeaderValue>)> {
    match state.sessions.find(headers) {
        Some(s) => Some((s, None)),
        None if state.keys.is_open() => {
            let (token, s) = state.sessions.create(crate::auth::Principal::Open);
            Some((s, Some(set_cookie(&token, state.secure))))
        }
        None => None,
    }
}

/// A refused form (foreign origin, missing or wrong CSRF token): nothing changed.
fn forbidden(viewer: &Viewer, e: super::csrf::CsrfError, back: Option<&str>) -> Response {
    html(
        StatusCode::FORBIDDEN,
        pages::message(viewer, "Refused", &e.to_string(), back),
    )
}

fn with_cookie(mut response: Response, cookie: Option<HeaderValue>) -> Response {
    if let Some(c) = cookie {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

/// Where sign-in sends a missing session, remembering the page asked for.
fn to_sign_in(next: &str) -> Response {
    Redirect::to(&format!("/console?next={}", encode(next))).into_response()
}

/// Only console paths are followed after sign-in (no open redirect).
fn safe_next(next: &str) -> &str {
    let ok = next.starts_with("/console")
        && !next.contains("//")
        && !next.contains('\\')
        && next.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        next
    } else {
        "/console"
    }
}

fn encode(path: &str) -> String {
    path.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// A gateway refusal as a page with the matching HTTP status.
fn refusal(viewer: &Viewer, e: GatewayError, back: Option<&str>) -> Response {
    let (status, title) = match &e {
        GatewayError::Invalid(_) => (StatusCode::BAD_REQUEST, "Bad request"),
        GatewayError::NotFound(_) => (StatusCode::NOT_FOUND, "Not found"),
        GatewayError::PermissionDenied(_) => (StatusCode::FORBIDDEN, "Not allowed"),
        GatewayError::AlreadyDecided { .. } => (StatusCode::CONFLICT, "Already decided"),
        GatewayError::KeyConflict { .. } | GatewayError::FailedPrecondition(_) => {
            (StatusCode::CONFLICT, "Cannot decide now")
        }
        GatewayError::ResourceExhausted { .. } => (StatusCode::TOO_MANY_REQUESTS, "Too many"),
        GatewayError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "Unavailable"),
        GatewayError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "Error"),
    };
    let text = match &e {
        GatewayError::Internal(m) => {
            tracing::error!(error = %m, "console: internal error");
            "internal error".to_string()
        }
        GatewayError::Unavailable(source) => {
            tracing::warn!(error = %source, "console: store unavailable");
            "the state store is unavailable; try again".to_string()
        }
        other => other.to_string(),
    };
    html(status, pages::message(viewer, title, &text, back))
}

pub(super) async fn sign_in(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let viewer = state.viewer(None);
    if let Err(e) = same_origin(&headers) {
        return forbidden(&viewer, e, None);
    }
    match state.keys.authenticate(Some(&form.api_key)) {
        Ok(principal) => {
            tracing::info!(principal = %principal, "console sign-in");
            let (token, _) = state.sessions.create(principal);
            with_cookie(
                Redirect::to(safe_next(&form.next)).into_response(),
                Some(set_cookie(&token, state.secure)),
            )
        }
        Err(e) => {
            tracing::info!(error = %e, "console sign-in refused");
            html(
                StatusCode::UNAUTHORIZED,
                pages::sign_in(
                    &viewer,
                    safe_next(&form.next),
                    Some("api_key: that API key is not valid"),
                ),
            )
        }
    }
}

pub(super) async fn sign_out(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let checked = same_origin(&headers).and_then(|()| {
        let csrf = state
            .sessions
            .find(&headers)
            .map(|s| s.csrf)
            .unwrap_or_default();
        token_matches(Some(&form.csrf), &csrf)
    });
    if let Err(e) = checked {
        return forbidden(&state.viewer(None), e, None);
    }
    state.sessions.remove(&headers);
    with_cookie(
        Redirect::to("/console").into_response(),
        Some(clear_cookie(state.secure)),
    )
}

pub(super) async fn inbox(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> Response {
    let Some((session, cookie)) = session_of(&state, &headers) else {
        let viewer = state.viewer(None);
        return html(
            StatusCode::OK,
            pages::sign_in(&viewer, safe_next(&q.next), None),
        );
    };
    let viewer = state.viewer(Some(&session));
    let caller = &session.principal;
    let pending = IntentFilter {
        states: vec![IntentState::PendingApproval],
        ..IntentFilter::default()
    };
    let listed = state.gateway.list(caller, pending, INBOX_LIMIT, "").await;
    let glance = state.gateway.glance(caller).await;
    let response = match (listed, glance) {
        (Ok((intents, next)), Ok(glance)) => {
            let now = state.gateway.clock().now();
            let more = !next.is_empty();
            html(
                StatusCode::OK,
                pages::inbox(&viewer, &glance, &intents, more, now),
            )
        }
        (Err(e), _) | (_, Err(e)) => refusal(&viewer, e, None),
    };
    with_cookie(response, cookie)
}

pub(super) async fn intent_page(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let here = format!("/console/intents/{id}");
    let Some((session, cookie)) = session_of(&state, &headers) else {
        return to_sign_in(&here);
    };
    let viewer = state.viewer(Some(&session));
    let caller = &session.principal;
    let response = match state.gateway.get(caller, &id).await {
        Ok(intent) => match state.gateway.history(caller, &id).await {
            Ok(history) => {
                let now = state.gateway.clock().now();
                html(
                    StatusCode::OK,
                    pages::intent_page(&viewer, &intent, &history, now),
                )
            }
            Err(e) => refusal(&viewer, e, None),
        },
        Err(GatewayError::Invalid(_) | GatewayError::NotFound(_)) => html(
            StatusCode::NOT_FOUND,
            pages::message(
                &viewer,
                "Not found",
                &format!("There is no intent {id} that this key may see."),
                None,
            ),
        ),
        Err(e) => refusal(&viewer, e, None),
    };
    with_cookie(response, cookie)
}

/// The header numbers alone, for the live header.
pub(super) async fn glance(State(state): State<ConsoleState>, headers: HeaderMap) -> Response {
    let Some(session) = state.sessions.find(&headers) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let viewer = state.viewer(Some(&session));
    match state.gateway.glance(&session.principal).await {
        Ok(g) => html(StatusCode::OK, pages::glance(&g)),
        Err(e) => refusal(&viewer, e, None),
    }
}

/// The inbox card of one intent, for the live inbox to insert.
pub(super) async fn card(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let Some(session) = state.sessions.find(&headers) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let viewer = state.viewer(Some(&session));
    match state.gateway.get(&session.principal, &id).await {
        Ok(intent) => {
            let now = state.gateway.clock().now();
            html(StatusCode::OK, pages::card(&viewer, &intent, now))
        }
        Err(e) => refusal(&viewer, e, None),
    }
}

/// Approve or decline: the same gateway call as `ResolveIntent`, as the signed-in operator,
/// through channel `console`. Nothing is decided without a session, its CSRF token, a
/// same-site origin and an operator principal.
pub(super) async fn decide(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<DecideForm>,
) -> Response {
    let back = format!("/console/intents/{id}");
    let anonymous = state.viewer(None);
    if let Err(e) = same_origin(&headers) {
        return forbidden(&anonymous, e, Some(&back));
    }
    let Some(session) = state.sessions.find(&headers) else {
        return html(
            StatusCode::UNAUTHORIZED,
            pages::message(
                &anonymous,
                "Signed out",
                "Your session is missing or expired: sign in again. Nothing was decided.",
                Some(&format!("/console?next={}", encode(&back))),
            ),
        );
    };
    let viewer = state.viewer(Some(&session));
    if let Err(e) = token_matches(Some(&form.csrf), &session.csrf) {
        return forbidden(&viewer, e, Some(&back));
    }
    let approve = match form.decision.as_str() {
        "approve" => true,
        "decline" => false,
        other => {
            return refusal(
                &viewer,
                GatewayError::Invalid(format!(
                    "decision: {other:?} is neither \"approve\" nor \"decline\""
                )),
                Some(&back),
            )
        }
    };
    let caller = &session.principal;
    if !caller.is_operator() {
        return refusal(
            &viewer,
            GatewayError::PermissionDenied(format!(
                "this key is {caller}'s: it may read its intents but not decide them"
            )),
            Some(&back),
        );
    }
    if approve && form.confirm != "1" {
        match state.gateway.get(caller, &id).await {
            Ok(intent)
                if intent.state == IntentState::PendingApproval
                    && intent.risk_score.get() >= state.confirm_tier =>
            {
                let now = state.gateway.clock().now();
                return html(
                    StatusCode::OK,
                    pages::confirm(&viewer, &intent, &form.reason, now),
                );
            }
            Ok(_) => {}
            Err(e) => return refusal(&viewer, e, Some(&back)),
        }
    }
    let resolution = Resolution {
        approve,
        approver: String::new(),
        reason: form.reason,
        expected_version: None,
        channel: Channel::Console,
    };
    match state.gateway.resolve(caller, &id, resolution).await {
        Ok(_) => Redirect::to(&back).into_response(),
        Err(e) => refusal(&viewer, e, Some(&back)),
    }
}
