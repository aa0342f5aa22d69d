//! The worker's stored-datasets directory: `DATASET/GENERATION/part-P.arrow`, temporary
//! files of writers (`part-P.tmp-PID-K`) and copies staged for other owners
//! (`DATASET/GENERATION/.outgoing-P-ATTEMPT-PID.arrow`). What it holds (for the driver's audit)
//! and deleting what is dead (for housekeeping), in one walk each.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The entries of `dir` by name (none when it cannot be read).
fn children(dir: &Path) -> Vec<(String, PathBuf)> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect()
}

/// How far before the driver's lists were asked for a change must be for housekeeping to
/// trust it predates them: a file system stamps times from the kernel's coarse clock, which
/// runs up to a tick behind the clock `asked` was read from (a generation placed just after
/// the question was seen stamped just before it, and deleted mid-upload).
const CLOCK_SLACK: Duration = Duration::from_secs(2);

/// Whether a file system time `stamped` is well before `asked` (see [`CLOCK_SLACK`]).
pub(crate) fn predates(stamped: SystemTime, asked: SystemTime) -> bool {
    stamped + CLOCK_SLACK < asked
}

/// Whether `path` was last changed well before `asked` (a later one may belong to
/// something the driver's lists, asked for at `asked`, did not know yet).
fn made_before(path: &Path, asked: SystemTime) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .is_ok_and(|t| predates(t, asked))
}

/// One whole partition file under the datasets directory.
struct PartitionFile {
    dataset: String,
    generation: String,
    partition: u32,
    path: PathBuf,
}

/// The whole partition files (`DATASET/GENERATION/part-P.arrow`) under `root` of the
/// datasets `wanted` accepts by name; files being written are not.
fn partition_files(root: &Path, wanted: impl Fn(&str) -> bool) -> Vec<PartitionFile> {
    let mut found = Vec::new();
    for (dataset, dataset_dir) in children(root).into_iter().filter(|(name, _)| wanted(name)) {
        for (generation, generation_dir) in children(&dataset_dir) {
            for (file, path) in children(&generation_dir) {
                if let Some(partition) = file
                    .strip_prefix("part-")
                    .and_then(|f| f.strip_suffix(".arrow"))
                    .and_then(|p| p.parse::<u32>().ok())
                {
                    found.push(PartitionFile {
                        dataset: dataset.clone(),
                        generation: generation.clone(),
                        partition,
                        path,
                    });
                }
            }
        }
    }
    found
}

/// The whole partition files under `root`, as `DATASET/GENERATION/PARTITION` (files being
/// written are not).
pub fn stored_partitions(root: &Path) -> Vec<String> {
    partition_files(root, |_| true)
        .into_iter()
        .map(|p| format!("{}/{}/{}", p.dataset, p.generation, p.partition))
        .collect()
}

/// Bytes of the whole partition files under `root` of the datasets holding programs'
/// caches ([`ringleader_core::io::store::CACHE_PREFIX`]): what executors reading them keep
/// mapped in memory.
pub fn cached_bytes(root: &Path) -> u64 {
    partition_files(root, |name| name.starts_with(ringleader_core::io::store::CACHE_PREFIX))
        .iter()
        .map(|p| std::fs::metadata(&p.path).map_or(0, |m| m.len()))
        .sum()
}

/// Deletes what is dead under `root`, sparing anything made after `asked`: generations the
/// driver no longer lists in `live` (a removed or replaced dataset, the output of a job that
/// failed, with any copies staged there for other owners), and temporary files and staged
/// copies of writers whose process is gone (killed mid-write).
pub fn remove_dead(root: &Path, live: &[String], asked: SystemTime) {
    for (name, dataset) in children(root) {
        if !ringleader_core::ids::valid_dataset_name(&name) {
            continue;
        }
        let mut left = 0;
        for (generation_name, generation) in children(&dataset) {
            if !made_before(&generation, asked) {
                left += 1;
            } else if !live.contains(&format!("{name}/{generation_name}")) {
                let _ = std::fs::remove_dir_all(&generation);
            } else {
                left += 1;
                remove_abandoned_temporaries(&generation, asked);
            }
        }
        if left == 0 {
            let _ = std::fs::remove_dir(&dataset);
        }
    }
}

