//! Process-wide metrics on one `prometheus-client` registry, rendered on `GET /metrics`.
//!
//! Every metric is registered once, with its HELP, when the registry is first touched, so a
//! metric cannot be counted and then left out of the exposition. Counters, gauges and
//! histograms are atomics (a histogram's buckets sit behind a short mutex of their own).
//!
//! The request path takes no lock and hashes no labels: the per-submission outcome counter is
//! a fixed array of handles created up front, and each labelled histogram keeps its handles in
//! fixed slots ([`Handles`]), filled from the `Family` the first time a label set is seen.
//! Other labelled counters (webhooks, Telnyx) sit in `Family` maps whose lookups take a
//! shared read lock and only write when a new label set first appears.
//!
//! `SENTINEL_METRICS=off` ([`set_enabled`]) turns every recording function into one relaxed
//! atomic load and a return, and does not read the clock for timings ([`Stopwatch`]); `GET
//! /metrics` then answers with the build and the up gauges only, so probes and scrapers keep
//! working.
//!
//! `render` answers in the OpenMetrics text format when the scraper asks for it and in the
//! Prometheus text format (0.0.4) otherwise.

use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, OnceLock};
use std::time::{Duration, Instant};

use prometheus_client::encoding::{prometheus_text, text as openmetrics_text};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

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

/// The position of a decider kind in [`DECIDERS`] (`none` for an unknown one).
fn decider_slot(decider: Option<DeciderKind>) -> usize {
    DECIDERS
        .iter()
        .position(|(k, _)| *k == decider)
        .unwrap_or_default()
}

/// Whether metrics are recorded (`SENTINEL_METRICS`); on until the configuration says off.
static ENABLED: AtomicBool = AtomicBool::new(true);

/// Turns recording on or off for the whole process. `App::build` calls it from the
/// configuration before anything is served; the registry is per process, like the setting.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether metrics are recorded: one relaxed load, cheap enough for every call site.
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// When a timed step began; empty while metrics are off, so an untimed replica does not even
/// read the clock.
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch(Option<Instant>);

impl Stopwatch {
    pub fn start() -> Stopwatch {
        Stopwatch(enabled().then(Instant::now))
    }

    fn seconds(self) -> Option<f64> {
        self.0.map(|started| started.elapsed().as_secs_f64())
    }
}

/// A store operation the gateway makes (`op` label of `sentinel_store_op_duration_seconds`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOp {
    Create,
    FindIdempotent,
    Get,
    List,
    CountIn,
    Transition,
    Progress,
    Watch,
    WatchAll,
    Due,
    NextDeadline,
    Audit,
    AuditRange,
    AuditOf,
    Ping,
}

impl StoreOp {
    const COUNT: usize = StoreOp::Ping as usize + 1;

    pub fn as_str(self) -> &'static str {
        match self {
            StoreOp::Create => "create",
            StoreOp::FindIdempotent => "find_idempotent",
            StoreOp::Get => "get",
            StoreOp::List => "list",
            StoreOp::CountIn => "count_in",
            StoreOp::Transition => "transition",
            StoreOp::Progress => "progress",
            StoreOp::Watch => "watch",
            StoreOp::WatchAll => "watch_all",
            StoreOp::Due => "due",
            StoreOp::NextDeadline => "next_deadline",
            StoreOp::Audit => "audit",
            StoreOp::AuditRange => "audit_range",
            StoreOp::AuditOf => "audit_of",
            StoreOp::Ping => "ping",
        }
    }
}

