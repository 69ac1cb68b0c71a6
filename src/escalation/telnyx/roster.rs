//! The approver roster: who may decide which intents, in what order, and how to check a PIN.

use serde::{Deserialize, Serialize};

use crate::config::ApproverConfig;
use crate::domain::Intent;

/// One approver as the ladder carries it (no PIN material: that stays in the roster).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approver {
    pub name: String,
    pub phone: String,
}

#[derive(Debug, Clone, Default)]
pub struct Roster {
    approvers: Vec<ApproverConfig>,
}

impl Roster {
    /// `approvers` is already validated and sorted by `order` (see `config`).
    pub fn new(approvers: Vec<ApproverConfig>) -> Self {
        Roster { approvers }
    }

    pub fn is_empty(&self) -> bool {
        self.approvers.is_empty()
    }

    /// The approvers for `intent`, in calling order: those whose modules include the intent's
    /// (or who take every module) and whose minimum risk the intent reaches.
    pub fn for_intent(&self, intent: &Intent) -> Vec<Approver> {
        self.approvers
            .iter()
            .filter(|a| {
                a.modules.is_empty()
                    || a.modules
                        .iter()
                        .any(|m| m.eq_ignore_ascii_case(&intent.module))
            })
            .filter(|a| intent.risk_score.get() >= a.min_risk)
            .map(|a| Approver {
                name: a.name.clone(),
                phone: a.phone.clone(),
            })
            .collect()
    }

    pub fn by_phone(&self, phone: &str) -> Option<&ApproverConfig> {
        self.approvers.iter().find(|a| a.phone == phone)
    }

    /// Whether the approver on `phone` has a PIN configured. PINs are looked up by phone, the
    /// identity every channel has (the number dialled, the SMS sender), never by name.
    pub fn has_pin(&self, phone: &str) -> bool {
        self.by_phone(phone).is_some_and(|a| a.pin_sha256.is_some())
    }

    /// Checks `pin` against the PIN hash of the approver on `phone`. No PIN configured is a
    /// failure (fail closed).
    pub fn check_pin(&self, phone: &str, pin: &str) -> bool {
        self.by_phone(phone)
            .and_then(|a| a.pin_sha256.as_ref())
            .is_some_and(|expected| expected.matches(pin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PinHash;
    use crate::domain::{IntentId, IntentState, RiskScore};

    fn approver(name: &str, modules: &[&str], min_risk: u8, pin: Option<&str>) -> ApproverConfig {
        ApproverConfig {
            name: name.into(),
            phone: format!("+1415555{:04}", name.len()),
            pin_sha256: pin.map(PinHash::of_pin),
            modules: modules.iter().map(|m| m.to_string()).collect(),
            min_risk,
            order: 0,
        }
    }

    fn intent(module: &str, score: u8) -> Intent {
        Intent {
            id: IntentId::generate(),
            agent_id: "a".into(),
            action: "X".into(),
            module: module.into(),
            payload: serde_json::json!({}),
            reasoning: String::new(),
            labels: Default::default(),
            idempotency_key: None,
            body_hash: String::new(),
            state: IntentState::PendingApproval,
            risk_score: RiskScore::new(score).unwrap(),
            reasons: vec![],
            analysis: String::new(),
            decided_by: None,
            decision_reason: String::new(),
            policy_version: String::new(),
            version: 1,
            created_at: 0,
            decided_at: None,
            expires_at: None,
            scorer: None,
            trace_parent: None,
            receipt: None,
        }
    }

    #[test]
    fn routes_by_module_and_risk() {
        let roster = Roster::new(vec![
            approver("fin", &["VaultKeeper"], 0, None),
            approver("senior", &[], 80, None),
            approver("anyone", &[], 0, None),
        ]);
        let names = |i: &Intent| {
            roster
                .for_intent(i)
                .into_iter()
                .map(|a| a.name)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(&intent("VaultKeeper", 90)),
            ["fin", "senior", "anyone"]
        );
        assert_eq!(names(&intent("OpsGuard", 70)), ["anyone"]);
    }

    #[test]
    fn pins_are_checked_against_the_hash() {
        let roster = Roster::new(vec![
            approver("a", &[], 0, Some("4321")),
            approver("bb", &[], 0, None),
        ]);
        let (a, bb) = (
            roster.approvers[0].phone.clone(),
            roster.approvers[1].phone.clone(),
        );
        assert!(roster.check_pin(&a, "4321"));
        assert!(!roster.check_pin(&a, "1234"));
        assert!(!roster.check_pin(&a, ""));
        assert!(!roster.check_pin(&bb, ""), "no PIN configured never passes");
    }

    #[test]
    fn pins_belong_to_the_phone_not_the_name() {
        // Config rejects shared names; the roster must not depend on it.
        let mut first = approver("sam", &[], 0, Some("1111"));
        first.phone = "+14155550101".into();
        let mut second = approver("sam", &[], 0, Some("2222"));
        second.phone = "+14155550102".into();
        let roster = Roster::new(vec![first, second]);
        assert!(roster.check_pin("+14155550102", "2222"));
        assert!(!roster.check_pin("+14155550102", "1111"));
        assert!(
            !roster.check_pin("+14155550199", "1111"),
            "not on the roster"
        );
    }
}
