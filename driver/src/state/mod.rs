//! The driver's state machine: everything the driver knows that must outlive a leader
//! (workers, binaries, jobs, stages, tasks, stored datasets). It changes only through
//! [`Command`]s applied in order, so that the Raft log replicates exactly this type;
//! liveness (heartbeats) is kept outside it, as leader-local soft state.
//!
//! ## Layout
//! - [`command`]: the commands (the log's entries) and their outcomes.
//! - [`task`]: a task's lifecycle, speculative copies included, as transitions.
//! - [`stage`]: a stage's tasks with their histories, and the stage's lifecycle.
//! - [`job`]: a job's lifecycle, the limits that fail it, what it leaves behind.
//! - [`records`]: registered workers and stored datasets.
//! - `apply`: applying a command, the one place the state changes: a dispatcher to the
//!   commands' methods, by what they change: `members` (workers, binaries), `jobs`,
//!   `attempts` (a task's attempts), `datasets` (the stored names).

mod apply;
mod attempts;
pub mod command;
mod datasets;
pub mod job;
mod jobs;
mod members;
pub mod records;
pub mod stage;
pub mod task;

use std::collections::BTreeMap;

use ringleader_core::ids::{Attempt, JobId, StageId, TaskId, WorkerId};
use serde::{Deserialize, Serialize};

pub use apply::AttemptEvent;
pub use command::{Command, Outcome};
pub use job::{JobRecord, JobState, MAX_ATTEMPTS, MAX_FETCH_FAILURES, max_uncounted_failures};
pub use records::{DatasetRecord, PendingDataset, WorkerRecord};
pub use stage::{StageRecord, StageState, TaskRecord};
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
    /// When each binary was last uploaded or submitted, Unix milliseconds.
    pub binary_used_ms: BTreeMap<String, u64>,
    /// The binaries forgotten last (at most [`KEPT_FORGOTTEN`]): a job submitted with one
    /// is refused (its files are being deleted) until it is uploaded again.
    pub forgotten_binaries: std::collections::VecDeque<String>,
    /// Jobs, by id (as text: `job-1000000` sorts before `job-999999`; see
    /// [`ClusterState::jobs_in_order`] for submission order).
    pub jobs: BTreeMap<JobId, JobRecord>,
    /// Stored datasets, by name.
    pub datasets: BTreeMap<String, DatasetRecord>,
    /// Dataset writes placed and not yet committed, by `name/generation`.
    pub pending: BTreeMap<String, PendingDataset>,
    /// Job ids by client submission id.
    pub submissions: BTreeMap<String, JobId>,
    /// The client ids of the last few thousand dataset removals applied, so a retried removal
    /// answers as done and is never applied twice.
    pub removals: std::collections::VecDeque<String>,
    /// Pieces of commands being assembled (see [`Command::Part`]), by key: when the first
    /// was proposed (Unix milliseconds), and the bytes so far.
    pub parts: BTreeMap<(u64, u64), (u64, Vec<u8>)>,
    next_worker: u64,
    next_job: u64,
}

/// How many forgotten binaries the state remembers (see
/// [`ClusterState::forgotten_binaries`]).
pub const KEPT_FORGOTTEN: usize = 1000;

/// How long pieces of a command may wait for their assembly (a leader that stopped
/// proposing them, or whose write was abandoned): past it, the next piece drops them.
pub const PARTS_EXPIRE_MS: u64 = 10 * 60 * 1000;

/// The number in a job id `job-N` (ids of another shape sort after every numbered one).
fn submission_number(id: &JobId) -> u64 {
    id.strip_prefix("job-").and_then(|n| n.parse().ok()).unwrap_or(u64::MAX)
}

/// Why a snapshot's bytes make no state.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// They do not decode.
    #[error("does not decode: {0}")]
    Decode(#[from] postcard::Error),
    /// A job's tasks do not have the shape of its plan.
    #[error("job {0} does not agree with its plan")]
    Disagrees(JobId),
}

impl ClusterState {
    /// A state from a snapshot's bytes, refused unless its jobs agree with their plans (a
    /// snapshot that decodes is not yet one `apply` can work on).
    pub fn from_snapshot(bytes: &[u8]) -> Result<ClusterState, SnapshotError> {
        let state: ClusterState = postcard::from_bytes(bytes)?;
        for (id, job) in &state.jobs {
            let stages = job.plan.stages.len();
            let shapes_agree = job.stages.len() == stages
                && job
                    .plan
                    .stages
                    .iter()
                    .zip(&job.stages)
                    .all(|(plan, stage)| plan.tasks.len() == stage.tasks.len());
            if !shapes_agree || *id != job.id {
                return Err(SnapshotError::Disagrees(id.clone()));
            }
        }
        Ok(state)
    }

