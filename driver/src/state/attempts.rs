//! Commands about task attempts: one starts (the first, or a speculative copy beside a
//! straggler), is granted its stored partition's commit, finishes, fails, or could not read
//! a map output. Each is a [`TaskState`] transition on a running job's task, then what it
//! means for the job (its accumulators, its limits, its end).

use ringleader_core::ids::{Attempt, JobId, StageId, TaskId, WorkerId};
use ringleader_core::plan::accumulator::Accumulated;
use ringleader_core::plan::{TaskValue, Volume};

use super::job::{JobState, MAX_ATTEMPTS, MAX_FETCH_FAILURES, max_uncounted_failures};
use super::stage::TaskRecord;
use super::{ClusterState, Outcome};

/// A task of a job: the coordinates every attempt command carries.
#[derive(Debug, Clone, Copy)]
pub(super) struct TaskAt<'a> {
    pub job: &'a JobId,
    pub stage: StageId,
    pub task: TaskId,
}

/// A finished attempt's report (the rest of [`super::Command::FinishTask`]).
pub(super) struct Finished {
    pub attempt: Attempt,
    pub value: TaskValue,
    pub read: Volume,
    pub accumulated: Vec<Accumulated>,
}

/// A failed attempt's report (the rest of [`super::Command::FailTask`]).
pub(super) struct Failed {
    pub attempt: Attempt,
    pub message: String,
    pub retryable: bool,
    pub counts: bool,
}

impl ClusterState {
    /// Starts the task's pending attempt on `worker`.
    pub(super) fn start_task(&mut self, at: TaskAt, worker: WorkerId) -> Outcome {
        self.launch(at, |t| t.state.start(&mut t.history, worker))
    }

    /// Starts a speculative copy of the task's running attempt on `worker`.
    pub(super) fn speculate(&mut self, at: TaskAt, worker: WorkerId) -> Outcome {
        self.launch(at, |t| t.state.speculate(&mut t.history, worker))
    }

    /// An attempt finished: the first to finish wins (a stored partition only from the
    /// attempt granted its commit), its accumulator updates count once for the task, and
    /// the job ends if it was its last task.
    pub(super) fn finish_task(&mut self, at: TaskAt, report: Finished) -> Outcome {
        let Some(task) = self.running_task(at) else {
            return Outcome::Stale;
        };
        if matches!(report.value, TaskValue::Stored { .. }) && task.history.committer != Some(report.attempt) {
            return Outcome::Stale;
        }
        // The other attempt's report will be stale.
        if !task.state.finish(report.attempt, report.value, report.read) {
            return Outcome::Stale;
        }
        // A task's updates count once: a success after a recomputation adds none.
        if let Some(j) = self.jobs.get_mut(at.job) {
            j.accumulated.entry((at.stage, at.task)).or_insert(report.accumulated);
        }
        self.end_if_done(at.job);
        Outcome::Done
    }

    /// An attempt failed: the task runs again, or the job fails when the failure is not
    /// retryable, the task used up its attempts, or the job its failures nobody is blamed for.
    pub(super) fn fail_task(&mut self, at: TaskAt, report: Failed) -> Outcome {
        let Some(task) = self.running_task(at) else {
            return Outcome::Stale;
        };
        if task
            .state
            .fail(&mut task.history, report.attempt, report.counts)
            .is_none()
        {
            return Outcome::Stale;
        }
        let exhausted = task.history.failures >= MAX_ATTEMPTS;
        let Some(j) = self.jobs.get_mut(at.job) else {
            return Outcome::Done;
        };
        if !report.counts {
            j.uncounted_failures += 1;
        }
        let message = report.message;
        if !report.retryable || exhausted {
            j.state = JobState::Failed(message);
        } else if j.uncounted_failures > max_uncounted_failures(j) {
            j.state = JobState::Failed(format!(
                "tasks were lost {} times without a task to blame (e.g. executors exiting under several tasks); the last: {message}",
                j.uncounted_failures
            ));
        }
        Outcome::Done
    }

