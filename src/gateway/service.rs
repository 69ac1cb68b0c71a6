//! The [`Gateway`] itself: what it holds, how it is built, and what every path shares.

use std::sync::Arc;
use std::time::Duration;

use super::{limits, timing, GatewayError};
use crate::domain::validate::Limits;
use crate::domain::{Channel, Clock, Intent, SystemClock};
use crate::policy::PolicyPack;
use crate::receipt::Receipts;
use crate::scoring::Scorer;
use crate::store::{Store, StoreError};

/// Knobs the pipeline needs, taken from configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub limits: Limits,
    /// Default approval deadline when the pack sets none for the module.
    pub approval_timeout: Duration,
    /// The scorer's deadline; the pipeline cuts it off here whatever the scorer does.
    pub scorer_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            limits: Limits::default(),
            approval_timeout: Duration::from_secs(600),
            scorer_timeout: Duration::from_millis(3000),
        }
    }
}

/// Who resolves an intent and through what.
#[derive(Debug, Clone)]
pub struct Resolution {
    pub approve: bool,
    /// Who the caller says decides; must match an operator key's name when keys are used.
    pub approver: String,
    pub reason: String,
    pub expected_version: Option<u64>,
    pub channel: Channel,
}

pub struct Gateway {
    /// The only way to the store: every call is timed (`timing.rs`).
    pub(super) store: timing::TimedStore,
    pub(super) policy: Arc<PolicyPack>,
    pub(super) scorer: Arc<dyn Scorer>,
    pub(super) settings: Settings,
    pub(super) watches: limits::WatchLimiter,
    /// `None`: submissions are not rate-limited (and the check costs nothing).
    pub(super) rate: Option<Arc<dyn limits::RateLimiter>>,
    /// Stamps submissions and decisions and drives the approval deadlines.
    pub(super) clock: Arc<dyn Clock>,
    /// Signs the receipt of every intent that becomes APPROVED, before it is stored.
    pub(super) receipts: Arc<Receipts>,
}

impl Gateway {
    pub fn new(
        store: Arc<dyn Store>,
        policy: Arc<PolicyPack>,
        scorer: Arc<dyn Scorer>,
        settings: Settings,
    ) -> Self {
        Gateway {
            store: timing::TimedStore::new(store),
            policy,
            scorer,
            settings,
            watches: limits::WatchLimiter::new(limits::DEFAULT_MAX_WATCHES),
            rate: None,
            clock: SystemClock::shared(),
            receipts: Arc::new(Receipts::ephemeral()),
        }
    }

    /// Replaces the per-process receipt key with the configured one.
    pub fn with_receipts(mut self, receipts: Arc<Receipts>) -> Self {
        self.receipts = receipts;
        self
    }

    /// The public keys receipts verify against (`GET /.well-known/jwks.json`).
    pub fn receipt_keys(&self) -> sentinel_receipt::Jwks {
        self.receipts.jwks()
    }

    /// `intent` as it is stored: with its receipt when it is APPROVED. Every write that can
    /// approve goes through here, so no approval is stored without one; while the signing key
    /// is not loaded yet (Redis unreachable since start-up) an approval is refused as
    /// UNAVAILABLE, never stored unsigned.
    pub(super) fn sealed(&self, intent: Intent) -> Result<Intent, GatewayError> {
        self.receipts
            .seal(intent, self.clock.now())
            .map_err(|e| GatewayError::Unavailable(StoreError::Unavailable(e.to_string())))
    }

    /// Replaces the system clock (tests move a manual one instead of sleeping).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Sets the per-caller limits: open watch streams per principal, and the submission rate
    /// per agent (`None`: unlimited).
    pub fn with_caller_limits(
        mut self,
        max_watches: usize,
        rate: Option<Arc<dyn limits::RateLimiter>>,
    ) -> Self {
        self.watches = limits::WatchLimiter::new(max_watches);
        self.rate = rate;
        self
    }
}

/// Counts an intent that reached its state on this replica (for `/metrics`).
pub(super) fn counted(intent: Intent) -> Intent {
    let decider = intent.decided_by.as_ref().map(|d| d.kind);
    crate::metrics::intent_reached(intent.state, decider);
    if let (true, Some(at)) = (intent.is_terminal(), intent.decided_at) {
        crate::metrics::time_to_decision(decider, at - intent.created_at);
    }
    intent
}
