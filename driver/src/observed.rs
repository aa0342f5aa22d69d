//! When this driver saw each task attempt start and end, by the wall clock, for the status
//! page's durations and timeline. Soft state beside the replicated state, never replicated
//! or snapshotted: each driver notes the times at which it applied the commands, so a new
//! leader's page shows what it has seen since it started.

use std::collections::HashMap;

use ringleader_core::clock::now_ms;
use ringleader_core::ids::{AttemptKey, WorkerId};

/// Attempts remembered at most (the oldest jobs' go first).
const MAX_ATTEMPTS: usize = 200_000;

/// What this driver saw of one attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptSeen {
    /// The worker it ran on.
    pub worker: WorkerId,
    /// When it was started, Unix milliseconds.
    pub started_ms: u64,
    /// When it finished or failed, if it did.
    pub ended_ms: Option<u64>,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// The attempts this driver has seen.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    attempts: HashMap<AttemptKey, AttemptSeen>,
}

impl Observed {
    /// Notes that `key` started on `worker` now.
    pub fn started(&mut self, key: AttemptKey, worker: &str) {
        if self.attempts.len() >= MAX_ATTEMPTS
            && let Some(oldest) = self.attempts.keys().map(|k| &k.job).min().cloned()
        {
            self.attempts.retain(|k, _| k.job != oldest);
        }
        self.attempts.insert(
            key,
            AttemptSeen {
                worker: WorkerId::from(worker),
                started_ms: now_ms(),
                ended_ms: None,
                error: None,
            },
        );
    }

    /// Notes that `key` ended now, with `error` if it failed.
    pub fn ended(&mut self, key: &AttemptKey, error: Option<String>) {
        if let Some(seen) = self.attempts.get_mut(key)
            && seen.ended_ms.is_none()
        {
            seen.ended_ms = Some(now_ms());
            seen.error = error;
        }
    }

    /// The attempts of `job`, by stage, task and attempt.
    pub fn of_job(&self, job: &str) -> Vec<(&AttemptKey, &AttemptSeen)> {
        let mut attempts: Vec<_> = self.attempts.iter().filter(|(k, _)| k.job == job).collect();
        attempts.sort_by_key(|(k, _)| (k.stage, k.task, k.attempt));
        attempts
    }
}

#[cfg(test)]
mod tests {
    use ringleader_core::ids::{Attempt, StageId, TaskId};

    use super::*;

    #[test]
    fn an_attempt_is_timed_from_its_start_to_its_first_end() {
        let key = |attempt| AttemptKey::new("job-000001", StageId(0), TaskId(3), Attempt(attempt));
        let mut seen = Observed::default();
        seen.started(key(1), "worker-1");
        seen.started(key(2), "worker-2");
        seen.ended(&key(1), Some("boom".into()));
        seen.ended(&key(1), None);
        let attempts = seen.of_job("job-000001");
        assert_eq!(attempts.len(), 2);
        let (_, first) = attempts[0];
        assert_eq!(
            (first.worker.as_str(), first.error.as_deref()),
            ("worker-1", Some("boom"))
        );
        assert!(first.ended_ms.is_some_and(|e| e >= first.started_ms));
        assert_eq!(attempts[1].1.ended_ms, None);
        assert!(seen.of_job("job-000002").is_empty());
    }
}