    /// An attempt could not read a map output on `worker`: it runs again, and so do the map
    /// outputs there that a stage still needs; the job fails past [`MAX_FETCH_FAILURES`].
    pub(super) fn fetch_failed(&mut self, at: TaskAt, attempt: Attempt, worker: &str, message: &str) -> Outcome {
        let Some(task) = self.running_task(at) else {
            return Outcome::Stale;
        };
        if !task.state.fetch_failed(attempt) {
            return Outcome::Stale;
        }
        let Some(j) = self.jobs.get_mut(at.job) else {
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
        Outcome::Requeued(j.lose_worker(worker, false) + 1)
    }

    /// Grants `attempt` the commit of the task's stored partition, or refuses it and says why.
    pub(super) fn authorize_commit(&mut self, at: TaskAt, attempt: Attempt) -> Outcome {
        let Some(task) = self.running_task(at) else {
            return Outcome::Refused(format!("{} is not running", at.job));
        };
        match task.state.grant_commit(&mut task.history, attempt) {
            Ok(grant) => Outcome::Granted(grant),
            Err(why) => Outcome::Refused(why.to_string()),
        }
    }

    /// Starts an attempt of a running job's task with `start` (the original or a
    /// speculative copy): the attempt's number, or stale when `start` refuses.
    fn launch(&mut self, at: TaskAt, start: impl FnOnce(&mut TaskRecord) -> Option<Attempt>) -> Outcome {
        match self.running_task(at).and_then(start) {
            Some(attempt) => Outcome::TaskStarted(attempt),
            None => Outcome::Stale,
        }
    }

    /// A running job's task.
    fn running_task(&mut self, at: TaskAt) -> Option<&mut TaskRecord> {
        self.jobs
            .get_mut(at.job)
            .filter(|j| j.state == JobState::Running)?
            .task_mut(at.stage, at.task)
    }
}

#[cfg(test)]
mod tests {
    use ringleader_core::plan::Volume;

    use super::*;
    use crate::state::Command;

    /// A state with one running job of `tasks` tasks in one stage.
    fn one_job(tasks: usize) -> (ClusterState, JobId) {
        let mut state = ClusterState::default();
        let Outcome::JobSubmitted(job) = state.apply(Command::SubmitJob {
            name: "t".into(),
            binary: "b".into(),
            args: Vec::new(),
            env: Default::default(),
            working_dir: String::new(),
            plan: crate::scheduler::tests::job(tasks),
            submission: String::new(),
            submitted_ms: 0,
        }) else {
            panic!("not submitted");
        };
        (state, job)
    }

    fn at(job: &JobId, task: u32) -> TaskAt<'_> {
        TaskAt {
            job,
            stage: StageId(0),
            task: TaskId(task),
        }
    }

    fn finished(attempt: u32, n: u64) -> Finished {
        Finished {
            attempt: Attempt(attempt),
            value: TaskValue::Count(n),
            read: Volume::default(),
            accumulated: Vec::new(),
        }
    }

    fn failed(attempt: u32, retryable: bool, counts: bool) -> Failed {
        Failed {
            attempt: Attempt(attempt),
            message: "boom".into(),
            retryable,
            counts,
        }
    }

    #[test]
    fn the_first_of_two_attempts_to_finish_wins_and_the_last_task_ends_the_job() {
        let (mut state, job) = one_job(2);
        assert_eq!(
            state.start_task(at(&job, 0), "w1".into()),
            Outcome::TaskStarted(Attempt(1))
        );
        assert_eq!(
            state.speculate(at(&job, 0), "w1".into()),
            Outcome::Stale,
            "not beside itself"
        );
        assert_eq!(
            state.speculate(at(&job, 0), "w2".into()),
            Outcome::TaskStarted(Attempt(2))
        );
        assert_eq!(state.finish_task(at(&job, 0), finished(2, 7)), Outcome::Done);
        assert_eq!(state.finish_task(at(&job, 0), finished(1, 8)), Outcome::Stale);
        assert_eq!(state.jobs[&job].state, JobState::Running);
        state.start_task(at(&job, 1), "w1".into());
        assert_eq!(state.finish_task(at(&job, 1), finished(1, 1)), Outcome::Done);
        assert_eq!(state.jobs[&job].state, JobState::Succeeded);
        assert_eq!(state.jobs[&job].result(), [TaskValue::Count(7), TaskValue::Count(1)]);
        assert_eq!(
            state.start_task(at(&job, 1), "w1".into()),
            Outcome::Stale,
            "the job ended"
        );
    }

