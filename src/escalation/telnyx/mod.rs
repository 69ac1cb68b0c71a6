//! Telnyx escalation: phone the approvers one by one, then text them a one-time code.
//!
//! - [`driver`]: the ladder's moves (claim, dial, SMS step, give up, stop) and decisions.
//! - [`inbound`]: verified webhooks: which intent an event is about, and its effects.
//! - [`voice`] + [`keys`]: the call state machine (pure): AMD, menu, PIN, question mode.
//! - [`speech`]: what is said on the call.
//! - [`sms`]: one-time codes, the message, and the replies.
//! - [`commands`] + [`client`]: typed call commands and the Telnyx API client.
//! - [`wire`]: webhook envelopes and our `client_state`.
//! - [`roster`], [`ladder`]: who is asked, in which order.
//! - [`state`]: what every replica must share (ladders, indexes, webhook dedupe, claims,
//!   watchdogs), in memory or in Redis.
//! - [`watchdog`]: the shared timers, claim renewal and the takeover of a dead replica's
//!   escalations.
//!
//! The escalation loop calls [`Channel::start`]/[`Channel::stop`], the webhook sidecar hands
//! [`Telnyx::handle`] verified, deduplicated events. Every step is a progress line on the
//! intent. Decisions go through the gateway's compare-and-set, so a key press racing the CLI
//! produces exactly one decision and the loser is told so. Nothing here approves on its own:
//! errors decline or wait. Every task spawned here is tracked, so shutdown waits for it.

pub mod client;
pub mod commands;
pub mod driver;
pub mod inbound;
pub mod keys;
pub mod ladder;
pub mod roster;
pub mod sms;
pub mod speech;
pub mod state;
#[cfg(test)]
pub(crate) mod testing;
pub mod voice;
pub mod watchdog;
pub mod wire;

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::Channel;
use crate::config::TelnyxSettings;
use crate::domain::{Intent, IntentId};
use crate::gateway::Gateway;
use crate::macros::debug_showing;
use crate::scoring::Scorer;
use client::{Client, ClientError};
use roster::Roster;
pub use state::{MemoryState, StateError, TelnyxState};
pub use wire::{ClientState, Envelope, EventData};

/// How long ladders, call indexes and SMS codes are kept.
pub(super) const LADDER_TTL: Duration = Duration::from_secs(24 * 3600);
/// Extra time after the ring timeout before the watchdog stops waiting for Telnyx's hang-up.
pub(super) const RING_GRACE: Duration = Duration::from_secs(10);
/// Machine detection normally reports within ~4 s of the answer; past this, the approver
/// hears the menu anyway (a machine cannot press keys, so nothing is lost).
pub(super) const AMD_WAIT: Duration = Duration::from_secs(6);
/// The longest an answered call may last.
pub(super) const CALL_TIME_LIMIT_SECS: u64 = 600;
/// The approver waits on the line for the answer: keep it short.
pub(super) const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Webhooks can race the dial's response (we learn the call id from it): wait this long.
pub(super) const UNKNOWN_CALL_WAIT: Duration = Duration::from_millis(200);
pub(super) const UNKNOWN_CALL_TRIES: u32 = 15;
pub(super) const CAS_TRIES: u32 = 16;

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
    client: Client,
    connection_id: String,
    from: String,
    webhook_url: Option<String>,
    /// `SENTINEL_PUBLIC_URL`: the SMS carries a link to the intent's console page.
    public_url: Option<String>,
    ring_timeout: Duration,
    pin_min_risk: u8,
    voice: String,
    sms_enabled: bool,
    roster: Roster,
    gateway: Arc<Gateway>,
    scorer: Arc<dyn Scorer>,
    state: Arc<dyn TelnyxState>,
    /// Every task spawned here; the app waits for them at shutdown.
    tasks: TaskTracker,
    shutdown: CancellationToken,
    me: Weak<Telnyx>,
    /// This replica's token in escalation claims.
    replica: String,
    /// The claims this replica holds and renews.
    held: Mutex<HashSet<IntentId>>,
    /// Nudges the watchdog poller when a watchdog armed here falls due.
    wake: tokio::sync::Notify,
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
    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.spawn(task);
    }

    /// The channel keeps a weak handle to itself for the tasks it spawns.
    fn self_arc(&self) -> Option<Arc<Telnyx>> {
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
