//! What watchers are told. Events carry a *slim* copy of the intent: its decision fields
//! (id, agent, action, module, state, version, risk, reasons, analysis, decider, policy
//! version, labels, timestamps) but not the agent's payload or reasoning, nor the receipt. Events are fanned
//! out to every watcher and buffered per stream, so their size must not follow what an agent
//! chooses to send; `GetIntent` returns the full intent.

use serde::{Deserialize, Serialize};

use super::{Intent, IntentId, IntentState, Millis};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The intent's state as it was when a watch began.
    Snapshot,
    /// A state change (a new version).
    Transition,
    /// Progress that is not a state change: "calling approver 1", "SMS sent".
    Progress,
}

/// One thing a watcher is told about an intent. `intent` is always slim (see the module doc):
/// every constructor strips it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionEvent {
    pub kind: EventKind,
    pub intent: Intent,
    #[serde(default)]
    pub detail: String,
    pub at: Millis,
}

/// The intent without the agent's payload (`null`) and reasoning (empty): what events carry.
///
/// The destructuring is exhaustive on purpose: a field added to [`Intent`] does not compile
/// here until someone decides whether watchers should see it.
pub fn slim(intent: &Intent) -> Intent {
    let Intent {
        id,
        agent_id,
        action,
        module,
        payload: _,
        reasoning: _,
        labels,
        idempotency_key,
        body_hash,
        state,
        risk_score,
        reasons,
        analysis,
        decided_by,
        decision_reason,
        policy_version,
        version,
        created_at,
        decided_at,
        expires_at,
        scorer,
        trace_parent,
        receipt,
    } = intent;
    Intent {
        id: id.clone(),
        agent_id: agent_id.clone(),
        action: action.clone(),
        module: module.clone(),
        payload: serde_json::Value::Null,
        reasoning: String::new(),
        labels: labels.clone(),
        idempotency_key: idempotency_key.clone(),
        body_hash: body_hash.clone(),
        state: *state,
        risk_score: *risk_score,
        reasons: reasons.clone(),
        analysis: analysis.clone(),
        decided_by: decided_by.clone(),
        decision_reason: decision_reason.clone(),
        policy_version: policy_version.clone(),
        version: *version,
        created_at: *created_at,
        decided_at: *decided_at,
        expires_at: *expires_at,
        scorer: scorer.clone(),
        trace_parent: trace_parent.clone(),
        // About 600 bytes, which would double an event: GetIntent returns it.
        receipt: {
            let _ = receipt;
            None
        },
    }
}

impl DecisionEvent {
    pub fn snapshot(intent: &Intent, at: Millis) -> Self {
        Self::new(EventKind::Snapshot, intent, String::new(), at)
    }

    pub fn transition(intent: &Intent, at: Millis) -> Self {
        Self::new(EventKind::Transition, intent, String::new(), at)
    }

    pub fn progress(intent: &Intent, detail: impl Into<String>, at: Millis) -> Self {
        Self::new(EventKind::Progress, intent, detail.into(), at)
    }

    fn new(kind: EventKind, intent: &Intent, detail: String, at: Millis) -> Self {
        DecisionEvent {
            kind,
            intent: slim(intent),
            detail,
            at,
        }
    }

    /// Strips an event that arrived from elsewhere (another replica's publish) in place.
    pub fn into_slim(mut self) -> Self {
        self.intent.payload = serde_json::Value::Null;
        self.intent.reasoning = String::new();
        self
    }

    pub fn intent_id(&self) -> &IntentId {
        &self.intent.id
    }

    pub fn state(&self) -> IntentState {
        self.intent.state
    }

    pub fn version(&self) -> u64 {
        self.intent.version
    }

    /// The last event of an intent: nothing will follow it.
    pub fn is_terminal(&self) -> bool {
        self.intent.is_terminal() && self.kind != EventKind::Progress
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_carry_no_payload_or_reasoning() {
        let intent: Intent = serde_json::from_value(serde_json::json!({
            "id": "0190a8f0-0000-7000-8000-000000000000", "agent_id": "a", "action": "X",
            "module": "M", "payload": {"note": "x".repeat(10_000)}, "reasoning": "because",
            "labels": {"team": "ops"}, "body_hash": "h", "state": "PENDING_APPROVAL",
            "risk_score": 90, "analysis": "risky", "policy_version": "p", "version": 2,
            "created_at": 1, "expires_at": 9
        }))
        .unwrap();
        let event = DecisionEvent::transition(&intent, 5);
        assert_eq!(event.intent.payload, serde_json::Value::Null);
        assert!(event.intent.reasoning.is_empty());
        assert_eq!(event.intent.labels, intent.labels);
        assert_eq!(event.intent.analysis, "risky");
        assert_eq!((event.version(), event.state()), (2, intent.state));
        assert!(serde_json::to_string(&event).unwrap().len() < 1_000);
    }
}