    #[test]
    fn a_failure_retries_until_the_attempts_run_out_and_a_fatal_one_fails_the_job_at_once() {
        let (mut state, job) = one_job(1);
        for attempt in 1..MAX_ATTEMPTS {
            state.start_task(at(&job, 0), "w1".into());
            assert_eq!(state.fail_task(at(&job, 0), failed(attempt, true, true)), Outcome::Done);
            assert_eq!(state.jobs[&job].state, JobState::Running, "attempt {attempt}");
        }
        state.start_task(at(&job, 0), "w1".into());
        assert_eq!(
            state.fail_task(at(&job, 0), failed(9, true, true)),
            Outcome::Stale,
            "not its attempt"
        );
        state.fail_task(at(&job, 0), failed(MAX_ATTEMPTS, true, true));
        assert_eq!(state.jobs[&job].state, JobState::Failed("boom".into()));

        let (mut state, job) = one_job(1);
        state.start_task(at(&job, 0), "w1".into());
        state.fail_task(at(&job, 0), failed(1, false, true));
        assert_eq!(state.jobs[&job].state, JobState::Failed("boom".into()));
    }

    #[test]
    fn uncounted_failures_fail_the_job_only_past_their_own_bound() {
        let (mut state, job) = one_job(1);
        for attempt in 1..=max_uncounted_failures(&state.jobs[&job]) + 1 {
            assert_eq!(state.jobs[&job].state, JobState::Running, "attempt {attempt}");
            state.start_task(at(&job, 0), "w1".into());
            state.fail_task(at(&job, 0), failed(attempt, true, false));
        }
        let JobState::Failed(message) = &state.jobs[&job].state else {
            panic!("still {:?}", state.jobs[&job].state);
        };
        assert!(message.contains("without a task to blame"), "{message}");
        assert_eq!(state.jobs[&job].stages[0].tasks[0].history.failures, 0);
    }

    #[test]
    fn fetch_failures_run_the_reader_again_and_fail_the_job_past_their_bound() {
        let (mut state, job) = one_job(1);
        for attempt in 1..=MAX_FETCH_FAILURES {
            state.start_task(at(&job, 0), "w1".into());
            assert_eq!(
                state.fetch_failed(at(&job, 0), Attempt(attempt), "w2", "gone"),
                Outcome::Requeued(1)
            );
        }
        state.start_task(at(&job, 0), "w1".into());
        assert_eq!(
            state.fetch_failed(at(&job, 0), Attempt(MAX_FETCH_FAILURES + 1), "w2", "gone"),
            Outcome::Done
        );
        assert!(matches!(&state.jobs[&job].state, JobState::Failed(m) if m.ends_with("the last: gone")));
    }

    #[test]
    fn a_commit_is_granted_to_one_running_attempt() {
        let (mut state, job) = one_job(1);
        state.start_task(at(&job, 0), "w1".into());
        state.speculate(at(&job, 0), "w2".into());
        assert_eq!(state.authorize_commit(at(&job, 0), Attempt(2)), Outcome::Granted(1));
        assert!(matches!(
            state.authorize_commit(at(&job, 0), Attempt(1)),
            Outcome::Refused(_)
        ));
        state.cancel_job(&job, "stop".into());
        assert_eq!(
            state.authorize_commit(at(&job, 0), Attempt(2)),
            Outcome::Refused(format!("{job} is not running"))
        );
    }
}
