//! What the MCP client is told: the upstream's result with Sentinel's `_meta`, or an error
//! result (`isError: true`) saying who refused the call and why, that it is still waiting
//! for a human, or that the gateway could not be asked.

use rmcp::model::{CallToolResult, ContentBlock, MetaObject};
use tonic::{Code, Status};

use crate::grpc::pb;
use crate::grpc::pb::{DeciderKind, IntentState};

/// The `_meta` key under which results carry the intent.
pub const META_KEY: &str = "sentinel";
/// The key in `_meta.sentinel` holding an approved call's receipt.
pub const RECEIPT_KEY: &str = "receipt";

fn state_name(state: i32) -> &'static str {
    match IntentState::try_from(state) {
        Ok(IntentState::Analyzing) => "ANALYZING",
        Ok(IntentState::PendingApproval) => "PENDING_APPROVAL",
        Ok(IntentState::Approved) => "APPROVED",
        Ok(IntentState::Declined) => "DECLINED",
        Ok(IntentState::Expired) => "EXPIRED",
        Ok(IntentState::Cancelled) => "CANCELLED",
        _ => "UNKNOWN",
    }
}

/// `_meta.sentinel`: the intent's id, state, action and risk, and on an approval its
/// receipt (the compact JWS the upstream tool's caller can verify against the gateway's
/// JWKS).
fn sentinel_meta(intent: &pb::Intent) -> serde_json::Value {
    let mut meta = serde_json::Map::with_capacity(5);
    meta.insert("intent_id".into(), intent.intent_id.as_str().into());
    meta.insert("state".into(), state_name(intent.state).into());
    meta.insert("action".into(), intent.action.as_str().into());
    meta.insert("risk_score".into(), intent.risk_score.into());
    if !intent.receipt.is_empty() {
        meta.insert(RECEIPT_KEY.into(), intent.receipt.as_str().into());
    }
    serde_json::Value::Object(meta)
}

fn put_meta(meta: &mut Option<MetaObject>, intent: &pb::Intent) {
    meta.get_or_insert_with(MetaObject::new)
        .insert(META_KEY.to_string(), sentinel_meta(intent));
}

/// The upstream's answer to an approved call, with the intent and its receipt in
/// `_meta.sentinel`.
pub fn forwarded(mut result: CallToolResult, intent: &pb::Intent) -> CallToolResult {
    put_meta(&mut result.meta, intent);
    result
}

fn error(text: String, intent: Option<&pb::Intent>) -> CallToolResult {
    let mut result = CallToolResult::error(vec![ContentBlock::text(text)]);
    if let Some(intent) = intent {
        put_meta(&mut result.meta, intent);
    }
    result
}

/// Who made the decision, in words.
fn decider(intent: &pb::Intent) -> String {
    let by = intent.decided_by.clone().unwrap_or_default();
    match DeciderKind::try_from(by.kind) {
        Ok(DeciderKind::Policy) => "Sentinel's policy".to_string(),
        Ok(DeciderKind::Scorer) => "Sentinel's risk scorer".to_string(),
        Ok(DeciderKind::Human) => match (by.approver.is_empty(), by.channel.is_empty()) {
            (false, false) => format!("{} (via {})", by.approver, by.channel),
            (false, true) => by.approver,
            (true, false) => format!("an approver (via {})", by.channel),
            (true, true) => "an approver".to_string(),
        },
        Ok(DeciderKind::Timeout) => "nobody: the approval deadline passed".to_string(),
        Ok(DeciderKind::Agent) => "the agent (cancelled)".to_string(),
        _ => "Sentinel".to_string(),
    }
}

/// Why, in words: the decision's reason, else the reasons recorded on the intent.
fn why(intent: &pb::Intent) -> String {
    if !intent.decision_reason.is_empty() {
        return intent.decision_reason.clone();
    }
    let reasons: Vec<String> = intent
        .reasons
        .iter()
        .filter(|r| !r.message.is_empty())
        .map(|r| {
            if r.rule.is_empty() {
                r.message.clone()
            } else {
                format!("{} ({})", r.message, r.rule)
            }
        })
        .collect();
    if reasons.is_empty() {
        "no reason was given".to_string()
    } else {
        reasons.join("; ")
    }
}

/// A declined, expired or cancelled intent: the tool was not called.
pub fn refused(tool: &str, intent: &pb::Intent) -> CallToolResult {
    let verb = match IntentState::try_from(intent.state) {
        Ok(IntentState::Expired) => "did not approve in time",
        Ok(IntentState::Cancelled) => "cancelled",
        _ => "declined",
    };
    error(
        format!(
            "Sentinel {verb} this call to {tool} (action {}, risk {}): decided by {}. Why: {}. Intent {}. The tool was not called.",
            intent.action,
            intent.risk_score,
            decider(intent),
            why(intent),
            intent.intent_id
        ),
        Some(intent),
    )
}

/// `--wait-secs` passed: calling again with the same arguments resumes this intent.
pub fn still_pending(intent: &pb::Intent) -> CallToolResult {
    error(
        format!(
            "awaiting human approval, intent {}; call again with the same arguments to continue",
            intent.intent_id
        ),
        Some(intent),
    )
}

/// The client cancelled while the call waited.
pub fn cancelled_by_client(tool: &str, intent: &pb::Intent) -> CallToolResult {
    error(
        format!(
            "the call to {tool} was cancelled by the client; intent {} is {}. The tool was not called.",
            intent.intent_id,
            state_name(intent.state)
        ),
        Some(intent),
    )
}

