use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Channel, IntentState, Millis};

/// An intent's id: a UUIDv7, so ids sort by creation time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IntentId(String);

impl IntentId {
    pub fn generate() -> Self {
        IntentId(uuid::Uuid::now_v7().to_string())
    }

    /// Parses an id that came from outside; only canonical UUID text is accepted, so an id can
    /// be used in a store key without escaping.
    pub fn parse(s: &str) -> Option<Self> {
        let uuid = uuid::Uuid::parse_str(s.trim()).ok()?;
        Some(IntentId(uuid.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for IntentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A risk score from 0 (harmless) to 100 (forbidden); it cannot exceed 100.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(try_from = "u8", into = "u8")]
pub struct RiskScore(u8);

impl RiskScore {
    pub const MIN: RiskScore = RiskScore(0);
    pub const MAX: RiskScore = RiskScore(100);

    pub fn new(value: u8) -> Option<Self> {
        (value <= 100).then_some(RiskScore(value))
    }

    /// Clamps any integer into 0..=100.
    pub fn saturating(value: i64) -> Self {
        RiskScore(value.clamp(0, 100) as u8)
    }

    pub fn get(self) -> u8 {
        self.0
    }

    pub fn level(self) -> RiskLevel {
        match self.0 {
            0..=30 => RiskLevel::Low,
            31..=60 => RiskLevel::Medium,
            61..=85 => RiskLevel::High,
            _ => RiskLevel::Critical,
        }
    }
}

impl TryFrom<u8> for RiskScore {
    type Error = String;
    fn try_from(value: u8) -> Result<Self, Self::Error> {
        RiskScore::new(value).ok_or_else(|| format!("risk score {value} exceeds 100"))
    }
}

impl From<RiskScore> for u8 {
    fn from(score: RiskScore) -> u8 {
        score.0
    }
}

impl std::fmt::Display for RiskScore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RiskLevel {
    Low,
    Medium,
    High,
    Critical,
}

impl RiskLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            RiskLevel::Low => "LOW",
            RiskLevel::Medium => "MEDIUM",
            RiskLevel::High => "HIGH",
            RiskLevel::Critical => "CRITICAL",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReasonSource {
    Policy,
    Scorer,
    Human,
    System,
}

/// Why a score or decision is what it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    /// Stable, machine-readable: `trusted_vendor_small_amount`, `scorer_timeout`, ...
    pub code: String,
    pub source: ReasonSource,
    pub message: String,
    /// The policy rule that produced the reason, for `ReasonSource::Policy`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rule: String,
}

impl Reason {
    pub fn new(source: ReasonSource, code: impl Into<String>, message: impl Into<String>) -> Self {
        Reason {
            code: code.into(),
            source,
            message: message.into(),
            rule: String::new(),
        }
    }

    pub fn system(code: impl Into<String>, message: impl Into<String>) -> Self {
        Reason::new(ReasonSource::System, code, message)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeciderKind {
    Policy,
    Scorer,
    Human,
    Timeout,
    Agent,
    System,
}

impl DeciderKind {
    /// The lowercase identifier used where no approver is named (audit actor, messages).
    pub fn as_str(self) -> &'static str {
        match self {
            DeciderKind::Policy => "policy",
            DeciderKind::Scorer => "scorer",
            DeciderKind::Human => "human",
            DeciderKind::Timeout => "timeout",
            DeciderKind::Agent => "agent",
            DeciderKind::System => "system",
        }
    }
}

/// Who or what decided, and through which channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecidedBy {
    pub kind: DeciderKind,
    /// The approver's name or principal; empty for policy, scorer and timeout.
    #[serde(default)]
    pub approver: String,
    pub channel: Channel,
}

impl DecidedBy {
    pub fn new(kind: DeciderKind, approver: impl Into<String>, channel: Channel) -> Self {
        DecidedBy {
            kind,
            approver: approver.into(),
            channel,
        }
    }
}

/// What the scorer was and what it cost.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ScorerInfo {
    pub model: String,
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub cached: bool,
}

/// A validated submission, before it becomes an intent.
#[derive(Debug, Clone, PartialEq)]
pub struct IntentDraft {
    pub agent_id: String,
    pub action: String,
    /// The module the agent named, if any; the policy pack decides the final one.
    pub module: Option<String>,
    /// Always a JSON object.
    pub payload: serde_json::Value,
    pub reasoning: String,
    pub labels: BTreeMap<String, String>,
    pub idempotency_key: Option<String>,
}

impl IntentDraft {
    /// A canonical hash of everything that makes two submissions "the same request" for
    /// idempotency: action, module, payload, reasoning and labels, with object keys sorted.
    pub fn body_hash(&self) -> String {
        let mut hasher = Sha256::new();
        let canonical = serde_json::json!({
            "action": self.action,
            "module": self.module,
            "payload": canonical_json(&self.payload),
            "reasoning": self.reasoning,
            "labels": self.labels,
        });
        hasher.update(canonical_json(&canonical).to_string().as_bytes());
        hex::encode(hasher.finalize())
    }
}

/// Rebuilds a JSON value with every object's keys in sorted order, whatever map type
/// serde_json was built with.
pub fn canonical_json(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let sorted: BTreeMap<&String, serde_json::Value> =
                map.iter().map(|(k, v)| (k, canonical_json(v))).collect();
            let mut out = serde_json::Map::new();
            for (k, v) in sorted {
                out.insert(k.clone(), v);
            }
            serde_json::Value::Object(out)
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.iter().map(canonical_json).collect())
        }
        other => other.clone(),
    }
}

