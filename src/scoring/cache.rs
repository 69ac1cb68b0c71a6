//! A bounded, TTL'd cache of LLM verdicts, keyed by a canonical hash of what the verdict
//! depends on, with single flight: concurrent identical intents share one call.
//!
//! Built on `moka`'s async cache: `or_try_insert_with` runs one computation per key while
//! other callers of the same key wait for it. A failed call is not cached (its waiters get
//! the same error, and the next caller tries again). Size and age are bounded by moka
//! (TinyLFU admission, a fixed time to live).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

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

pub struct Cache<V> {
    /// `None`: caching is off and every call computes.
    inner: Option<moka::future::Cache<Key, V>>,
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
        let inner = (capacity > 0 && !ttl.is_zero()).then(|| {
            moka::future::Cache::builder()
                .max_capacity(capacity as u64)
                .time_to_live(ttl)
                .build()
        });
        Cache { inner }
    }

    /// The cached value for `key`, or the result of `compute` (stored on success).
    pub async fn get_or_try<E, F, Fut>(&self, key: &Key, compute: F) -> Result<(V, Source), E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
        E: Clone + Send + Sync + 'static,
    {
        let Some(inner) = &self.inner else {
            return compute().await.map(|v| (v, Source::Computed));
        };
        match inner.entry(*key).or_try_insert_with(compute()).await {
            Ok(entry) => {
                let source = if entry.is_fresh() {
                    Source::Computed
                } else {
                    Source::Cached
                };
                Ok((entry.into_value(), source))
            }
            Err(shared) => Err(Arc::unwrap_or_clone(shared)),
        }
    }

    /// How many entries are held, once pending evictions have run.
    pub async fn len(&self) -> usize {
        match &self.inner {
            Some(inner) => {
                inner.run_pending_tasks().await;
                inner.entry_count() as usize
            }
            None => 0,
        }
    }

    pub async fn is_empty(&self) -> bool {
        self.len().await == 0
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
        let cache: Cache<u32> = Cache::new(2, Duration::from_secs(60));
        for n in 0..=255u8 {
            let _ = cache
                .get_or_try(&[n; 32], || async { Ok::<_, ()>(1) })
                .await;
        }
        assert!(cache.len().await <= 2, "{}", cache.len().await);

        let cache: Cache<u32> = Cache::new(100, Duration::from_millis(1));
        let _ = cache.get_or_try(&k(9), || async { Ok::<_, ()>(1) }).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(
            cache.get_or_try(&k(9), || async { Ok::<_, ()>(2) }).await,
            Ok((2, Source::Computed))
        );
    }

    #[tokio::test]
    async fn zero_capacity_or_ttl_computes_every_time() {
        for cache in [
            Cache::<u32>::new(0, Duration::from_secs(60)),
            Cache::<u32>::new(100, Duration::ZERO),
        ] {
            for want in [1, 2] {
                assert_eq!(
                    cache
                        .get_or_try(&k(1), || async move { Ok::<_, ()>(want) })
                        .await,
                    Ok((want, Source::Computed))
                );
            }
            assert!(cache.is_empty().await);
        }
    }
}