    /// The jobs `keep` accepts, in the order they were submitted (their ids' numbers:
    /// `job-999999` before `job-1000000`, which a map ordered by text puts first).
    pub fn jobs_in_order(&self, keep: impl Fn(&JobRecord) -> bool) -> Vec<&JobRecord> {
        let mut jobs: Vec<&JobRecord> = self.jobs.values().filter(|j| keep(j)).collect();
        jobs.sort_by_key(|j| (submission_number(&j.id), j.id.as_str()));
        jobs
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
        j.task(stage, task)?.state.rival(attempt)
    }

    /// Dataset generations (`name/generation`) workers must keep: the committed ones and
    /// those placed and not yet committed or given up (an upload, a running job's output).
    pub fn live_datasets(&self) -> Vec<String> {
        let committed = self.datasets.values().map(|d| format!("{}/{}", d.name, d.generation));
        committed.chain(self.pending.keys().cloned()).collect()
    }

    /// The consistent-hash ring over the workers `include` accepts, weighted by slots.
    pub fn ring(&self, include: impl Fn(&str) -> bool) -> ringleader_core::net::ring::Ring<WorkerId> {
        let mut ring = ringleader_core::net::ring::Ring::new(ringleader_core::net::ring::DEFAULT_VNODES);
        for w in self.workers.values().filter(|w| include(&w.id)) {
            ring.add(w.id.clone(), w.slots);
        }
        ring
    }