/// The approval of this call was already used by a concurrent copy of it.
pub fn already_ran(tool: &str, intent: &pb::Intent) -> CallToolResult {
    error(
        format!(
            "intent {} approved one call to {tool}, and a concurrent copy of this call already ran it; call again for a new approval. The tool was not called again.",
            intent.intent_id
        ),
        Some(intent),
    )
}

/// An approval without its receipt. The gateway signs every approval before storing it, so
/// an unsigned one is not trusted: the call is refused (fail closed).
pub fn unsigned_approval(tool: &str, intent: &pb::Intent) -> CallToolResult {
    error(
        format!(
            "intent {} is APPROVED but the gateway returned no approval receipt, and every approval must carry one; failing closed: the call to {tool} was refused and not forwarded",
            intent.intent_id
        ),
        Some(intent),
    )
}

/// The gateway refused or could not be reached.
pub fn gateway_failed(addr: &str, tool: &str, status: &Status) -> CallToolResult {
    let text = match status.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Unknown | Code::Cancelled => format!(
            "the Sentinel gateway at {addr} is unreachable ({}), so the call to {tool} was refused and not forwarded",
            status.message()
        ),
        code => format!(
            "the Sentinel gateway refused the call to {tool} ({code:?}: {}); it was not forwarded",
            status.message()
        ),
    };
    error(text, None)
}

/// A local error (a bad credential header): the call is refused.
pub fn refused_locally(tool: &str, why: &str) -> CallToolResult {
    error(
        format!("the call to {tool} was refused: {why}; it was not forwarded"),
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intent(state: IntentState, kind: DeciderKind) -> pb::Intent {
        pb::Intent {
            intent_id: "0190-id".into(),
            action: "DROP_TABLE".into(),
            state: state as i32,
            risk_score: 100,
            decided_by: Some(pb::DecidedBy {
                kind: kind as i32,
                approver: "alice".into(),
                channel: "cli".into(),
            }),
            reasons: vec![pb::Reason {
                code: "drop_table_forbidden".into(),
                source: 0,
                message: "dropping tables is forbidden for agents".into(),
                rule: "ops.drop_table_forbidden".into(),
            }],
            ..Default::default()
        }
    }

    fn text(r: &CallToolResult) -> String {
        r.content[0].as_text().unwrap().text.clone()
    }

    #[test]
    fn a_refusal_says_who_and_why_and_is_an_error_with_the_intent_in_meta() {
        let r = refused(
            "drop_table",
            &intent(IntentState::Declined, DeciderKind::Policy),
        );
        assert_eq!(r.is_error, Some(true));
        let t = text(&r);
        assert!(t.contains("declined this call to drop_table"), "{t}");
        assert!(t.contains("Sentinel's policy"), "{t}");
        assert!(t.contains("dropping tables is forbidden for agents (ops.drop_table_forbidden)"));
        assert!(t.contains("The tool was not called"));
        let meta = r.meta.unwrap();
        assert_eq!(meta[META_KEY]["intent_id"], "0190-id");
        assert_eq!(meta[META_KEY]["state"], "DECLINED");

        let mut human = intent(IntentState::Declined, DeciderKind::Human);
        human.decision_reason = "not during the freeze".into();
        let t = text(&refused("drop_table", &human));
        assert!(
            t.contains("decided by alice (via cli). Why: not during the freeze."),
            "{t}"
        );
        let t = text(&refused(
            "x",
            &intent(IntentState::Expired, DeciderKind::Timeout),
        ));
        assert!(
            t.contains("did not approve in time") && t.contains("deadline passed"),
            "{t}"
        );
    }

    #[test]
    fn waiting_and_gateway_errors_are_error_results() {
        let r = still_pending(&intent(
            IntentState::PendingApproval,
            DeciderKind::Unspecified,
        ));
        assert_eq!(r.is_error, Some(true));
        assert_eq!(
            text(&r),
            "awaiting human approval, intent 0190-id; call again with the same arguments to continue"
        );
        let r = gateway_failed("http://gw", "t", &Status::unavailable("connection refused"));
        assert!(text(&r).contains("unreachable"), "{}", text(&r));
        let r = gateway_failed("http://gw", "t", &Status::unauthenticated("no key"));
        assert!(text(&r).contains("Unauthenticated: no key"), "{}", text(&r));
    }

    #[test]
    fn an_approved_result_carries_the_receipt_and_an_unsigned_approval_is_refused() {
        let mut approved = intent(IntentState::Approved, DeciderKind::Human);
        approved.receipt = "aGVhZGVy.Y2xhaW1z.c2ln".into();
        let upstream = CallToolResult::success(vec![ContentBlock::text("done")]);
        let r = forwarded(upstream, &approved);
        assert_ne!(r.is_error, Some(true));
        let meta = &r.meta.unwrap()[META_KEY];
        assert_eq!(meta[RECEIPT_KEY], "aGVhZGVy.Y2xhaW1z.c2ln");
        assert_eq!(meta["intent_id"], "0190-id");
        assert_eq!(meta["state"], "APPROVED");
        assert_eq!(meta["action"], "DROP_TABLE");
        assert_eq!(meta["risk_score"], 100);

        let declined = refused("t", &intent(IntentState::Declined, DeciderKind::Policy));
        let meta = &declined.meta.unwrap()[META_KEY];
        assert!(meta.get(RECEIPT_KEY).is_none(), "a refusal has no receipt");

        approved.receipt.clear();
        let r = unsigned_approval("drop_table", &approved);
        assert_eq!(r.is_error, Some(true));
        let t = text(&r);
        assert!(
            t.contains("no approval receipt") && t.contains("failing closed"),
            "{t}"
        );
        assert!(t.contains("refused and not forwarded"), "{t}");
    }
}
