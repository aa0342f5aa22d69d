//! When this driver saw each task attempt start and end: the one record of attempt times,
//! for the scheduler (speculation, the task timeout, heartbeats' grace) and for the status
//! pages (durations, the timeline, failed attempts).
//!
//! Soft state beside the replicated state, never replicated or snapshotted: every driver
//! notes the [`AttemptEvent`]s its replica applies, at the time it applies them, so any
//! driver's pages show the attempts it applied since it started (a new leader requeues what
//! was running, so the scheduler times only attempts it started itself). Monotonic instants
//! time the scheduler's decisions; wall-clock milliseconds are what the pages show. Bounded:
//! past [`MAX_ATTEMPTS`] the oldest jobs with no attempt running are forgotten, with their
//! stages' durations.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use ringleader_core::clock::now_ms;
use ringleader_core::ids::{AttemptKey, JobId, StageId, WorkerId};

use crate::state::{AttemptEvent, ClusterState, JobState, StageState};

/// Attempts remembered before the oldest jobs with none running are forgotten.
pub const MAX_ATTEMPTS: usize = 200_000;

/// What this driver saw of one attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptSeen {
    /// The worker it ran on.
    pub worker: WorkerId,
    /// When it was started, Unix milliseconds.
    pub started_ms: u64,
    /// When it finished or failed, if it did, Unix milliseconds.
    pub ended_ms: Option<u64>,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// One attempt: what the pages show, and the scheduler's instants.
#[derive(Debug, Clone)]
struct Entry {
    seen: AttemptSeen,
    /// From when the scheduler times it: its start, or, for a reducer started before its
    /// map stages were done, when they were (its wait for map outputs is neither a
    /// straggler's slowness nor a hung task).
    timed_from: Instant,
    /// When it ended, if it did.
    ended: Option<Instant>,
}

/// The attempts this driver has seen, and what the scheduler derives from them.
#[derive(Debug, Default)]
pub struct AttemptClock {
    attempts: HashMap<AttemptKey, Entry>,
    /// How long each stage's finished attempts took.
    durations: HashMap<(JobId, StageId), Vec<Duration>>,
    /// Stages seen running before their map stages were done (pipelined reducers), and
    /// whether their attempts' times were moved to when those were.
    early: BTreeMap<(JobId, StageId), bool>,
    /// When the reducers started early were last told where their map outputs are.
    told_at: Option<Instant>,
}

impl AttemptClock {
    /// Notes `event`, applied at `at`.
    pub fn note(&mut self, event: AttemptEvent, at: Instant) {
        match event {
            AttemptEvent::Started { key, worker } => self.started(key, worker, at),
            AttemptEvent::Ended { key, error } => self.ended(&key, error, at),
        }
    }

    fn started(&mut self, key: AttemptKey, worker: WorkerId, at: Instant) {
        if self.attempts.len() >= MAX_ATTEMPTS {
            self.forget_finished_jobs(MAX_ATTEMPTS * 9 / 10);
        }
        let seen = AttemptSeen {
            worker,
            started_ms: now_ms(),
            ended_ms: None,
            error: None,
        };
        self.attempts.insert(
            key,
            Entry {
                seen,
                timed_from: at,
                ended: None,
            },
        );
    }

    /// The first end of an attempt counts (a late second report changes nothing); a
    /// success adds its time to its stage's durations.
    fn ended(&mut self, key: &AttemptKey, error: Option<String>, at: Instant) {
        let Some(entry) = self.attempts.get_mut(key).filter(|e| e.ended.is_none()) else {
            return;
        };
        entry.ended = Some(at);
        entry.seen.ended_ms = Some(now_ms());
        if error.is_none() {
            self.durations
                .entry((key.job.clone(), key.stage))
                .or_default()
                .push(at.saturating_duration_since(entry.timed_from));
        }
        entry.seen.error = error;
    }