    /// Attempts running on each worker (speculative copies included).
    pub fn running_per_worker(&self) -> BTreeMap<&str, u32> {
        let mut running: BTreeMap<&str, u32> = BTreeMap::new();
        for job in self.jobs.values().filter(|j| j.state == JobState::Running) {
            for (_, worker) in job.running_attempts() {
                *running.entry(worker).or_default() += 1;
            }
        }
        running
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The submission of a job of `plan` with `binary`, under client id `submission`.
    fn submit(binary: &str, submission: &str, plan: ringleader_core::plan::JobPlan, submitted_ms: u64) -> Command {
        Command::SubmitJob {
            name: "t".into(),
            binary: binary.into(),
            args: Vec::new(),
            env: BTreeMap::new(),
            working_dir: String::new(),
            plan,
            submission: submission.into(),
            submitted_ms,
        }
    }

    /// A plan of no stages.
    fn no_stages() -> ringleader_core::plan::JobPlan {
        ringleader_core::plan::JobPlan {
            stages: Vec::new(),
            store: None,
        }
    }

    /// Submits a job of no stages and cancels it: a finished job.
    fn finished_job(state: &mut ClusterState, n: u64) {
        let Outcome::JobSubmitted(job) = state.apply(submit(&"0".repeat(32), &format!("sub-{n}"), no_stages(), 0))
        else {
            panic!("not submitted");
        };
        state.apply(Command::CancelJob {
            job,
            reason: "done".into(),
        });
    }

    /// A command's encoding as [`Command::Part`]s of `size` bytes under `key`, and the
    /// [`Command::Assemble`] that applies it.
    fn pieces(command: &Command, key: (u64, u64), size: usize) -> (Vec<Command>, Command) {
        let encoded = postcard::to_stdvec(command).expect("encode");
        let mut hash = ringleader_core::net::binary::ContentHash::default();
        hash.update(&encoded);
        let parts = encoded
            .chunks(size)
            .map(|bytes| Command::Part {
                key,
                bytes: bytes.to_vec(),
                at_ms: 1000,
            })
            .collect();
        let assemble = Command::Assemble {
            key,
            len: encoded.len() as u64,
            hash: hash.finish(),
        };
        (parts, assemble)
    }

    #[test]
    fn a_command_in_pieces_applies_as_the_whole_command_and_stale_pieces_go() {
        let register = Command::RegisterWorker {
            address: "10.0.0.1:7078".into(),
            slots: 2,
            pid: 1,
            shuffle_dir: "/s".into(),
            machine: "m".repeat(5000),
            incarnation: "i".into(),
        };
        let mut state = ClusterState::default();
        // An abandoned command of term 3, then a whole one of term 4 in interleaved pieces.
        for piece in pieces(&register, (3, 1), 700).0.into_iter().take(2) {
            assert_eq!(state.apply(piece), Outcome::Done);
        }
        let other = Command::CancelJob {
            job: JobId::from("job-000009"),
            reason: "r".repeat(3000),
        };
        let ((a, assemble_a), (mut b, assemble_b)) = (pieces(&register, (4, 1), 1000), pieces(&other, (4, 2), 1000));
        assert!(a.len() > 3 && b.len() > 2);
        b.pop();
        let mut b = b.into_iter();
        for x in a {
            state.apply(x);
            if let Some(y) = b.next() {
                state.apply(y);
            }
        }
        assert!(!state.parts.contains_key(&(3, 1)), "an earlier term's pieces stay");
        assert_eq!(
            state.apply(assemble_a),
            Outcome::WorkerRegistered(WorkerId::from("worker-1"))
        );
        assert_eq!(state.workers[&WorkerId::from("worker-1")].machine.len(), 5000);
        // Pieces cut short (the second command lost its tail), or not there: refused, no
        // panic, nothing applied.
        assert!(matches!(state.apply(assemble_b), Outcome::Malformed(why) if why.contains("bytes")));
        let (_, missing) = pieces(&other, (4, 9), 1000);
        assert!(matches!(state.apply(missing), Outcome::Malformed(_)));
        assert!(state.parts.is_empty(), "{:?}", state.parts.keys());
        let (nested, assemble) = pieces(&pieces(&other, (4, 1), 1000).1, (5, 1), 1000);
        nested.into_iter().for_each(|p| {
            state.apply(p);
        });
        assert!(matches!(state.apply(assemble), Outcome::Malformed(_)));
        // Pieces nobody assembled for longer than PARTS_EXPIRE_MS go with the next piece.
        let (old, _) = pieces(&other, (5, 2), 1000);
        state.apply(old.into_iter().next().expect("a piece"));
        state.apply(Command::Part {
            key: (5, 3),
            bytes: vec![1],
            at_ms: 1000 + PARTS_EXPIRE_MS + 1,
        });
        assert_eq!(state.parts.keys().copied().collect::<Vec<_>>(), vec![(5, 3)]);
    }

    #[test]
    fn a_binary_is_forgotten_only_if_unused_since_the_leader_looked_and_no_job_runs_it() {
        let mut state = ClusterState::default();
        let hash = "0".repeat(32);
        let add = |at_ms| Command::AddBinary {
            hash: hash.clone(),
            holders: vec![1, 2],
            at_ms,
        };
        let forget = |unused_since_ms| Command::ForgetBinary {
            hash: hash.clone(),
            unused_since_ms,
        };
        state.apply(add(100));
        // Uploaded again after the leader looked: kept.
        assert_eq!(state.apply(forget(50)), Outcome::Stale);
        // A running job uses it (submitted before the leader looked): kept until it ends.
        let running = submit(&hash, "s", crate::scheduler::tests::job(1), 90);
        let Outcome::JobSubmitted(job) = state.apply(running) else {
            panic!("not submitted");
        };
        assert_eq!(state.jobs[&job].state, JobState::Running);
        assert_eq!(state.apply(forget(200)), Outcome::Stale);
        state.apply(Command::CancelJob {
            job,
            reason: "done".into(),
        });
        assert_eq!(state.apply(forget(100)), Outcome::Done);
        assert!(!state.binaries.contains_key(&hash) && !state.binary_used_ms.contains_key(&hash));
        // A job submitted with it after that (checked before the forgetting applied) is
        // refused, until the binary is uploaded again.
        let submit = |submission: &str| submit(&hash, submission, no_stages(), 400);
        assert!(matches!(state.apply(submit("s2")), Outcome::Refused(why) if why.contains("upload it first")));
        state.apply(add(500));
        assert!(matches!(state.apply(submit("s3")), Outcome::JobSubmitted(_)));
    }

    #[test]
    fn past_job_999999_the_oldest_finished_jobs_are_forgotten_first() {
        let mut state = ClusterState {
            next_job: 999_000,
            ..ClusterState::default()
        };
        for n in 0..KEPT_JOBS as u64 + 200 {
            finished_job(&mut state, n);
        }
        // job-999001 .. job-1000200 were submitted; the newest KEPT_JOBS are kept.
        assert_eq!(state.jobs.len(), KEPT_JOBS);
        assert!(state.jobs.contains_key("job-1000200"), "the newest job was forgotten");
        assert!(state.jobs.contains_key("job-1000000"));
        assert!(state.jobs.contains_key("job-999201"));
        assert!(!state.jobs.contains_key("job-999200"));
        let listed: Vec<&str> = state.jobs_in_order(|_| true).iter().map(|j| j.id.as_str()).collect();
        assert_eq!(listed.first(), Some(&"job-999201"));
        assert_eq!(listed.last(), Some(&"job-1000200"));
    }
}
