//! The worker's cache of job binaries (`binaries/<hash>`), bounded: a binary no task used
//! for [`ringleader_core::net::binary::retention`] is deleted (fetched again if a job needs it
//! later), and so are the temporary files of fetches whose process died.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use ringleader_core::sync::lock;

/// The cached binaries' directory and when each binary was last used by this process.
#[derive(Debug, Clone)]
pub struct BinaryCache {
    dir: PathBuf,
    used: Arc<Mutex<HashMap<String, SystemTime>>>,
}

impl BinaryCache {
    /// The cache in `dir`.
    pub fn new(dir: PathBuf) -> BinaryCache {
        BinaryCache {
            dir,
            used: Arc::default(),
        }
    }

    /// Where binary `hash` is cached.
    pub fn path(&self, hash: &str) -> PathBuf {
        self.dir.join(hash)
    }

    /// The cache's directory.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// Notes that a task is about to use binary `hash` (before its file is checked: a
    /// sweep that deletes it first makes the caller fetch it again; one that comes after
    /// keeps it).
    pub fn note_use(&self, hash: &str) {
        lock(&self.used).insert(hash.to_string(), SystemTime::now());
    }

    /// Deletes the binaries unused for `retention` (by this process, or, for one it never
    /// used, since its file last changed); returns their hashes.
    pub fn sweep(&self, retention: Duration) -> Vec<String> {
        // Held throughout, so no use is noted between a binary's check and its deletion.
        let used = lock(&self.used);
        ringleader_core::net::binary::remove_unkept(&self.dir, |hash, modified| {
            let last = used.get(hash).copied().unwrap_or(modified);
            last.elapsed().map_or(true, |age| age < retention)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binaries_unused_past_the_retention_go_and_used_ones_stay() {
        let dir = tempfile::tempdir().expect("dir");
        let cache = BinaryCache::new(dir.path().to_path_buf());
        let (old, used, fresh) = ("a".repeat(32), "b".repeat(32), "c".repeat(32));
        for hash in [&old, &used, &fresh] {
            std::fs::write(cache.path(hash), b"binary").expect("write");
        }
        let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
        for hash in [&old, &used] {
            let file = std::fs::File::options()
                .write(true)
                .open(cache.path(hash))
                .expect("open");
            file.set_modified(an_hour_ago).expect("set mtime");
        }
        // A fetch's temporary file whose process is gone, and one of this (running) process.
        let dead = dir.path().join(format!(".{old}.{}-0.tmp", i32::MAX));
        let live = dir.path().join(format!(".{old}.{}-0.tmp", std::process::id()));
        std::fs::write(&dead, b"part").expect("write");
        std::fs::write(&live, b"part").expect("write");
        cache.note_use(&used);
        assert_eq!(cache.sweep(Duration::from_secs(600)), vec![old.clone()]);
        assert!(!cache.path(&old).exists() && !dead.exists());
        assert!(cache.path(&used).exists() && cache.path(&fresh).exists() && live.exists());
    }
}
