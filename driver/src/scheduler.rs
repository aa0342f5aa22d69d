//! Choosing where tasks run: a pure function of the state and the set of live workers,
//! so it can be tested without processes. Jobs are served in submission order; a stage is
//! ready when the stages it reads are done, or (pipelined) when every map task of the
//! shuffles it reads has started, its reducers then fetching each map output as it lands;
//! a task reading a stored partition goes to a
//! live worker holding it if one has a free slot (data locality), any other task to the
//! live worker with the most free slots (ties by id).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use ringleader_core::ids::{AttemptKey, JobId, StageId, TaskId, WorkerId};
use ringleader_core::io::source::Split;
use ringleader_core::plan::TaskInput;

use crate::attempt_clock::AttemptClock;
use crate::state::{ClusterState, Command, JobState, TaskState};

/// A task to start on a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// Job id.
    pub job: JobId,
    /// Stage index.
    pub stage: StageId,
    /// Task index.
    pub task: TaskId,
    /// Worker id.
    pub worker: WorkerId,
}

/// Tasks that can start now, reducers before their map stage is done (pipelined).
pub fn schedule(state: &ClusterState, live: &BTreeSet<WorkerId>) -> Vec<Assignment> {
    schedule_with(state, live, true)
}

/// Tasks that can start now; with `pipelined`, a stage reading shuffles starts once every
/// map task of them has started ([`crate::state::JobRecord::stage_ready`]). Such early
/// reducers take only slots nothing else wants (they are placed after every other ready
/// stage, on slots free of any task), and mostly wait for map outputs: once placed they
/// hold no slot against other tasks (a map task that must run again, a speculative copy,
/// another job), so nothing waits for reducers that wait for it.
pub fn schedule_with(state: &ClusterState, live: &BTreeSet<WorkerId>, pipelined: bool) -> Vec<Assignment> {
    let Slots { mut free, mut room } = Slots::of(state, live);
    let mut out = Vec::new();
    // Stages whose inputs are done first (of every job, oldest job first), then reducers
    // starting early.
    for early_pass in [false, true] {
        for job in state.jobs_in_order(|j| j.state == JobState::Running) {
            for (s, stage) in job.plan.stages.iter().enumerate() {
                if job.stage_done(s) || !job.stage_ready(s, pipelined) || job.stage_ready(s, false) == early_pass {
                    continue;
                }
                let mut pending = Vec::new();
                for (t, task) in job.stages[s].tasks.iter().enumerate() {
                    if task.state != TaskState::Pending {
                        continue;
                    }
                    // Data locality first: a stored partition's task goes to a worker holding it,
                    // and a task writing a stored dataset to one of its partition's owners.
                    let writes_to = match &job.plan.store {
                        Some(spec) if s + 1 == job.plan.stages.len() => spec.owners.get(t),
                        _ => None,
                    };
                    let reads_from = match &stage.tasks[t].input {
                        TaskInput::Source {
                            split: Split::Stored { locations, .. },
                            ..
                        } => Some(locations),
                        _ => None,
                    };
                    // A retried task avoids the workers its earlier attempts failed on.
                    let failed = task.history.failed_on.as_slice();
                    let holders: Vec<&str> = match writes_to.or(reads_from) {
                        Some(addresses) => state
                            .workers
                            .values()
                            .filter(|w| addresses.contains(&w.address) && !failed.contains(&w.id))
                            .map(|w| w.id.as_str())
                            .collect(),
                        None => Vec::new(),
                    };
                    pending.push(Pending {
                        task: t,
                        holders,
                        failed,
                    });
                }
                let (slots, other) = if early_pass {
                    (&mut free, &mut room)
                } else {
                    (&mut room, &mut free)
                };
                // A reducer starting early waits for a slot where its output belongs
                // rather than writing it elsewhere and copying it over (it is early).
                for (t, worker) in place_stage(&pending, slots, early_pass) {
                    if let Some(n) = other.get_mut(worker) {
                        *n = n.saturating_sub(1);
                    }
                    out.push(Assignment {
                        job: job.id.clone(),
                        stage: StageId::from(s),
                        task: TaskId::from(t),
                        worker: WorkerId::from(worker),
                    });
                }
            }
        }
    }
    out
}

/// Free slots per live worker, two ways.
struct Slots<'a> {
    /// Free of every running attempt: where a reducer may start early.
    free: BTreeMap<&'a str, u32>,
    /// Free but for reducers started early that still wait for map outputs: where any
    /// other task may start (they hold no slot against it).
    room: BTreeMap<&'a str, u32>,
}

impl<'a> Slots<'a> {
    fn of(state: &'a ClusterState, live: &BTreeSet<WorkerId>) -> Slots<'a> {
        let running = state.running_per_worker();
        let mut early: BTreeMap<&str, u32> = BTreeMap::new();
        for job in state.jobs.values().filter(|j| j.state == JobState::Running) {
            for (key, worker) in job.running_attempts() {
                if !job.stage_ready(key.stage.index(), false) {
                    *early.entry(worker).or_default() += 1;
                }
            }
        }
        let (mut free, mut room) = (BTreeMap::new(), BTreeMap::new());
        for w in state.workers.values().filter(|w| live.contains(&w.id)) {
            let busy = running.get(w.id.as_str()).copied().unwrap_or(0);
            let waiting = early.get(w.id.as_str()).copied().unwrap_or(0);
            free.insert(w.id.as_str(), w.slots.saturating_sub(busy));
            room.insert(w.id.as_str(), w.slots.saturating_sub(busy.saturating_sub(waiting)));
        }
        Slots { free, room }
    }
}

/// A task waiting for a slot.
struct Pending<'a> {
    /// Its index in its stage.
    task: usize,
    /// The workers holding its data (or owning its output), except those it failed on.
    holders: Vec<&'a str>,
    /// The workers its earlier attempts failed on.
    failed: &'a [WorkerId],
}

/// Places one stage's pending tasks on free slots: first as many as possible on a worker
/// holding their data, then the others on the worker with the most free slots. The local
/// placement is a maximum matching (augmenting paths: a task may move one placed before it
/// to another of that task's holders), so a greedy order never sends a task's data over the
/// network when another placement keeps every task local. With `local_only`, a task that has
/// holders waits for a slot on one of them.
fn place_stage<'a>(
    pending: &[Pending<'a>],
    free: &mut BTreeMap<&'a str, u32>,
    local_only: bool,
) -> Vec<(usize, &'a str)> {
    let mut local: Vec<Option<&'a str>> = vec![None; pending.len()];
    for i in 0..pending.len() {
        if free.values().all(|&n| n == 0) {
            break;
        }
        if !pending[i].holders.is_empty() {
            let mut visited = vec![false; pending.len()];
            augment(i, None, pending, &mut local, free, &mut visited);
        }
    }
    let mut out = Vec::new();
    for (i, task) in pending.iter().enumerate() {
        if let Some(worker) = local[i] {
            out.push((task.task, worker));
            continue;
        }
        if local_only && !task.holders.is_empty() {
            continue;
        }
        let failed = task.failed;
        let most_free = |free: &BTreeMap<&'a str, u32>, avoid_failed: bool| {
            free.iter()
                .filter(|(w, n)| **n > 0 && (!avoid_failed || !failed.iter().any(|f| f == *w)))
                .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                .map(|(w, _)| *w)
        };
        let best = most_free(free, true).or_else(|| {
            // Only workers that failed it have room: wait for another unless none is alive.
            let others_alive = free.keys().any(|w| !failed.iter().any(|f| f == *w));
            if others_alive { None } else { most_free(free, false) }
        });
        if let Some(worker) = best {
            if let Some(n) = free.get_mut(worker) {
                *n -= 1;
            }
            out.push((task.task, worker));
        }
    }
    out
}

