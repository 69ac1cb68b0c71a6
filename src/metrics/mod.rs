//! Process-wide metrics on one `prometheus-client` registry, rendered on `GET /metrics`.
//!
//! Every metric is registered once, with its HELP, when the registry is first touched, so a
//! metric cannot be counted and then left out of the exposition. Counters, gauges and
//! histograms are atomics (a histogram's buckets sit behind a short mutex of their own).
//!
//! The request path takes no lock and hashes no labels: the per-submission outcome counter is
//! a fixed array of handles created up front, and each labelled histogram keeps its handles in
//! fixed slots (`handles.rs`), filled from the `Family` the first time a label set is seen.
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

mod handles;
mod labels;
mod record;
mod registry;
mod render;

pub use labels::{Listener, Refusal, StoreOp};
pub use record::{
    connection_closed, connection_opened, connection_refused, enabled, inc, intent_reached,
    policy_evaluated, rpc_finished, scorer_finished, set_enabled, set_pending,
    set_scorer_breaker_open, set_store_up, store_op, time_to_decision, Stopwatch,
};
pub use render::{render, Format};
