//! The application service: the decision pipeline and the operator's actions.
//!
//! validate -> idempotency -> policy -> scorer (only when policy left the case open) ->
//! decide -> persist -> publish. Transport-free: the gRPC adapter calls it with a
//! [`Principal`](crate::auth::Principal) and plain inputs, and maps [`GatewayError`] to
//! status codes in one place.
//!
//! This file holds the [`Gateway`] itself and its errors; `submit.rs` the pipeline,
//! `read.rs` get and list, `resolve.rs` the operator's actions, `watch.rs` the streams,
//! `expiry.rs` the approval deadlines, `history.rs` an intent's story and the numbers at a
//! glance.

pub mod channels;
mod expiry;
mod history;
pub mod limits;
mod read;
mod resolve;
mod submit;
mod timing;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use crate::domain::validate::{Limits, ValidationError};
use crate::domain::{Channel, Clock, Intent, IntentId, SystemClock};
use crate::policy::{PolicyError, PolicyPack};
use crate::receipt::Receipts;
use crate::scoring::Scorer;
use crate::store::{Store, StoreError};

pub use crate::store::{
    AuditRecord as HistoryRecord, EventStream as IntentEvents, Filter as IntentFilter, WatchError,
};
/// What the transport sees of the store: a list filter and the event stream of a watch,
/// named as the gateway hands them out.
pub use history::{Glance, GLANCE_SAMPLE, HISTORY_LIMIT};

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("{0}")]
    Invalid(String),
    #[error("intent {0} not found")]
    NotFound(String),
    #[error("{0}")]
    PermissionDenied(String),
    /// The idempotency key was used before with a different body.
    #[error("idempotency_key {key} was already used by this agent for a different request (intent {existing})")]
    KeyConflict { key: String, existing: IntentId },
    /// The intent cannot make this transition (still analysing, past its deadline, ...).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The intent was decided first, by someone else or a race this call lost.
    #[error("{}", already_decided(.current))]
    AlreadyDecided { current: Box<Intent> },
    #[error("store unavailable")]
    Unavailable(#[source] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
    /// A per-caller limit (watch streams, submission rate) refused the request.
    #[error("{message}")]
    ResourceExhausted {
        message: String,
        /// When a retry can succeed, if the limit knows.
        retry_after: Option<Duration>,
    },
}

impl From<StoreError> for GatewayError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(id) => GatewayError::NotFound(id.to_string()),
            StoreError::Unavailable(_) => GatewayError::Unavailable(e),
            StoreError::Conflict { current } => GatewayError::FailedPrecondition(format!(
                "intent {} changed concurrently; it is now {} at version {}",
                current.id, current.state, current.version
            )),
            StoreError::Corrupt(m) => GatewayError::Internal(m),
        }
    }
}

impl From<ValidationError> for GatewayError {
    fn from(e: ValidationError) -> Self {
        GatewayError::Invalid(e.to_string())
    }
}

impl From<PolicyError> for GatewayError {
    fn from(e: PolicyError) -> Self {
        match e {
            PolicyError::Module(m) => GatewayError::Invalid(m),
            other => GatewayError::Internal(other.to_string()),
        }
    }
}

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
    store: timing::TimedStore,
    policy: Arc<PolicyPack>,
    scorer: Arc<dyn Scorer>,
    settings: Settings,
    watches: limits::WatchLimiter,
    /// `None`: submissions are not rate-limited (and the check costs nothing).
    rate: Option<Arc<dyn limits::RateLimiter>>,
    /// Stamps submissions and decisions and drives the approval deadlines.
    clock: Arc<dyn Clock>,
    /// Signs the receipt of every intent that becomes APPROVED, before it is stored.
    receipts: Arc<Receipts>,
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

pub(super) fn parse_id(id: &str) -> Result<IntentId, GatewayError> {
    if id.is_empty() {
        return Err(GatewayError::Invalid("intent_id: is required".into()));
    }
    IntentId::parse(id)
        .ok_or_else(|| GatewayError::Invalid(format!("intent_id: {id:?} is not an intent id")))
}

fn already_decided(intent: &Intent) -> String {
    let state = intent.state;
    match &intent.decided_by {
        Some(by) => format!(
            "intent {} is already {state} (by {} via {})",
            intent.id,
            if by.approver.is_empty() {
                by.kind.as_str().to_string()
            } else {
                by.approver.clone()
            },
            by.channel
        ),
        None => format!("intent {} is already {state}", intent.id),
    }
}

#[cfg(test)]
mod tests;
