//! The [`Telnyx`] channel: what it holds, how it is built, and its place among the
//! escalation channels.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::client::{Client, ClientError};
use super::roster::Roster;
use super::state::{StateError, TelnyxState};
use crate::config::TelnyxSettings;
use crate::domain::{Intent, IntentId};
use crate::escalation::Channel;
use crate::gateway::Gateway;
use crate::macros::debug_showing;
use crate::scoring::Scorer;

#[derive(Debug, thiserror::Error)]
pub enum TelnyxError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("shutting down")]
    ShuttingDown,
}

/// The Telnyx voice + SMS channel.
pub struct Telnyx {
    pub(super) client: Client,
    pub(super) connection_id: String,
    pub(super) from: String,
    pub(super) webhook_url: Option<String>,
    /// `SENTINEL_PUBLIC_URL`: the SMS carries a link to the intent's console page.
    pub(super) public_url: Option<String>,
    pub(super) ring_timeout: Duration,
    pub(super) pin_min_risk: u8,
    pub(super) voice: String,
    pub(super) sms_enabled: bool,
    pub(super) roster: Roster,
    pub(super) gateway: Arc<Gateway>,
    pub(super) scorer: Arc<dyn Scorer>,
    pub(super) state: Arc<dyn TelnyxState>,
    /// Every task spawned here; the app waits for them at shutdown.
    pub(super) tasks: TaskTracker,
    pub(super) shutdown: CancellationToken,
    pub(super) me: Weak<Telnyx>,
    /// This replica's token in escalation claims.
    pub(super) replica: String,
    /// The claims this replica holds and renews.
    pub(super) held: Mutex<HashSet<IntentId>>,
    /// Nudges the watchdog poller when a watchdog armed here falls due.
    pub(super) wake: tokio::sync::Notify,
}

debug_showing!(Telnyx { client });

impl Telnyx {
    pub fn new(
        config: &TelnyxSettings,
        gateway: Arc<Gateway>,
        scorer: Arc<dyn Scorer>,
        state: Arc<dyn TelnyxState>,
        tasks: TaskTracker,
        shutdown: CancellationToken,
    ) -> Result<Arc<Telnyx>, TelnyxError> {
        let client = Client::new(&config.base_url, config.api_key.clone())?;
        let telnyx = Arc::new_cyclic(|me| Telnyx {
            client,
            connection_id: config.connection_id.clone(),
            from: config.phone_number.clone(),
            webhook_url: config
                .public_url
                .as_ref()
                .map(|u| format!("{u}/telnyx/webhook")),
            public_url: config.public_url.clone(),
            ring_timeout: config.escalation.ring_timeout,
            pin_min_risk: config.escalation.pin_tier(&config.roster),
            voice: config.escalation.voice.clone(),
            sms_enabled: config.escalation.sms,
            roster: Roster::new(config.roster.clone()),
            gateway,
            scorer,
            state,
            tasks,
            shutdown,
            me: me.clone(),
            replica: uuid::Uuid::new_v4().to_string(),
            held: Mutex::new(HashSet::new()),
            wake: tokio::sync::Notify::new(),
        });
        telnyx.spawn_background();
        Ok(telnyx)
    }

    pub fn state(&self) -> &Arc<dyn TelnyxState> {
        &self.state
    }

    /// Runs `task` on the tracker the app waits for at shutdown.
    pub(super) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.spawn(task);
    }

    /// The channel keeps a weak handle to itself for the tasks it spawns.
    pub(super) fn self_arc(&self) -> Option<Arc<Telnyx>> {
        self.me.upgrade()
    }
}

/// [`Telnyx`] as an escalation channel.
pub struct TelnyxChannel(pub Arc<Telnyx>);

#[async_trait]
impl Channel for TelnyxChannel {
    async fn start(&self, intent: &Intent) {
        let me = self.0.clone();
        let intent = intent.clone();
        let span = tracing::info_span!("escalation", intent_id = %intent.id, module = %intent.module, risk_score = i64::from(intent.risk_score.get()));
        // The escalation (and every webhook span under it) joins the submitter's trace.
        if let Some(tp) = &intent.trace_parent {
            crate::telemetry::adopt_traceparent(&span, tp);
        }
        self.0.spawn(me.begin(intent).instrument(span));
    }

    async fn stop(&self, intent: &Intent) {
        let me = self.0.clone();
        let intent = intent.clone();
        self.0.spawn(async move { me.end(&intent).await });
    }
}