/// Finds task `i` a slot on one of its holders other than `not_on`: a free one (the holder
/// with the most free slots), else one taken by another task that can itself move.
fn augment<'a>(
    i: usize,
    not_on: Option<&'a str>,
    pending: &[Pending<'a>],
    local: &mut [Option<&'a str>],
    free: &mut BTreeMap<&'a str, u32>,
    visited: &mut [bool],
) -> bool {
    let candidates: Vec<&'a str> = pending[i]
        .holders
        .iter()
        .copied()
        .filter(|h| Some(*h) != not_on)
        .collect();
    let roomiest = candidates
        .iter()
        .filter_map(|h| free.get(h).map(|n| (*h, *n)))
        .filter(|(_, n)| *n > 0)
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)));
    if let Some((holder, _)) = roomiest {
        if let Some(n) = free.get_mut(holder) {
            *n -= 1;
        }
        local[i] = Some(holder);
        return true;
    }
    for holder in candidates {
        for j in 0..pending.len() {
            if local[j] == Some(holder) && !visited[j] {
                visited[j] = true;
                // j moves elsewhere and leaves its slot on `holder` to i.
                if augment(j, Some(holder), pending, local, free, visited) {
                    local[i] = Some(holder);
                    return true;
                }
            }
        }
    }
    false
}

/// What happens to stragglers. Once `quantile` of its stage's tasks are done, a task
/// running longer than `multiplier` times the stage's median (and at least `min_runtime`)
/// is started again on another worker; one running `far_multiplier` times the median gets
/// its copy before that (a single stalled task must not wait for three quarters of a large
/// stage). An attempt running longer than `task_timeout` fails, counting toward the task's
/// attempts, and the task runs again: a stalled executor never holds its job forever.
#[derive(Debug, Clone, Copy)]
pub struct SpeculationConfig {
    /// How much slower than the median a straggler is (0 turns speculation off).
    pub multiplier: f64,
    /// The share of a stage's tasks that must be done first.
    pub quantile: f64,
    /// Tasks younger than this are never copied.
    pub min_runtime: Duration,
    /// How much slower than the median a task is copied at any point of its stage.
    pub far_multiplier: f64,
    /// The longest an attempt may run (`None`: no limit).
    pub task_timeout: Option<Duration>,
}

impl Default for SpeculationConfig {
    fn default() -> Self {
        SpeculationConfig {
            multiplier: 3.0,
            quantile: 0.75,
            min_runtime: Duration::from_secs(1),
            far_multiplier: 10.0,
            task_timeout: Some(DEFAULT_TASK_TIMEOUT),
        }
    }
}

/// The default longest run of a task attempt: an hour.
pub const DEFAULT_TASK_TIMEOUT: Duration = Duration::from_secs(3600);

/// Stragglers to copy now, each onto a live worker with a free slot other than the one
/// running it.
pub fn speculate(
    state: &ClusterState,
    live: &BTreeSet<WorkerId>,
    clock: &AttemptClock,
    config: &SpeculationConfig,
    now: Instant,
) -> Vec<Assignment> {
    if config.multiplier <= 0.0 {
        return Vec::new();
    }
    // Reducers started early and waiting for map outputs hold no slot against a copy.
    let Slots { room: mut free, .. } = Slots::of(state, live);
    let mut out = Vec::new();
    for job in state.jobs.values().filter(|j| j.state == JobState::Running) {
        // An attempt is timed from when its worker first finished a task of this job, if
        // that is later than its start: before it, the job's first tasks there also wait
        // for the binary to arrive and the executor to start. A worker that never gets
        // there is caught by the heartbeats and the task timeout.
        let mut warm: BTreeMap<&str, Instant> = BTreeMap::new();
        for (s, t, task) in job.all_tasks() {
            if let TaskState::Done { worker, attempt, .. } = &task.state
                && let Some(at) = clock.ended_at(&AttemptKey::new(&job.id, s, t, *attempt))
            {
                let first = warm.entry(worker.as_str()).or_insert(at);
                *first = (*first).min(at);
            }
        }
        for (s, stage) in job.stages.iter().enumerate() {
            if !job.stage_ready(s, false) {
                // Reducers waiting for map outputs are not stragglers.
                continue;
            }
            let done = stage.done() as usize;
            let Some(median) = clock.median(&job.id, StageId::from(s)) else {
                continue;
            };
            let multiplier = if (done as f64) < config.quantile * stage.tasks.len() as f64 {
                config.far_multiplier
            } else {
                config.multiplier
            };
            if multiplier <= 0.0 {
                continue;
            }
            let threshold = median.mul_f64(multiplier).max(config.min_runtime);
            for (t, task) in stage.tasks.iter().enumerate() {
                let TaskState::Running {
                    attempt,
                    worker,
                    copy: None,
                } = &task.state
                else {
                    continue;
                };
                // An attempt placing its stored partition holds the commit: a copy could not
                // commit it, only wait (a slow write is for the heartbeats and the timeout).
                if task.history.committer == Some(*attempt) {
                    continue;
                }
                let key = AttemptKey::new(&job.id, StageId::from(s), TaskId::from(t), *attempt);
                let (Some(started), Some(&warmed)) = (clock.timed_from(&key), warm.get(worker.as_str())) else {
                    continue;
                };
                if now.saturating_duration_since(started.max(warmed)) <= threshold {
                    continue;
                }
                let best = free
                    .iter()
                    .filter(|(w, n)| **n > 0 && **w != worker.as_str())
                    .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                    .map(|(w, _)| *w);
                let Some(target) = best else { continue };
                if let Some(n) = free.get_mut(target) {
                    *n -= 1;
                }
                out.push(Assignment {
                    job: job.id.clone(),
                    stage: StageId::from(s),
                    task: TaskId::from(t),
                    worker: WorkerId::from(target),
                });
            }
        }
    }
    out
}

/// An attempt past the task timeout: the failure to commit, and the worker to stop it on.
#[derive(Debug)]
pub struct Overdue {
    /// `FailTask`, counted: the task runs again.
    pub failure: Command,
    /// The worker running the attempt, which must stop it (it could still write outputs).
    pub worker: WorkerId,
}

/// Running attempts (first or speculative) older than `limit`, as the failures to commit:
/// each counts toward its task's attempts, and the task runs again.
pub fn overdue(state: &ClusterState, clock: &AttemptClock, limit: Duration, now: Instant) -> Vec<Overdue> {
    let mut out = Vec::new();
    for job in state.jobs.values().filter(|j| j.state == JobState::Running) {
        for (key, worker) in job.running_attempts() {
            let Some(started) = clock.timed_from(&key) else {
                continue;
            };
            if now.saturating_duration_since(started) > limit {
                let attempt = key.attempt;
                let failure = Command::FailTask {
                    job: key.job,
                    stage: key.stage,
                    task: key.task,
                    attempt,
                    message: format!(
                        "attempt {attempt} ran longer than the task timeout ({:.0} s) on {worker}; if tasks are meant to run this long, start the driver with a larger --task-timeout",
                        limit.as_secs_f64()
                    ),
                    retryable: true,
                    counts: true,
                };
                out.push(Overdue {
                    failure,
                    worker: WorkerId::from(worker),
                });
            }
        }
    }
    out
}

/// How long after its start an attempt may be missing from its worker's heartbeat (its
/// launch may still be on its way).
pub const LAUNCH_GRACE: Duration = Duration::from_secs(5);

