//! Commands about the cluster's members and what they hold: workers joining and being lost,
//! job binaries uploaded and forgotten.

use ringleader_core::ids::WorkerId;

use super::records::WorkerRecord;
use super::{ClusterState, JobState, Outcome};

impl ClusterState {
    /// A worker at `record.address` registered. The same address registering again keeps
    /// its id; another incarnation is a restarted process, and what the old one ran or held
    /// is gone.
    pub(super) fn register_worker(&mut self, mut record: WorkerRecord) -> Outcome {
        let known = self
            .workers
            .values()
            .find(|w| w.address == record.address)
            .map(|w| (w.id.clone(), w.incarnation != record.incarnation));
        let id = match &known {
            Some((id, _)) => id.clone(),
            None => {
                self.next_worker += 1;
                WorkerId::new(format!("worker-{}", self.next_worker))
            }
        };
        record.id = id.clone();
        self.workers.insert(id.clone(), record);
        if let Some((_, true)) = known {
            self.lose_worker(&id);
        }
        Outcome::WorkerRegistered(id)
    }

    /// `worker` is lost: what it ran, and the map outputs it held that a stage still
    /// needs, run again. How many tasks went back to pending.
    pub(super) fn lose_worker(&mut self, worker: &str) -> u32 {
        self.jobs
            .values_mut()
            .filter(|j| j.state == JobState::Running)
            .map(|j| j.lose_worker(worker, true))
            .sum()
    }

    /// Drivers in `holders` hold binary `hash`, uploaded or used at `at_ms`.
    pub(super) fn add_binary(&mut self, hash: String, holders: Vec<u64>, at_ms: u64) -> Outcome {
        self.note_binary_use(&hash, at_ms);
        self.forgotten_binaries.retain(|h| *h != hash);
        let known = self.binaries.entry(hash).or_default();
        for h in holders {
            if !known.contains(&h) {
                known.push(h);
            }
        }
        Outcome::Done
    }

    /// Forgets binary `hash` unless it was used since `unused_since_ms` or a running job
    /// needs it (stale then).
    pub(super) fn forget_binary(&mut self, hash: String, unused_since_ms: u64) -> Outcome {
        let used_since = self.binary_used_ms.get(&hash).is_some_and(|&at| at > unused_since_ms);
        let running = self
            .jobs
            .values()
            .any(|j| j.binary == hash && j.state == JobState::Running);
        if used_since || running {
            return Outcome::Stale;
        }
        self.binaries.remove(&hash);
        self.binary_used_ms.remove(&hash);
        self.forgotten_binaries.push_back(hash);
        if self.forgotten_binaries.len() > super::KEPT_FORGOTTEN {
            self.forgotten_binaries.pop_front();
        }
        Outcome::Done
    }

    /// Notes that binary `hash` was uploaded or submitted at `at_ms`.
    pub(super) fn note_binary_use(&mut self, hash: &str, at_ms: u64) {
        let last = self.binary_used_ms.entry(hash.to_string()).or_default();
        *last = (*last).max(at_ms);
    }
}
