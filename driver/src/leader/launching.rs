//! The scheduling loop: what can start now (first attempts, then speculative copies of
//! stragglers) is committed as one log entry, then sent to the workers.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringleader_core::ids::{Attempt, JobId, StageId, TaskId, WorkerId};
use ringleader_core::proto;

use super::DriverInner;
use crate::scheduler::{Assignment, overdue, schedule_with, speculate};
use crate::state::{ClusterState, Command, JobRecord, JobState, Outcome};

impl DriverInner {
    /// Starts every task that can start now.
    pub(super) async fn launch_ready(self: &Arc<Self>) {
        if self.leading().is_none() {
            return;
        }
        let live = self.live_workers();
        self.lose_dead_workers(&live).await;
        self.fail_jobs_without_workers(&live).await;
        self.cancel_unwatched().await;
        self.settle_placements().await;
        let assignments = schedule_with(&self.state(), &live, pipelined());
        self.start(assignments, false).await;
        let copies = {
            let state = self.state();
            let mut clock = self.replica.clock();
            let running: BTreeSet<&str> = state
                .jobs
                .values()
                .filter(|j| j.state == JobState::Running)
                .map(|j| j.id.as_str())
                .collect();
            clock.retain(&running);
            clock.note_early_stages(&state, Instant::now());
            speculate(&state, &live, &clock, &self.speculation, Instant::now())
        };
        self.start(copies, true).await;
        self.remind_early_reducers();
        if let Some(limit) = self.speculation.task_timeout {
            let failures = {
                let state = self.state();
                overdue(&state, &self.replica.clock(), limit, Instant::now())
            };
            for crate::scheduler::Overdue { failure, worker } in failures {
                let Command::FailTask {
                    job,
                    stage,
                    task,
                    attempt,
                    message,
                    ..
                } = &failure
                else {
                    continue;
                };
                tracing::warn!("driver {}: {job} stage {stage} task {task}: {message}", self.id);
                let stop = proto::RunningTask {
                    job_id: job.to_string(),
                    stage: stage.0,
                    task: task.0,
                    attempt: attempt.0,
                };
                let _ = self.write(failure).await;
                // Stopped as a losing speculative copy is: it could still write outputs.
                self.stop_attempt(&worker, stop).await;
            }
        }
    }

    /// Commits the start of `assignments` (as speculative copies of running tasks, or
    /// first attempts) in one log entry, then sends each to its worker.
    pub(super) async fn start(self: &Arc<Self>, assignments: Vec<Assignment>, speculative: bool) {
        if assignments.is_empty() {
            return;
        }
        let commands = assignments
            .iter()
            .map(|a| {
                let (job, stage, task, worker) = (a.job.clone(), a.stage, a.task, a.worker.clone());
                if speculative {
                    Command::Speculate {
                        job,
                        stage,
                        task,
                        worker,
                    }
                } else {
                    Command::StartTask {
                        job,
                        stage,
                        task,
                        worker,
                    }
                }
            })
            .collect();
        tracing::debug!(
            "driver {}: committing the start of {} tasks",
            self.id,
            assignments.len()
        );
        let Ok(Outcome::Batch(outcomes)) = self.write(Command::Batch(commands)).await else {
            return;
        };
        tracing::debug!("driver {}: start of {} tasks committed", self.id, outcomes.len());
        let launches: Vec<(WorkerId, String, proto::TaskAssignment)> = {
            let state = self.state();
            assignments
                .into_iter()
                .zip(outcomes)
                .filter_map(|(a, outcome)| {
                    let Outcome::TaskStarted(attempt) = outcome else {
                        return None;
                    };
                    if speculative {
                        tracing::info!(
                            "driver {}: {} stage {} task {} is slow; attempt {attempt} on {}",
                            self.id,
                            a.job,
                            a.stage,
                            a.task,
                            a.worker
                        );
                    }
                    let Assignment {
                        job,
                        stage,
                        task,
                        worker,
                    } = a;
                    let address = state.workers.get(&worker)?.address.clone();
                    let record = state.jobs.get(&job)?;
                    let message = assignment_message(&state, record, &worker, stage, task, attempt);
                    Some((worker, address, message))
                })
                .collect()
        };
        for (worker, address, assignment) in launches {
            let me = self.clone();
            self.background.spawn(async move {
                let (job, stage, task, attempt) = (
                    JobId::from(assignment.job_id.as_str()),
                    StageId(assignment.stage_index),
                    TaskId(assignment.task),
                    Attempt(assignment.attempt),
                );
                let result = match me.worker_client(&address) {
                    Ok(mut worker) => worker.launch_task(assignment).await.map(|_| ()),
                    Err(e) => Err(e.into()),
                };
                match result {
                    Ok(()) => {}
                    // Unreachable: the worker is gone, which is not the task's fault.
                    Err(e) if e.code() == tonic::Code::Unavailable => me.unreachable(&worker).await,
                    Err(e) => {
                        let message = format!("worker {address} refused the task: {}", e.message());
                        let failed = Command::FailTask {
                            job,
                            stage,
                            task,
                            attempt,
                            message,
                            retryable: true,
                            counts: true,
                        };
                        let _ = me.report(failed).await;
                    }
                }
            });
        }
    }

