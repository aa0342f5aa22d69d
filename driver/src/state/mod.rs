//! The driver's state machine: everything the driver knows that must outlive a leader
//! (workers, binaries, jobs, stages, tasks, stored datasets). It changes only through
//! [`Command`]s applied in order, so that the Raft log replicates exactly this type;
//! liveness (heartbeats) is kept outside it, as leader-local soft state.
//!
//! ## Layout
//! - [`command`]: the commands (the log's entries) and their outcomes.
//! - [`task`]: a task's lifecycle, speculative copies included, as transitions.
//! - [`job`]: a job's lifecycle, the limits that fail it, what it leaves behind.
//! - [`records`]: registered workers and stored datasets.
//! - `apply`: applying a command: the one place the state changes.

mod apply;
pub mod command;
pub mod job;
pub mod records;
pub mod task;

use std::collections::BTreeMap;

use ringleader_core::ids::{Attempt, JobId, StageId, TaskId, WorkerId};
use serde::{Deserialize, Serialize};

pub use command::{Command, Outcome};
pub use job::{JobRecord, JobState, MAX_ATTEMPTS, MAX_FETCH_FAILURES, max_uncounted_failures};
pub use records::{DatasetRecord, WorkerRecord};
pub use task::{Speculative, TaskHistory, TaskState};

/// Finished jobs kept for `ringleader jobs`; older ones are forgotten as new ones arrive.
pub const KEPT_JOBS: usize = 1000;

/// Finished jobs whose results (collected rows, partial values) are kept, for a client
/// that reconnects after a leader change; older ones keep only their history, so the
/// replicated state (and every snapshot) stays small.
pub const KEPT_RESULTS: usize = 16;

/// The replicated state of a cluster.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClusterState {
    /// Registered workers, by id.
    pub workers: BTreeMap<WorkerId, WorkerRecord>,
    /// Job binaries, by hash: the drivers holding their bytes.
    pub binaries: BTreeMap<String, Vec<u64>>,
    /// Jobs, by id (ids sort in submission order).
    pub jobs: BTreeMap<JobId, JobRecord>,
    /// Stored datasets, by name.
    pub datasets: BTreeMap<String, DatasetRecord>,
    /// Job ids by client submission id.
    pub submissions: BTreeMap<String, JobId>,
    next_worker: u64,
    next_job: u64,
    /// When this driver saw task attempts start and end (not replicated).
    #[serde(skip)]
    pub observed: crate::observed::Observed,
}

impl ClusterState {
    /// A state from a snapshot's bytes, refused unless its jobs agree with their plans (a
    /// snapshot that decodes is not yet one `apply` can work on).
    pub fn from_snapshot(bytes: &[u8]) -> Result<ClusterState, String> {
        let state: ClusterState = postcard::from_bytes(bytes).map_err(|e| format!("does not decode: {e}"))?;
        for (id, job) in &state.jobs {
            let stages = job.plan.stages.len();
            let shapes_agree = job.tasks.len() == stages
                && job.history.len() == stages
                && job.plan.stages.iter().enumerate().all(|(s, stage)| {
                    job.tasks[s].len() == stage.tasks.len() && job.history[s].len() == stage.tasks.len()
                });
            if !shapes_agree || *id != job.id {
                return Err(format!("job {id} does not agree with its plan"));
            }
        }
        Ok(state)
    }

    /// The attempt of a task running beside `attempt` (its speculative copy, or the
    /// original its copy runs beside), with its worker: what loses if `attempt` finishes.
    pub fn rival_attempt(
        &self,
        job: &str,
        stage: StageId,
        task: TaskId,
        attempt: Attempt,
    ) -> Option<(WorkerId, Attempt)> {
        let j = self.jobs.get(job).filter(|j| j.state == JobState::Running)?;
        j.tasks.get(stage.index())?.get(task.index())?.rival(attempt)
    }

    /// Dataset generations (`name/generation`) workers must keep: the committed ones and
    /// those running jobs are writing.
    pub fn live_datasets(&self) -> Vec<String> {
        let committed = self.datasets.values().map(|d| format!("{}/{}", d.name, d.generation));
        let writing = self
            .jobs
            .values()
            .filter(|j| j.state == JobState::Running)
            .filter_map(|j| j.plan.store.as_ref())
            .map(|s| format!("{}/{}", s.dataset, s.generation));
        committed.chain(writing).collect()
    }

    /// The consistent-hash ring over the workers `include` accepts, weighted by slots.
    pub fn ring(&self, include: impl Fn(&str) -> bool) -> ringleader_core::ring::Ring<WorkerId> {
        let mut ring = ringleader_core::ring::Ring::new(ringleader_core::ring::DEFAULT_VNODES);
        for w in self.workers.values().filter(|w| include(&w.id)) {
            ring.add(w.id.clone(), w.slots);
        }
        ring
    }

    /// Attempts running on each worker (speculative copies included).
    pub fn running_per_worker(&self) -> BTreeMap<&str, u32> {
        let mut running: BTreeMap<&str, u32> = BTreeMap::new();
        for job in self.jobs.values().filter(|j| j.state == JobState::Running) {
            for task in job.tasks.iter().flatten() {
                for (_, worker) in task.running_attempts() {
                    *running.entry(worker).or_default() += 1;
                }
            }
        }
        running
    }
}
