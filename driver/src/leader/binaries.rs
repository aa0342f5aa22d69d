//! The job-binary store's bound: while this driver leads, it forgets binaries that no job
//! used for [`ringleader_core::net::binary::retention`] (a command in the log, refused if a job
//! or an upload used the binary meanwhile); every driver deletes the files of binaries its
//! state no longer lists, and the temporary files of uploads whose process died.

use std::sync::Arc;
use std::time::Duration;

use ringleader_core::clock::now_ms;
use ringleader_core::net::binary::{remove_unkept, retention};

use super::DriverInner;
use crate::state::{Command, JobState};

/// How often the store is swept (more often when a test shortens the retention).
fn sweep_every(retention: Duration) -> Duration {
    (retention / 4).clamp(Duration::from_millis(250), Duration::from_secs(60))
}

impl DriverInner {
    /// Sweeps the binary store until the process ends.
    pub async fn sweep_binaries_forever(self: Arc<Self>) {
        let retention = retention();
        loop {
            tokio::time::sleep(sweep_every(retention)).await;
            if self.leading().is_some() {
                self.forget_unused_binaries(retention).await;
            }
            let (inner, dir) = (self.clone(), self.binaries_dir.clone());
            let removed = tokio::task::spawn_blocking(move || {
                remove_unkept(&dir, |hash, modified| {
                    // A file not yet listed may be an upload about to be recorded.
                    inner.state().binaries.contains_key(hash) || modified.elapsed().map_or(true, |age| age < retention)
                })
            })
            .await
            .unwrap_or_default();
            for hash in removed {
                tracing::info!("deleted job binary {hash}: no job used it for {retention:?}");
            }
        }
    }

    /// Commits the forgetting of every binary no running job uses and nobody uploaded or
    /// submitted within `retention`.
    async fn forget_unused_binaries(&self, retention: Duration) {
        let cutoff = now_ms().saturating_sub(retention.as_millis() as u64);
        let unused: Vec<(String, u64)> = {
            let state = self.state();
            state
                .binaries
                .keys()
                .filter(|hash| {
                    !state
                        .jobs
                        .values()
                        .any(|j| &j.binary == *hash && j.state == JobState::Running)
                })
                .map(|hash| (hash.clone(), state.binary_used_ms.get(hash).copied().unwrap_or(0)))
                .filter(|(_, used)| *used < cutoff)
                .collect()
        };
        for (hash, unused_since_ms) in unused {
            if let Err(e) = self.write(Command::ForgetBinary { hash, unused_since_ms }).await {
                tracing::debug!("forgetting unused binaries: {e}");
                return;
            }
        }
    }
}
