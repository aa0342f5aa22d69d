//! Housekeeping: deleting what nobody needs any more (finished jobs' shuffle files, held
//! results past their retention, dataset generations the driver no longer lists, cached
//! job binaries no task used for their retention). Each
//! heartbeat's answer offers the lists it needs; a pass runs on a blocking thread beside the
//! heartbeat loop, at most one at a time, so deleting a large tree never delays a heartbeat
//! (a worker whose heartbeats stop is declared lost).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::SystemTime;

use ringleader_core::fault_injection;
use ringleader_core::shuffle::cluster::ShuffleFiles;

/// What one pass works from: the driver's lists, as a heartbeat's answer gave them.
#[derive(Debug, Clone)]
pub struct Lists {
    /// The worker's shuffle directory.
    pub shuffle_dir: PathBuf,
    /// The worker's stored datasets directory.
    pub dataset_dir: PathBuf,
    /// Jobs still running.
    pub active_jobs: Vec<String>,
    /// Dataset generations to keep (`name/generation`).
    pub live_datasets: Vec<String>,
    /// When the driver was asked for the lists: anything made later is left alone.
    pub asked: SystemTime,
    /// The cached job binaries (those unused past their retention go).
    pub binaries: crate::binary_cache::BinaryCache,
}

/// Runs passes beside the heartbeat loop, one at a time.
#[derive(Debug)]
pub struct Housekeeper {
    busy: Arc<AtomicBool>,
    /// Passes finished (a worker metric).
    passes: Arc<AtomicU64>,
}

impl Housekeeper {
    /// A housekeeper counting its finished passes in `passes`.
    pub fn new(passes: Arc<AtomicU64>) -> Housekeeper {
        Housekeeper {
            busy: Arc::default(),
            passes,
        }
    }

    /// Starts a pass over `lists` on a blocking thread, unless one still runs (the next
    /// heartbeat offers fresher lists).
    pub fn offer(&self, lists: Lists) {
        if self.busy.swap(true, Ordering::AcqRel) {
            return;
        }
        let (busy, passes) = (self.busy.clone(), self.passes.clone());
        tokio::task::spawn_blocking(move || {
            pass(&lists);
            passes.fetch_add(1, Ordering::Relaxed);
            busy.store(false, Ordering::Release);
        });
    }
}

/// One pass: every kind of leftover, in turn.
fn pass(lists: &Lists) {
    if let Some(delay) = fault_injection::millis(fault_injection::HOUSEKEEPING_DELAY_MS) {
        std::thread::sleep(delay);
    }
    remove_finished_shuffles(&lists.shuffle_dir, &lists.active_jobs, lists.asked);
    ringleader_core::io::results::remove_old_results(
        &ShuffleFiles::new(&lists.shuffle_dir),
        &lists.active_jobs,
        lists.asked,
    );
    crate::datasets_dir::remove_dead(&lists.dataset_dir, &lists.live_datasets, lists.asked);
    let retention = ringleader_core::net::binary::retention();
    for hash in lists.binaries.sweep(retention) {
        tracing::info!("deleted cached job binary {hash}: no task used it for {retention:?}");
    }
}

/// Deletes the shuffle files of jobs that are no longer running (nobody will read them),
/// sparing directories created after `asked` (or just before it, see
/// [`crate::datasets_dir::predates`]), whose jobs the driver's list may not know.
fn remove_finished_shuffles(root: &std::path::Path, active: &[String], asked: std::time::SystemTime) {
    let Ok(entries) = std::fs::read_dir(root) else { return };
    let files = ShuffleFiles::new(root);
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let older = entry
            .metadata()
            .and_then(|m| m.created().or_else(|_| m.modified()))
            .is_ok_and(|t| crate::datasets_dir::predates(t, asked));
        if older && !active.contains(&name) && ringleader_core::ids::valid_job_id(&name) {
            ringleader_core::shuffle::cluster::remove_job(&files, &name);
        }
    }
}
