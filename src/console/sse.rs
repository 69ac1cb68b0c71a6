//! `GET /console/events`: Server-Sent Events bridging the gateway's all-intents watch, with
//! the signed-in principal's authorisation (an agent sees its own intents only) and progress
//! lines included. Each event is one JSON line the page renders as text.
//!
//! Bounded per stream: events come from the gateway's broadcast watch, whose buffer is
//! shared; a console that falls behind gets a `lagged` event and the stream ends (the page
//! reloads to resynchronise) instead of queuing without limit. Every stream ends at shutdown,
//! so the listener's graceful shutdown is not held open by a browser.

use std::convert::Infallible;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Serialize;

use super::ConsoleState;
use crate::domain::{DecisionEvent, EventKind, IntentState};
use crate::gateway::IntentFilter;

/// What the page is told about one event.
#[derive(Debug, Serialize)]
struct FeedItem<'a> {
    kind: EventKind,
    intent_id: &'a str,
    state: &'static str,
    agent: &'a str,
    module: &'a str,
    action: &'a str,
    risk: u8,
    terminal: bool,
    at: i64,
    /// The human line: a progress detail, or what the transition was and by whom.
    line: String,
}

fn line(event: &DecisionEvent) -> String {
    let intent = &event.intent;
    if event.kind == EventKind::Progress {
        return event.detail.clone();
    }
    match (&intent.decided_by, intent.state) {
        (Some(by), state) if intent.is_terminal() => format!(
            "{} by {} via {}",
            state.as_str().to_lowercase(),
            if by.approver.is_empty() {
                by.kind.as_str()
            } else {
                &by.approver
            },
            by.channel
        ),
        (_, IntentState::PendingApproval) => format!(
            "{} {} waits for a human (risk {})",
            intent.agent_id,
            intent.action,
            intent.risk_score.get()
        ),
        (_, state) => format!("{} {} is {}", intent.agent_id, intent.action, state),
    }
}

fn feed_event(event: &DecisionEvent) -> Event {
    let intent = &event.intent;
    let item = FeedItem {
        kind: event.kind,
        intent_id: intent.id.as_str(),
        state: intent.state.as_str(),
        agent: &intent.agent_id,
        module: &intent.module,
        action: &intent.action,
        risk: intent.risk_score.get(),
        terminal: event.is_terminal(),
        at: event.at,
        line: line(event),
    };
    let json = serde_json::to_string(&item).unwrap_or_else(|_| "{}".into());
    Event::default().event("intent").data(json)
}

pub(super) async fn events(State(state): State<ConsoleState>, headers: HeaderMap) -> Response {
    let Some(session) = state.sessions.find(&headers) else {
        return (StatusCode::UNAUTHORIZED, "sign in first").into_response();
    };
    let watch = state
        .gateway
        .watch_all(&session.principal, IntentFilter::default(), true)
        .await;
    let mut events = match watch {
        Ok(events) => Box::pin(events.take_until(state.shutdown.clone().cancelled_owned())),
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    };
    let stream = async_stream::stream! {
        while let Some(item) = events.next().await {
            match item {
                Ok(event) => yield Ok::<_, Infallible>(feed_event(&event)),
                Err(e) => {
                    yield Ok(Event::default().event("lagged").data(e.to_string()));
                    break;
                }
            }
        }
    };
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}
