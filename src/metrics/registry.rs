//! The one registry: every metric registered once, with its HELP, when first touched.

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::handles::Handles;
use super::labels::{Labels, Listener, One, Refusal, StoreOp, Two, DECIDERS};
use crate::domain::IntentState;

/// Latencies of calls that take about a millisecond (RPCs, store operations, the scorer).
const CALL_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// Policy evaluation: tens of microseconds.
const POLICY_BUCKETS: [f64; 11] = [
    0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
];
/// Submission to decision: instant for policy, seconds for the scorer, minutes for humans.
const DECISION_BUCKETS: [f64; 14] = [
    0.001, 0.01, 0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

pub(super) fn call_histogram() -> Histogram {
    Histogram::new(CALL_BUCKETS)
}

fn decision_histogram() -> Histogram {
    Histogram::new(DECISION_BUCKETS)
}

pub(super) struct Metrics {
    pub(super) registry: Registry,
    /// What `GET /metrics` shows while metrics are off: the build and the up gauges.
    pub(super) essentials: Registry,
    /// `sentinel_intents_total`, one handle per (state, decided_by).
    pub(super) intents: Vec<Counter>,
    pub(super) webhooks: Family<Labels, Counter>,
    pub(super) telnyx_requests: Family<Labels, Counter>,
    pub(super) escalation_steps: Family<Labels, Counter>,
    pub(super) escalation_decisions: Family<Labels, Counter>,
    pub(super) connections_open: [Gauge; 2],
    pub(super) connections_refused: [Counter; 4],
    /// By method and status code: 8 methods, each seeing a handful of codes.
    pub(super) rpc_duration: Handles<Two, 48>,
    pub(super) policy_eval: Histogram,
    pub(super) scorer_duration: Handles<One, 16>,
    pub(super) store_op_duration: Handles<One, { StoreOp::COUNT }>,
    pub(super) time_to_decision: Handles<One, { DECIDERS.len() }>,
    pub(super) intents_pending: Gauge,
    pub(super) next_deadline: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub(super) scorer_breaker_open: Gauge,
    pub(super) store_up: Gauge,
}

pub(super) static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::build);