    /// Forgets the oldest jobs (by submission number) none of whose attempts is running,
    /// with their stages' durations, until at most `keep` attempts are left (or only jobs
    /// with running attempts are): a running job's times are never forgotten.
    fn forget_finished_jobs(&mut self, keep: usize) {
        let mut per_job: BTreeMap<(u64, JobId), (usize, bool)> = BTreeMap::new();
        for (key, entry) in &self.attempts {
            let job = per_job
                .entry((submission_number(&key.job), key.job.clone()))
                .or_default();
            job.0 += 1;
            job.1 |= entry.ended.is_none();
        }
        let mut left = self.attempts.len();
        let mut forgotten = BTreeSet::new();
        for ((_, job), (attempts, open)) in per_job {
            if left <= keep {
                break;
            }
            if !open {
                left -= attempts;
                forgotten.insert(job);
            }
        }
        self.attempts.retain(|k, _| !forgotten.contains(&k.job));
        self.durations.retain(|k, _| !forgotten.contains(&k.0));
        self.early.retain(|k, _| !forgotten.contains(&k.0));
    }

    /// From when the scheduler times a running attempt (see [`AttemptSeen`]), if seen.
    pub fn timed_from(&self, key: &AttemptKey) -> Option<Instant> {
        self.attempts
            .get(key)
            .filter(|e| e.ended.is_none())
            .map(|e| e.timed_from)
    }

    /// When a finished attempt ended, if seen.
    pub fn ended_at(&self, key: &AttemptKey) -> Option<Instant> {
        self.attempts.get(key)?.ended
    }

    /// The median time of `stage`'s finished attempts.
    pub fn median(&self, job: &str, stage: StageId) -> Option<Duration> {
        let mut d = self.durations.get(&(JobId::from(job), stage))?.clone();
        d.sort();
        d.get(d.len() / 2).copied()
    }

    /// The attempts of `job`, by stage, task and attempt.
    pub fn of_job(&self, job: &str) -> Vec<(AttemptKey, AttemptSeen)> {
        let mut attempts: Vec<_> = self
            .attempts
            .iter()
            .filter(|(k, _)| k.job == job)
            .map(|(k, e)| (k.clone(), e.seen.clone()))
            .collect();
        attempts.sort_by_key(|(k, _)| (k.stage, k.task, k.attempt));
        attempts
    }

    /// Forgets the scheduler's figures (durations, early stages) of jobs not in
    /// `running`; the attempts stay for the pages, within their bound.
    pub fn retain(&mut self, running: &BTreeSet<&str>) {
        self.durations.retain(|k, _| running.contains(k.0.as_str()));
        self.early.retain(|k, _| running.contains(k.0.as_str()));
    }

    /// Times the attempts of stages that started before the stages they read were done from
    /// when those were done. Called on every scheduling pass.
    pub fn note_early_stages(&mut self, state: &ClusterState, now: Instant) {
        for job in state.jobs.values().filter(|j| j.state == JobState::Running) {
            for s in 0..job.stages.len() {
                let key = (job.id.clone(), StageId::from(s));
                let ready = job.stage_ready(s, false);
                if !ready && job.stage_state(s, false) == StageState::Running {
                    self.early.entry(key).or_insert(false);
                } else if ready && self.early.get(&key) == Some(&false) {
                    self.early.insert(key.clone(), true);
                    for (attempt, entry) in &mut self.attempts {
                        if attempt.job == key.0 && attempt.stage == key.1 && entry.ended.is_none() {
                            entry.timed_from = entry.timed_from.max(now);
                        }
                    }
                }
            }
        }
    }

    /// The stages of running jobs that started before their map stages were done, if it is
    /// time (every `every`) to tell their reducers again where the map outputs are.
    pub fn early_stages_to_tell(&mut self, now: Instant, every: Duration) -> Vec<(JobId, StageId)> {
        if self.told_at.is_some_and(|at| now.saturating_duration_since(at) < every) {
            return Vec::new();
        }
        self.told_at = Some(now);
        self.early.keys().cloned().collect()
    }
}

