//! Locking shared by the whole crate.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, carrying on past a poisoned lock. Every mutex in Sentinel guards data that a
/// single insert, remove or push keeps valid (maps of channels, queues, caches), so a thread
/// that panicked mid-update leaves a usable value behind: keep serving rather than cascade
/// the panic into every later caller.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