impl Metrics {
    fn build() -> Metrics {
        let mut r = Registry::default();
        let mut essentials = Registry::default();

        let intents_family = Family::<Two, Counter>::default();
        let mut intents = Vec::with_capacity(IntentState::ALL.len() * DECIDERS.len());
        for state in IntentState::ALL {
            for (_, decider) in DECIDERS {
                intents.push(
                    intents_family
                        .get_or_create_owned(&[("state", state.as_str()), ("decided_by", decider)]),
                );
            }
        }
        r.register(
            "sentinel_intents",
            "Intents that reached a state on this replica, by state and decider",
            intents_family,
        );

        let webhooks = registered(
            &mut r,
            "sentinel_webhooks",
            "Telnyx webhooks received, by outcome",
        );
        let telnyx_requests = registered(
            &mut r,
            "sentinel_telnyx_requests",
            "Telnyx API requests, by operation and outcome",
        );
        let escalation_steps = registered(
            &mut r,
            "sentinel_escalation_steps",
            "Escalation ladder steps, by step and outcome",
        );
        let escalation_decisions = registered(
            &mut r,
            "sentinel_escalation_decisions",
            "Human decisions taken through Telnyx, by channel and decision",
        );

        let open = Family::<One, Gauge>::default();
        let connections_open =
            Listener::ALL.map(|l| open.get_or_create_owned(&[("listener", l.as_str())]));
        r.register(
            "sentinel_connections_open",
            "Client connections open, by listener",
            open,
        );
        let refused = Family::<Two, Counter>::default();
        let connections_refused = [
            (Listener::Grpc, Refusal::Full),
            (Listener::Grpc, Refusal::Evicted),
            (Listener::Http, Refusal::Full),
            (Listener::Http, Refusal::Evicted),
        ]
        .map(|(l, reason)| {
            refused.get_or_create_owned(&[("listener", l.as_str()), ("reason", reason.as_str())])
        });
        r.register(
            "sentinel_connections_refused",
            "Client connections closed by the connection limits, by listener and reason",
            refused,
        );

        let up = Gauge::<i64>::default();
        up.set(1);
        let build_info = Family::<One, Gauge>::default();
        build_info
            .get_or_create(&[("version", env!("CARGO_PKG_VERSION"))])
            .set(1);
        let store_up = Gauge::default();
        store_up.set(1);
        for registry in [&mut r, &mut essentials] {
            registry.register("sentinel_up", "Whether the process is serving", up.clone());
            registry.register(
                "sentinel_build_info",
                "The running build (always 1), by version",
                build_info.clone(),
            );
            registry.register(
                "sentinel_store_up",
                "Whether the store answered the last readiness ping (1) or not (0)",
                store_up.clone(),
            );
        }

        let rpc_duration = histograms(
            &mut r,
            "sentinel_rpc_duration_seconds",
            "gRPC calls from request to response headers, by method and status code",
            call_histogram,
        );
        let policy_eval = Histogram::new(POLICY_BUCKETS);
        r.register(
            "sentinel_policy_eval_seconds",
            "Policy pack evaluations of a submission",
            policy_eval.clone(),
        );
        let scorer_duration = histograms(
            &mut r,
            "sentinel_scorer_duration_seconds",
            "Risk scorer calls, by outcome (ok or the failure's reason code)",
            call_histogram,
        );
        let store_op_duration = histograms(
            &mut r,
            "sentinel_store_op_duration_seconds",
            "Store operations the gateway makes, by operation",
            call_histogram,
        );
        let time_to_decision = histograms(
            &mut r,
            "sentinel_time_to_decision_seconds",
            "Submission to terminal state, for decisions this replica made, by decider",
            decision_histogram,
        );

        let intents_pending = Gauge::default();
        r.register(
            "sentinel_intents_pending",
            "Intents waiting for a human decision in the whole store, refreshed every few seconds",
            intents_pending.clone(),
        );
        let next_deadline = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        r.register(
            "sentinel_intents_pending_next_deadline_seconds",
            "Seconds until the earliest pending deadline in the store (0 when none or passed)",
            next_deadline.clone(),
        );
        let scorer_breaker_open = Gauge::default();
        r.register(
            "sentinel_scorer_breaker_open",
            "Whether the risk scorer's circuit breaker is open (1) or closed (0)",
            scorer_breaker_open.clone(),
        );

        // Label sets known in advance start at zero, so every family is in the exposition
        // (with its HELP and TYPE) before its first event.
        for outcome in ["accepted", "rejected", "duplicate"] {
            webhooks.get_or_create_owned(&vec![("outcome", outcome.to_string())]);
        }
        telnyx_requests.get_or_create_owned(&vec![("op", "dial".into()), ("outcome", "ok".into())]);
        for (step, outcome) in [
            ("call", "dialled"),
            ("call", "failed"),
            ("sms", "sent"),
            ("sms", "failed"),
        ] {
            escalation_steps
                .get_or_create_owned(&vec![("step", step.into()), ("outcome", outcome.into())]);
        }
        for channel in ["voice", "sms"] {
            for decision in ["approved", "declined"] {
                escalation_decisions.get_or_create_owned(&vec![
                    ("channel", channel.into()),
                    ("decision", decision.into()),
                ]);
            }
        }

        Metrics {
            registry: r,
            essentials,
            intents,
            webhooks,
            telnyx_requests,
            escalation_steps,
            escalation_decisions,
            connections_open,
            connections_refused,
            rpc_duration,
            policy_eval,
            scorer_duration,
            store_op_duration,
            time_to_decision,
            intents_pending,
            next_deadline,
            scorer_breaker_open,
            store_up,
        }
    }
}

/// A labelled histogram registered under `name`, its handles kept in slots.
fn histograms<L, const N: usize>(
    r: &mut Registry,
    name: &str,
    help: &str,
    buckets: fn() -> Histogram,
) -> Handles<L, N>
where
    L: Copy + Eq + Hash + EncodeLabelSet + Debug + Send + Sync + 'static,
{
    let handles = Handles::new(buckets);
    r.register(name, help, handles.family.clone());
    handles
}

/// A labelled counter family registered under `name` (the `_total` suffix is the encoder's).
fn registered(r: &mut Registry, name: &str, help: &str) -> Family<Labels, Counter> {
    let family = Family::default();
    r.register(name, help, family.clone());
    family
}
