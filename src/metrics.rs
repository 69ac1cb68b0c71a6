//! Process-wide counters rendered as Prometheus text on `GET /metrics`.
//!
//! Two kinds: intent outcomes, counted on the SubmitIntent hot path and therefore a fixed
//! array of atomics (no lock); and a handful of labelled counters touched at webhook and
//! escalation rates (a few per second at most), where one mutex over a sorted map is plenty
//! and keeps the output stable for scrapers and tests.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};

use crate::domain::{DeciderKind, IntentState};

const DECIDERS: [(Option<DeciderKind>, &str); 7] = [
    (None, "none"),
    (Some(DeciderKind::Policy), "policy"),
    (Some(DeciderKind::Scorer), "scorer"),
    (Some(DeciderKind::Human), "human"),
    (Some(DeciderKind::Timeout), "timeout"),
    (Some(DeciderKind::Agent), "agent"),
    (Some(DeciderKind::System), "system"),
];

/// Intents that reached a state on this replica, by state and decider.
static INTENTS: [AtomicU64; IntentState::ALL.len() * DECIDERS.len()] =
    [const { AtomicU64::new(0) }; IntentState::ALL.len() * DECIDERS.len()];

fn intent_slot(state: IntentState, decider: Option<DeciderKind>) -> usize {
    let s = IntentState::ALL
        .iter()
        .position(|x| *x == state)
        .unwrap_or_default();
    let d = DECIDERS
        .iter()
        .position(|(k, _)| *k == decider)
        .unwrap_or_default();
    s * DECIDERS.len() + d
}

/// Counts an intent reaching `state` (created in it, or moved into it) on this replica.
pub fn intent_reached(state: IntentState, decider: Option<DeciderKind>) {
    INTENTS[intent_slot(state, decider)].fetch_add(1, Ordering::Relaxed);
}

type Key = (&'static str, Vec<(&'static str, String)>);

static COUNTERS: LazyLock<Mutex<BTreeMap<Key, u64>>> =
    LazyLock::new(|| Mutex::new(BTreeMap::new()));

const HELP: &[(&str, &str)] = &[
    (
        "sentinel_webhooks_total",
        "Telnyx webhooks received, by outcome",
    ),
    (
        "sentinel_telnyx_requests_total",
        "Telnyx API requests, by operation and outcome",
    ),
    (
        "sentinel_escalation_steps_total",
        "Escalation ladder steps, by step and outcome",
    ),
    (
        "sentinel_escalation_decisions_total",
        "Human decisions taken through Telnyx, by channel and decision",
    ),
];

/// Adds one to the counter `name` with `labels`.
pub fn inc(name: &'static str, labels: &[(&'static str, &str)]) {
    let key = (
        name,
        labels.iter().map(|(k, v)| (*k, v.to_string())).collect(),
    );
    let mut counters = COUNTERS.lock().unwrap_or_else(|e| e.into_inner());
    *counters.entry(key).or_insert(0) += 1;
}

/// The Prometheus text exposition (version 0.0.4) of every counter.
pub fn render() -> String {
    let counters = COUNTERS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut out = String::from(
        "# HELP sentinel_intents_total Intents that reached a state on this replica, by state and decider\n# TYPE sentinel_intents_total counter\n",
    );
    for state in IntentState::ALL {
        for (kind, label) in DECIDERS {
            let value = INTENTS[intent_slot(state, kind)].load(Ordering::Relaxed);
            if value > 0 {
                out.push_str(&format!(
                    "sentinel_intents_total{{state=\"{}\",decided_by=\"{label}\"}} {value}\n",
                    state.as_str()
                ));
            }
        }
    }
    for (name, help) in HELP {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n"));
        for ((n, labels), value) in counters.iter().filter(|((n, _), _)| n == name) {
            let labels: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            if labels.is_empty() {
                out.push_str(&format!("{n} {value}\n"));
            } else {
                out.push_str(&format!("{n}{{{}}} {value}\n", labels.join(",")));
            }
        }
    }
    render_connections(&mut out);
    out.push_str("# HELP sentinel_up Whether the process is serving\n# TYPE sentinel_up gauge\nsentinel_up 1\n");
    out
}

/// A listener whose connections are counted (`listener` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Grpc,
    Http,
}

impl Listener {
    const ALL: [Listener; 2] = [Listener::Grpc, Listener::Http];

    pub fn as_str(self) -> &'static str {
        match self {
            Listener::Grpc => "grpc",
            Listener::Http => "http",
        }
    }
}

/// Why the connection limits closed a connection (`reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A new connection found every slot held by connections that had sent a request.
    Full,
    /// A connection that had not yet sent a complete request was closed to make room.
    Evicted,
}

impl Refusal {
    const ALL: [Refusal; 2] = [Refusal::Full, Refusal::Evicted];

    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Full => "full",
            Refusal::Evicted => "evicted",
        }
    }
}

/// Open connections per listener; touched once per connection, so atomics, no lock.
static CONNECTIONS_OPEN: [AtomicI64; 2] = [const { AtomicI64::new(0) }; 2];
static CONNECTIONS_REFUSED: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

pub fn connection_opened(listener: Listener) {
    CONNECTIONS_OPEN[listener as usize].fetch_add(1, Ordering::Relaxed);
}

pub fn connection_closed(listener: Listener) {
    CONNECTIONS_OPEN[listener as usize].fetch_sub(1, Ordering::Relaxed);
}

pub fn connection_refused(listener: Listener, reason: Refusal) {
    CONNECTIONS_REFUSED[listener as usize * 2 + reason as usize].fetch_add(1, Ordering::Relaxed);
}

fn render_connections(out: &mut String) {
    out.push_str("# HELP sentinel_connections_open Client connections open, by listener\n# TYPE sentinel_connections_open gauge\n");
    for l in Listener::ALL {
        let value = CONNECTIONS_OPEN[l as usize].load(Ordering::Relaxed);
        out.push_str(&format!(
            "sentinel_connections_open{{listener=\"{}\"}} {value}\n",
            l.as_str()
        ));
    }
    out.push_str("# HELP sentinel_connections_refused_total Client connections closed by the connection limits, by listener and reason\n# TYPE sentinel_connections_refused_total counter\n");
    for l in Listener::ALL {
        for r in Refusal::ALL {
            let value = CONNECTIONS_REFUSED[l as usize * 2 + r as usize].load(Ordering::Relaxed);
            out.push_str(&format!(
                "sentinel_connections_refused_total{{listener=\"{}\",reason=\"{}\"}} {value}\n",
                l.as_str(),
                r.as_str()
            ));
        }
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_labelled_counters() {
        inc("sentinel_webhooks_total", &[("outcome", "test\"quoted")]);
        let text = render();
        assert!(text.contains("# TYPE sentinel_webhooks_total counter"));
        assert!(
            text.contains(r#"sentinel_webhooks_total{outcome="test\"quoted"}"#),
            "{text}"
        );
    }
}
