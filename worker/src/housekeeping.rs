//! Housekeeping: deleting what nobody needs any more (finished jobs' shuffle files, held
//! results past their retention, dataset generations the driver no longer lists). Each
//! heartbeat's answer offers the lists it needs; a pass runs on a blocking thread beside the
//! heartbeat loop, at most one at a time, so deleting a large tree never delays a heartbeat
//! (a worker whose heartbeats stop is declared lost).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::SystemTime;

use ringleader_core::cluster_shuffle::ShuffleFiles;
use ringleader_core::fault_injection;

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
    ringleader_core::results::remove_old_results(
        &ShuffleFiles::new(&lists.shuffle_dir),
        &lists.active_jobs,
        lists.asked,
    );
    remove_dead_datasets(&lists.dataset_dir, &lists.live_datasets, lists.asked);
    remove_abandoned_writes(&lists.dataset_dir, &lists.live_datasets, lists.asked);
}

/// Deletes what writers killed mid-write left: temporary partition files
/// (`part-N.tmp-PID-K`) whose process is gone, and copies staged for other owners
/// (`.outgoing/DATASET-GENERATION-P-ATTEMPT.arrow`) of generations no longer live, sparing
/// files made after `asked`.
fn remove_abandoned_writes(root: &std::path::Path, live: &[String], asked: SystemTime) {
    let older = |path: &std::path::Path| {
        std::fs::metadata(path)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t < asked)
    };
    let entries = |dir: &std::path::Path| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect()
    };
    for outgoing in entries(&root.join(".outgoing")) {
        let name = outgoing
            .file_stem()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // DATASET-GENERATION-PARTITION-ATTEMPT: the dataset name may hold dashes itself.
        let mut parts = name.rsplitn(4, '-');
        let (_, _, generation, dataset) = (parts.next(), parts.next(), parts.next(), parts.next());
        let live_generation = match (dataset, generation) {
            (Some(d), Some(g)) => live.contains(&format!("{d}/{g}")),
            _ => false,
        };
        if !live_generation && older(&outgoing) {
            let _ = std::fs::remove_file(&outgoing);
        }
    }
    for dataset in entries(root) {
        for generation in entries(&dataset) {
            for file in entries(&generation) {
                let pid = file
                    .extension()
                    .and_then(|e| e.to_str())
                    .and_then(|e| e.strip_prefix("tmp-"))
                    .and_then(|rest| rest.split('-').next())
                    .and_then(|pid| pid.parse::<i32>().ok());
                if let Some(pid) = pid
                    && !ringleader_core::machine::process_runs(pid)
                    && older(&file)
                {
                    let _ = std::fs::remove_file(&file);
                }
            }
        }
    }
}

/// Deletes the shuffle files of jobs that are no longer running (nobody will read them),
/// sparing directories created after `asked`, whose jobs the driver's list may not know.
fn remove_finished_shuffles(root: &std::path::Path, active: &[String], asked: std::time::SystemTime) {
    let Ok(entries) = std::fs::read_dir(root) else { return };
    let files = ShuffleFiles::new(root);
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let older = entry
            .metadata()
            .and_then(|m| m.created().or_else(|_| m.modified()))
            .is_ok_and(|t| t < asked);
        if older && !active.contains(&name) && ringleader_core::ids::valid_job_id(&name) {
            ringleader_core::cluster_shuffle::remove_job(&files, &name);
        }
    }
}

/// Deletes dataset generations the driver no longer lists (a removed or replaced dataset,
/// the output of a job that failed or was cancelled), sparing those written after `asked`,
/// and partitions still on their way to other owners.
fn remove_dead_datasets(root: &std::path::Path, live: &[String], asked: std::time::SystemTime) {
    let older = |path: &std::path::Path| {
        std::fs::metadata(path)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t < asked)
    };
    let Ok(datasets) = std::fs::read_dir(root) else { return };
    for dataset in datasets.flatten() {
        let name = dataset.file_name().to_string_lossy().into_owned();
        if !ringleader_core::ids::valid_dataset_name(&name) {
            continue;
        }
        let Ok(generations) = std::fs::read_dir(dataset.path()) else {
            continue;
        };
        let mut left = 0;
        for generation in generations.flatten() {
            let path = generation.path();
            let key = format!("{name}/{}", generation.file_name().to_string_lossy());
            if !live.contains(&key) && older(&path) {
                let _ = std::fs::remove_dir_all(&path);
            } else {
                left += 1;
            }
        }
        if left == 0 {
            let _ = std::fs::remove_dir(dataset.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn files_of_writers_killed_mid_write_go_and_those_of_running_ones_stay() {
        let root = tempfile::tempdir().expect("dir");
        let generation = root.path().join("words/g1");
        std::fs::create_dir_all(&generation).expect("dir");
        std::fs::create_dir_all(root.path().join(".outgoing")).expect("dir");
        let mut child = std::process::Command::new("true").spawn().expect("true");
        let gone = child.id();
        child.wait().expect("wait");
        let files = [
            generation.join("part-0.arrow"),
            generation.join(format!("part-1.tmp-{gone}-3")),
            generation.join(format!("part-2.tmp-{}-4", std::process::id())),
            root.path().join(".outgoing/my-words-gdead-0-1.arrow"),
            root.path().join(".outgoing/words-g1-3-2.arrow"),
        ];
        for f in &files {
            std::fs::write(f, "x").expect("file");
        }
        let live = vec!["words/g1".to_string()];
        remove_abandoned_writes(root.path(), &live, SystemTime::now() + Duration::from_secs(1));
        let kept: Vec<bool> = files.iter().map(|f| f.exists()).collect();
        assert_eq!(kept, [true, false, true, false, true]);
        // Made after the driver's lists were asked for: spared whatever they are.
        std::fs::write(&files[1], "x").expect("file");
        remove_abandoned_writes(root.path(), &live, SystemTime::now() - Duration::from_secs(60));
        assert!(files[1].exists());
    }
}