/// Labels of the counters touched at webhook and escalation rates, in call order.
type Labels = Vec<(&'static str, String)>;
/// A single label, e.g. `{op="create"}`.
type One = [(&'static str, &'static str); 1];
type Two = [(&'static str, &'static str); 2];

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

fn call_histogram() -> Histogram {
    Histogram::new(CALL_BUCKETS)
}

fn decision_histogram() -> Histogram {
    Histogram::new(DECISION_BUCKETS)
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// A labelled histogram whose handles live in `N` fixed slots, each filled once from the
/// family (which the registry encodes): recording compares a few `&'static str`s at most and
/// takes no lock. A series appears in the exposition when first recorded, as with a bare
/// `Family`, so unused label sets add no zero-valued buckets.
///
/// Label sets known in advance use a slot each ([`Handles::observe_at`]); those known only at
/// run time (RPC method and status, scorer outcome) take the first free slot
/// ([`Handles::observe`]), and past `N` distinct sets fall back to the family's lookup.
struct Handles<L, const N: usize> {
    family: HistogramFamily<L>,
    slots: [OnceLock<(L, Histogram)>; N],
}

impl<L: Copy + Eq + Hash, const N: usize> Handles<L, N> {
    fn new(constructor: fn() -> Histogram) -> Self {
        Handles {
            family: Family::new_with_constructor(constructor),
            slots: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    fn handle<'a>(&self, slot: &'a OnceLock<(L, Histogram)>, labels: L) -> Option<&'a Histogram> {
        let (held, histogram) =
            slot.get_or_init(|| (labels, self.family.get_or_create_owned(&labels)));
        (*held == labels).then_some(histogram)
    }

    /// Records under `labels`, whose own slot is `slot` (a label set known in advance).
    fn observe_at(&self, slot: usize, labels: L, value: f64) {
        match self.slots.get(slot).and_then(|s| self.handle(s, labels)) {
            Some(histogram) => histogram.observe(value),
            None => self.family.get_or_create(&labels).observe(value),
        }
    }

    /// Records under `labels`, in the slot they were first given or the first free one.
    fn observe(&self, labels: L, value: f64) {
        match self.slots.iter().find_map(|s| self.handle(s, labels)) {
            Some(histogram) => histogram.observe(value),
            None => self.family.get_or_create(&labels).observe(value),
        }
    }
}

struct Metrics {
    registry: Registry,
    /// What `GET /metrics` shows while metrics are off: the build and the up gauges.
    essentials: Registry,
    /// `sentinel_intents_total`, one handle per (state, decided_by).
    intents: Vec<Counter>,
    webhooks: Family<Labels, Counter>,
    telnyx_requests: Family<Labels, Counter>,
    escalation_steps: Family<Labels, Counter>,
    escalation_decisions: Family<Labels, Counter>,
    connections_open: [Gauge; 2],
    connections_refused: [Counter; 4],
    /// By method and status code: 8 methods, each seeing a handful of codes.
    rpc_duration: Handles<Two, 48>,
    policy_eval: Histogram,
    scorer_duration: Handles<One, 16>,
    store_op_duration: Handles<One, { StoreOp::COUNT }>,
    time_to_decision: Handles<One, { DECIDERS.len() }>,
    intents_pending: Gauge,
    next_deadline: Gauge<f64, std::sync::atomic::AtomicU64>,
    scorer_breaker_open: Gauge,
    store_up: Gauge,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::build);

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

        let rpc_duration = Handles::new(call_histogram);
        r.register(
            "sentinel_rpc_duration_seconds",
            "gRPC calls from request to response headers, by method and status code",
            rpc_duration.family.clone(),
        );
        let policy_eval = Histogram::new(POLICY_BUCKETS);
        r.register(
            "sentinel_policy_eval_seconds",
            "Policy pack evaluations of a submission",
            policy_eval.clone(),
        );
        let scorer_duration = Handles::new(call_histogram);
        r.register(
            "sentinel_scorer_duration_seconds",
            "Risk scorer calls, by outcome (ok or the failure's reason code)",
            scorer_duration.family.clone(),
        );
        let store_op_duration = Handles::new(call_histogram);
        r.register(
            "sentinel_store_op_duration_seconds",
            "Store operations the gateway makes, by operation",
            store_op_duration.family.clone(),
        );
        let time_to_decision = Handles::new(decision_histogram);
        r.register(
            "sentinel_time_to_decision_seconds",
            "Submission to terminal state, for decisions this replica made, by decider",
            time_to_decision.family.clone(),
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

/// A labelled counter family registered under `name` (the `_total` suffix is the encoder's).
fn registered(r: &mut Registry, name: &str, help: &str) -> Family<Labels, Counter> {
    let family = Family::default();
    r.register(name, help, family.clone());
    family
}

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
    if !enabled() {
        return;
    }
    if let Some(c) = METRICS.intents.get(intent_slot(state, decider)) {
        c.inc();
    }
}

/// Records how long an intent took from submission to the terminal state this replica gave it.
pub fn time_to_decision(decider: Option<DeciderKind>, millis: i64) {
    if !enabled() {
        return;
    }
    let slot = decider_slot(decider);
    METRICS.time_to_decision.observe_at(
        slot,
        [("decided_by", DECIDERS[slot].1)],
        millis.max(0) as f64 / 1000.0,
    );
}

/// Adds one to the counter `name` with `labels`. The names are the four labelled counters
/// registered above; any other name is a programming error, logged and not counted.
pub fn inc(name: &'static str, labels: &[(&'static str, &str)]) {
    if !enabled() {
        return;
    }
    let family = match name {
        "sentinel_webhooks_total" => &METRICS.webhooks,
        "sentinel_telnyx_requests_total" => &METRICS.telnyx_requests,
        "sentinel_escalation_steps_total" => &METRICS.escalation_steps,
        "sentinel_escalation_decisions_total" => &METRICS.escalation_decisions,
        _ => {
            debug_assert!(false, "unregistered counter {name}");
            tracing::error!(name, "metrics: counter is not registered; not counted");
            return;
        }
    };
    let labels: Labels = labels.iter().map(|(k, v)| (*k, v.to_string())).collect();
    family.get_or_create(&labels).inc();
}

/// One gRPC call: `method` as in the proto (`SubmitIntent`), `code` as the gRPC status
/// name (`OK`, `INVALID_ARGUMENT`).
pub fn rpc_finished(method: &'static str, code: &'static str, took: Duration) {
    if !enabled() {
        return;
    }
    METRICS
        .rpc_duration
        .observe([("method", method), ("code", code)], took.as_secs_f64());
}

