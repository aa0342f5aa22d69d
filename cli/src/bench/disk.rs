//! The disk's own durable write speed, measured in the same run as the workloads that
//! write to it: `bytes` in `streams` files written at once, each synced (what `dd …
//! conv=fdatasync` measures, with as many streams as the workload writes).

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// Bytes each `write` call hands the kernel.
const CHUNK: usize = 4 << 20;

/// Writes `bytes` into `streams` files under `dir` at once, each synced before it is
/// closed; the time until the last one is on disk (median of `runs`). The files are
/// removed afterwards.
pub(super) fn durable_write(dir: &Path, bytes: u64, streams: usize, runs: usize) -> anyhow::Result<Duration> {
    let streams = streams.max(1);
    let per_stream = bytes / streams as u64;
    let mut times = Vec::new();
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        std::thread::scope(|scope| {
            let writers: Vec<_> = (0..streams)
                .map(|i| scope.spawn(move || write_synced(&dir.join(format!("disk-probe-{i}")), per_stream)))
                .collect();
            writers
                .into_iter()
                .try_for_each(|w| w.join().map_err(|_| anyhow::anyhow!("a disk writer panicked"))?)
        })?;
        times.push(started.elapsed());
        for i in 0..streams {
            let _ = std::fs::remove_file(dir.join(format!("disk-probe-{i}")));
        }
    }
    times.sort();
    Ok(times[times.len() / 2])
}

/// Writes `bytes` of non-zero data to `path` and syncs it.
fn write_synced(path: &Path, bytes: u64) -> anyhow::Result<()> {
    let chunk: Vec<u8> = (0..CHUNK).map(|i| (i % 251) as u8 | 1).collect();
    let mut file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut left = bytes;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        file.write_all(&chunk[..n])
            .with_context(|| format!("writing {}", path.display()))?;
        left -= n as u64;
    }
    file.sync_all().with_context(|| format!("syncing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_writes_and_removes_its_files() {
        let dir = tempfile::tempdir().expect("dir");
        let took = durable_write(dir.path(), 3 << 20, 3, 1).expect("probe");
        assert!(took > Duration::ZERO);
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 0);
    }
}
