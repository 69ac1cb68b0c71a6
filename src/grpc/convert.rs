//! Conversions between the wire types and the domain. Nothing else in the crate sees `pb`.

use prost_types::value::Kind;

use super::pb;
use crate::domain::{
    DecidedBy, DeciderKind, DecisionEvent, EventKind, Intent, IntentState, Millis, Reason,
    ReasonSource, RiskLevel,
};

/// JSON has no integer/float distinction on the wire in `Struct`: whole numbers that fit
/// exactly in an f64 become integers, so `amount: 500` compares as an int in policy.
pub fn value_to_json(value: &prost_types::Value) -> serde_json::Value {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(*b),
        Some(Kind::NumberValue(n)) => {
            const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
            if n.fract() == 0.0 && n.abs() <= EXACT {
                serde_json::Value::from(*n as i64)
            } else {
                serde_json::Number::from_f64(*n)
                    .map(serde_json::Value::Number)
                    // NaN and infinities have no JSON form; keep them visible as strings so
                    // validation rejects them by name rather than silently dropping them.
                    .unwrap_or_else(|| serde_json::Value::String(format!("{n}")))
            }
        }
        Some(Kind::StringValue(s)) => serde_json::Value::String(s.clone()),
        Some(Kind::ListValue(l)) => {
            serde_json::Value::Array(l.values.iter().map(value_to_json).collect())
        }
        Some(Kind::StructValue(s)) => struct_to_json(s),
    }
}

pub fn struct_to_json(s: &prost_types::Struct) -> serde_json::Value {
    serde_json::Value::Object(
        s.fields
            .iter()
            .map(|(k, v)| (k.clone(), value_to_json(v)))
            .collect(),
    )
}

/// Whether a Struct carries a non-finite number anywhere (JSON cannot express it).
pub fn has_non_finite(s: &prost_types::Struct) -> Option<String> {
    fn walk(path: String, v: &prost_types::Value) -> Option<String> {
        match &v.kind {
            Some(Kind::NumberValue(n)) if !n.is_finite() => Some(path),
            Some(Kind::StructValue(s)) => s
                .fields
                .iter()
                .find_map(|(k, v)| walk(format!("{path}.{k}"), v)),
            Some(Kind::ListValue(l)) => l
                .values
                .iter()
                .enumerate()
                .find_map(|(i, v)| walk(format!("{path}[{i}]"), v)),
            _ => None,
        }
    }
    s.fields
        .iter()
        .find_map(|(k, v)| walk(format!("payload.{k}"), v))
}

/// The same conversion the clients use, so a payload reaches the store exactly as the
/// client's receipt check will hash it.
pub use sentinel_receipt::{json_to_struct, json_to_value};

pub fn timestamp(ms: Millis) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

pub fn millis(ts: &prost_types::Timestamp) -> Millis {
    ts.seconds * 1000 + i64::from(ts.nanos) / 1_000_000
}

pub fn state_to_pb(s: IntentState) -> pb::IntentState {
    match s {
        IntentState::Analyzing => pb::IntentState::Analyzing,
        IntentState::PendingApproval => pb::IntentState::PendingApproval,
        IntentState::Approved => pb::IntentState::Approved,
        IntentState::Declined => pb::IntentState::Declined,
        IntentState::Expired => pb::IntentState::Expired,
        IntentState::Cancelled => pb::IntentState::Cancelled,
    }
}

/// `None` for UNSPECIFIED or a number this build does not know.
pub fn state_from_pb(raw: i32) -> Option<IntentState> {
    match pb::IntentState::try_from(raw).ok()? {
        pb::IntentState::Unspecified => None,
        pb::IntentState::Analyzing => Some(IntentState::Analyzing),
        pb::IntentState::PendingApproval => Some(IntentState::PendingApproval),
        pb::IntentState::Approved => Some(IntentState::Approved),
        pb::IntentState::Declined => Some(IntentState::Declined),
        pb::IntentState::Expired => Some(IntentState::Expired),
        pb::IntentState::Cancelled => Some(IntentState::Cancelled),
    }
}

fn level_to_pb(l: RiskLevel) -> pb::RiskLevel {
    match l {
        RiskLevel::Low => pb::RiskLevel::Low,
        RiskLevel::Medium => pb::RiskLevel::Medium,
        RiskLevel::High => pb::RiskLevel::High,
        RiskLevel::Critical => pb::RiskLevel::Critical,
    }
}

