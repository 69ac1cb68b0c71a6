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

/// One thing a watcher is told about an intent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionEvent {
    pub kind: EventKind,
    pub intent: Intent,
    #[serde(default)]
    pub detail: String,
    pub at: Millis,
}

impl DecisionEvent {
    pub fn snapshot(intent: Intent, at: Millis) -> Self {
        DecisionEvent {
            kind: EventKind::Snapshot,
            intent,
            detail: String::new(),
            at,
        }
    }

    pub fn transition(intent: Intent, at: Millis) -> Self {
        DecisionEvent {
            kind: EventKind::Transition,
            intent,
            detail: String::new(),
            at,
        }
    }

    pub fn progress(intent: Intent, detail: impl Into<String>, at: Millis) -> Self {
        DecisionEvent {
            kind: EventKind::Progress,
            intent,
            detail: detail.into(),
            at,
        }
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
