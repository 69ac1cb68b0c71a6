//! Per-caller limits: how many watch streams a principal may hold open on this replica, and how
//! many intents an agent may submit per second.
//!
//! Neither takes a global lock: watch counts live in a sharded map (one shard locked for an
//! increment, entries removed when they reach zero), and the in-process rate limiter is
//! `governor`'s keyed GCRA over a sharded map. The Redis rate limiter
//! (`store::redis::ratelimit`) shares one budget per agent across replicas.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use futures::StreamExt;
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::auth::Principal;
pub use crate::store::ratelimit::{Admission, RateLimiter};
use crate::store::{EventStream, StoreError};

pub use crate::config::limits::DEFAULT_MAX_WATCHES;

/// The in-process limiter: one GCRA bucket per agent, per replica.
pub struct LocalRateLimiter {
    limiter: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
    per_second: u32,
    /// Checks since the last sweep of idle agents' state.
    checks: AtomicU64,
}

/// Every this many checks, agents whose bucket is full again are forgotten, so the map holds
/// only recently active agents.
const SWEEP_EVERY: u64 = 4096;

impl LocalRateLimiter {
    pub fn new(per_second: NonZeroU32) -> Self {
        let quota = Quota::per_second(per_second).allow_burst(per_second);
        LocalRateLimiter {
            limiter: DefaultKeyedRateLimiter::dashmap(quota),
            clock: DefaultClock::default(),
            per_second: per_second.get(),
            checks: AtomicU64::new(0),
        }
    }
}

#[async_trait]
impl RateLimiter for LocalRateLimiter {
    async fn admit(&self, agent_id: &str) -> Result<Admission, StoreError> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.limiter.retain_recent();
        }
        Ok(match self.limiter.check_key(&agent_id.to_string()) {
            Ok(()) => Admission::Allowed,
            Err(not_until) => Admission::Limited {
                retry_after: not_until.wait_time_from(self.clock.now()),
            },
        })
    }

    fn per_second(&self) -> u32 {
        self.per_second
    }
}

/// Counts open watch streams per principal on this replica.
#[derive(Clone)]
pub struct WatchLimiter {
    inner: Arc<WatchCounts>,
}

struct WatchCounts {
    max: usize,
    open: DashMap<String, usize>,
}

/// Refused: the principal already holds the maximum number of watch streams.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{principal} already has {max} open watch streams, the limit per caller (SENTINEL_MAX_WATCHES_PER_AGENT); close one and retry")]
pub struct TooManyWatches {
    pub principal: String,
    pub max: usize,
}

impl WatchLimiter {
    pub fn new(max: usize) -> Self {
        WatchLimiter {
            inner: Arc::new(WatchCounts {
                max,
                open: DashMap::new(),
            }),
        }
    }

    /// Takes one of the principal's watch slots; the slot is free again when the permit drops.
    /// Agents count by agent id, operators by key name; in open mode (no keys) every caller is
    /// the same principal, `open`.
    pub fn acquire(&self, caller: &Principal) -> Result<WatchPermit, TooManyWatches> {
        let key = caller.to_string();
        match self.inner.open.entry(key.clone()) {
            Entry::Occupied(mut held) => {
                if *held.get() >= self.inner.max {
                    return Err(TooManyWatches {
                        principal: key,
                        max: self.inner.max,
                    });
                }
                *held.get_mut() += 1;
            }
            Entry::Vacant(slot) => {
                if self.inner.max == 0 {
                    return Err(TooManyWatches {
                        principal: key,
                        max: 0,
                    });
                }
                slot.insert(1);
            }
        }
        Ok(WatchPermit {
            counts: self.inner.clone(),
            key,
        })
    }

    /// Open watch streams of a principal (0 when it has none).
    pub fn open(&self, caller: &Principal) -> usize {
        self.inner
            .open
            .get(&caller.to_string())
            .map(|n| *n)
            .unwrap_or(0)
    }
}

/// One open watch stream. Dropping it (the stream ended for any reason: terminal event,
/// client gone, shutdown, error) releases the slot.
pub struct WatchPermit {
    counts: Arc<WatchCounts>,
    key: String,
}

impl Drop for WatchPermit {
    fn drop(&mut self) {
        if let Entry::Occupied(mut held) = self.counts.open.entry(std::mem::take(&mut self.key)) {
            *held.get_mut() -= 1;
            if *held.get() == 0 {
                held.remove();
            }
        }
    }
}

/// The stream holds the permit: the slot is released exactly when the stream is dropped.
pub fn holding(stream: EventStream, permit: WatchPermit) -> EventStream {
    Box::pin(stream.map(move |item| {
        let _held = &permit;
        item
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn watch_slots_are_per_principal_and_released_on_drop() {
        let limiter = WatchLimiter::new(2);
        let alice = Principal::Operator("alice".into());
        let bot = Principal::Agent("bot".into());
        let a1 = limiter.acquire(&alice).unwrap();
        let _a2 = limiter.acquire(&alice).unwrap();
        let refused = limiter.acquire(&alice).err().unwrap();
        assert_eq!(refused.max, 2);
        assert!(refused
            .to_string()
            .contains("SENTINEL_MAX_WATCHES_PER_AGENT"));
        // Another principal has its own budget.
        let b1 = limiter.acquire(&bot).unwrap();
        drop(a1);
        assert_eq!(limiter.open(&alice), 1);
        let _a3 = limiter.acquire(&alice).unwrap();
        drop(b1);
        assert_eq!(limiter.open(&bot), 0);
        assert!(
            limiter.inner.open.get(&bot.to_string()).is_none(),
            "zero entries are removed"
        );
    }

    #[tokio::test]
    async fn the_local_limiter_allows_the_burst_then_names_a_wait() {
        let limiter = LocalRateLimiter::new(NonZeroU32::new(3).unwrap());
        for _ in 0..3 {
            assert_eq!(limiter.admit("a").await.unwrap(), Admission::Allowed);
        }
        match limiter.admit("a").await.unwrap() {
            Admission::Limited { retry_after } => {
                assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(1))
            }
            Admission::Allowed => panic!("the fourth request within a second must be limited"),
        }
        assert_eq!(limiter.admit("b").await.unwrap(), Admission::Allowed);
    }
}