/// The number in a job id `job-N`, for submission order (`job-999999` before
/// `job-1000000`); other ids after every numbered one.
fn submission_number(job: &str) -> u64 {
    job.strip_prefix("job-")
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use ringleader_core::ids::{Attempt, TaskId};

    use super::*;

    fn key(attempt: u32) -> AttemptKey {
        AttemptKey::new("job-000001", StageId(0), TaskId(3), Attempt(attempt))
    }

    fn start(clock: &mut AttemptClock, attempt: u32, worker: &str, at: Instant) {
        let worker = WorkerId::from(worker);
        clock.note(
            AttemptEvent::Started {
                key: key(attempt),
                worker,
            },
            at,
        );
    }

    fn end(clock: &mut AttemptClock, attempt: u32, error: Option<&str>, at: Instant) {
        let error = error.map(str::to_string);
        clock.note(
            AttemptEvent::Ended {
                key: key(attempt),
                error,
            },
            at,
        );
    }

    #[test]
    fn an_attempt_is_timed_from_its_start_to_its_first_end() {
        let t0 = Instant::now();
        let mut clock = AttemptClock::default();
        start(&mut clock, 1, "worker-1", t0);
        start(&mut clock, 2, "worker-2", t0);
        end(&mut clock, 1, Some("boom"), t0 + Duration::from_secs(1));
        end(&mut clock, 1, None, t0 + Duration::from_secs(2));
        let attempts = clock.of_job("job-000001");
        assert_eq!(attempts.len(), 2);
        let (_, first) = &attempts[0];
        assert_eq!(
            (first.worker.as_str(), first.error.as_deref()),
            ("worker-1", Some("boom"))
        );
        assert!(first.ended_ms.is_some_and(|e| e >= first.started_ms));
        assert_eq!(clock.ended_at(&key(1)), Some(t0 + Duration::from_secs(1)));
        assert_eq!(clock.timed_from(&key(1)), None, "it ended");
        assert_eq!(clock.timed_from(&key(2)), Some(t0));
        assert_eq!(attempts[1].1.ended_ms, None);
        assert!(clock.of_job("job-000002").is_empty());
        assert_eq!(clock.median("job-000001", StageId(0)), None, "a failure is no duration");
    }

    #[test]
    fn past_its_bound_the_clock_forgets_the_oldest_finished_jobs_never_a_running_one() {
        let t0 = Instant::now();
        let mut clock = AttemptClock::default();
        let key = |job: &str, task: u32| AttemptKey::new(job, StageId(0), TaskId(task), Attempt(1));
        let start = |clock: &mut AttemptClock, key: AttemptKey| {
            let worker = WorkerId::from("worker-1");
            clock.note(AttemptEvent::Started { key, worker }, t0);
        };
        // job-999999: long running (one attempt open); job-1000000 and job-1000001: done.
        start(&mut clock, key("job-999999", 0));
        for job in ["job-1000000", "job-1000001"] {
            for t in 0..3 {
                start(&mut clock, key(job, t));
                clock.note(
                    AttemptEvent::Ended {
                        key: key(job, t),
                        error: None,
                    },
                    t0,
                );
            }
        }
        clock.forget_finished_jobs(4);
        assert!(
            clock.timed_from(&key("job-999999", 0)).is_some(),
            "a running job's start was forgotten"
        );
        assert!(clock.of_job("job-1000000").is_empty(), "the oldest finished job stays");
        assert_eq!(clock.of_job("job-1000001").len(), 3);
        assert_eq!(clock.median("job-1000000", StageId(0)), None, "its durations stay");
        assert!(clock.median("job-1000001", StageId(0)).is_some());
        // Nothing finished is left to forget: the running job stays whatever the bound.
        clock.forget_finished_jobs(0);
        assert!(clock.timed_from(&key("job-999999", 0)).is_some());
    }

    #[test]
    fn a_stages_median_is_over_its_successes() {
        let t0 = Instant::now();
        let mut clock = AttemptClock::default();
        for (attempt, secs) in [(1, 3), (2, 1), (3, 2)] {
            start(&mut clock, attempt, "worker-1", t0);
            end(&mut clock, attempt, None, t0 + Duration::from_secs(secs));
        }
        assert_eq!(clock.median("job-000001", StageId(0)), Some(Duration::from_secs(2)));
        clock.retain(&BTreeSet::new());
        assert_eq!(clock.median("job-000001", StageId(0)), None);
        assert_eq!(clock.of_job("job-000001").len(), 3, "the pages keep the attempts");
    }
}
