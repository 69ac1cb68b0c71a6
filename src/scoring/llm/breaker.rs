//! The scorer's circuit breaker.

use super::*;

/// A consecutive-failure circuit breaker, lock-free. Closed: calls pass and failures are
/// counted. Open (after `threshold` failures in a row): calls fail at once until the cooldown
/// ends. Then one probe passes; its success closes the breaker, its failure re-opens it.
pub(super) struct Breaker {
    pub(super) threshold: u32,
    pub(super) cooldown: Duration,
    pub(super) epoch: std::time::Instant,
    pub(super) failures: AtomicU32,
    /// Milliseconds since `epoch` until which the breaker is open; 0 when closed.
    pub(super) open_until: AtomicU64,
    pub(super) probing: AtomicBool,
    /// Told when the breaker opens (`true`) or closes (`false`); feeds a gauge.
    pub(super) on_change: fn(bool),
}

pub(super) struct Permit<'a> {
    pub(super) breaker: &'a Breaker,
    pub(super) probe: bool,
    pub(super) recorded: bool,
}

impl Breaker {
    pub(super) fn new(threshold: u32, cooldown: Duration) -> Self {
        Breaker {
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
    pub(super) fn reporting(self, on_change: fn(bool)) -> Self {
        Breaker { on_change, ..self }
    }

    pub(super) fn now(&self) -> u64 {
        // +1 so that "now" is never the closed marker 0.
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// A permit to call, or how long until the next probe may go.
    pub(super) fn acquire(&self) -> Result<Permit<'_>, Duration> {
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 {
            return Ok(Permit {
                breaker: self,
                probe: false,
                recorded: false,
            });
        }
        let now = self.now();
        if now < until {
            return Err(Duration::from_millis(until - now));
        }
        match self
            .probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Ok(Permit {
                breaker: self,
                probe: true,
                recorded: false,
            }),
            // Another call is probing right now.
            Err(_) => Err(Duration::ZERO),
        }
    }

    pub(super) fn open(&self) {
        let previous = self.open_until.swap(
            self.now() + self.cooldown.as_millis() as u64,
            Ordering::AcqRel,
        );
        if previous == 0 {
            (self.on_change)(true);
            warn!(
                failures = self.failures.load(Ordering::Relaxed),
                cooldown_ms = self.cooldown.as_millis() as u64,
                "LLM circuit breaker opened: open intents escalate to humans without calling the provider"
            );
        }
    }
}

impl Permit<'_> {
    pub(super) fn record(mut self, ok: bool) {
        self.recorded = true;
        let b = self.breaker;
        if ok {
            b.failures.store(0, Ordering::Release);
            if b.open_until.swap(0, Ordering::AcqRel) != 0 {
                (b.on_change)(false);
                tracing::info!("LLM circuit breaker closed: the provider answers again");
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
