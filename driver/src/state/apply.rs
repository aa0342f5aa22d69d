//! Applying a [`Command`] to the [`ClusterState`]: the one place the replicated state
//! changes. Task transitions are [`TaskState`]'s methods; what a job does when its tasks
//! finish or fail (succeed, commit its dataset, fail for good) is decided here, and each
//! applied attempt's start and end is noted in the driver's soft state.

use ringleader_core::ids::{Attempt, JobId, StageId, TaskId, WorkerId};
use ringleader_core::plan::TaskValue;

use super::job::{JobRecord, JobState, MAX_ATTEMPTS, MAX_FETCH_FAILURES, max_uncounted_failures, stored_output};
use super::records::WorkerRecord;
use super::task::{TaskHistory, TaskState};
use super::{ClusterState, Command, KEPT_JOBS, KEPT_RESULTS, Outcome};
use ringleader_core::ids::AttemptKey;

impl ClusterState {
    /// Ends `job` if every task of every stage is done: it succeeds, committing the
    /// dataset it wrote (if the name still has the generation its placement expected), or
    /// fails if that dataset lacks replicas or was replaced meanwhile.
    fn end_if_done(&mut self, job: &JobId) {
        let Some(j) = self.jobs.get(job) else { return };
        if !(0..j.tasks.len()).all(|s| j.stage_done(s)) {
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
            Err(message) => JobState::Failed(message),
        };
        if let Some(j) = self.jobs.get_mut(job) {
            j.state = ended;
        }
    }

    /// Applies one command.
    pub fn apply(&mut self, command: Command) -> Outcome {
        let noted = Noted::of(&command);
        let job = command.job().cloned();
        let outcome = self.apply_one(command);
        noted.record(self, &outcome);
        if let Some(job) = job {
            self.settle_ended_output(&job);
        }
        outcome
    }