/// Reconciles a worker's heartbeat with the state: the attempts (first or speculative) the
/// state has running on `worker`, started over [`LAUNCH_GRACE`] ago, that the worker does
/// not report. Returns them, and those also missing from its previous heartbeat
/// (`previously`): the worker lost these (a report can be on its way for one heartbeat, not
/// two), and they fail without counting and run again.
pub fn forgotten(
    state: &ClusterState,
    worker: &str,
    reported: &BTreeSet<AttemptKey>,
    clock: &AttemptClock,
    previously: &BTreeSet<AttemptKey>,
    now: Instant,
) -> (BTreeSet<AttemptKey>, Vec<Command>) {
    let mut missing = BTreeSet::new();
    for job in state.jobs.values().filter(|j| j.state == JobState::Running) {
        for (key, on) in job.running_attempts() {
            let old = clock
                .timed_from(&key)
                .is_some_and(|at| now.saturating_duration_since(at) > LAUNCH_GRACE);
            if on == worker && old && !reported.contains(&key) {
                missing.insert(key);
            }
        }
    }
    let lost = missing
        .intersection(previously)
        .map(
            |AttemptKey {
                 job,
                 stage,
                 task,
                 attempt,
             }| Command::FailTask {
                job: job.clone(),
                stage: *stage,
                task: *task,
                attempt: *attempt,
                message: format!("{worker} no longer runs attempt {attempt} (its heartbeats stopped listing it)"),
                retryable: true,
                counts: false,
            },
        )
        .collect();
    (missing, lost)
}

#[cfg(test)]
pub(crate) mod tests {
    use ringleader_core::io::source::Split;
    use ringleader_core::plan::{ActionFn, JobPlan, StageOutput, StagePlan, TaskInput, TaskPlan, TaskValue};

    use super::*;
    use ringleader_core::ids::Attempt;

    use crate::state::{AttemptEvent, Command, Outcome, StageState};

    /// A plan of one stage of `tasks` tasks counting their rows.
    pub(crate) fn job(tasks: usize) -> JobPlan {
        let task = TaskPlan {
            input: TaskInput::Source {
                split: Split::Inline { ipc: Vec::new() },
                sample_windows: None,
            },
            steps: Vec::new(),
        };
        let output = StageOutput::Action {
            f: ringleader_core::ship!(ringleader_core::ops::action::count as ActionFn),
            state: Vec::new(),
        };
        JobPlan {
            stages: vec![StagePlan {
                id: ringleader_core::ids::StageId(0),
                tasks: vec![task; tasks],
                output,
                parents: Vec::new(),
                state_from: None,
            }],
            store: None,
        }
    }

    fn cluster(workers: u32, slots: u32) -> (ClusterState, BTreeSet<WorkerId>) {
        let mut state = ClusterState::default();
        let mut live = BTreeSet::new();
        for i in 0..workers {
            let Outcome::WorkerRegistered(id) = state.apply(Command::RegisterWorker {
                address: format!("127.0.0.1:{}", 9000 + i),
                slots,
                pid: 1,
                shuffle_dir: String::new(),
                machine: String::new(),
                incarnation: String::new(),
            }) else {
                panic!("no id")
            };
            live.insert(id);
        }
        (state, live)
    }

    fn submit(state: &mut ClusterState, tasks: usize) -> JobId {
        submit_plan(state, job(tasks))
    }

    fn submit_plan(state: &mut ClusterState, plan: JobPlan) -> JobId {
        let command = Command::SubmitJob {
            name: "t".into(),
            binary: "0".repeat(32),
            args: Vec::new(),
            env: Default::default(),
            working_dir: String::new(),
            plan,
            submission: format!("sub-{}", state.jobs.len()),
            submitted_ms: 0,
        };
        match state.apply(command) {
            Outcome::JobSubmitted(id) => id,
            other => panic!("{other:?}"),
        }
    }

    /// Starts every task the scheduler places now, all at `t0`: each assignment and its attempt.
    fn start_all(
        state: &mut ClusterState,
        live: &BTreeSet<WorkerId>,
        clock: &mut AttemptClock,
        t0: Instant,
    ) -> Vec<(Assignment, Attempt)> {
        let mut started = Vec::new();
        for a in schedule(state, live) {
            let attempt = start(state, &a);
            let (key, worker) = (AttemptKey::new(&a.job, a.stage, a.task, attempt), a.worker.clone());
            clock.note(AttemptEvent::Started { key, worker }, t0);
            started.push((a, attempt));
        }
        started
    }

    /// Finishes `attempt` of the task `a` assigned, at `at`.
    fn finish_at(
        state: &mut ClusterState,
        clock: &mut AttemptClock,
        (a, attempt): &(Assignment, Attempt),
        at: Instant,
    ) {
        let key = AttemptKey::new(&a.job, a.stage, a.task, *attempt);
        clock.note(AttemptEvent::Ended { key, error: None }, at);
        state.apply(Command::FinishTask {
            job: a.job.clone(),
            stage: a.stage,
            task: a.task,
            attempt: *attempt,
            value: TaskValue::Count(1),
            read: Default::default(),
            accumulated: Vec::new(),
        });
    }

