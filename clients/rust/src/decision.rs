//! What `guard` returns: a plain view of a decided intent.

use crate::proto;

/// An intent's state. Only [`State::Approved`] approves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Analyzing,
    PendingApproval,
    Approved,
    Declined,
    Expired,
    Cancelled,
    /// A value this client does not know (a newer gateway); never approves.
    Unknown(i32),
}

impl State {
    pub(crate) fn from_pb(raw: i32) -> State {
        use proto::IntentState as S;
        match S::try_from(raw) {
            Ok(S::Analyzing) => State::Analyzing,
            Ok(S::PendingApproval) => State::PendingApproval,
            Ok(S::Approved) => State::Approved,
            Ok(S::Declined) => State::Declined,
            Ok(S::Expired) => State::Expired,
            Ok(S::Cancelled) => State::Cancelled,
            _ => State::Unknown(raw),
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            State::Approved | State::Declined | State::Expired | State::Cancelled
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            State::Analyzing => "ANALYZING",
            State::PendingApproval => "PENDING_APPROVAL",
            State::Approved => "APPROVED",
            State::Declined => "DECLINED",
            State::Expired => "EXPIRED",
            State::Cancelled => "CANCELLED",
            State::Unknown(_) => "UNKNOWN",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the risk or the decision is what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    pub code: String,
    /// `POLICY`, `SCORER`, `HUMAN` or `SYSTEM`.
    pub source: String,
    pub message: String,
    pub rule: String,
}

/// Who or what decided: `kind` is `POLICY`, `SCORER`, `HUMAN`, `TIMEOUT`, `AGENT` or `SYSTEM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecidedBy {
    pub kind: String,
    pub approver: String,
    pub channel: String,
}

/// A decided intent. `approved` is true only for [`State::Approved`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub approved: bool,
    pub state: State,
    pub intent_id: String,
    pub risk_score: u32,
    pub analysis: String,
    pub reasons: Vec<Reason>,
    pub decided_by: Option<DecidedBy>,
    /// The approval receipt (compact JWS); set only when approved.
    pub receipt: Option<String>,
    pub decision_reason: String,
    /// The idempotency key matched an earlier identical submission.
    pub replayed: bool,
}

fn suffix(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix).unwrap_or(name).to_string()
}

impl Decision {
    pub(crate) fn from_intent(intent: &proto::Intent, replayed: bool) -> Decision {
        let state = State::from_pb(intent.state);
        Decision {
            approved: state == State::Approved,
            state,
            intent_id: intent.intent_id.clone(),
            risk_score: intent.risk_score,
            analysis: intent.analysis.clone(),
            reasons: intent
                .reasons
                .iter()
                .map(|r| Reason {
                    code: r.code.clone(),
                    source: proto::ReasonSource::try_from(r.source)
                        .map(|s| suffix(s.as_str_name(), "REASON_SOURCE_"))
                        .unwrap_or_default(),
                    message: r.message.clone(),
                    rule: r.rule.clone(),
                })
                .collect(),
            decided_by: intent.decided_by.as_ref().map(|d| DecidedBy {
                kind: proto::DeciderKind::try_from(d.kind)
                    .map(|k| suffix(k.as_str_name(), "DECIDER_KIND_"))
                    .unwrap_or_default(),
                approver: d.approver.clone(),
                channel: d.channel.clone(),
            }),
            receipt: (!intent.receipt.is_empty()).then(|| intent.receipt.clone()),
            decision_reason: intent.decision_reason.clone(),
            replayed,
        }
    }
}
