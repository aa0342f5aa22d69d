//! Locking shared state: a poisoned lock (a thread panicked holding it) still hands out
//! its data, since every critical section in Ringleader leaves that data consistent; the
//! panic itself is reported where it happened.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, taking its data also when a panicking thread poisoned it.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
