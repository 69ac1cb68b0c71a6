//! The operator console: a web page on the HTTP listener where people see every intent and
//! decide the pending ones.
//!
//! A thin client of the [`Gateway`]: it authenticates with the same [`KeyRing`] as gRPC,
//! reads and decides through the same gateway methods (a decision is `Gateway::resolve` with
//! channel `console`), and never touches the store. Pages are rendered on the server
//! ([`pages`]); live updates come over Server-Sent Events ([`sse`]) that follow the gateway's
//! watch with the signed-in principal's authorisation. A session ([`session`]) holds the
//! principal, never the API key; every POST carries the session's CSRF token and a same-site
//! Origin ([`csrf`]). Assets are embedded; the Content-Security-Policy allows nothing inline.
//!
//! Routes: `GET /console` (inbox or sign-in), `POST /console/signin`, `POST /console/signout`,
//! `GET /console/intents/{id}` (one intent's story), `GET /console/intents/{id}/card` (the
//! inbox card, for live insertion), `POST /console/intents/{id}/decide`, `GET /console/glance`
//! (the header numbers), `GET /console/events` (SSE), `GET /console/assets/*`.

mod assets;
mod csrf;
mod handlers;
mod pages;
pub mod session;
mod sse;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use tokio_util::sync::CancellationToken;

use crate::auth::KeyRing;
use crate::gateway::Gateway;

/// What every console handler holds.
#[derive(Clone)]
pub struct ConsoleState {
    pub gateway: Arc<Gateway>,
    pub keys: KeyRing,
    pub sessions: Arc<session::Sessions>,
    /// The HTTP listener serves TLS: cookies are marked `Secure`.
    pub secure: bool,
    /// Approvals at or above this risk ask for a second, confirming POST.
    pub confirm_tier: u8,
    /// Ends every live stream, so the listener's graceful shutdown is not held open.
    pub shutdown: CancellationToken,
}

impl ConsoleState {
    /// What a page's frame needs to know about whoever is looking.
    fn viewer<'a>(&self, session: Option<&'a session::Session>) -> pages::Viewer<'a> {
        pages::Viewer {
            session,
            open: self.keys.is_open(),
        }
    }
}

pub fn router(state: ConsoleState) -> Router {
    Router::new()
        .route("/console", get(handlers::inbox))
        .route("/console/", get(handlers::inbox))
        .route("/console/signin", post(handlers::sign_in))
        .route("/console/signout", post(handlers::sign_out))
        .route("/console/glance", get(handlers::glance))
        .route("/console/events", get(sse::events))
        .route("/console/intents/{id}", get(handlers::intent_page))
        .route("/console/intents/{id}/card", get(handlers::card))
        .route("/console/intents/{id}/decide", post(handlers::decide))
        .route("/console/assets/{name}", get(assets::asset))
        .layer(axum::middleware::map_response(pages::security_headers))
        .with_state(state)
}