fn source_to_pb(s: ReasonSource) -> pb::ReasonSource {
    match s {
        ReasonSource::Policy => pb::ReasonSource::Policy,
        ReasonSource::Scorer => pb::ReasonSource::Scorer,
        ReasonSource::Human => pb::ReasonSource::Human,
        ReasonSource::System => pb::ReasonSource::System,
    }
}

fn kind_to_pb(k: DeciderKind) -> pb::DeciderKind {
    match k {
        DeciderKind::Policy => pb::DeciderKind::Policy,
        DeciderKind::Scorer => pb::DeciderKind::Scorer,
        DeciderKind::Human => pb::DeciderKind::Human,
        DeciderKind::Timeout => pb::DeciderKind::Timeout,
        DeciderKind::Agent => pb::DeciderKind::Agent,
        DeciderKind::System => pb::DeciderKind::System,
    }
}

fn reason_to_pb(r: &Reason) -> pb::Reason {
    pb::Reason {
        code: r.code.clone(),
        source: source_to_pb(r.source) as i32,
        message: r.message.clone(),
        rule: r.rule.clone(),
    }
}

fn decided_by_to_pb(d: &DecidedBy) -> pb::DecidedBy {
    pb::DecidedBy {
        kind: kind_to_pb(d.kind) as i32,
        approver: d.approver.clone(),
        channel: d.channel.as_str().to_string(),
    }
}

pub fn intent_to_pb(i: &Intent) -> pb::Intent {
    pb::Intent {
        intent_id: i.id.to_string(),
        agent_id: i.agent_id.clone(),
        action: i.action.clone(),
        module: i.module.clone(),
        payload: Some(json_to_struct(&i.payload)),
        reasoning: i.reasoning.clone(),
        state: state_to_pb(i.state) as i32,
        risk_score: u32::from(i.risk_score.get()),
        risk_level: level_to_pb(i.risk_score.level()) as i32,
        reasons: i.reasons.iter().map(reason_to_pb).collect(),
        analysis: i.analysis.clone(),
        decided_by: i.decided_by.as_ref().map(decided_by_to_pb),
        policy_version: i.policy_version.clone(),
        version: i.version,
        created_at: Some(timestamp(i.created_at)),
        decided_at: i.decided_at.map(timestamp),
        expires_at: i.expires_at.map(timestamp),
        labels: i
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        idempotency_key: i.idempotency_key.clone().unwrap_or_default(),
        decision_reason: i.decision_reason.clone(),
        scorer: i.scorer.as_ref().map(|s| pb::ScorerInfo {
            model: s.model.clone(),
            input_tokens: s.input_tokens,
            output_tokens: s.output_tokens,
            cached: s.cached,
        }),
        receipt: i.receipt.clone().unwrap_or_default(),
    }
}

/// Events carry the slim intent (no payload, no reasoning; `GetIntent` has them): the
/// payload field is left unset rather than sent as an empty object.
pub fn event_to_pb(e: &DecisionEvent) -> pb::DecisionEvent {
    let mut intent = intent_to_pb(&e.intent);
    intent.payload = None;
    intent.reasoning.clear();
    pb::DecisionEvent {
        intent_id: e.intent.id.to_string(),
        state: state_to_pb(e.intent.state) as i32,
        version: e.intent.version,
        detail: if e.kind == EventKind::Progress {
            e.detail.clone()
        } else {
            String::new()
        },
        intent: Some(intent),
        terminal: e.is_terminal(),
        at: Some(timestamp(e.at)),
    }
}

/// One audit record as a history entry.
pub fn history_to_pb(r: &crate::gateway::HistoryRecord) -> pb::HistoryEntry {
    pb::HistoryEntry {
        at: Some(timestamp(r.at)),
        kind: r.event.clone(),
        state: r.state.map_or(pb::IntentState::Unspecified, state_to_pb) as i32,
        detail: r.detail.clone(),
        actor: r.actor.clone(),
        channel: r.channel.clone(),
        attributes: r
            .version
            .map(|v| ("version".to_string(), v.to_string()))
            .into_iter()
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_numbers_become_integers() {
        let v = prost_types::Value {
            kind: Some(Kind::NumberValue(500.0)),
        };
        assert_eq!(value_to_json(&v), serde_json::json!(500));
        let v = prost_types::Value {
            kind: Some(Kind::NumberValue(499.5)),
        };
        assert_eq!(value_to_json(&v), serde_json::json!(499.5));
    }

    #[test]
    fn timestamps_round_trip() {
        for ms in [0, 1_700_000_000_123, -1] {
            assert_eq!(millis(&timestamp(ms)), ms);
        }
    }
}
