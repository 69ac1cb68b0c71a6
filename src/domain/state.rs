use serde::{Deserialize, Serialize};

use crate::macros::spelled;

/// The life of an intent.
///
/// `Analyzing -> Approved | Declined | PendingApproval`;
/// `PendingApproval -> Approved | Declined | Expired | Cancelled`.
/// Terminal states never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IntentState {
    Analyzing,
    PendingApproval,
    Approved,
    Declined,
    Expired,
    Cancelled,
}

spelled!(IntentState {
    Analyzing => "ANALYZING",
    PendingApproval => "PENDING_APPROVAL",
    Approved => "APPROVED",
    Declined => "DECLINED",
    Expired => "EXPIRED",
    Cancelled => "CANCELLED",
});

impl IntentState {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            IntentState::Approved
                | IntentState::Declined
                | IntentState::Expired
                | IntentState::Cancelled
        )
    }

    /// Whether the state machine allows `self -> next`.
    pub fn can_become(self, next: IntentState) -> bool {
        use IntentState::*;
        match self {
            Analyzing => matches!(next, Approved | Declined | PendingApproval),
            PendingApproval => matches!(next, Approved | Declined | Expired | Cancelled),
            Approved | Declined | Expired | Cancelled => false,
        }
    }

    /// Accepts `APPROVED`, `approved` and `INTENT_STATE_APPROVED`.
    pub fn parse(s: &str) -> Option<IntentState> {
        let s = s.trim().to_ascii_uppercase();
        let s = s.strip_prefix("INTENT_STATE_").unwrap_or(&s);
        IntentState::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::IntentState::*;
    use super::*;

    #[test]
    fn terminal_states_never_change() {
        for from in IntentState::ALL.into_iter().filter(|s| s.is_terminal()) {
            for to in IntentState::ALL {
                assert!(!from.can_become(to), "{from} -> {to} must be refused");
            }
        }
    }

    #[test]
    fn pending_can_only_be_decided() {
        assert!(PendingApproval.can_become(Approved));
        assert!(PendingApproval.can_become(Expired));
        assert!(PendingApproval.can_become(Cancelled));
        assert!(!PendingApproval.can_become(Analyzing));
        assert!(!Analyzing.can_become(Expired) && !Analyzing.can_become(Cancelled));
    }

    #[test]
    fn parses_all_spellings() {
        assert_eq!(IntentState::parse("approved"), Some(Approved));
        assert_eq!(
            IntentState::parse("INTENT_STATE_PENDING_APPROVAL"),
            Some(PendingApproval)
        );
        assert_eq!(IntentState::parse("nope"), None);
    }
}
