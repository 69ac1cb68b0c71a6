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
use crate::metrics::StoreOp;
use crate::store::{AuditRecord, EventStream, StoreError};

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
        Ok(self
            .store
            .call(StoreOp::Progress, |s| s.progress(id, line))
            .await?)
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
        Ok(self.store.call(StoreOp::Audit, |s| s.audit(record)).await?)
    }

    /// One intent, without an authorisation check: for the channels, which act on intents
    /// the gateway itself put in their hands.
    pub async fn intent(&self, id: &IntentId) -> Result<Option<Intent>, GatewayError> {
        Ok(self.store.call(StoreOp::Get, |s| s.get(id)).await?)
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
        Ok(self
            .store
            .call(StoreOp::WatchAll, |s| s.watch_all())
            .await?)
    }

    /// Up to `limit` intents that are still open (every open intent has a deadline), found
    /// through the deadline index so the cost follows what is open now.
    pub async fn open_intents(&self, limit: usize) -> Result<Vec<IntentId>, GatewayError> {
        Ok(self
            .store
            .call(StoreOp::Due, |s| s.due(Millis::MAX, limit))
            .await?)
    }

    /// Whether the store answers: `/readyz` and gRPC health follow it.
    pub async fn ready(&self) -> Result<(), GatewayError> {
        self.store.call(StoreOp::Ping, |s| s.ping()).await?;
        if !self.receipts.is_ready() {
            return Err(GatewayError::Unavailable(StoreError::Unavailable(
                "the receipt signing key is not loaded yet".into(),
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures::StreamExt as _;

    use super::*;
    use crate::auth::Principal;
    use crate::domain::validate::SubmitInput;
    use crate::gateway::Settings;
    use crate::policy::PolicyPack;
    use crate::scoring::fallback::FallbackScorer;
    use crate::store::{MemoryStore, Store};

    async fn pending_intent() -> (Gateway, Arc<dyn Store>, Intent) {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let gateway = Gateway::new(
            store.clone(),
            Arc::new(PolicyPack::builtin()),
            Arc::new(FallbackScorer),
            Settings::default(),
        );
        let input = SubmitInput {
            agent_id: "ops".into(),
            action: "DELETE_USER".into(),
            payload: Some(serde_json::json!({"user_id": "u"})),
            ..Default::default()
        };
        let (intent, _) = gateway.submit(&Principal::Open, input).await.unwrap();
        assert_eq!(intent.state, IntentState::PendingApproval);
        (gateway, store, intent)
    }

    #[tokio::test]
    async fn a_human_decision_is_recorded_once_and_the_loser_is_told_who_won() {
        let (gateway, _, intent) = pending_intent().await;
        let approved = gateway
            .record_human_decision(&intent.id, true, "alice", Channel::Voice)
            .await
            .unwrap();
        assert_eq!(approved.state, IntentState::Approved);
        assert_eq!(
            approved.decided_by,
            Some(DecidedBy::new(DeciderKind::Human, "alice", Channel::Voice))
        );
        let reason = approved.reasons.last().unwrap();
        assert_eq!(reason.code, "human_approved");
        assert_eq!(reason.message, "approved by alice via voice");

        let late = gateway
            .record_human_decision(&intent.id, false, "bob", Channel::Sms)
            .await
            .unwrap_err();
        match &late {
            GatewayError::AlreadyDecided { current } => {
                assert_eq!(current.state, IntentState::Approved);
                assert_eq!(current.version, approved.version);
            }
            other => panic!("expected AlreadyDecided, got {other:?}"),
        }
        assert_eq!(
            late.to_string(),
            format!(
                "intent {} is already APPROVED (by alice via voice)",
                intent.id
            )
        );
        assert_eq!(gateway.pending(&intent.id).await.unwrap(), None);
        assert_eq!(
            gateway.intent(&intent.id).await.unwrap().unwrap().state,
            IntentState::Approved
        );
    }

    #[tokio::test]
    async fn an_unknown_intent_is_not_found_and_nothing_is_decided() {
        let (gateway, _, _) = pending_intent().await;
        let unknown = IntentId::generate();
        let err = gateway
            .record_human_decision(&unknown, true, "alice", Channel::Voice)
            .await
            .unwrap_err();
        assert!(matches!(err, GatewayError::NotFound(_)), "{err}");
    }

    #[tokio::test]
    async fn an_escalation_that_reached_nobody_declines_never_approves() {
        let (gateway, _, intent) = pending_intent().await;
        let declined = gateway
            .decline_unescalated(intent, Channel::Telnyx)
            .await
            .unwrap();
        assert_eq!(declined.state, IntentState::Declined);
        assert_eq!(declined.reasons.last().unwrap().code, "escalation_failed");
        assert_eq!(
            declined.decided_by,
            Some(DecidedBy::new(DeciderKind::System, "", Channel::Telnyx))
        );
    }

    #[tokio::test]
    async fn progress_reaches_watchers_and_refusals_reach_the_audit_log() {
        let (gateway, store, intent) = pending_intent().await;
        assert_eq!(
            gateway.open_intents(10).await.unwrap(),
            vec![intent.id.clone()]
        );
        let mut events = gateway.events().await.unwrap();
        gateway
            .progress(&intent.id, "calling approver 1")
            .await
            .unwrap();
        let event = tokio::time::timeout(std::time::Duration::from_secs(5), events.next())
            .await
            .expect("the progress event arrives")
            .unwrap()
            .unwrap();
        assert_eq!(event.detail, "calling approver 1");

        gateway
            .audit_rejected(Rejected {
                intent: Some(&intent.id),
                channel: Channel::Sms,
                actor: "mallory",
                state: Some(IntentState::Approved),
                why: "SMS approval without a valid PIN".into(),
            })
            .await
            .unwrap();
        let audit = store.audit_range(0, Millis::MAX, 100).await.unwrap();
        let rejected: Vec<_> = audit.iter().filter(|r| r.event == "rejected").collect();
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].channel, "sms");
        assert_eq!(rejected[0].actor, "mallory");
        assert_eq!(rejected[0].intent_id.as_ref(), Some(&intent.id));
        assert_eq!(rejected[0].detail, "SMS approval without a valid PIN");
        // Nothing was decided by either.
        assert_eq!(
            gateway.pending(&intent.id).await.unwrap().map(|i| i.id),
            Some(intent.id)
        );
        gateway.ready().await.unwrap();
    }
}