/// The gateway's record of one intent. Every change produces a new value with `version + 1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    pub id: IntentId,
    pub agent_id: String,
    pub action: String,
    pub module: String,
    pub payload: serde_json::Value,
    pub reasoning: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// Hash of the submitted body, to tell a replay from a conflicting reuse of a key.
    pub body_hash: String,
    pub state: IntentState,
    pub risk_score: RiskScore,
    #[serde(default)]
    pub reasons: Vec<Reason>,
    #[serde(default)]
    pub analysis: String,
    #[serde(default)]
    pub decided_by: Option<DecidedBy>,
    #[serde(default)]
    pub decision_reason: String,
    pub policy_version: String,
    pub version: u64,
    pub created_at: Millis,
    #[serde(default)]
    pub decided_at: Option<Millis>,
    #[serde(default)]
    pub expires_at: Option<Millis>,
    #[serde(default)]
    pub scorer: Option<ScorerInfo>,
    /// The W3C `traceparent` of the submission, so escalation and webhooks join its trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_parent: Option<String>,
    /// The approval receipt (a compact JWS, docs/receipts.md): set on APPROVED intents only,
    /// signed before the intent is stored so every reader and replica sees the same one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<String>,
}

/// A refused state change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("intent {id} is {from}; it cannot become {to}")]
pub struct IllegalTransition {
    pub id: IntentId,
    pub from: IntentState,
    pub to: IntentState,
}

impl Intent {
    pub fn is_terminal(&self) -> bool {
        self.state.is_terminal()
    }

    /// The next version of this intent in state `to`, decided by `by` for `why`.
    /// Pure: the store persists it with a compare-and-set on `self.version`.
    pub fn decide(
        &self,
        to: IntentState,
        by: DecidedBy,
        why: impl Into<String>,
        reason: Option<Reason>,
        at: Millis,
    ) -> Result<Intent, IllegalTransition> {
        if !self.state.can_become(to) {
            return Err(IllegalTransition {
                id: self.id.clone(),
                from: self.state,
                to,
            });
        }
        let mut next = self.clone();
        next.state = to;
        next.version += 1;
        next.decision_reason = why.into();
        next.reasons.extend(reason);
        if to.is_terminal() {
            next.decided_by = Some(by);
            next.decided_at = Some(at);
            next.expires_at = None;
        }
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(payload: serde_json::Value) -> IntentDraft {
        IntentDraft {
            agent_id: "a".into(),
            action: "PAY_INVOICE".into(),
            module: None,
            payload,
            reasoning: "r".into(),
            labels: BTreeMap::new(),
            idempotency_key: Some("k".into()),
        }
    }

    #[test]
    fn body_hash_ignores_key_order_but_not_values() {
        let a = draft(serde_json::json!({"amount": 10, "vendor": "AWS"}));
        let b = draft(serde_json::json!({"vendor": "AWS", "amount": 10}));
        let c = draft(serde_json::json!({"vendor": "AWS", "amount": 11}));
        assert_eq!(a.body_hash(), b.body_hash());
        assert_ne!(a.body_hash(), c.body_hash());
    }

    #[test]
    fn risk_score_cannot_exceed_100() {
        assert!(RiskScore::new(101).is_none());
        assert_eq!(RiskScore::saturating(400), RiskScore::MAX);
        assert_eq!(RiskScore::saturating(-3), RiskScore::MIN);
        assert!(serde_json::from_str::<RiskScore>("101").is_err());
    }

    #[test]
    fn intent_ids_must_be_uuids() {
        assert!(IntentId::parse("not-an-id").is_none());
        let id = IntentId::generate();
        assert_eq!(IntentId::parse(id.as_str()), Some(id));
    }
}
