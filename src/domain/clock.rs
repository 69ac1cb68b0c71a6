//! Time as a dependency: everything in the process that stamps, compares or waits for a
//! deadline asks a [`Clock`] instead of the system time, so tests can move time forward
//! instead of sleeping.
//!
//! The manual clock drives only the in-process parts (the gateway's timestamps and deadlines,
//! its expiry loop, the memory store's retention). The Redis store enforces deadlines with
//! Redis's own `TIME` inside its scripts and stamps its records with the wall time (replicas
//! share them, so one replica's manual clock must not leak into them): tests against Redis
//! still wait in real time, always bounded.
//!
//! [`Millis`], the one representation of a time, and [`now_millis`], the one direct read of
//! the wall clock (for code no test needs to control), live here too.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// Milliseconds since the Unix epoch: the one clock representation stored and compared.
pub type Millis = i64;

/// The wall time. Code on a path a test wants to control takes a [`Clock`] instead.
pub fn now_millis() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

/// A future a clock hands out; boxed so the trait stays object-safe.
pub type Sleep<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now(&self) -> Millis;

    /// Resolves once [`Clock::now`] reaches `deadline`. `seen` is the time the caller last
    /// read: a manual clock also wakes as soon as its time is no longer `seen` (it moved,
    /// perhaps between that read and this call), so callers re-check the time and loop.
    fn sleep_until(&self, seen: Millis, deadline: Millis) -> Sleep<'_>;

    /// Resolves once [`Clock::now`] reads `deadline` or later, however the clock gets there.
    fn reach(&self, deadline: Millis) -> Sleep<'_> {
        Box::pin(async move {
            loop {
                let now = self.now();
                if now >= deadline {
                    return;
                }
                self.sleep_until(now, deadline).await;
            }
        })
    }
}

/// The real time.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl SystemClock {
    /// The system clock as the shared handle the parts take.
    pub fn shared() -> Arc<dyn Clock> {
        Arc::new(SystemClock)
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        now_millis()
    }

    fn sleep_until(&self, _seen: Millis, deadline: Millis) -> Sleep<'_> {
        let wait = u64::try_from(deadline.saturating_sub(self.now())).unwrap_or(0);
        Box::pin(tokio::time::sleep(Duration::from_millis(wait)))
    }
}

/// A clock that moves only when told to; every move wakes the sleepers.
#[derive(Debug)]
pub struct ManualClock {
    now: watch::Sender<Millis>,
}

impl ManualClock {
    pub fn new(start: Millis) -> Self {
        ManualClock {
            now: watch::Sender::new(start),
        }
    }

    /// A manual clock that starts at the current wall time, so intents stamped by it sit
    /// beside records stamped by the system clock (a Redis server, a test's own data).
    pub fn starting_now() -> Self {
        Self::new(now_millis())
    }

    /// Moves time forward by `by`; returns the new time.
    pub fn advance(&self, by: Duration) -> Millis {
        let by = Millis::try_from(by.as_millis()).unwrap_or(Millis::MAX);
        let mut now = 0;
        self.now.send_modify(|t| {
            *t = t.saturating_add(by);
            now = *t;
        });
        now
    }

    /// Sets the time (backwards too: a test of clock skew may want that).
    pub fn set(&self, to: Millis) {
        self.now.send_replace(to);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Millis {
        *self.now.borrow()
    }

    fn sleep_until(&self, seen: Millis, deadline: Millis) -> Sleep<'_> {
        let mut moved = self.now.subscribe();
        Box::pin(async move {
            let now = *moved.borrow_and_update();
            if now != seen || now >= deadline {
                return;
            }
            // The sender lives as long as `self`, which outlives this future.
            let _ = moved.changed().await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_clock_moves_only_when_told_and_wakes_sleepers() {
        let clock = Arc::new(ManualClock::new(1_000));
        assert_eq!(clock.now(), 1_000);
        let sleeper = {
            let clock = clock.clone();
            tokio::spawn(async move {
                loop {
                    let now = clock.now();
                    if now >= 1_500 {
                        return now;
                    }
                    clock.sleep_until(now, 1_500).await;
                }
            })
        };
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished(), "no time passed yet");
        clock.advance(Duration::from_millis(200));
        clock.advance(Duration::from_millis(400));
        let woke_at = tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .expect("the sleeper wakes")
            .expect("no panic");
        assert_eq!(woke_at, 1_600);
    }

    #[tokio::test]
    async fn sleeping_until_a_past_time_returns_at_once() {
        let clock = ManualClock::new(5);
        tokio::time::timeout(Duration::from_secs(5), clock.sleep_until(5, 5))
            .await
            .expect("no wait");
        tokio::time::timeout(Duration::from_secs(5), clock.sleep_until(4, 9))
            .await
            .expect("the clock moved since it was read");
        tokio::time::timeout(Duration::from_secs(5), SystemClock.sleep_until(0, 0))
            .await
            .expect("no wait");
    }
}
