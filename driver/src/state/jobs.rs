//! Commands about whole jobs: a submission, a cancellation, a new leader's requeue; and what
//! a job does once its tasks are done (it succeeds, committing the dataset it wrote, or fails)
//! and once it ended (its placed output given up, its plan's data dropped, old jobs forgotten).

use std::collections::BTreeMap;

use ringleader_core::ids::JobId;
use ringleader_core::plan::{JobPlan, TaskValue};

use super::job::{JobRecord, JobState, stored_output};
use super::stage::StageRecord;
use super::task::TaskState;
use super::{ClusterState, KEPT_JOBS, KEPT_RESULTS, Outcome};

/// A job as submitted (the fields of [`super::Command::SubmitJob`]).
pub(super) struct Submission {
    pub name: String,
    pub binary: String,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub working_dir: String,
    pub plan: JobPlan,
    pub submission: String,
    pub submitted_ms: u64,
}

impl ClusterState {
    /// Accepts a job: its id, the earlier job's for a repeated submission id, or refused
    /// when its binary was forgotten meanwhile.
    pub(super) fn submit_job(&mut self, s: Submission) -> Outcome {
        if let Some(existing) = self.submissions.get(&s.submission)
            && !s.submission.is_empty()
        {
            return Outcome::JobSubmitted(existing.clone());
        }
        // Forgotten between the leader's check and this command: its files go.
        if self.forgotten_binaries.contains(&s.binary) {
            return Outcome::Refused(format!("binary {} is not uploaded; upload it first", s.binary));
        }
        self.forget_old_jobs();
        self.note_binary_use(&s.binary, s.submitted_ms);
        self.next_job += 1;
        let id = JobId::new(format!("job-{:06}", self.next_job));
        let record = JobRecord {
            id: id.clone(),
            name: s.name,
            binary: s.binary,
            args: s.args,
            env: s.env,
            working_dir: s.working_dir,
            stages: s
                .plan
                .stages
                .iter()
                .map(|stage| StageRecord::new(stage.tasks.len()))
                .collect(),
            plan: s.plan,
            state: JobState::Running,
            submission: s.submission.clone(),
            submitted_ms: s.submitted_ms,
            results_dropped: false,
            fetch_failures: 0,
            uncounted_failures: 0,
            plan_data_dropped: false,
            accumulated: Default::default(),
        };
        if !s.submission.is_empty() {
            self.submissions.insert(s.submission, id.clone());
        }
        self.jobs.insert(id.clone(), record);
        // A job of no tasks at all (an empty input) is done as it arrives.
        self.end_if_done(&id);
        Outcome::JobSubmitted(id)
    }

    /// Cancels a running job for `reason` (stale if it is not running).
    pub(super) fn cancel_job(&mut self, job: &str, reason: String) -> Outcome {
        match self.jobs.get_mut(job) {
            Some(j) if j.state == JobState::Running => {
                j.state = JobState::Cancelled(reason);
                Outcome::Done
            }
            _ => Outcome::Stale,
        }
    }

    /// A new leader took over: every running task of every running job is pending again.
    pub(super) fn requeue_running(&mut self) -> Outcome {
        for job in self.jobs.values_mut().filter(|j| j.state == JobState::Running) {
            job.stages.iter_mut().for_each(StageRecord::requeue);
        }
        Outcome::Done
    }

    /// Ends `job` if every task of every stage is done: it succeeds, committing the
    /// dataset it wrote (if the name still has the generation its placement expected), or
    /// fails if that dataset lacks replicas or was replaced meanwhile.
    pub(super) fn end_if_done(&mut self, job: &JobId) {
        let Some(j) = self.jobs.get(job) else { return };
        if !j.stages.iter().all(StageRecord::is_done) {
            return;
        }
        let ended = match stored_output(j, &self.workers) {
            Ok(Some(record)) => match self.settle_pending(&record.name, &record.generation) {
                Ok(()) => {
                    self.datasets.insert(record.name.clone(), record);
                    JobState::Succeeded
                }
                Err(conflict) => JobState::Failed(conflict.to_string()),
            },
            Ok(None) => JobState::Succeeded,
            Err(missing) => JobState::Failed(missing.to_string()),
        };
        if let Some(j) = self.jobs.get_mut(job) {
            j.state = ended;
        }
    }

    /// Once `job` ended: gives up its placed output if it did not commit it (failed,
    /// cancelled, or lost its race; the workers delete what it wrote), and drops the data
    /// its plan carried (nothing runs from it again; a finished job's record, kept in
    /// memory and in every snapshot, is then bounded by its number of tasks).
    pub(super) fn settle_ended_output(&mut self, job: &JobId) {
        let Some(j) = self.jobs.get_mut(job).filter(|j| j.state != JobState::Running) else {
            return;
        };
        if !j.plan_data_dropped {
            j.plan.forget_data();
            j.plan_data_dropped = true;
        }
        if let Some(spec) = &j.plan.store {
            let key = super::records::pending_key(&spec.dataset, &spec.generation);
            self.pending.remove(&key);
        }
    }

    /// Drops the oldest finished jobs beyond [`KEPT_JOBS`], and the result values of those
    /// beyond [`KEPT_RESULTS`].
    fn forget_old_jobs(&mut self) {
        let finished: Vec<JobId> = self
            .jobs_in_order(|j| j.state != JobState::Running)
            .into_iter()
            .map(|j| j.id.clone())
            .collect();
        for id in finished.iter().take(finished.len().saturating_sub(KEPT_JOBS - 1)) {
            if let Some(job) = self.jobs.remove(id) {
                self.submissions.remove(&job.submission);
            }
        }
        for id in finished.iter().rev().skip(KEPT_RESULTS) {
            let Some(job) = self.jobs.get_mut(id) else { continue };
            if job.results_dropped {
                break;
            }
            job.results_dropped = true;
            for task in job.stages.iter_mut().flat_map(|s| &mut s.tasks) {
                if let TaskState::Done { value, .. } = &mut task.state
                    && matches!(value, TaskValue::Bytes(_) | TaskValue::Batches(_))
                {
                    *value = TaskValue::Bytes(Vec::new());
                }
            }
        }
    }
}