    /// Tells the running tasks of the stages reading `stage`'s shuffle where its map outputs
    /// are now (a map task of it just finished): a reducer started before the map stage
    /// was done fetches each output once it is told of it.
    pub(super) fn send_map_outputs(self: &Arc<Self>, job: &str, stage: StageId) {
        let updates = {
            let state = self.state();
            let Some(record) = state.jobs.get(job).filter(|j| j.state == JobState::Running) else {
                return;
            };
            input_updates(&state, record, |c| record.reads_shuffle_of(c, stage.index()))
        };
        self.send_updates(updates);
    }

    /// Tells the reducers started before their map stages were done where the map outputs
    /// are, every sixth of the silence after which they give up: a lost update, or a new
    /// leader, leaves none of them waiting for nothing.
    fn remind_early_reducers(self: &Arc<Self>) {
        let every = ringleader_core::shuffle::cluster::UPDATE_SILENCE / 6;
        let early = self.replica.clock().early_stages_to_tell(Instant::now(), every);
        if early.is_empty() {
            return;
        }
        let updates = {
            let state = self.state();
            early
                .iter()
                .filter_map(|(job, stage)| {
                    let record = state.jobs.get(job).filter(|j| j.state == JobState::Running)?;
                    Some(input_updates(&state, record, |c| c == stage.index()))
                })
                .flatten()
                .collect()
        };
        self.send_updates(updates);
    }

    /// Sends each update to its worker (best effort: reminders follow).
    fn send_updates(self: &Arc<Self>, updates: Vec<(String, proto::InputsUpdate)>) {
        for (address, update) in updates {
            let me = self.clone();
            self.background.spawn(async move {
                if let Ok(mut worker) = me.worker_client(&address) {
                    let _ = tokio::time::timeout(Duration::from_secs(5), worker.update_inputs(update)).await;
                }
            });
        }
    }

    /// Runs the scheduling loop until the process ends.
    pub async fn schedule_forever(self: Arc<Self>) {
        loop {
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
            self.launch_ready().await;
        }
    }
}

/// What the tasks of `plan` produce, its sink state filled in from the stage it names
/// (whose tasks are all done before this stage starts: it is one of its parents). Values of
/// the wrong kind leave the state empty, which the task reports as a malformed plan.
fn stage_output(record: &JobRecord, plan: &ringleader_core::plan::StagePlan) -> ringleader_core::plan::StageOutput {
    let Some(from) = plan.state_from else {
        return plan.output.clone();
    };
    let values = record.stages.get(from.index()).into_iter().flat_map(|s| s.values());
    plan.output_given(values).unwrap_or_else(|_| plan.output.clone())
}

