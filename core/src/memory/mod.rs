//! The memory budget of a process, after DataFusion's `MemoryPool`: one pool per engine
//! (embedded) or executor (cluster), sized by `RINGLEADER_MEMORY`, from which every buffer
//! that grows with the data (shuffle blocks, sort buffers, hash tables) reserves before it
//! grows. A refused reservation means "spill": the operator writes what it holds to a spill
//! file of its task and goes on with an empty buffer.
//!
//! Operators find their task's pool with [`current`], which [`crate::exec::run`] sets for
//! the task from its shuffle service; spill files go to a directory of the task under the
//! pool's spill root ([`MemoryPool::spill_dir`]), removed when the task ends, failed or not.
//!
//! Inside: [`spill`] what operators write past the budget.

pub mod spill;

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::error::{Error, Result};

/// The least budget accepted: below it not even one batch of rows fits (a smaller value is
/// most likely a unit left out, `512` for `512M`).
pub const MIN_BUDGET: usize = 64 << 10;

/// A byte budget shared by the buffers of one process (or one embedded engine).
#[derive(Debug)]
pub struct MemoryPool {
    limit: usize,
    used: AtomicUsize,
    peak: AtomicUsize,
    spilled: AtomicU64,
    spill_root: PathBuf,
}

impl MemoryPool {
    /// A pool of `limit` bytes whose operators spill under `spill_root`.
    pub fn new(limit: usize, spill_root: PathBuf) -> Arc<MemoryPool> {
        Arc::new(MemoryPool {
            limit,
            used: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            spilled: AtomicU64::new(0),
            spill_root,
        })
    }

    /// The budget.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes the budget has left now (none past it).
    pub fn available(&self) -> usize {
        self.limit.saturating_sub(self.used())
    }

    /// Bytes reserved now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// The most bytes ever reserved at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// Bytes written to spill files so far.
    pub fn spilled(&self) -> u64 {
        self.spilled.load(Ordering::Relaxed)
    }

    /// Counts `bytes` written to a spill file.
    pub fn record_spill(&self, bytes: u64) {
        self.spilled.fetch_add(bytes, Ordering::Relaxed);
    }

    /// An empty reservation against this pool.
    pub fn reservation(self: &Arc<Self>) -> Reservation {
        Reservation {
            pool: self.clone(),
            size: 0,
        }
    }

    /// A new directory for one task's spill files, removed when dropped.
    pub fn spill_dir(&self) -> Result<tempfile::TempDir> {
        std::fs::create_dir_all(&self.spill_root).map_err(|e| Error::io(&self.spill_root, e))?;
        tempfile::Builder::new()
            .prefix("ringleader-spill-")
            .tempdir_in(&self.spill_root)
            .map_err(|e| Error::io(&self.spill_root, e))
    }

    /// Where spill directories go.
    pub fn spill_root(&self) -> &Path {
        &self.spill_root
    }

    fn take(&self, bytes: usize, force: bool) -> bool {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let next = used.saturating_add(bytes);
            if !force && next > self.limit {
                return false;
            }
            match self
                .used
                .compare_exchange_weak(used, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    self.peak.fetch_max(next, Ordering::Relaxed);
                    return true;
                }
                Err(now) => used = now,
            }
        }
    }

    fn give_back(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// Bytes one buffer holds of its pool; given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    pool: Arc<MemoryPool>,
    size: usize,
}

impl Reservation {
    /// Bytes held.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The pool reserved from.
    pub fn pool(&self) -> &Arc<MemoryPool> {
        &self.pool
    }

    /// Grows by `bytes` if the pool has room; `false` (and nothing held) otherwise: the
    /// caller spills and tries again.
    pub fn try_grow(&mut self, bytes: usize) -> bool {
        let grown = self.pool.take(bytes, false);
        if grown {
            self.size += bytes;
        }
        grown
    }

    /// Grows by `bytes` even past the budget: what an operator must hold to make any
    /// progress (the one batch it is working on).
    pub fn grow(&mut self, bytes: usize) {
        self.pool.take(bytes, true);
        self.size += bytes;
    }

    /// Holds exactly `bytes` if the pool allows: gives back the excess, or grows by the
    /// difference; `false` (holding what it held) when the pool refuses.
    pub fn try_resize(&mut self, bytes: usize) -> bool {
        match bytes.checked_sub(self.size) {
            Some(more) => self.try_grow(more),
            None => {
                self.shrink(self.size - bytes);
                true
            }
        }
    }

    /// Gives back `bytes` (at most what is held).
    pub fn shrink(&mut self, bytes: usize) {
        let bytes = bytes.min(self.size);
        self.pool.give_back(bytes);
        self.size -= bytes;
    }

    /// Gives back everything held.
    pub fn free(&mut self) {
        self.shrink(self.size);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.free();
    }
}

thread_local! {
    /// The pool of the task running on this thread.
    static CURRENT: RefCell<Option<Arc<MemoryPool>>> = const { RefCell::new(None) };
}

/// Runs `task` with `pool` as the pool [`current`] returns on this thread.
pub fn scope<T>(pool: Arc<MemoryPool>, task: impl FnOnce() -> T) -> T {
    let outer = CURRENT.with(|c| c.borrow_mut().replace(pool));
    let result = task();
    CURRENT.with(|c| *c.borrow_mut() = outer);
    result
}

/// The pool of the task running on this thread; outside a task, an unbounded pool
/// spilling to the system's temporary directory.
pub fn current() -> Arc<MemoryPool> {
    CURRENT
        .with(|c| c.borrow().clone())
        .unwrap_or_else(|| MemoryPool::new(usize::MAX, std::env::temp_dir()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_stay_within_the_budget_unless_forced_and_give_back_when_dropped() {
        let pool = MemoryPool::new(100, std::env::temp_dir());
        let mut a = pool.reservation();
        assert!(a.try_grow(60));
        let mut b = pool.reservation();
        assert!(!b.try_grow(50), "past the budget");
        assert_eq!((b.size(), pool.used()), (0, 60));
        b.grow(50);
        assert_eq!(pool.used(), 110);
        a.shrink(1000);
        assert_eq!((a.size(), pool.used()), (0, 50));
        drop(b);
        assert_eq!((pool.used(), pool.peak()), (0, 110));
    }

    #[test]
    fn the_current_pool_is_the_tasks_and_spill_directories_go_away() {
        let root = tempfile::tempdir().expect("dir");
        let pool = MemoryPool::new(1 << 20, root.path().join("spill"));
        let inner = scope(pool.clone(), current);
        assert!(Arc::ptr_eq(&inner, &pool));
        assert_eq!(current().limit(), usize::MAX, "outside a task");
        let dir = pool.spill_dir().expect("spill dir");
        let path = dir.path().to_path_buf();
        std::fs::write(path.join("run-0"), b"x").expect("write");
        drop(dir);
        assert!(!path.exists());
    }
}
