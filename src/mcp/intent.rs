//! A `tools/call` as an intent: the action (the pack's `[[mcp.tools]]` mapping, else the tool
//! name in upper snake case), the arguments as payload, the request's `_meta` context as
//! reasoning, `mcp.*` labels, and an idempotency key from the session, the tool and the
//! canonical (RFC 8785) arguments, so a client's retry finds the intent it already made.

use std::collections::{BTreeMap, HashMap};

use sha2::{Digest, Sha256};

use crate::grpc::convert::json_to_struct;
use crate::grpc::pb;
use crate::policy::PolicyPack;
use crate::sync::lock;

/// Actions are identifiers of at most this many bytes (the gateway's limit).
const MAX_ACTION_BYTES: usize = 128;

/// `_meta` keys that change from one request to the next, or only restate the client's
/// lifecycle: left out of the reasoning, which must be the same on a retry.
const VOLATILE_META: [&str; 4] = ["progressToken", "traceparent", "tracestate", "baggage"];
const LIFECYCLE_META_PREFIX: &str = "io.modelcontextprotocol/";

/// What the proxy knows about one tool call.
pub struct ToolCall<'a> {
    pub tool: &'a str,
    pub arguments: &'a serde_json::Map<String, serde_json::Value>,
    /// The request's `_meta`.
    pub meta: &'a serde_json::Map<String, serde_json::Value>,
    /// The upstream server's name (from its `initialize` answer).
    pub server: &'a str,
    /// The MCP session: one per stdio proxy process, the `Mcp-Session-Id` over HTTP.
    pub session: &'a str,
}

/// The action a tool call becomes.
pub fn action_for(pack: &PolicyPack, tool: &str) -> String {
    pack.mcp_action(tool)
        .map(str::to_string)
        .unwrap_or_else(|| upper_snake(tool))
}

/// `pay_invoice`, `payInvoice`, `pay-invoice` and `fs.pay invoice` all become `PAY_INVOICE`
/// (`FS_PAY_INVOICE`): letters and digits kept, everything else one underscore, a word break
/// before an upper-case letter that follows a lower-case one.
pub fn upper_snake(tool: &str) -> String {
    let mut out = String::with_capacity(tool.len() + 4);
    let mut prev_lower = false;
    for c in tool.chars() {
        if c.is_ascii_alphanumeric() {
            if c.is_ascii_uppercase() && prev_lower && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_uppercase());
            prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        } else {
            if !out.is_empty() && !out.ends_with('_') {
                out.push('_');
            }
            prev_lower = false;
        }
    }
    let mut out = out.trim_end_matches('_').to_string();
    out.truncate(MAX_ACTION_BYTES);
    if out.is_empty() {
        // A name with no letters or digits still becomes an action: one no module owns, so
        // it escalates.
        out.push_str("MCP_UNNAMED_TOOL");
    }
    out
}

/// The arguments in RFC 8785 (JCS) form: sorted keys, no whitespace, ECMAScript numbers.
pub fn canonical_arguments(arguments: &serde_json::Map<String, serde_json::Value>) -> Vec<u8> {
    // A `serde_json::Value` holds no NaN or infinity, the only values JCS cannot write.
    serde_json_canonicalizer::to_vec(arguments).unwrap_or_default()
}

/// Identifies "this tool with these arguments in this session", whatever the key order.
pub fn call_fingerprint(call: &ToolCall<'_>) -> String {
    let mut h = Sha256::new();
    for part in [call.session.as_bytes(), call.tool.as_bytes()] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.update(canonical_arguments(call.arguments));
    hex::encode(h.finalize())
}

/// The idempotency key of the `generation`-th execution of a fingerprint.
pub fn idempotency_key(fingerprint: &str, generation: u64) -> String {
    format!("mcp:{}:{generation}", &fingerprint[..48])
}

/// How many times each call fingerprint was approved and executed. A repeat of a call that
/// already ran is a new action and needs a new intent (a new approval); a retry of one that
/// is pending, declined or expired keeps the same key and so finds the same intent.
#[derive(Default)]
pub struct Generations(std::sync::Mutex<HashMap<String, u64>>);

impl Generations {
    pub fn current(&self, fingerprint: &str) -> u64 {
        lock(&self.0).get(fingerprint).copied().unwrap_or(0)
    }

    /// Claims `generation` of a fingerprint for execution: true once, for the first caller.
    /// Two concurrent copies of one call (a client retrying while the first is still
    /// waiting) share one intent, and its one approval runs the tool once.
    pub fn claim(&self, fingerprint: &str, generation: u64) -> bool {
        let mut map = lock(&self.0);
        let next = map.entry(fingerprint.to_string()).or_insert(0);
        if *next == generation {
            *next += 1;
            true
        } else {
            false
        }
    }
}

