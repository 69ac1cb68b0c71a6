//! A bounded, TTL'd cache of LLM verdicts, keyed by a canonical hash of what the verdict
//! depends on, with single flight: concurrent identical intents share one call.
//!
//! Sharded `std::sync::Mutex`es guard only map operations (never held across an await); the
//! call itself runs inside a per-key `tokio::sync::OnceCell`, so the second of two identical
//! intents in flight waits for the first call instead of paying for its own. A failed call
//! leaves the cell empty: failures are never cached, the next caller tries again.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

const SHARDS: usize = 16;

pub type Key = [u8; 32];

/// The cache key: SHA-256 of the parts, each length-prefixed so that no two different lists
/// of parts hash the same input. The scorer keys a verdict by its pass, model and exact
/// messages: the text pass's messages carry the agent id, so one agent never receives an
/// analysis written about another agent's text; the checked-facts pass holds no agent text
/// and is shared by identical facts.
pub fn key_of(parts: &[&str]) -> Key {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.finalize().into()
}

struct Entry<V> {
    born: Instant,
    cell: Arc<OnceCell<V>>,
}

struct Shard<V> {
    map: HashMap<Key, Entry<V>>,
    /// Insertion order, for eviction. Every entry has the same TTL, so the oldest is also the
    /// first to expire. Stale records (a key re-inserted later) are skipped when popped.
    order: VecDeque<(Key, Instant)>,
}

pub struct Cache<V> {
    shards: Vec<Mutex<Shard<V>>>,
    per_shard: usize,
    ttl: Duration,
}

/// Where a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// This caller ran the computation.
    Computed,
    /// Another caller's result (earlier, or concurrently in flight).
    Cached,
}

impl<V: Clone + Send + Sync + 'static> Cache<V> {
    /// A cache holding about `capacity` entries for `ttl` each. A zero capacity or TTL
    /// disables caching (every call computes).
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Cache {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        map: HashMap::new(),
                        order: VecDeque::new(),
                    })
                })
                .collect(),
            per_shard: capacity.div_ceil(SHARDS),
            ttl,
        }
    }

    fn enabled(&self) -> bool {
        self.per_shard > 0 && !self.ttl.is_zero()
    }

    fn cell(&self, key: &Key) -> Arc<OnceCell<V>> {
        let now = Instant::now();
        let shard = &self.shards[key[0] as usize % SHARDS];
        // A poisoned shard only means another thread panicked mid-insert; the map is still
        // structurally valid, so keep using it.
        let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = shard.map.get(key) {
            if now.duration_since(entry.born) < self.ttl {
                return entry.cell.clone();
            }
        }
        while shard.map.len() >= self.per_shard
            || shard
                .order
                .front()
                .is_some_and(|(_, born)| now.duration_since(*born) >= self.ttl)
        {
            let Some((old, born)) = shard.order.pop_front() else {
                break;
            };
            if shard.map.get(&old).is_some_and(|e| e.born == born) {
                shard.map.remove(&old);
            }
        }
        let cell = Arc::new(OnceCell::new());
        shard.map.insert(
            *key,
            Entry {
                born: now,
                cell: cell.clone(),
            },
        );
        shard.order.push_back((*key, now));
        cell
    }

    /// The cached value for `key`, or the result of `compute` (stored on success).
    pub async fn get_or_try<E, F, Fut>(&self, key: &Key, compute: F) -> Result<(V, Source), E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        if !self.enabled() {
            return compute().await.map(|v| (v, Source::Computed));
        }
        let cell = self.cell(key);
        let mut ran = false;
        let value = cell
            .get_or_try_init(|| {
                ran = true;
                compute()
            })
            .await?;
        Ok((
            value.clone(),
            if ran {
                Source::Computed
            } else {
                Source::Cached
            },
        ))
    }

    /// How many entries are held (expired ones included until evicted).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).map.len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn k(n: u8) -> Key {
        let mut key = [0; 32];
        key[0] = n;
        key[1] = n;
        key
    }

    #[tokio::test]
    async fn hits_do_not_recompute_and_failures_are_not_cached() {
        let cache: Cache<u32> = Cache::new(100, Duration::from_secs(60));
        let err: Result<(u32, Source), &str> =
            cache.get_or_try(&k(1), || async { Err("down") }).await;
        assert!(err.is_err());
        assert_eq!(
            cache.get_or_try(&k(1), || async { Ok::<_, ()>(7) }).await,
            Ok((7, Source::Computed))
        );
        assert_eq!(
            cache.get_or_try(&k(1), || async { Ok::<_, ()>(8) }).await,
            Ok((7, Source::Cached))
        );
    }

    #[tokio::test]
    async fn concurrent_identical_keys_share_one_computation() {
        let cache: Arc<Cache<u32>> = Arc::new(Cache::new(100, Duration::from_secs(60)));
        let calls = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (cache, calls) = (cache.clone(), calls.clone());
                tokio::spawn(async move {
                    cache
                        .get_or_try(&k(3), || async {
                            calls.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            Ok::<_, ()>(5)
                        })
                        .await
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap().0, 5);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn size_is_bounded_and_entries_expire() {
        let cache: Cache<u32> = Cache::new(SHARDS * 2, Duration::from_secs(60));
        for n in 0..=255u8 {
            let mut key = [n; 32];
            key[0] = 0; // all in one shard
            let _ = cache.get_or_try(&key, || async { Ok::<_, ()>(1) }).await;
        }
        assert!(cache.len() <= 2, "{}", cache.len());

        let cache: Cache<u32> = Cache::new(100, Duration::from_millis(1));
        let _ = cache.get_or_try(&k(9), || async { Ok::<_, ()>(1) }).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(
            cache.get_or_try(&k(9), || async { Ok::<_, ()>(2) }).await,
            Ok((2, Source::Computed))
        );
    }
}
