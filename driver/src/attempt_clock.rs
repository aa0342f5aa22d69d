//! When this driver saw each task attempt start and end: the one record of attempt times,
//! for the scheduler (speculation, the task timeout, heartbeats' grace) and for the status
//! pages (durations, the timeline, failed attempts).
//!
//! Soft state beside the replicated state, never replicated or snapshotted: every driver
//! notes the [`AttemptEvent`]s its replica applies, at the time it applies them, so a new
//! leader knows the times of what it applied since it started (and requeues what ran
//! before). Monotonic instants time the scheduler's decisions; wall-clock milliseconds are
//! what the pages show.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use ringleader_core::clock::now_ms;
use ringleader_core::ids::{AttemptKey, JobId, StageId, WorkerId};

use crate::state::{AttemptEvent, ClusterState, JobState, StageState};

/// Attempts remembered at most (the oldest jobs' go first).
const MAX_ATTEMPTS: usize = 200_000;

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
        if self.attempts.len() >= MAX_ATTEMPTS
            && let Some(oldest) = self.attempts.keys().map(|k| &k.job).min().cloned()
        {
            self.attempts.retain(|k, _| k.job != oldest);
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
