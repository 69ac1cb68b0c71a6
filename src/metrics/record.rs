//! The recording functions the rest of the process calls, and the on/off switch.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::labels::{decider_slot, intent_slot, Labels, Listener, Refusal, StoreOp, DECIDERS};
use super::registry::METRICS;
use crate::domain::{DeciderKind, IntentState};

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
/// in the registry; any other name is a programming error, logged and not counted.
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

/// One gRPC call, timed from `started`: `method` as in the proto (`SubmitIntent`), `code` as
/// the gRPC status name (`OK`, `INVALID_ARGUMENT`).
pub fn rpc_finished(method: &'static str, code: &'static str, started: Stopwatch) {
    if let Some(took) = started.seconds() {
        METRICS
            .rpc_duration
            .observe([("method", method), ("code", code)], took);
    }
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