/// One policy evaluation, timed from `started`.
pub fn policy_evaluated(started: Stopwatch) {
    if let Some(took) = started.seconds() {
        METRICS.policy_eval.observe(took);
    }
}

/// One scorer call, timed from `started`: `outcome` is `ok` or the failure's reason code.
pub fn scorer_finished(outcome: &'static str, started: Stopwatch) {
    if let Some(took) = started.seconds() {
        METRICS
            .scorer_duration
            .observe([("outcome", outcome)], took);
    }
}

/// One store call, timed from `started`.
pub fn store_op(op: StoreOp, started: Stopwatch) {
    if let Some(took) = started.seconds() {
        METRICS
            .store_op_duration
            .observe_at(op as usize, [("op", op.as_str())], took);
    }
}

/// The store-wide pending count and the time to the earliest pending deadline.
pub fn set_pending(count: u64, next_deadline_in: Option<Duration>) {
    METRICS
        .intents_pending
        .set(i64::try_from(count).unwrap_or(i64::MAX));
    METRICS
        .next_deadline
        .set(next_deadline_in.map_or(0.0, |d| d.as_secs_f64()));
}

pub fn set_scorer_breaker_open(open: bool) {
    METRICS.scorer_breaker_open.set(i64::from(open));
}

pub fn set_store_up(up: bool) {
    METRICS.store_up.set(i64::from(up));
}

/// The exposition format a scraper gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`: the Prometheus text format.
    Prometheus,
    /// `application/openmetrics-text; version=1.0.0`.
    OpenMetrics,
}

impl Format {
    /// OpenMetrics when the `Accept` header names it, the Prometheus text format otherwise.
    pub fn from_accept(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// Every registered metric in `format`; only the build and the up gauges while metrics are
/// off (the others would show zeros that mean nothing).
pub fn render(format: Format) -> String {
    let registry = if enabled() {
        &METRICS.registry
    } else {
        &METRICS.essentials
    };
    let mut out = String::with_capacity(16 * 1024);
    let written = match format {
        Format::Prometheus => prometheus_text::encode(&mut out, registry),
        Format::OpenMetrics => openmetrics_text::encode(&mut out, registry),
    };
    if let Err(e) = written {
        // Writing to a String cannot fail; say so loudly if an encoder ever does.
        tracing::error!(error = %e, "metrics: encoding failed");
    }
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
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Full => "full",
            Refusal::Evicted => "evicted",
        }
    }
}

pub fn connection_opened(listener: Listener) {
    if !enabled() {
        return;
    }
    METRICS.connections_open[listener as usize].inc();
}

pub fn connection_closed(listener: Listener) {
    if !enabled() {
        return;
    }
    METRICS.connections_open[listener as usize].dec();
}

pub fn connection_refused(listener: Listener, reason: Refusal) {
    if !enabled() {
        return;
    }
    METRICS.connections_refused[listener as usize * 2 + reason as usize].inc();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_labelled_counters_in_both_formats() {
        inc("sentinel_webhooks_total", &[("outcome", "test\"quoted")]);
        let text = render(Format::Prometheus);
        assert!(text.contains("# TYPE sentinel_webhooks_total counter"));
        assert!(
            text.contains(r#"sentinel_webhooks_total{outcome="test\"quoted"}"#),
            "{text}"
        );
        assert!(!text.contains("# EOF"), "{text}");
        let open = render(Format::OpenMetrics);
        assert!(open.contains("# TYPE sentinel_webhooks counter"), "{open}");
        assert!(open.ends_with("# EOF\n"), "{open}");
    }

    #[test]
    fn handles_keep_each_label_set_apart_even_past_their_slots() {
        let handles: Handles<One, 2> = Handles::new(call_histogram);
        for outcome in ["ok", "timeout", "ok", "refused", "refused", "ok"] {
            handles.observe([("outcome", outcome)], 0.001);
        }
        // Slot 0 went to `ok`: another label set asking for it is counted through the family.
        handles.observe_at(0, [("outcome", "late")], 0.001);
        handles.observe_at(0, [("outcome", "ok")], 0.001);
        let mut registry = Registry::default();
        registry.register("t", "test", handles.family.clone());
        let mut text = String::new();
        prometheus_text::encode(&mut text, &registry).expect("encodes");
        for (outcome, count) in [("ok", 4), ("timeout", 1), ("refused", 2), ("late", 1)] {
            let line = format!("t_count{{outcome=\"{outcome}\"}} {count}");
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }

    #[test]
    fn accept_header_picks_the_format() {
        assert_eq!(Format::from_accept(None), Format::Prometheus);
        assert_eq!(
            Format::from_accept(Some(
                "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"
            )),
            Format::OpenMetrics
        );
        assert_eq!(Format::from_accept(Some("text/plain")), Format::Prometheus);
    }
}