    fn start(state: &mut ClusterState, a: &Assignment) -> Attempt {
        let command = Command::StartTask {
            job: a.job.clone(),
            stage: a.stage,
            task: a.task,
            worker: a.worker.clone(),
        };
        match state.apply(command) {
            Outcome::TaskStarted(n) => n,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_finished_jobs_record_keeps_its_plans_shape_and_drops_its_data() {
        let (mut state, live) = cluster(2, 2);
        let mut plan = job(3);
        for task in &mut plan.stages[0].tasks {
            task.input = TaskInput::Source {
                split: Split::Inline { ipc: vec![1; 300_000] },
                sample_windows: None,
            };
        }
        let id = submit_plan(&mut state, plan);
        let size = |state: &ClusterState| postcard::to_stdvec(state).expect("encode").len();
        assert!(size(&state) > 900_000, "the running job's rows are in the state");
        let (mut clock, t0) = (AttemptClock::default(), Instant::now());
        for started in start_all(&mut state, &live, &mut clock, t0) {
            assert!(!state.jobs[&id].plan_data_dropped, "dropped while running");
            finish_at(&mut state, &mut clock, &started, t0);
        }
        let job = &state.jobs[&id];
        assert_eq!(job.state, crate::state::JobState::Succeeded);
        assert!(job.plan_data_dropped && job.plan.stages[0].tasks.len() == 3);
        assert!(size(&state) < 10_000, "a finished job keeps {} bytes", size(&state));
        // A snapshot of it is still one the state accepts.
        let snapshot = postcard::to_stdvec(&state).expect("encode");
        assert!(ClusterState::from_snapshot(&snapshot).is_ok());
    }

    /// A job of one stage reading stored partitions, task `t` from the workers (by port
    /// offset, as `cluster` numbers them) in `holders[t]`.
    fn stored_job(holders: &[&[u32]]) -> JobPlan {
        let mut plan = job(holders.len());
        for (task, on) in plan.stages[0].tasks.iter_mut().zip(holders) {
            task.input = TaskInput::Source {
                split: Split::Stored {
                    dataset: "d".into(),
                    generation: "g".into(),
                    partition: 0,
                    locations: on.iter().map(|i| format!("127.0.0.1:{}", 9000 + i)).collect(),
                    column: None,
                },
                sample_windows: None,
            };
        }
        plan
    }

    #[test]
    fn stored_partitions_are_read_where_they_are_even_when_the_first_fit_would_not_allow_it() {
        // Task 0 is on both workers, task 1 only on the first: taking the first worker for
        // task 0 (its most free, lowest id) would send task 1's data over the network.
        let (mut state, live) = cluster(2, 1);
        submit_plan(&mut state, stored_job(&[&[0, 1], &[0]]));
        let mut placed: Vec<(u32, String)> = schedule(&state, &live)
            .into_iter()
            .map(|a| (a.task.0, a.worker.to_string()))
            .collect();
        placed.sort();
        assert_eq!(placed, [(0, "worker-2".to_string()), (1, "worker-1".to_string())]);

        // Six partitions with two replicas each on three workers of two slots: all local.
        let (mut state, live) = cluster(3, 2);
        let holders: [&[u32]; 6] = [&[0, 1], &[0, 1], &[0, 2], &[0, 2], &[1, 0], &[1, 2]];
        submit_plan(&mut state, stored_job(&holders));
        let assignments = schedule(&state, &live);
        assert_eq!(assignments.len(), 6);
        for a in &assignments {
            let worker: u32 = a.worker.trim_start_matches("worker-").parse().expect("worker id");
            assert!(holders[a.task.index()].contains(&(worker - 1)), "{a:?} is not local");
        }
    }

    #[test]
    fn a_worker_restarted_at_the_same_address_has_its_running_tasks_run_again() {
        let (mut state, live) = cluster(1, 2);
        let job = submit(&mut state, 2);
        for a in schedule(&state, &live) {
            start(&mut state, &a);
        }
        let register = |incarnation: &str| Command::RegisterWorker {
            address: "127.0.0.1:9000".into(),
            slots: 2,
            pid: 2,
            shuffle_dir: String::new(),
            machine: String::new(),
            incarnation: incarnation.into(),
        };
        // The same process registering again (after a leader change) changes nothing.
        state.apply(register(""));
        assert!(
            state.jobs[&job].stages[0]
                .states()
                .all(|t| matches!(t, TaskState::Running { .. }))
        );
        // A new process at that address: the old one's tasks are gone and run again,
        // without counting against their attempts.
        assert_eq!(
            state.apply(register("restarted")),
            Outcome::WorkerRegistered("worker-1".into())
        );
        assert!(state.jobs[&job].stages[0].states().all(|t| *t == TaskState::Pending));
        assert!(state.jobs[&job].stages[0].tasks.iter().all(|t| t.history.failures == 0));
        assert_eq!(schedule(&state, &live).len(), 2);
    }

    #[test]
    fn a_task_its_worker_stops_listing_runs_again_after_two_heartbeats() {
        let (mut state, live) = cluster(1, 2);
        let job = submit(&mut state, 2);
        let mut clock = AttemptClock::default();
        let t0 = Instant::now();
        start_all(&mut state, &live, &mut clock, t0);
        let key = |task: u32| AttemptKey::new(&job, StageId(0), TaskId(task), Attempt(1));
        let listed: BTreeSet<AttemptKey> = [key(0)].into();
        let late = t0 + LAUNCH_GRACE + Duration::from_secs(1);
        // Young attempts may be missing (their launch is on its way).
        let (missing, lost) = forgotten(&state, "worker-1", &BTreeSet::new(), &clock, &BTreeSet::new(), t0);
        assert!(missing.is_empty() && lost.is_empty());
        // Task 1 missing once: a report may be on its way. Twice: it is lost.
        let (missing, lost) = forgotten(&state, "worker-1", &listed, &clock, &BTreeSet::new(), late);
        assert_eq!(missing, [key(1)].into());
        assert!(lost.is_empty());
        let (_, lost) = forgotten(&state, "worker-1", &listed, &clock, &missing, late);
        assert_eq!(lost.len(), 1);
        for command in lost {
            assert_eq!(state.apply(command), Outcome::Done);
        }
        assert_eq!(state.jobs[&job].stages[0].tasks[1].state, TaskState::Pending);
        assert!(matches!(
            state.jobs[&job].stages[0].tasks[0].state,
            TaskState::Running { .. }
        ));
        assert_eq!(
            state.jobs[&job].stages[0].tasks[1].history.failures, 0,
            "not the task's fault"
        );
    }

    #[test]
    fn tasks_spread_over_free_slots_and_no_further() {
        let (mut state, live) = cluster(2, 2);
        submit(&mut state, 6);
        let assignments = schedule(&state, &live);
        assert_eq!(assignments.len(), 4, "two workers with two slots take four tasks");
        let on_first = assignments.iter().filter(|a| a.worker == "worker-1").count();
        assert_eq!(on_first, 2);
        for a in &assignments {
            start(&mut state, a);
        }
        assert!(schedule(&state, &live).is_empty(), "no free slot is left");
    }

    #[test]
    fn a_retried_task_avoids_the_worker_it_failed_on_and_late_reports_are_stale() {
        let (mut state, live) = cluster(2, 1);
        let job = submit(&mut state, 1);
        let first = schedule(&state, &live).remove(0);
        let attempt = start(&mut state, &first);
        let fail = Command::FailTask {
            job: job.clone(),
            stage: StageId(0),
            task: TaskId(0),
            attempt,
            message: "disk full".into(),
            retryable: true,
            counts: true,
        };
        assert_eq!(state.apply(fail), Outcome::Done);
        let retry = schedule(&state, &live).remove(0);
        assert_ne!(retry.worker, first.worker);
        let second = start(&mut state, &retry);
        // The first attempt reporting late changes nothing.
        let late = Command::FinishTask {
            job: job.clone(),
            stage: StageId(0),
            task: TaskId(0),
            attempt,
            value: TaskValue::Count(1),
            read: Default::default(),
            accumulated: Vec::new(),
        };
        assert_eq!(state.apply(late), Outcome::Stale);
        let done = Command::FinishTask {
            job: job.clone(),
            stage: StageId(0),
            task: TaskId(0),
            attempt: second,
            value: TaskValue::Count(7),
            read: Default::default(),
            accumulated: Vec::new(),
        };
        assert_eq!(state.apply(done), Outcome::Done);
        assert_eq!(state.jobs[&job].state, JobState::Succeeded);
        assert_eq!(state.jobs[&job].result(), vec![TaskValue::Count(7)]);
    }

    /// A job of no tasks (an empty input) succeeds as it is submitted; it used to wait
    /// forever for a task to finish.
    #[test]
    fn a_job_without_tasks_succeeds_at_once() {
        let (mut state, live) = cluster(1, 1);
        let job = submit(&mut state, 0);
        assert_eq!(state.jobs[&job].state, JobState::Succeeded);
        assert!(schedule(&state, &live).is_empty());
    }

    /// A map task whose output was lost with its worker runs again; its second success's
    /// accumulator updates are not counted again.
    #[test]
    fn a_recomputed_map_task_counts_its_accumulator_updates_once() {
        use ringleader_core::plan::accumulator::{Accumulated, Amount};
        let (mut state, live) = cluster(2, 1);
        let mut plan = job(1);
        let reduce = plan.stages[0].tasks[0].clone();
        plan.stages[0].output = StageOutput::Shuffle {
            shuffle: ringleader_core::ids::ShuffleId(0),
            sink: ringleader_core::ship!(ringleader_core::ops::sinks::hash::<u8, u8> as ringleader_core::plan::SinkFn),
            state: Vec::new(),
            partitions: 1,
        };
        plan.stages.push(StagePlan {
            id: StageId(1),
            tasks: vec![reduce],
            output: job(1).stages[0].output.clone(),
            parents: vec![StageId(0)],
            state_from: None,
        });
        let job = submit_plan(&mut state, plan);
        let updates = |name: &str, n: u64| {
            vec![Accumulated {
                id: 1,
                name: name.into(),
                amount: Amount::U64(n),
            }]
        };
        let finish = |state: &mut ClusterState, stage: u32, attempt: Attempt, accumulated| {
            state.apply(Command::FinishTask {
                job: job.clone(),
                stage: StageId(stage),
                task: TaskId(0),
                attempt,
                value: TaskValue::Count(1),
                read: Default::default(),
                accumulated,
            })
        };
        let map = schedule(&state, &live).remove(0);
        let first = start(&mut state, &map);
        assert_eq!(finish(&mut state, 0, first, updates("lines", 3)), Outcome::Done);
        // Its worker is lost before the reduce ran: the map task runs again and succeeds.
        state.apply(Command::WorkerLost {
            worker: map.worker.clone(),
        });
        let again = schedule(&state, &live).remove(0);
        assert_eq!((again.stage, again.task), (StageId(0), TaskId(0)));
        let second = start(&mut state, &again);
        // (Other updates than the first success's, so a replacement would show too.)
        assert_eq!(finish(&mut state, 0, second, updates("lines", 4)), Outcome::Done);
        let reduce = schedule(&state, &live).remove(0);
        let attempt = start(&mut state, &reduce);
        assert_eq!(finish(&mut state, 1, attempt, updates("lines", 2)), Outcome::Done);
        assert_eq!(state.jobs[&job].state, JobState::Succeeded);
        let totals = state.jobs[&job].accumulator_totals();
        assert_eq!(totals.len(), 1);
        assert_eq!(
            totals[0].amount,
            Amount::U64(5),
            "the recomputed map task counted twice"
        );
    }

    /// A map stage of `maps` tasks writing shuffle 0, and a stage of `reduces` tasks
    /// reading it; `sampled`: the map stage also takes its sink state from a first stage
    /// (as a sort's range bounds come from its sample stage), and the map stage is stage 1.
    fn map_reduce(maps: usize, reduces: usize, sampled: bool) -> JobPlan {
        let mut plan = job(maps);
        plan.stages[0].output = StageOutput::Shuffle {
            shuffle: ringleader_core::ids::ShuffleId(0),
            sink: ringleader_core::ship!(ringleader_core::ops::sinks::hash::<u8, u8> as ringleader_core::plan::SinkFn),
            state: Vec::new(),
            partitions: reduces as u32,
        };
        let reduce = |p: usize| TaskPlan {
            input: TaskInput::Shuffle(ringleader_core::plan::ShuffleRead {
                reduce: ringleader_core::ship!(
                    ringleader_core::ops::reduce::concat::<u8> as ringleader_core::plan::ReduceFn
                ),
                state: Vec::new(),
                shuffles: vec![ringleader_core::ids::ShuffleId(0)],
                partition: TaskId::from(p),
            }),
            steps: Vec::new(),
        };
        plan.stages.push(StagePlan {
            id: StageId(1),
            tasks: (0..reduces).map(reduce).collect(),
            output: job(1).stages[0].output.clone(),
            parents: vec![StageId(0)],
            state_from: None,
        });
        if sampled {
            let mut sample = job(1).stages.remove(0);
            for (i, stage) in plan.stages.iter_mut().enumerate() {
                stage.id = StageId::from(i + 1);
                stage.parents = stage.parents.iter().map(|p| StageId(p.0 + 1)).collect();
            }
            plan.stages[0].parents.push(StageId(0));
            plan.stages[0].state_from = Some(StageId(0));
            sample.id = StageId(0);
            plan.stages.insert(0, sample);
        }
        plan
    }

    /// The stages of what `schedule_with` places now.
    fn stages_placed(state: &ClusterState, live: &BTreeSet<WorkerId>, pipelined: bool) -> Vec<u32> {
        schedule_with(state, live, pipelined)
            .iter()
            .map(|a| a.stage.0)
            .collect()
    }

    #[test]
    fn reducers_start_once_every_map_task_has_started_and_not_before() {
        let (mut state, live) = cluster(2, 4);
        let job = submit_plan(&mut state, map_reduce(3, 2, false));
        let lifecycle =
            |state: &ClusterState, pipelined: bool| [0, 1].map(|s| state.jobs[&job].stage_state(s, pipelined));
        // Nothing of the map stage started: only map tasks go out, pipelined or not.
        assert_eq!(stages_placed(&state, &live, true), [0, 0, 0]);
        assert_eq!(lifecycle(&state, true), [StageState::Runnable, StageState::Waiting]);
        let maps: Vec<_> = schedule(&state, &live)
            .into_iter()
            .map(|a| (start(&mut state, &a), a))
            .collect();
        // Every map task running, none done: the reducers start pipelined, not otherwise.
        assert_eq!(stages_placed(&state, &live, true), [1, 1]);
        assert_eq!(stages_placed(&state, &live, false), Vec::<u32>::new());
        assert_eq!(lifecycle(&state, true), [StageState::Running, StageState::Runnable]);
        assert_eq!(lifecycle(&state, false), [StageState::Running, StageState::Waiting]);
        let mut clock = AttemptClock::default();
        for (attempt, a) in &maps {
            finish_at(&mut state, &mut clock, &(a.clone(), *attempt), Instant::now());
        }
        assert_eq!(stages_placed(&state, &live, false), [1, 1]);
        assert_eq!(lifecycle(&state, false), [StageState::Done, StageState::Runnable]);
        assert_eq!(state.jobs[&job].state, JobState::Running);
        state.apply(Command::CancelJob {
            job: job.clone(),
            reason: "stop".into(),
        });
        assert_eq!(lifecycle(&state, false), [StageState::Done, StageState::Failed]);
    }

    #[test]
    fn a_stage_taking_its_sink_state_from_another_waits_for_it_to_be_done() {
        let (mut state, live) = cluster(2, 4);
        submit_plan(&mut state, map_reduce(2, 2, true));
        let sample = schedule(&state, &live);
        assert_eq!(sample.iter().map(|a| a.stage.0).collect::<Vec<_>>(), [0]);
        let attempt = start(&mut state, &sample[0]);
        // The sample runs: the map stage (which needs its values) waits, pipelined or not.
        assert_eq!(stages_placed(&state, &live, true), Vec::<u32>::new());
        finish_at(
            &mut state,
            &mut AttemptClock::default(),
            &(sample[0].clone(), attempt),
            Instant::now(),
        );
        assert_eq!(stages_placed(&state, &live, true), [1, 1]);
    }

    #[test]
    fn a_reducer_writing_a_stored_partition_starts_early_only_where_the_partition_belongs() {
        // Two workers of 3 slots; the map task runs on one of them, the other is full.
        let (mut state, live) = cluster(2, 3);
        let addresses: Vec<String> = state.workers.values().map(|w| w.address.clone()).collect();
        let mut plan = map_reduce(1, 2, false);
        // Reduce partition 0 belongs on the first worker, partition 1 on the second.
        plan.store = storing(
            "out",
            "g1",
            false,
            vec![vec![addresses[0].clone()], vec![addresses[1].clone()]],
        )
        .store;
        submit_plan(&mut state, plan);
        let map = schedule(&state, &live).remove(0);
        start(&mut state, &map);
        let busy = state
            .workers
            .keys()
            .find(|w| **w != map.worker)
            .cloned()
            .expect("other worker");
        let filler = submit_plan(&mut state, job(3));
        for t in 0..3 {
            start(
                &mut state,
                &Assignment {
                    job: filler.clone(),
                    stage: StageId(0),
                    task: TaskId(t),
                    worker: busy.clone(),
                },
            );
        }
        // Two slots free, on the map task's worker: only the reducer whose partition
        // belongs there starts early; the other waits for a slot on its owner.
        let early = schedule(&state, &live);
        let owner = state.workers[&map.worker].address.clone();
        let want = addresses.iter().position(|a| *a == owner).expect("owner");
        assert_eq!(
            early
                .iter()
                .map(|a| (a.stage.0, a.task.0, a.worker.clone()))
                .collect::<Vec<_>>(),
            [(1, want as u32, map.worker.clone())]
        );
    }

    #[test]
    fn a_map_task_run_again_takes_a_slot_reducers_waiting_for_it_hold() {
        // One slot per worker, two workers: a map task on each.
        let mut clock = AttemptClock::default();
        let (mut state, live) = cluster(2, 1);
        let job = submit_plan(&mut state, map_reduce(2, 2, false));
        let maps: Vec<_> = schedule(&state, &live)
            .into_iter()
            .map(|a| (start(&mut state, &a), a))
            .collect();
        let (first, second) = (&maps[0], &maps[1]);
        finish_at(&mut state, &mut clock, &(first.1.clone(), first.0), Instant::now());
        // One slot free (the finished map task's): one reducer starts early.
        let early = schedule(&state, &live);
        assert_eq!(early.iter().map(|a| a.stage.0).collect::<Vec<_>>(), [1]);
        start(&mut state, &early[0]);
        // The other map task fails: every slot is held (a reducer, nothing else), yet the
        // map task runs again rather than waiting for the reducer that waits for it.
        state.apply(Command::FailTask {
            job: job.clone(),
            stage: StageId(0),
            task: second.1.task,
            attempt: second.0,
            message: "a disk error".into(),
            retryable: true,
            counts: true,
        });
        let again = schedule(&state, &live);
        assert_eq!(
            again.iter().map(|a| (a.stage.0, a.task.0)).collect::<Vec<_>>(),
            [(0, second.1.task.0)],
            "the map task waited for a slot its reducers hold"
        );
    }

    #[test]
    fn a_deterministic_failure_fails_the_job_and_retries_stop_at_the_limit() {
        let (mut state, live) = cluster(1, 1);
        let job = submit(&mut state, 1);
        for n in 1..=crate::state::MAX_ATTEMPTS {
            let a = schedule(&state, &live).remove(0);
            let attempt = start(&mut state, &a);
            assert_eq!(attempt, Attempt(n));
            let fail = Command::FailTask {
                job: job.clone(),
                stage: StageId(0),
                task: TaskId(0),
                attempt,
                message: "crash".into(),
                retryable: true,
                counts: true,
            };
            state.apply(fail);
        }
        assert!(matches!(state.jobs[&job].state, JobState::Failed(ref m) if m == "crash"));
        let job2 = submit(&mut state, 1);
        let a = schedule(&state, &live).remove(0);
        let attempt = start(&mut state, &a);
        let fail = Command::FailTask {
            job: job2.clone(),
            stage: StageId(0),
            task: TaskId(0),
            attempt,
            message: "bad record".into(),
            retryable: false,
            counts: true,
        };
        state.apply(fail);
        assert!(matches!(state.jobs[&job2].state, JobState::Failed(_)));
    }

    #[test]
    fn a_resubmission_finds_the_same_job() {
        let (mut state, _) = cluster(1, 1);
        let submit_as = |state: &mut ClusterState, submission: &str| {
            state.apply(Command::SubmitJob {
                name: "t".into(),
                binary: "0".repeat(32),
                args: Vec::new(),
                env: Default::default(),
                working_dir: String::new(),
                plan: job(1),
                submission: submission.into(),
                submitted_ms: 0,
            })
        };
        let first = submit_as(&mut state, "client-1");
        assert_eq!(
            submit_as(&mut state, "client-1"),
            first,
            "the same submission is one job"
        );
        assert_ne!(submit_as(&mut state, "client-2"), first);
        assert_eq!(state.jobs.len(), 2);
    }

    #[test]
    fn a_leader_change_requeues_running_tasks_without_counting_them() {
        let (mut state, live) = cluster(1, 1);
        let job = submit(&mut state, 1);
        // More leader changes than the attempt limit: the job must still be able to run.
        for _ in 0..=crate::state::MAX_ATTEMPTS {
            let a = schedule(&state, &live).remove(0);
            start(&mut state, &a);
            assert_eq!(state.apply(Command::RequeueRunning), Outcome::Done);
            assert_eq!(state.jobs[&job].stages[0].tasks[0].state, TaskState::Pending);
        }
        let a = schedule(&state, &live).remove(0);
        let attempt = start(&mut state, &a);
        assert_eq!(
            attempt,
            Attempt(crate::state::MAX_ATTEMPTS + 2),
            "every attempt gets a new number"
        );
        // A report from a requeued attempt is stale; the current one finishes the task.
        let finish = |attempt| Command::FinishTask {
            job: job.clone(),
            stage: StageId(0),
            task: TaskId(0),
            attempt,
            value: TaskValue::Count(1),
            read: Default::default(),
            accumulated: Vec::new(),
        };
        assert_eq!(state.apply(finish(Attempt(attempt.0 - 1))), Outcome::Stale);
        assert_eq!(state.apply(finish(attempt)), Outcome::Done);
        assert_eq!(state.jobs[&job].state, JobState::Succeeded);
    }

    #[test]
    fn only_the_latest_finished_jobs_keep_their_results() {
        let (mut state, live) = cluster(1, 1);
        let total = crate::state::KEPT_RESULTS + 4;
        let mut jobs = Vec::new();
        for _ in 0..total {
            let job = submit(&mut state, 1);
            let a = schedule(&state, &live).remove(0);
            let attempt = start(&mut state, &a);
            state.apply(Command::FinishTask {
                job: job.clone(),
                stage: StageId(0),
                task: TaskId(0),
                attempt,
                value: TaskValue::Batches(vec![7; 1000]),
                read: Default::default(),
                accumulated: Vec::new(),
            });
            jobs.push(job);
        }
        // Results are trimmed when a job arrives: one more submission trims the last batch.
        submit(&mut state, 1);
        let kept: Vec<bool> = jobs.iter().map(|j| !state.jobs[j].results_dropped).collect();
        assert_eq!(kept.iter().filter(|k| **k).count(), crate::state::KEPT_RESULTS);
        assert!(kept[total - 1] && !kept[0], "the newest keep theirs: {kept:?}");
        assert_eq!(state.jobs[&jobs[0]].result(), vec![TaskValue::Bytes(Vec::new())]);
        assert_eq!(
            state.jobs[&jobs[total - 1]].result(),
            vec![TaskValue::Batches(vec![7; 1000])]
        );
        assert_eq!(state.jobs[&jobs[0]].state, JobState::Succeeded, "the history stays");
    }

    #[test]
    fn failures_that_do_not_count_never_exhaust_the_attempts() {
        let (mut state, live) = cluster(2, 1);
        let job = submit(&mut state, 1);
        // Starts the job's only task and fails it without counting.
        let fail_uncounted = |state: &mut ClusterState, message: &str| {
            let a = schedule(state, &live).remove(0);
            let attempt = start(state, &a);
            state.apply(Command::FailTask {
                job: job.clone(),
                stage: StageId(0),
                task: TaskId(0),
                attempt,
                message: message.into(),
                retryable: true,
                counts: false,
            });
        };
        for _ in 0..=crate::state::MAX_ATTEMPTS {
            fail_uncounted(&mut state, "lost map output");
            assert_eq!(state.jobs[&job].state, JobState::Running);
        }
        // But they are bounded per job: an executor that keeps dying under several tasks
        // cannot retry them forever.
        let limit = crate::state::max_uncounted_failures(&state.jobs[&job]);
        for _ in crate::state::MAX_ATTEMPTS + 1..=limit {
            fail_uncounted(&mut state, "executor exited");
        }
        assert!(
            matches!(&state.jobs[&job].state, JobState::Failed(m) if m.contains("without a task to blame")),
            "{:?}",
            state.jobs[&job].state
        );
    }

    #[test]
    fn a_task_far_past_the_median_is_copied_before_most_of_its_stage_is_done_and_a_stalled_one_times_out() {
        let (mut state, live) = cluster(4, 2);
        let job = submit(&mut state, 8);
        let config = SpeculationConfig {
            task_timeout: Some(Duration::from_secs(60)),
            ..SpeculationConfig::default()
        };
        let mut clock = AttemptClock::default();
        let t0 = Instant::now();
        let started = start_all(&mut state, &live, &mut clock, t0);
        // Two of eight are done, in 1 s, on two workers: far from the 75% that ordinary
        // speculation waits for.
        let second = started
            .iter()
            .position(|(a, _)| a.worker != started[0].0.worker)
            .expect("tasks on two workers");
        for task in [&started[0], &started[second]] {
            finish_at(&mut state, &mut clock, task, t0 + Duration::from_secs(1));
        }
        assert!(speculate(&state, &live, &clock, &config, t0 + Duration::from_secs(5)).is_empty());
        // Eleven times the median since those workers had finished a task: tasks on them
        // get a copy (slots permitting).
        let copies = speculate(&state, &live, &clock, &config, t0 + Duration::from_secs(12));
        assert!(!copies.is_empty(), "a task far past the median waits for the quantile");
        // Past the task timeout, every running attempt fails, counted, and runs again.
        assert!(overdue(&state, &clock, Duration::from_secs(60), t0 + Duration::from_secs(59)).is_empty());
        let failures = overdue(&state, &clock, Duration::from_secs(60), t0 + Duration::from_secs(61));
        assert_eq!(failures.len(), 6);
        for overdue in failures {
            assert_eq!(state.apply(overdue.failure), Outcome::Done);
        }
        let record = &state.jobs[&job];
        assert_eq!(record.state, JobState::Running);
        assert_eq!(
            record.stages[0].states().filter(|t| **t == TaskState::Pending).count(),
            6
        );
        assert_eq!(
            record.stages[0]
                .tasks
                .iter()
                .filter(|t| t.history.failures == 1)
                .count(),
            6
        );
    }

    #[test]
    fn an_attempt_placing_its_stored_partition_is_not_copied() {
        let (mut state, live) = cluster(2, 2);
        submit(&mut state, 4);
        let config = SpeculationConfig::default();
        let mut clock = AttemptClock::default();
        let t0 = Instant::now();
        let started = start_all(&mut state, &live, &mut clock, t0);
        for task in &started[..2] {
            finish_at(&mut state, &mut clock, task, t0 + Duration::from_secs(1));
        }
        // Both slow attempts would be copied; one of them holds its commit (it is writing).
        let (a, attempt) = &started[2];
        assert_eq!(authorize(&mut state, a, *attempt), Outcome::Granted(1));
        let copies = speculate(&state, &live, &clock, &config, t0 + Duration::from_secs(30));
        assert_eq!(copies.len(), 1, "{copies:?}");
        assert_eq!(copies[0].task, started[3].0.task);
    }

    #[test]
    fn tasks_on_a_worker_still_starting_the_jobs_executor_are_not_copied() {
        let (mut state, live) = cluster(2, 2);
        submit(&mut state, 4);
        let config = SpeculationConfig::default();
        let mut clock = AttemptClock::default();
        let t0 = Instant::now();
        let started = start_all(&mut state, &live, &mut clock, t0);
        // One worker finishes both its tasks in 1 s; the other is still fetching the binary.
        let first = started[0].0.worker.clone();
        let (fast, slow): (Vec<_>, Vec<_>) = started.into_iter().partition(|(a, _)| a.worker == first);
        for task in &fast {
            finish_at(&mut state, &mut clock, task, t0 + Duration::from_secs(1));
        }
        assert!(
            speculate(&state, &live, &clock, &config, t0 + Duration::from_secs(30)).is_empty(),
            "a task copied while its worker was still starting the job"
        );
        // Once that worker has finished a task of the job, its slow ones are measured.
        finish_at(&mut state, &mut clock, &slow[0], t0 + Duration::from_secs(30));
        let copies = speculate(&state, &live, &clock, &config, t0 + Duration::from_secs(40));
        assert_eq!(copies.len(), 1);
        assert_eq!(copies[0].task, slow[1].0.task);
    }

    #[test]
    fn a_straggler_gets_one_copy_elsewhere_and_the_first_to_finish_wins() {
        let (mut state, live) = cluster(2, 2);
        let job = submit(&mut state, 4);
        let config = SpeculationConfig::default();
        let mut clock = AttemptClock::default();
        let t0 = Instant::now();
        let started = start_all(&mut state, &live, &mut clock, t0);
        // Three finish in 1 s; the fourth is still running.
        for task in &started[..3] {
            finish_at(&mut state, &mut clock, task, t0 + Duration::from_secs(1));
        }
        let (slow, slow_attempt) = started[3].clone();
        // Timed from when its worker first finished a task (1 s): not slow yet at 4 s
        // (threshold: 3 x 1 s), slow at 5 s.
        assert!(speculate(&state, &live, &clock, &config, t0 + Duration::from_secs(4)).is_empty());
        let copies = speculate(&state, &live, &clock, &config, t0 + Duration::from_secs(5));
        assert_eq!(copies.len(), 1);
        assert_eq!(copies[0].task, slow.task);
        assert_ne!(copies[0].worker, slow.worker, "the copy runs elsewhere");
        let copy = copies[0].clone();
        let Outcome::TaskStarted(copy_attempt) = state.apply(Command::Speculate {
            job: job.clone(),
            stage: StageId(0),
            task: copy.task,
            worker: copy.worker.clone(),
        }) else {
            panic!("no speculative attempt")
        };
        assert!(
            speculate(&state, &live, &clock, &config, t0 + Duration::from_secs(6)).is_empty(),
            "one copy per task"
        );
        // The copy finishes first and wins; the original's late report is stale.
        let finish = |attempt| Command::FinishTask {
            job: job.clone(),
            stage: StageId(0),
            task: slow.task,
            attempt,
            value: TaskValue::Count(1),
            read: Default::default(),
            accumulated: Vec::new(),
        };
        assert_eq!(state.apply(finish(copy_attempt)), Outcome::Done);
        assert_eq!(state.apply(finish(slow_attempt)), Outcome::Stale);
        assert!(matches!(&state.jobs[&job].stages[0].tasks[slow.task.index()].state,
            TaskState::Done { worker, .. } if *worker == copy.worker));
        assert_eq!(state.jobs[&job].state, JobState::Succeeded);
    }

    #[test]
    fn when_the_original_fails_its_copy_carries_on() {
        let (mut state, live) = cluster(2, 1);
        let job = submit(&mut state, 1);
        let a = schedule(&state, &live).remove(0);
        let original = start(&mut state, &a);
        let other = live.iter().find(|w| **w != a.worker).expect("two workers").clone();
        let Outcome::TaskStarted(copy) = state.apply(Command::Speculate {
            job: job.clone(),
            stage: StageId(0),
            task: TaskId(0),
            worker: other.clone(),
        }) else {
            panic!("no copy")
        };
        state.apply(Command::FailTask {
            job: job.clone(),
            stage: StageId(0),
            task: TaskId(0),
            attempt: original,
            message: "crash".into(),
            retryable: true,
            counts: true,
        });
        assert_eq!(
            state.jobs[&job].stages[0].tasks[0].state,
            TaskState::Running {
                attempt: copy,
                worker: other,
                copy: None,
            }
        );
    }

    /// A two-task job writing dataset `name` (generation `generation`), partition p owned
    /// by the workers at `owners[p]`.
    fn storing(name: &str, generation: &str, overwrite: bool, owners: Vec<Vec<String>>) -> JobPlan {
        let mut plan = job(owners.len());
        plan.store = Some(ringleader_core::io::store::StoreSpec {
            dataset: name.into(),
            generation: generation.into(),
            format: ringleader_core::io::store::DatasetFormat::Text,
            replicas: 2,
            overwrite,
            owners,
        });
        plan
    }

    /// `attempt` asks for the commit of its stored partition (as an executor does first).
    fn authorize(state: &mut ClusterState, a: &Assignment, attempt: Attempt) -> Outcome {
        state.apply(Command::AuthorizeCommit {
            job: a.job.clone(),
            stage: a.stage,
            task: a.task,
            attempt,
        })
    }

    /// `attempt` is granted its commit and reports its stored partition on `holders`.
    fn finish(state: &mut ClusterState, a: &Assignment, attempt: Attempt, holders: &[&str]) {
        assert!(matches!(authorize(state, a, attempt), Outcome::Granted(_)));
        state.apply(Command::FinishTask {
            job: a.job.clone(),
            stage: a.stage,
            task: a.task,
            attempt,
            value: TaskValue::Stored {
                rows: 10,
                bytes: 100,
                holders: holders.iter().map(|h| h.to_string()).collect(),
            },
            read: Default::default(),
            accumulated: Vec::new(),
        });
    }

    /// A job storing one partition on 3 workers: its task's first attempt running, and a
    /// speculative copy of it on another worker (that worker too).
    fn speculative_pair() -> (ClusterState, JobId, Assignment, Attempt, Attempt, WorkerId) {
        let (mut state, live) = cluster(3, 2);
        let owners = vec![vec!["127.0.0.1:9001".to_string(), "127.0.0.1:9002".to_string()]];
        assert_eq!(place(&mut state, "out", "g1", None), Outcome::Done);
        let job = submit_plan(&mut state, storing("out", "g1", false, owners));
        let a = schedule(&state, &live).remove(0);
        let first = start(&mut state, &a);
        let other = live.iter().find(|w| **w != a.worker).expect("another worker").clone();
        let Outcome::TaskStarted(copy) = state.apply(Command::Speculate {
            job: job.clone(),
            stage: a.stage,
            task: a.task,
            worker: other.clone(),
        }) else {
            panic!("no copy")
        };
        (state, job, a, first, copy, other)
    }

    #[test]
    fn only_one_running_attempt_of_a_storing_task_is_granted_its_commit_and_only_its_success_counts() {
        // A speculative copy runs beside it on another worker.
        let (mut state, job, a, first, copy, _) = speculative_pair();
        // The copy asks first and is granted; the original is refused while the copy runs.
        assert_eq!(authorize(&mut state, &a, copy), Outcome::Granted(1));
        // Asked again (a retried call), the same grant.
        assert_eq!(authorize(&mut state, &a, copy), Outcome::Granted(1));
        assert!(matches!(authorize(&mut state, &a, first), Outcome::Refused(why) if why.contains("holds the commit")));
        // The original's success without a grant does not count; the copy's does.
        let stored = |attempt| Command::FinishTask {
            job: a.job.clone(),
            stage: a.stage,
            task: a.task,
            attempt,
            value: TaskValue::Stored {
                rows: 1,
                bytes: 1,
                holders: vec!["127.0.0.1:9001".into(), "127.0.0.1:9002".into()],
            },
            read: Default::default(),
            accumulated: Vec::new(),
        };
        assert_eq!(state.apply(stored(first)), Outcome::Stale);
        assert_eq!(state.apply(stored(copy)), Outcome::Done);
        assert_eq!(state.jobs[&job].state, crate::state::JobState::Succeeded);
        // Once done, nobody is granted anything.
        assert!(matches!(authorize(&mut state, &a, first), Outcome::Refused(_)));
    }

    #[test]
    fn a_granted_attempt_that_fails_passes_the_grant_on_to_the_next_attempt() {
        let (mut state, live) = cluster(2, 2);
        let owners = vec![vec!["127.0.0.1:9000".to_string()]];
        assert_eq!(place(&mut state, "out", "g1", None), Outcome::Done);
        let job = submit_plan(&mut state, storing("out", "g1", false, owners));
        let a = schedule(&state, &live).remove(0);
        let first = start(&mut state, &a);
        assert_eq!(authorize(&mut state, &a, first), Outcome::Granted(1));
        state.apply(Command::FailTask {
            job: job.clone(),
            stage: a.stage,
            task: a.task,
            attempt: first,
            message: "disk".into(),
            retryable: true,
            counts: true,
        });
        let b = schedule(&state, &live).remove(0);
        let second = start(&mut state, &b);
        // The failed attempt may not commit any more; the new one may.
        assert!(matches!(authorize(&mut state, &b, first), Outcome::Refused(_)));
        assert_eq!(authorize(&mut state, &b, second), Outcome::Granted(2));
    }

    #[test]
    fn a_grant_after_a_lost_copys_grant_fences_greater_though_its_attempt_number_is_smaller() {
        let (mut state, _, a, first, copy, other) = speculative_pair();
        assert!(copy > first);
        assert_eq!(authorize(&mut state, &a, copy), Outcome::Granted(1));
        // The copy's worker is lost while it writes; the original carries on and is granted:
        // its copies must win over the lost copy's, so its grant is the greater.
        state.apply(Command::WorkerLost { worker: other });
        assert_eq!(authorize(&mut state, &a, first), Outcome::Granted(2));
        assert!(matches!(authorize(&mut state, &a, copy), Outcome::Refused(_)));
    }

    /// Places a write of `generation` of `name` expecting `expected`, as the client does
    /// before it submits a job writing it.
    fn place(state: &mut ClusterState, name: &str, generation: &str, expected: Option<&str>) -> Outcome {
        state.apply(Command::PlaceDataset(crate::state::PendingDataset {
            name: name.into(),
            generation: generation.into(),
            expected: expected.map(str::to_string),
            placed_ms: 0,
        }))
    }

    #[test]
    fn a_job_writing_a_dataset_commits_it_with_its_success_and_a_failed_one_lists_nothing() {
        let (mut state, live) = cluster(3, 2);
        let addr = |i: u32| format!("127.0.0.1:{}", 9000 + i);
        let owners = vec![vec![addr(1), addr(2)], vec![addr(2), addr(0)]];
        assert_eq!(place(&mut state, "out", "g1", None), Outcome::Done);
        let job = submit_plan(&mut state, storing("out", "g1", false, owners.clone()));
        let assignments = schedule(&state, &live);
        assert_eq!(assignments.len(), 2);
        for a in &assignments {
            // Locality for writes: each task runs on an owner of its partition.
            let worker = &state.workers[&a.worker].address;
            assert!(owners[a.task.index()].contains(worker), "{a:?} on {worker}");
        }
        let attempts: Vec<Attempt> = assignments.iter().map(|a| start(&mut state, a)).collect();
        finish(&mut state, &assignments[0], attempts[0], &[&addr(1), &addr(2)]);
        assert!(state.datasets.is_empty(), "listed before the job succeeded");
        assert!(
            state.live_datasets().contains(&"out/g1".to_string()),
            "being written: kept"
        );
        let second = owners[assignments[1].task.index()]
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>();
        finish(&mut state, &assignments[1], attempts[1], &second);
        assert_eq!(state.jobs[&job].state, crate::state::JobState::Succeeded);
        let record = &state.datasets["out"];
        assert_eq!(
            (record.generation.as_str(), record.rows.iter().sum::<u64>()),
            ("g1", 20)
        );
        assert!(record.placement.iter().all(|p| p.len() == 2));

        // Another write may not replace it without overwrite: refused when placed.
        assert!(matches!(place(&mut state, "out", "g2", None), Outcome::Conflict(_)));
        // An overwrite whose job loses a replica fails; neither changes what is listed.
        for (generation, holders) in [("g3", 1)] {
            assert_eq!(place(&mut state, "out", generation, Some("g1")), Outcome::Done);
            let job = submit_plan(&mut state, storing("out", generation, true, owners.clone()));
            let assignments = schedule(&state, &live);
            for a in &assignments {
                let attempt = start(&mut state, a);
                let all = owners[a.task.index()].iter().map(String::as_str).collect::<Vec<_>>();
                finish(&mut state, a, attempt, &all[..holders]);
            }
            assert!(matches!(state.jobs[&job].state, crate::state::JobState::Failed(_)));
            assert_eq!(state.datasets["out"].generation, "g1");
            assert!(
                !state.live_datasets().contains(&format!("out/{generation}")),
                "its files go"
            );
        }
        // Removed, it is no longer kept.
        state.apply(Command::RemoveDataset {
            name: "out".into(),
            generation: "g1".into(),
            request: String::new(),
        });
        assert!(state.live_datasets().is_empty());
    }
}