fn assignment_message(
    state: &ClusterState,
    record: &JobRecord,
    worker: &WorkerId,
    stage: StageId,
    task: TaskId,
    attempt: Attempt,
) -> proto::TaskAssignment {
    let plan = &record.plan.stages[stage.index()];
    proto::TaskAssignment {
        job_id: record.id.to_string(),
        binary_hash: record.binary.clone(),
        args: record.args.clone(),
        env: record.env.clone().into_iter().collect(),
        working_dir: record.working_dir.clone(),
        task_plan: postcard::to_stdvec(&plan.tasks[task.index()]).unwrap_or_default(),
        stage_output: postcard::to_stdvec(&stage_output(record, plan)).unwrap_or_default(),
        task: task.0,
        attempt: attempt.0,
        inputs: shuffle_inputs(state, record, stage, task),
        stage_index: stage.0,
        stored_output: record
            .plan
            .store
            .as_ref()
            .map(|s| format!("{}/{}", s.dataset, s.generation))
            .unwrap_or_default(),
        host_shuffle_dirs: host_shuffle_dirs(state, worker),
    }
}

/// Where the map outputs a task reads are, as far as they are done (a map task not done
/// yet has an empty address: the reducer waits to be told of it).
fn shuffle_inputs(state: &ClusterState, record: &JobRecord, stage: StageId, task: TaskId) -> Vec<proto::ShuffleInput> {
    record
        .shuffle_inputs(stage.index(), task.index())
        .into_iter()
        .map(|(shuffle, workers)| proto::ShuffleInput {
            shuffle: shuffle.0,
            outputs: workers
                .iter()
                .map(|(w, attempt)| match state.workers.get(w) {
                    Some(r) => proto::MapOutput {
                        address: r.address.clone(),
                        shuffle_dir: r.shuffle_dir.clone(),
                        machine: r.machine.clone(),
                        attempt: attempt.0,
                    },
                    // Not done yet: no address.
                    None => proto::MapOutput {
                        attempt: attempt.0,
                        ..Default::default()
                    },
                })
                .collect(),
        })
        .collect()
}

/// Where the map outputs are, for the worker of each running attempt of the stages
/// `consumers` picks.
fn input_updates(
    state: &ClusterState,
    record: &JobRecord,
    consumers: impl Fn(usize) -> bool,
) -> Vec<(String, proto::InputsUpdate)> {
    let mut updates = Vec::new();
    for (key, worker) in record
        .running_attempts()
        .filter(|(key, _)| consumers(key.stage.index()))
    {
        let Some(address) = state.workers.get(worker).map(|w| w.address.clone()) else {
            continue;
        };
        let update = proto::InputsUpdate {
            attempt: Some(key.to_running()),
            inputs: shuffle_inputs(state, record, key.stage, key.task),
        };
        updates.push((address, update));
    }
    updates
}

/// Set to `0` on the driver to start a stage only once the stages it reads are done (no
/// reducer before its map stage ends; for comparison).
pub const PIPELINE_VAR: &str = "RINGLEADER_PIPELINE";

/// Whether reducers may start before their map stage is done ([`PIPELINE_VAR`]).
pub(crate) fn pipelined() -> bool {
    static PIPELINED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *PIPELINED.get_or_init(|| std::env::var(PIPELINE_VAR).map_or(true, |v| v != "0"))
}

/// The shuffle directories of the workers on `worker`'s machine but itself.
fn host_shuffle_dirs(state: &ClusterState, worker: &WorkerId) -> Vec<String> {
    let Some(machine) = state.workers.get(worker).map(|w| &w.machine).filter(|m| !m.is_empty()) else {
        return Vec::new();
    };
    state
        .workers
        .values()
        .filter(|w| &w.id != worker && &w.machine == machine && !w.shuffle_dir.is_empty())
        .map(|w| w.shuffle_dir.clone())
        .collect()
}
