//! A consecutive-failure circuit breaker for an outbound dependency.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// Lock-free. Closed: calls pass and failures are counted. Open (after `threshold` failures
/// in a row): calls fail at once until the cooldown ends. Then one probe passes; its success
/// closes the breaker, its failure re-opens it.
pub struct Breaker {
    /// Names the dependency in the breaker's log lines.
    name: &'static str,
    threshold: u32,
    cooldown: Duration,
    epoch: std::time::Instant,
    failures: AtomicU32,
    /// Milliseconds since `epoch` until which the breaker is open; 0 when closed.
    open_until: AtomicU64,
    probing: AtomicBool,
    /// Told when the breaker opens (`true`) or closes (`false`); feeds a gauge.
    on_change: fn(bool),
}

/// The right to make one call; [`Permit::record`] says how it went.
pub struct Permit<'a> {
    breaker: &'a Breaker,
    probe: bool,
    recorded: bool,
}

impl Breaker {
    pub fn new(name: &'static str, threshold: u32, cooldown: Duration) -> Self {
        Breaker {
            name,
            threshold: threshold.max(1),
            cooldown,
            epoch: std::time::Instant::now(),
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            probing: AtomicBool::new(false),
            on_change: |_| {},
        }
    }

    /// The same breaker, telling `on_change` when it opens or closes.
    pub fn reporting(self, on_change: fn(bool)) -> Self {
        Breaker { on_change, ..self }
    }

    fn now(&self) -> u64 {
        // +1 so that "now" is never the closed marker 0.
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// Whether calls are refused (or only a probe may pass) right now.
    pub fn is_open(&self) -> bool {
        self.open_until.load(Ordering::Acquire) != 0
    }

    /// A permit to call, or how long until the next probe may go.
    pub fn acquire(&self) -> Result<Permit<'_>, Duration> {
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 {
            return Ok(self.permit(false));
        }
        let now = self.now();
        if now < until {
            return Err(Duration::from_millis(until - now));
        }
        match self
            .probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Ok(self.permit(true)),
            // Another call is probing right now.
            Err(_) => Err(Duration::ZERO),
        }
    }

    fn permit(&self, probe: bool) -> Permit<'_> {
        Permit {
            breaker: self,
            probe,
            recorded: false,
        }
    }

    fn open(&self) {
        let previous = self.open_until.swap(
            self.now() + self.cooldown.as_millis() as u64,
            Ordering::AcqRel,
        );
        if previous == 0 {
            (self.on_change)(true);
            tracing::warn!(
                dependency = self.name,
                failures = self.failures.load(Ordering::Relaxed),
                cooldown_ms = self.cooldown.as_millis() as u64,
                "circuit breaker opened: calls fail at once until a probe succeeds"
            );
        }
    }
}

impl Permit<'_> {
    /// Whether this call is the one probe of an open breaker.
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    pub fn record(mut self, ok: bool) {
        self.recorded = true;
        let b = self.breaker;
        if ok {
            b.failures.store(0, Ordering::Release);
            if b.open_until.swap(0, Ordering::AcqRel) != 0 {
                (b.on_change)(false);
                tracing::info!(
                    dependency = b.name,
                    "circuit breaker closed: the dependency answers again"
                );
            }
        } else {
            let failures = b.failures.fetch_add(1, Ordering::AcqRel) + 1;
            if self.probe || failures >= b.threshold {
                b.open();
            }
        }
        if self.probe {
            b.probing.store(false, Ordering::Release);
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        // Dropped unrecorded means the caller gave up (its deadline or the client went away):
        // no evidence either way, but the probe slot must be freed.
        if !self.recorded && self.probe {
            self.breaker.probing.store(false, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_opens_after_consecutive_failures_and_probes_once() {
        let b = Breaker::new("test", 2, Duration::from_millis(0));
        b.acquire().unwrap().record(false);
        b.acquire().unwrap().record(true); // success resets the count
        b.acquire().unwrap().record(false);
        assert!(!b.is_open());
        b.acquire().unwrap().record(false);
        assert!(b.is_open());
        // Cooldown 0: one probe may go, a second must wait for it.
        let probe = b.acquire().unwrap();
        assert!(probe.is_probe());
        assert!(b.acquire().is_err());
        probe.record(true);
        assert!(!b.is_open());
        assert!(!b.acquire().unwrap().is_probe());
    }

    #[test]
    fn open_breaker_refuses_until_cooldown() {
        let b = Breaker::new("test", 1, Duration::from_secs(60));
        b.acquire().unwrap().record(false);
        let wait = b.acquire().err().unwrap();
        assert!(wait > Duration::from_secs(50));
    }

    #[test]
    fn an_abandoned_probe_frees_the_probe_slot() {
        let b = Breaker::new("test", 1, Duration::from_millis(0));
        b.acquire().unwrap().record(false);
        drop(b.acquire().unwrap());
        assert!(b.acquire().unwrap().is_probe());
    }
}
