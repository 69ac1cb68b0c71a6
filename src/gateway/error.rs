//! What the gateway refuses, typed: the transport maps each kind to its status once.

use std::time::Duration;

use crate::domain::validate::ValidationError;
use crate::domain::{Intent, IntentId};
use crate::policy::PolicyError;
use crate::store::StoreError;

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

/// The intent id of a request, checked.
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