    /// Once `job` ended: gives up its placed output if it did not commit it (failed,
    /// cancelled, or lost its race; the workers delete what it wrote), and drops the data
    /// its plan carried (nothing runs from it again; a finished job's record, kept in
    /// memory and in every snapshot, is then bounded by its number of tasks).
    fn settle_ended_output(&mut self, job: &JobId) {
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

    fn apply_one(&mut self, command: Command) -> Outcome {
        match command {
            Command::RegisterWorker {
                address,
                slots,
                pid,
                shuffle_dir,
                machine,
                incarnation,
            } => {
                // The same address registering again keeps its id. Another incarnation is a
                // restarted process: what the old one ran or held is gone.
                let known = self
                    .workers
                    .values()
                    .find(|w| w.address == address)
                    .map(|w| (w.id.clone(), w.incarnation != incarnation));
                let id = match &known {
                    Some((id, _)) => id.clone(),
                    None => {
                        self.next_worker += 1;
                        WorkerId::new(format!("worker-{}", self.next_worker))
                    }
                };
                let record = WorkerRecord {
                    id: id.clone(),
                    address,
                    slots,
                    pid,
                    shuffle_dir,
                    machine,
                    incarnation,
                };
                self.workers.insert(id.clone(), record);
                if let Some((_, true)) = known {
                    for job in self.jobs.values_mut().filter(|j| j.state == JobState::Running) {
                        job.lose_worker(&id, true);
                    }
                }
                Outcome::WorkerRegistered(id)
            }
            Command::AddBinary { hash, holders, at_ms } => {
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
            Command::ForgetBinary { hash, unused_since_ms } => {
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
            Command::SubmitJob {
                name,
                binary,
                args,
                env,
                working_dir,
                plan,
                submission,
                submitted_ms,
            } => {
                if let Some(existing) = self.submissions.get(&submission)
                    && !submission.is_empty()
                {
                    return Outcome::JobSubmitted(existing.clone());
                }
                // Forgotten between the leader's check and this command: its files go.
                if self.forgotten_binaries.contains(&binary) {
                    return Outcome::Refused(format!("binary {binary} is not uploaded; upload it first"));
                }
                self.forget_old_jobs();
                self.note_binary_use(&binary, submitted_ms);
                self.next_job += 1;
                let id = JobId::new(format!("job-{:06}", self.next_job));
                let tasks = plan
                    .stages
                    .iter()
                    .map(|s| vec![TaskState::Pending; s.tasks.len()])
                    .collect();
                let history = plan
                    .stages
                    .iter()
                    .map(|s| vec![TaskHistory::default(); s.tasks.len()])
                    .collect();
                let record = JobRecord {
                    id: id.clone(),
                    name,
                    binary,
                    args,
                    env,
                    working_dir,
                    plan,
                    tasks,
                    history,
                    state: JobState::Running,
                    submission: submission.clone(),
                    submitted_ms,
                    results_dropped: false,
                    fetch_failures: 0,
                    uncounted_failures: 0,
                    plan_data_dropped: false,
                    accumulated: Default::default(),
                };
                if !submission.is_empty() {
                    self.submissions.insert(submission, id.clone());
                }
                self.jobs.insert(id.clone(), record);
                // A job of no tasks at all (an empty input) is done as it arrives.
                self.end_if_done(&id);
                Outcome::JobSubmitted(id)
            }
            Command::StartTask {
                job,
                stage,
                task,
                worker,
            } => self.launch(&job, stage, task, |slot, history| slot.start(history, worker)),
            Command::FinishTask {
                job,
                stage,
                task,
                attempt,
                value,
                read,
                accumulated,
            } => {
                let Some((slot, history)) = self.running_task(&job, stage, task) else {
                    return Outcome::Stale;
                };
                // A stored partition counts only from the attempt granted its commit.
                if matches!(value, TaskValue::Stored { .. }) && history.committer != Some(attempt) {
                    return Outcome::Stale;
                }
                // The first attempt to finish wins; the other's report will be stale.
                if !slot.finish(attempt, value, read) {
                    return Outcome::Stale;
                }
                // A task's updates count once: a success after a recomputation adds none.
                if let Some(j) = self.jobs.get_mut(&job) {
                    j.accumulated.entry((stage, task)).or_insert(accumulated);
                }
                self.end_if_done(&job);
                Outcome::Done
            }
            Command::FailTask {
                job,
                stage,
                task,
                attempt,
                message,
                retryable,
                counts,
            } => {
                let Some((slot, history)) = self.running_task(&job, stage, task) else {
                    return Outcome::Stale;
                };
                if slot.fail(history, attempt, counts).is_none() {
                    return Outcome::Stale;
                }
                let exhausted = history.failures >= MAX_ATTEMPTS;
                let Some(j) = self.jobs.get_mut(&job) else {
                    return Outcome::Done;
                };
                if !counts {
                    j.uncounted_failures += 1;
                }
                if !retryable || exhausted {
                    j.state = JobState::Failed(message);
                } else if j.uncounted_failures > max_uncounted_failures(j) {
                    j.state = JobState::Failed(format!(
                        "tasks were lost {} times without a task to blame (e.g. executors exiting under several tasks); the last: {message}",
                        j.uncounted_failures
                    ));
                }
                Outcome::Done
            }
            Command::Speculate {
                job,
                stage,
                task,
                worker,
            } => self.launch(&job, stage, task, |slot, history| slot.speculate(history, worker)),
            Command::PlaceDataset(pending) => self.place_dataset(pending),
            Command::CommitDataset(record) => self.commit_dataset(record),
            Command::AbortDataset { name, generation } => self.abort_dataset(&name, &generation),
            Command::RemoveDataset {
                name,
                generation,
                request,
            } => self.remove_dataset(&name, &generation, &request),
            Command::RepairDataset {
                name,
                generation,
                partition,
                holders,
            } => self.repair_dataset(&name, &generation, partition, holders),
            Command::CancelJob { job, reason } => match self.jobs.get_mut(&job) {
                Some(j) if j.state == JobState::Running => {
                    j.state = JobState::Cancelled(reason);
                    Outcome::Done
                }
                _ => Outcome::Stale,
            },
            Command::RequeueRunning => {
                for job in self.jobs.values_mut().filter(|j| j.state == JobState::Running) {
                    job.tasks.iter_mut().flatten().for_each(TaskState::requeue);
                }
                Outcome::Done
            }
            Command::WorkerLost { worker } => {
                let lost: u32 = self
                    .jobs
                    .values_mut()
                    .filter(|j| j.state == JobState::Running)
                    .map(|j| j.lose_worker(&worker, true))
                    .sum();
                Outcome::Requeued(lost)
            }
            Command::FetchFailed {
                job,
                stage,
                task,
                attempt,
                worker,
                message,
            } => {
                let Some((slot, _)) = self.running_task(&job, stage, task) else {
                    return Outcome::Stale;
                };
                if !slot.fetch_failed(attempt) {
                    return Outcome::Stale;
                }
                let Some(j) = self.jobs.get_mut(&job) else {
                    return Outcome::Stale;
                };
                j.fetch_failures += 1;
                if j.fetch_failures > MAX_FETCH_FAILURES {
                    j.state = JobState::Failed(format!(
                        "map output could not be read {} times; the last: {message}",
                        j.fetch_failures
                    ));
                    return Outcome::Done;
                }
                Outcome::Requeued(j.lose_worker(&worker, false) + 1)
            }
            Command::Batch(commands) => Outcome::Batch(commands.into_iter().map(|c| self.apply(c)).collect()),
            Command::AuthorizeCommit {
                job,
                stage,
                task,
                attempt,
            } => {
                let Some((slot, history)) = self.running_task(&job, stage, task) else {
                    return Outcome::Refused(format!("{job} is not running"));
                };
                match slot.grant_commit(history, attempt) {
                    Ok(grant) => Outcome::Granted(grant),
                    Err(why) => Outcome::Refused(why.to_string()),
                }
            }
            Command::Part { key, bytes, at_ms } => {
                // A leader proposes its pieces in one go: those of an earlier term's leader,
                // and any left unassembled too long, never will be assembled.
                self.parts.retain(|k, (first_ms, _)| {
                    k.0 >= key.0 && first_ms.saturating_add(super::PARTS_EXPIRE_MS) >= at_ms
                });
                self.parts
                    .entry(key)
                    .or_insert_with(|| (at_ms, Vec::new()))
                    .1
                    .extend_from_slice(&bytes);
                Outcome::Done
            }
            Command::Assemble { key, len, hash } => {
                let Some((_, bytes)) = self.parts.remove(&key) else {
                    return Outcome::Malformed(format!("no pieces {key:?} to assemble"));
                };
                let mut found = ringleader_core::net::binary::ContentHash::default();
                found.update(&bytes);
                if bytes.len() as u64 != len || found.finish() != hash {
                    return Outcome::Malformed(format!(
                        "pieces {key:?} hold {} bytes, not the {len} proposed (or not the same bytes)",
                        bytes.len()
                    ));
                }
                match postcard::from_bytes(&bytes) {
                    Ok(Command::Part { .. } | Command::Assemble { .. }) => {
                        Outcome::Malformed(format!("pieces {key:?} assemble into another piece"))
                    }
                    Ok(command) => self.apply(command),
                    Err(e) => Outcome::Malformed(format!("pieces {key:?} do not decode: {e}")),
                }
            }
        }
    }

    /// Notes that binary `hash` was uploaded or submitted at `at_ms`.
    fn note_binary_use(&mut self, hash: &str, at_ms: u64) {
        let last = self.binary_used_ms.entry(hash.to_string()).or_default();
        *last = (*last).max(at_ms);
    }

    /// Drops the oldest finished jobs beyond [`KEPT_JOBS`].
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
            for task in job.tasks.iter_mut().flatten() {
                if let TaskState::Done { value, .. } = task
                    && matches!(value, TaskValue::Bytes(_) | TaskValue::Batches(_))
                {
                    *value = TaskValue::Bytes(Vec::new());
                }
            }
        }
    }

    /// Starts an attempt of a running task with `start` (the original or a speculative
    /// copy): the attempt's number, or stale when the task is not running or `start` refuses.
    fn launch(
        &mut self,
        job: &str,
        stage: StageId,
        task: TaskId,
        start: impl FnOnce(&mut TaskState, &mut TaskHistory) -> Option<Attempt>,
    ) -> Outcome {
        match self
            .running_task(job, stage, task)
            .and_then(|(slot, history)| start(slot, history))
        {
            Some(attempt) => Outcome::TaskStarted(attempt),
            None => Outcome::Stale,
        }
    }

    /// A running job's task slot and its history.
    fn running_task(&mut self, job: &str, stage: StageId, task: TaskId) -> Option<(&mut TaskState, &mut TaskHistory)> {
        let j = self.jobs.get_mut(job)?;
        if j.state != JobState::Running {
            return None;
        }
        let slot = j.tasks.get_mut(stage.index())?.get_mut(task.index())?;
        let history = j.history.get_mut(stage.index())?.get_mut(task.index())?;
        Some((slot, history))
    }
}

/// A command's effect on task attempts, noted in [`ClusterState::observed`] once applied.
enum Noted {
    /// An attempt of a task (its original, or a speculative copy) may start on `worker`:
    /// its number is the command's outcome.
    Started {
        job: JobId,
        stage: StageId,
        task: TaskId,
        worker: WorkerId,
    },
    /// An attempt ended (with its error if it failed).
    Ended(AttemptKey, Option<String>),
    /// Nothing about attempts.
    Nothing,
}

impl Noted {
    fn of(command: &Command) -> Noted {
        match command {
            Command::StartTask {
                job,
                stage,
                task,
                worker,
            }
            | Command::Speculate {
                job,
                stage,
                task,
                worker,
            } => Noted::Started {
                job: job.clone(),
                stage: *stage,
                task: *task,
                worker: worker.clone(),
            },
            Command::FinishTask {
                job,
                stage,
                task,
                attempt,
                ..
            } => Noted::Ended(AttemptKey::new(job, *stage, *task, *attempt), None),
            Command::FailTask {
                job,
                stage,
                task,
                attempt,
                message,
                ..
            } => Noted::Ended(AttemptKey::new(job, *stage, *task, *attempt), Some(message.clone())),
            Command::FetchFailed {
                job,
                stage,
                task,
                attempt,
                worker,
                message,
            } => Noted::Ended(
                AttemptKey::new(job, *stage, *task, *attempt),
                Some(format!("could not read map output on {worker}: {message}")),
            ),
            _ => Noted::Nothing,
        }
    }

    fn record(self, state: &mut ClusterState, outcome: &Outcome) {
        match self {
            Noted::Started {
                job,
                stage,
                task,
                worker,
            } => {
                if let Outcome::TaskStarted(attempt) = outcome {
                    state
                        .observed
                        .started(AttemptKey::new(&job, stage, task, *attempt), &worker);
                }
            }
            Noted::Ended(key, error) => state.observed.ended(&key, error),
            Noted::Nothing => {}
        }
    }
}
