//! The operator's actions: approve or decline a pending intent, cancel one, and decide an
//! intent that waits for a human.

use tracing::{info, instrument};

use super::expiry::expiry;
use super::{counted, parse_id, Gateway, GatewayError, Resolution};
use crate::auth::Principal;
use crate::domain::{Channel, DecidedBy, DeciderKind, Intent, IntentState, Reason, ReasonSource};
use crate::metrics::StoreOp;
use crate::store::StoreError;

impl Gateway {
    /// An operator approves or declines a pending intent.
    #[instrument(skip_all, fields(intent_id = %id, approve = resolution.approve, channel = %resolution.channel))]
    pub async fn resolve(
        &self,
        caller: &Principal,
        id: &str,
        resolution: Resolution,
    ) -> Result<Intent, GatewayError> {
        let id = parse_id(id)?;
        if !caller.is_operator() {
            return Err(GatewayError::PermissionDenied(
                "only operators may resolve intents".into(),
            ));
        }
        let approver = match caller {
            Principal::Operator(name) => {
                if !resolution.approver.is_empty() && resolution.approver != *name {
                    return Err(GatewayError::PermissionDenied(format!(
                        "approver: this key is bound to operator {name}, not {}",
                        resolution.approver
                    )));
                }
                name.clone()
            }
            _ if resolution.approver.is_empty() => caller.name().to_string(),
            _ => resolution.approver.clone(),
        };
        let current = self
            .store
            .call(StoreOp::Get, |s| s.get(&id))
            .await?
            .ok_or_else(|| GatewayError::NotFound(id.to_string()))?;
        if let Some(v) = resolution.expected_version {
            if v != current.version {
                return Err(GatewayError::FailedPrecondition(format!(
                    "expected_version: intent is at version {}, not {v}",
                    current.version
                )));
            }
        }
        let to = if resolution.approve {
            IntentState::Approved
        } else {
            IntentState::Declined
        };
        self.decide_pending(
            current,
            to,
            DecidedBy::new(DeciderKind::Human, approver.clone(), resolution.channel),
            Reason::new(
                ReasonSource::Human,
                if resolution.approve {
                    "human_approved"
                } else {
                    "human_declined"
                },
                if resolution.reason.is_empty() {
                    format!(
                        "{} by {approver} via {}",
                        to.as_str().to_lowercase(),
                        resolution.channel
                    )
                } else {
                    resolution.reason.clone()
                },
            ),
            resolution.reason,
        )
        .await
    }

    /// The agent that submitted an intent (or an operator) withdraws it while it is pending.
    #[instrument(skip_all, fields(intent_id = %id))]
    pub async fn cancel(
        &self,
        caller: &Principal,
        id: &str,
        reason: String,
    ) -> Result<Intent, GatewayError> {
        let current = self.get(caller, id).await?;
        let by = match caller {
            Principal::Agent(name) => {
                DecidedBy::new(DeciderKind::Agent, name.clone(), Channel::Grpc)
            }
            other => DecidedBy::new(DeciderKind::Human, other.name(), Channel::Grpc),
        };
        let message = if reason.is_empty() {
            "withdrawn".to_string()
        } else {
            reason.clone()
        };
        self.decide_pending(
            current,
            IntentState::Cancelled,
            by,
            Reason::new(ReasonSource::System, "cancelled", message),
            reason,
        )
        .await
    }

    /// Compare-and-set a pending intent into `to`. Losing a race, or finding the intent
    /// already decided, is `AlreadyDecided` with the current intent.
    ///
    /// The span deciding (`resolve`, `cancel`, a Telnyx webhook's, the console's) links to the
    /// submission's trace, so a decision made in another trace leads back to the intent's.
    pub async fn decide_pending(
        &self,
        current: Intent,
        to: IntentState,
        by: DecidedBy,
        reason: Reason,
        why: String,
    ) -> Result<Intent, GatewayError> {
        if let Some(traceparent) = &current.trace_parent {
            crate::telemetry::link_to_traceparent(&tracing::Span::current(), traceparent);
        }
        match current.state {
            IntentState::PendingApproval => {}
            IntentState::Analyzing => {
                return Err(GatewayError::FailedPrecondition(format!(
                "intent {} is still being analysed; it can be decided once it is PENDING_APPROVAL",
                current.id
            )))
            }
            _ => {
                return Err(GatewayError::AlreadyDecided {
                    current: Box::new(current),
                })
            }
        }
        let now = self.clock.now();
        if current.expires_at.is_some_and(|deadline| deadline <= now) {
            // The deadline passed and the expiry loop has not run yet: a late decision must not
            // win. Expire it now (whoever wins that race, the result is EXPIRED) and refuse.
            if let Ok(expired) = expiry(&current, now) {
                match self
                    .store
                    .call(StoreOp::Transition, |s| s.transition(expired))
                    .await
                {
                    Ok(_) | Err(StoreError::Conflict { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            return Err(GatewayError::FailedPrecondition(format!(
                "intent {} passed its approval deadline; it is EXPIRED",
                current.id
            )));
        }
        let next = current
            .decide(to, by, why, Some(reason), now)
            .map_err(|e| GatewayError::FailedPrecondition(e.to_string()))?;
        let next = self.sealed(next)?;
        match self
            .store
            .call(StoreOp::Transition, |s| s.transition(next))
            .await
        {
            Ok(intent) => {
                info!(intent_id = %intent.id, state = %intent.state, "intent resolved");
                Ok(counted(intent))
            }
            Err(StoreError::Conflict { current }) => Err(GatewayError::AlreadyDecided { current }),
            Err(e) => Err(e.into()),
        }
    }
}
