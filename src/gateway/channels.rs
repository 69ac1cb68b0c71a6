//! What the escalation channels and the HTTP sidecar may do with intents.
//!
//! They never hold the store: a human's decision takes the same compare-and-set as
//! `ResolveIntent` ([`Gateway::decide_pending`]), progress lines and refused input are recorded
//! here, and the escalation loop follows [`Gateway::events`]. Nothing here approves on its
//! own: the only approval is [`Gateway::record_human_decision`] with `approve = true`.

use crate::domain::{
    now_millis, Channel, DecidedBy, DeciderKind, Intent, IntentId, IntentState, Millis, Reason,
    ReasonSource,
};
use crate::store::{AuditRecord, EventStream};

use super::{Gateway, GatewayError};

/// Input that was refused and changed nothing, for the audit log.
#[derive(Debug, Clone)]
pub struct Rejected<'a> {
    /// The intent it was about, when one could be named.
    pub intent: Option<&'a IntentId>,
    pub channel: Channel,
    /// Who sent it (an approver's name, `unknown`, the webhook itself).
    pub actor: &'a str,
    /// The transition it asked for, if it asked for one.
    pub state: Option<IntentState>,
    pub why: String,
}

impl Gateway {
    /// Records a human's decision on a pending intent, as `ResolveIntent` does. An intent
    /// decided first (by anyone, anywhere) is [`GatewayError::AlreadyDecided`]; one past its
    /// deadline or still being analysed is [`GatewayError::FailedPrecondition`].
    pub async fn record_human_decision(
        &self,
        id: &IntentId,
        approve: bool,
        approver: &str,
        channel: Channel,
    ) -> Result<Intent, GatewayError> {
        let current = self
            .intent(id)
            .await?
            .ok_or_else(|| GatewayError::NotFound(id.to_string()))?;
        let (to, code, word) = if approve {
            (IntentState::Approved, "human_approved", "approved")
        } else {
            (IntentState::Declined, "human_declined", "declined")
        };
        let why = format!("{word} by {approver} via {channel}");
        self.decide_pending(
            current,
            to,
            DecidedBy::new(DeciderKind::Human, approver, channel),
            Reason::new(ReasonSource::Human, code, why.clone()),
            why,
        )
        .await
    }

    /// Declines a pending intent that no escalation channel could put in front of a human,
    /// so nothing runs unapproved (`escalation_failed`).
    pub async fn decline_unescalated(
        &self,
        intent: Intent,
        channel: Channel,
    ) -> Result<Intent, GatewayError> {
        self.decide_pending(
            intent,
            IntentState::Declined,
            DecidedBy::new(DeciderKind::System, "", channel),
            Reason::system(
                "escalation_failed",
                "every escalation channel failed; declined so nothing runs unapproved",
            ),
            "escalation failed".into(),
        )
        .await
    }

    /// Publishes a progress line on an intent (a `DecisionEvent.detail`, audited).
    pub async fn progress(&self, id: &IntentId, line: &str) -> Result<(), GatewayError> {
        Ok(self.store.progress(id, line).await?)
    }

    /// Audits input that was refused and changed nothing.
    pub async fn audit_rejected(&self, rejected: Rejected<'_>) -> Result<(), GatewayError> {
        let record = AuditRecord {
            at: now_millis(),
            intent_id: rejected.intent.cloned(),
            event: "rejected".into(),
            actor: rejected.actor.to_string(),
            channel: rejected.channel.as_str().to_string(),
            state: rejected.state,
            version: None,
            detail: rejected.why,
        };
        Ok(self.store.audit(record).await?)
    }

    /// One intent, without an authorisation check: for the channels, which act on intents
    /// the gateway itself put in their hands.
    pub async fn intent(&self, id: &IntentId) -> Result<Option<Intent>, GatewayError> {
        Ok(self.store.get(id).await?)
    }

    /// The intent, if it still waits for a human.
    pub async fn pending(&self, id: &IntentId) -> Result<Option<Intent>, GatewayError> {
        Ok(self
            .intent(id)
            .await?
            .filter(|i| i.state == IntentState::PendingApproval))
    }

    /// Every event of every intent, progress included: what the escalation loop follows.
    pub async fn events(&self) -> Result<EventStream, GatewayError> {
        Ok(self.store.watch_all().await?)
    }

    /// Up to `limit` intents that are still open (every open intent has a deadline), found
    /// through the deadline index so the cost follows what is open now.
    pub async fn open_intents(&self, limit: usize) -> Result<Vec<IntentId>, GatewayError> {
        Ok(self.store.due(Millis::MAX, limit).await?)
    }

    /// Whether the store answers: `/readyz` and gRPC health follow it.
    pub async fn ready(&self) -> Result<(), GatewayError> {
        Ok(self.store.ping().await?)
    }
}
