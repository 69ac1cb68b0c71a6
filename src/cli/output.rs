//! Rendering intents and events for people (text) and scripts (`--json`).

use crate::grpc::convert::struct_to_json;
use crate::grpc::pb;

fn state_name(raw: i32) -> String {
    pb::IntentState::try_from(raw)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("INTENT_STATE_")
                .to_string()
        })
        .unwrap_or_else(|_| raw.to_string())
}

fn ts(t: &Option<prost_types::Timestamp>) -> String {
    t.as_ref()
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos as u32))
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

pub fn intent_json(i: &pb::Intent) -> serde_json::Value {
    serde_json::json!({
        "intent_id": i.intent_id,
        "agent_id": i.agent_id,
        "action": i.action,
        "module": i.module,
        "state": state_name(i.state),
        "risk_score": i.risk_score,
        "risk_level": pb::RiskLevel::try_from(i.risk_level).map(|l| l.as_str_name()).unwrap_or(""),
        "payload": i.payload.as_ref().map(struct_to_json),
        "reasoning": i.reasoning,
        "reasons": i.reasons.iter().map(|r| serde_json::json!({
            "code": r.code,
            "source": pb::ReasonSource::try_from(r.source).map(|s| s.as_str_name()).unwrap_or(""),
            "message": r.message,
            "rule": r.rule,
        })).collect::<Vec<_>>(),
        "analysis": i.analysis,
        "decided_by": i.decided_by.as_ref().map(|d| serde_json::json!({
            "kind": pb::DeciderKind::try_from(d.kind).map(|k| k.as_str_name()).unwrap_or(""),
            "approver": d.approver,
            "channel": d.channel,
        })),
        "decision_reason": i.decision_reason,
        "policy_version": i.policy_version,
        "version": i.version,
        "created_at": ts(&i.created_at),
        "decided_at": ts(&i.decided_at),
        "expires_at": ts(&i.expires_at),
        "labels": i.labels,
    })
}

pub fn print_intent(i: &pb::Intent, json: bool) {
    if json {
        println!("{}", intent_json(i));
        return;
    }
    println!("intent    {}", i.intent_id);
    println!("state     {}  (version {})", state_name(i.state), i.version);
    println!(
        "agent     {}  action {}  module {}",
        i.agent_id,
        i.action,
        if i.module.is_empty() { "-" } else { &i.module }
    );
    println!("risk      {}/100", i.risk_score);
    if !i.analysis.is_empty() {
        println!("analysis  {}", i.analysis);
    }
    for r in &i.reasons {
        println!("reason    {}: {}", r.code, r.message);
    }
    if let Some(d) = &i.decided_by {
        let kind = pb::DeciderKind::try_from(d.kind)
            .map(|k| k.as_str_name())
            .unwrap_or("");
        println!(
            "decided   by {}{} via {} at {}",
            kind.trim_start_matches("DECIDER_KIND_"),
            if d.approver.is_empty() {
                String::new()
            } else {
                format!(" ({})", d.approver)
            },
            d.channel,
            ts(&i.decided_at)
        );
    }
    if i.expires_at.is_some() {
        println!("expires   {}", ts(&i.expires_at));
    }
    println!("policy    {}", i.policy_version);
}

pub fn print_intents(intents: &[pb::Intent], next: &str, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::json!({
                "intents": intents.iter().map(intent_json).collect::<Vec<_>>(),
                "next_page_token": next,
            })
        );
        return;
    }
    println!(
        "{:<36}  {:<16}  {:>4}  {:<16}  {:<14}  AGENT",
        "INTENT", "STATE", "RISK", "ACTION", "MODULE"
    );
    for i in intents {
        println!(
            "{:<36}  {:<16}  {:>4}  {:<16}  {:<14}  {}",
            i.intent_id,
            state_name(i.state),
            i.risk_score,
            i.action,
            if i.module.is_empty() { "-" } else { &i.module },
            i.agent_id
        );
    }
    if !next.is_empty() {
        println!("more: --page-token {next}");
    }
}

pub fn print_event(e: &pb::DecisionEvent, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::json!({
                "intent_id": e.intent_id,
                "state": state_name(e.state),
                "version": e.version,
                "detail": e.detail,
                "terminal": e.terminal,
                "at": ts(&e.at),
                "intent": e.intent.as_ref().map(intent_json),
            })
        );
        return;
    }
    let who = e
        .intent
        .as_ref()
        .and_then(|i| i.decided_by.as_ref())
        .filter(|_| e.terminal)
        .map(|d| {
            format!(
                " by {} via {}",
                if d.approver.is_empty() {
                    "policy/system"
                } else {
                    &d.approver
                },
                d.channel
            )
        })
        .unwrap_or_default();
    if e.detail.is_empty() {
        println!(
            "{}  {}  {}  v{}{}",
            ts(&e.at),
            e.intent_id,
            state_name(e.state),
            e.version,
            who
        );
    } else {
        println!(
            "{}  {}  {}  v{}  {}",
            ts(&e.at),
            e.intent_id,
            state_name(e.state),
            e.version,
            e.detail
        );
    }
}
