//! Labelled histograms whose handles sit in fixed slots.

use std::hash::Hash;
use std::sync::OnceLock;

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// A labelled histogram whose handles live in `N` fixed slots, each filled once from the
/// family (which the registry encodes): recording compares a few `&'static str`s at most and
/// takes no lock. A series appears in the exposition when first recorded, as with a bare
/// `Family`, so unused label sets add no zero-valued buckets.
///
/// Label sets known in advance use a slot each ([`Handles::observe_at`]); those known only at
/// run time (RPC method and status, scorer outcome) take the first free slot
/// ([`Handles::observe`]), and past `N` distinct sets fall back to the family's lookup.
pub(super) struct Handles<L, const N: usize> {
    pub(super) family: HistogramFamily<L>,
    slots: [OnceLock<(L, Histogram)>; N],
}

impl<L: Copy + Eq + Hash, const N: usize> Handles<L, N> {
    pub(super) fn new(constructor: fn() -> Histogram) -> Self {
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
    pub(super) fn observe_at(&self, slot: usize, labels: L, value: f64) {
        match self.slots.get(slot).and_then(|s| self.handle(s, labels)) {
            Some(histogram) => histogram.observe(value),
            None => self.family.get_or_create(&labels).observe(value),
        }
    }

    /// Records under `labels`, in the slot they were first given or the first free one.
    pub(super) fn observe(&self, labels: L, value: f64) {
        match self.slots.iter().find_map(|s| self.handle(s, labels)) {
            Some(histogram) => histogram.observe(value),
            None => self.family.get_or_create(&labels).observe(value),
        }
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::prometheus_text;
    use prometheus_client::registry::Registry;

    use super::*;
    use crate::metrics::labels::One;
    use crate::metrics::registry::call_histogram;

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
}
