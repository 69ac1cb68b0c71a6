//! Rendering intents and events for people (text) and scripts (`--json`), and the one way
//! the CLI writes to stdout.
//!
//! Every stdout line goes through [`outln!`]: a reader that went away (`sentinel list | head
//! -1`) ends the process quietly with status 141, what a shell reports for a command stopped
//! by SIGPIPE. Not 0: `submit` exits 0 only for an approval, and a script with `pipefail` must
//! not read a lost output as one. `println!` would panic instead (Rust ignores SIGPIPE).

use std::io::Write as _;

use crate::grpc::convert::struct_to_json;
use crate::grpc::pb;

/// The exit status of a CLI whose stdout was closed by its reader.
pub const CLOSED_STDOUT: u8 = 141;

/// `println!` for the CLI: see the module documentation.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::output::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}
pub(crate) use outln;

/// Writes to stdout; a closed or failing stdout ends the process (see [`stdout_failed`]).
pub fn write_stdout(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        stdout_failed(&e);
    }
}

/// Whether an error (anywhere in its chain) is a write to a reader that went away.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    let broken = Some(std::io::ErrorKind::BrokenPipe);
    e.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().map(|io| io.kind()) == broken
            // serde_json hides the io::Error it wraps from the source chain.
            || cause
                .downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind)
                == broken
    })
}

/// Nothing more can be shown: exit quietly on a closed pipe, with a short error otherwise.
pub fn stdout_failed(e: &std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(i32::from(CLOSED_STDOUT));
    }
    eprintln!("error: cannot write to stdout: {e}");
    std::process::exit(1);
}

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
        "receipt": (!i.receipt.is_empty()).then_some(&i.receipt),
    })
}

pub fn print_intent(i: &pb::Intent, json: bool) {
    if json {
        outln!("{}", intent_json(i));
        return;
    }
    outln!("intent    {}", i.intent_id);
    outln!("state     {}  (version {})", state_name(i.state), i.version);
    outln!(
        "agent     {}  action {}  module {}",
        i.agent_id,
        i.action,
        if i.module.is_empty() { "-" } else { &i.module }
    );
    outln!("risk      {}/100", i.risk_score);
    if !i.analysis.is_empty() {
        outln!("analysis  {}", i.analysis);
    }
    for r in &i.reasons {
        outln!("reason    {}: {}", r.code, r.message);
    }
    if let Some(d) = &i.decided_by {
        let kind = pb::DeciderKind::try_from(d.kind)
            .map(|k| k.as_str_name())
            .unwrap_or("");
        outln!(
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
        outln!("expires   {}", ts(&i.expires_at));
    }
    outln!("policy    {}", i.policy_version);
    if !i.receipt.is_empty() {
        outln!("receipt   {}", i.receipt);
    }
}

pub fn print_intents(intents: &[pb::Intent], next: &str, json: bool) {
    if json {
        outln!(
            "{}",
            serde_json::json!({
                "intents": intents.iter().map(intent_json).collect::<Vec<_>>(),
                "next_page_token": next,
            })
        );
        return;
    }
    outln!(
        "{:<36}  {:<16}  {:>4}  {:<16}  {:<14}  AGENT",
        "INTENT",
        "STATE",
        "RISK",
        "ACTION",
        "MODULE"
    );
    for i in intents {
        outln!(
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
        outln!("more: --page-token {next}");
    }
}

/// One line per history entry: time, kind, state, who via what, and the detail.
pub fn print_history(entries: &[pb::HistoryEntry], json: bool) {
    if json {
        let rows: Vec<_> = entries
            .iter()
            .map(|e| {
                serde_json::json!({
                    "at": ts(&e.at),
                    "kind": e.kind,
                    "state": state_name(e.state),
                    "detail": e.detail,
                    "actor": e.actor,
                    "channel": e.channel,
                    "attributes": e.attributes,
                })
            })
            .collect();
        outln!("{}", serde_json::json!({ "entries": rows }));
        return;
    }
    for e in entries {
        outln!(
            "{}  {:<10}  {:<16}  {} via {}  {}",
            ts(&e.at),
            e.kind,
            state_name(e.state),
            e.actor,
            e.channel,
            e.detail
        );
    }
}

pub fn print_event(e: &pb::DecisionEvent, json: bool) {
    if json {
        outln!(
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
        outln!(
            "{}  {}  {}  v{}{}",
            ts(&e.at),
            e.intent_id,
            state_name(e.state),
            e.version,
            who
        );
    } else {
        outln!(
            "{}  {}  {}  v{}  {}",
            ts(&e.at),
            e.intent_id,
            state_name(e.state),
            e.version,
            e.detail
        );
    }
}