/// The agent-visible context of the call: `_meta` without its per-request and lifecycle
/// keys, or a plain sentence when nothing is left.
pub fn reasoning(call: &ToolCall<'_>) -> String {
    let context: BTreeMap<&str, &serde_json::Value> = call
        .meta
        .iter()
        .filter(|(k, _)| !VOLATILE_META.contains(&k.as_str()))
        .filter(|(k, _)| !k.starts_with(LIFECYCLE_META_PREFIX))
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    let base = format!("MCP tools/call of {} on server {}", call.tool, call.server);
    if context.is_empty() {
        base
    } else {
        let json = serde_json_canonicalizer::to_string(&context).unwrap_or_default();
        format!("{base}; client context (_meta): {json}")
    }
}

/// The `SubmitIntent` request for a call.
pub fn submit_request(
    call: &ToolCall<'_>,
    agent: &str,
    action: String,
    idempotency_key: String,
) -> pb::SubmitIntentRequest {
    let labels = [
        ("mcp.server", call.server),
        ("mcp.tool", call.tool),
        ("mcp.session", call.session),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    pb::SubmitIntentRequest {
        agent_id: agent.to_string(),
        action,
        payload: Some(json_to_struct(&serde_json::Value::Object(
            call.arguments.clone(),
        ))),
        reasoning: reasoning(call),
        idempotency_key,
        labels,
        module: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn tool_names_become_upper_snake_actions_unless_the_pack_maps_them() {
        assert_eq!(upper_snake("pay_invoice"), "PAY_INVOICE");
        assert_eq!(upper_snake("payInvoice"), "PAY_INVOICE");
        assert_eq!(upper_snake("pay-invoice"), "PAY_INVOICE");
        assert_eq!(upper_snake("fs.read  file"), "FS_READ_FILE");
        assert_eq!(upper_snake("v2Export"), "V2_EXPORT");
        assert_eq!(upper_snake("--"), "MCP_UNNAMED_TOOL");
        assert_eq!(upper_snake(&"a".repeat(300)).len(), MAX_ACTION_BYTES);
        let pack = PolicyPack::parse(
            "name = \"p\"\n[[mcp.tools]]\ntool = \"wire\"\naction = \"PAY_INVOICE\"\n",
        )
        .unwrap();
        assert_eq!(action_for(&pack, "wire"), "PAY_INVOICE");
        assert_eq!(action_for(&pack, "drop_table"), "DROP_TABLE");
    }

    #[test]
    fn the_key_ignores_argument_order_and_whitespace_but_not_values_tool_or_session() {
        let meta = serde_json::Map::new();
        let a = obj(json!({"table": "users", "opts": {"b": 1, "a": 2.0}}));
        let b = obj(json!({"opts": {"a": 2, "b": 1}, "table": "users"}));
        let c = obj(json!({"table": "orders", "opts": {"a": 2, "b": 1}}));
        let call = |tool, args, session| ToolCall {
            tool,
            arguments: args,
            meta: &meta,
            server: "s",
            session,
        };
        let fa = call_fingerprint(&call("drop_table", &a, "s1"));
        assert_eq!(fa, call_fingerprint(&call("drop_table", &b, "s1")));
        assert_ne!(fa, call_fingerprint(&call("drop_table", &c, "s1")));
        assert_ne!(fa, call_fingerprint(&call("truncate", &a, "s1")));
        assert_ne!(fa, call_fingerprint(&call("drop_table", &a, "s2")));
        assert_eq!(
            canonical_arguments(&a),
            br#"{"opts":{"a":2,"b":1},"table":"users"}"#.to_vec()
        );
        let key = idempotency_key(&fa, 0);
        assert!(key.starts_with("mcp:") && key.ends_with(":0") && key.len() <= 128);
        assert_ne!(key, idempotency_key(&fa, 1));
    }

    #[test]
    fn a_generation_is_claimed_once_when_a_call_runs() {
        let g = Generations::default();
        assert_eq!(g.current("f"), 0);
        assert!(g.claim("f", 0));
        assert!(!g.claim("f", 0), "one approval runs the tool once");
        assert_eq!(g.current("f"), 1);
        assert_eq!(g.current("other"), 0);
    }

    #[test]
    fn the_request_carries_arguments_labels_and_stable_reasoning() {
        let args = obj(json!({"user_id": "u-7"}));
        let meta = obj(json!({
            "progressToken": 7,
            "traceparent": "00-abc",
            "io.modelcontextprotocol/clientInfo": {"name": "c"},
            "ticket": "OPS-12"
        }));
        let call = ToolCall {
            tool: "delete_user",
            arguments: &args,
            meta: &meta,
            server: "db",
            session: "s1",
        };
        let r = submit_request(&call, "bot", "DELETE_USER".into(), "k".into());
        assert_eq!(r.action, "DELETE_USER");
        assert_eq!(r.agent_id, "bot");
        assert_eq!(r.labels["mcp.server"], "db");
        assert_eq!(r.labels["mcp.tool"], "delete_user");
        assert_eq!(r.labels["mcp.session"], "s1");
        assert_eq!(
            r.reasoning,
            r#"MCP tools/call of delete_user on server db; client context (_meta): {"ticket":"OPS-12"}"#
        );
        let bare = ToolCall {
            meta: &serde_json::Map::new(),
            ..call
        };
        assert_eq!(
            reasoning(&bare),
            "MCP tools/call of delete_user on server db"
        );
    }
}