/// The process that writes `name`, a temporary file (`part-P.tmp-PID-K`) or a staged copy
/// (`.outgoing-P-ATTEMPT-PID.arrow`); `None` for a partition.
fn writer_of(name: &str) -> Option<i32> {
    // A temporary file's own writer first (a staged copy is written through one too).
    let pid = match (name.rsplit_once(".tmp-"), name.strip_prefix(".outgoing-")) {
        (Some((_, rest)), _) => rest.split('-').next()?,
        (None, Some(rest)) => rest.strip_suffix(".arrow")?.rsplit('-').next()?,
        (None, None) => return None,
    };
    pid.parse().ok()
}

/// Deletes the temporary files and staged copies under a live generation whose writer's
/// process is gone.
fn remove_abandoned_temporaries(generation: &Path, asked: SystemTime) {
    for (name, file) in children(generation) {
        let pid = writer_of(&name);
        if let Some(pid) = pid
            && !ringleader_core::net::machine::process_runs(pid)
            && made_before(&file, asked)
        {
            let _ = std::fs::remove_file(&file);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn cached_bytes_count_whole_partitions_of_caches_only() {
        let root = tempfile::tempdir().expect("dir");
        let files = [
            ("cache-s1-3/g1/part-0.arrow", 100),
            ("cache-s1-3/g1/part-1.arrow", 20),
            ("cache-s2-1/g7/part-4.arrow", 3),
            // Being written, or not a cache: not counted.
            ("cache-s2-1/g7/part-5.tmp-1-2", 1000),
            ("words/g1/part-0.arrow", 5000),
            ("broadcast-s1-2/g1/part-0.arrow", 7000),
        ];
        for (name, len) in files {
            let path = root.path().join(name);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
            std::fs::write(&path, vec![0u8; len]).expect("write");
        }
        assert_eq!(cached_bytes(root.path()), 123);
        assert_eq!(crate::executors::budget_beside_caches(1000, 123), 877);
        assert_eq!(crate::executors::budget_beside_caches(1000, 900), 250);
    }

    #[test]
    fn files_of_writers_killed_mid_write_go_and_those_of_running_ones_stay() {
        let root = tempfile::tempdir().expect("dir");
        let generation = root.path().join("words/g1");
        let dead = root.path().join("my-words/gdead");
        std::fs::create_dir_all(&generation).expect("dir");
        std::fs::create_dir_all(&dead).expect("dir");
        let mut child = std::process::Command::new("true").spawn().expect("true");
        let gone = child.id();
        child.wait().expect("wait");
        let me = std::process::id();
        let files = [
            generation.join("part-0.arrow"),
            generation.join(format!("part-1.tmp-{gone}-3")),
            generation.join(format!("part-2.tmp-{me}-4")),
            dead.join(format!(".outgoing-0-1-{me}.arrow")),
            generation.join(format!(".outgoing-3-2-{me}.arrow")),
            generation.join(format!(".outgoing-4-1-{gone}.arrow")),
            generation.join(format!(".outgoing-5-1-{gone}.tmp-{gone}-9")),
        ];
        for f in &files {
            std::fs::write(f, "x").expect("file");
        }
        let live = vec!["words/g1".to_string()];
        remove_dead(
            root.path(),
            &live,
            SystemTime::now() + CLOCK_SLACK + Duration::from_secs(1),
        );
        let kept: Vec<bool> = files.iter().map(|f| f.exists()).collect();
        assert_eq!(kept, [true, false, true, false, true, false, false]);
        // Made after the driver's lists were asked for, or within the clock's slack before:
        // spared whatever they are.
        std::fs::write(&files[1], "x").expect("file");
        remove_dead(root.path(), &live, SystemTime::now() - Duration::from_secs(60));
        assert!(files[1].exists());
        remove_dead(root.path(), &live, SystemTime::now() + Duration::from_millis(500));
        assert!(files[1].exists(), "stamped within the slack of the question");
    }
}
