//! Single use: a receipt is accepted once per executor. The cache remembers each accepted
//! `jti` until its `exp` plus the leeway, after which the receipt fails as expired anyway.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Mutex;

use crate::verify::{InvalidReceipt, Reason};
use crate::Claims;

/// Bounded by `max_entries`: expired entries are dropped first; when every slot holds a live
/// receipt a new one is refused (`cache_full`) rather than forgetting a live one, which would
/// let it be replayed.
pub struct ReceiptCache {
    max_entries: usize,
    leeway: i64,
    inner: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    forget_at: HashMap<String, i64>,
    by_expiry: BinaryHeap<Reverse<(i64, String)>>,
}

impl ReceiptCache {
    pub fn new(max_entries: usize) -> ReceiptCache {
        ReceiptCache {
            max_entries,
            leeway: crate::DEFAULT_LEEWAY_SECS,
            inner: Mutex::new(Seen::default()),
        }
    }

    pub fn len(&self) -> usize {
        self.lock().forget_at.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records `claims.jti` as used at `now` (seconds); a second claim of it is `replayed`.
    pub fn claim(&self, claims: &Claims, now: i64) -> Result<(), InvalidReceipt> {
        let mut seen = self.lock();
        while let Some(Reverse((at, _))) = seen.by_expiry.peek() {
            if *at >= now {
                break;
            }
            if let Some(Reverse((_, jti))) = seen.by_expiry.pop() {
                seen.forget_at.remove(&jti);
            }
        }
        if seen.forget_at.contains_key(&claims.jti) {
            return Err(InvalidReceipt::new(
                Reason::Replayed,
                format!("receipt {} was already used", claims.jti),
            ));
        }
        if seen.forget_at.len() >= self.max_entries {
            return Err(InvalidReceipt::new(
                Reason::CacheFull,
                "too many live receipts to remember",
            ));
        }
        let forget_at = claims.exp.saturating_add(self.leeway);
        seen.forget_at.insert(claims.jti.clone(), forget_at);
        seen.by_expiry
            .push(Reverse((forget_at, claims.jti.clone())));
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        // The map stays consistent across a panic elsewhere: every change is one insert.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Default for ReceiptCache {
    fn default() -> Self {
        ReceiptCache::new(100_000)
    }
}
