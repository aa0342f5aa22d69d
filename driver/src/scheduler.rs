//! Choosing where tasks run: a pure function of the state and the set of live workers,
//! so it can be tested without processes. Jobs are served in submission order; a stage is
//! ready when the stages it reads are done; a task reading a stored partition goes to a
//! live worker holding it if one has a free slot (data locality), any other task to the
//! live worker with the most free slots (ties by id).

use std::collections::{BTreeMap, BTreeSet};

use ringleader_core::plan::TaskInput;
use ringleader_core::source::Split;

use crate::state::{ClusterState, JobState, TaskState};

/// A task to start on a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// Job id.
    pub job: String,
    /// Stage index.
    pub stage: u32,
    /// Task index.
    pub task: u32,
    /// Worker id.
    pub worker: String,
}

/// Tasks that can start now.
pub fn schedule(state: &ClusterState, live: &BTreeSet<String>) -> Vec<Assignment> {
    let running = state.running_per_worker();
    let mut free: BTreeMap<&str, u32> = state
        .workers
        .values()
        .filter(|w| live.contains(&w.id))
        .map(|w| {
            (
                w.id.as_str(),
                w.slots.saturating_sub(running.get(w.id.as_str()).copied().unwrap_or(0)),
            )
        })
        .collect();
    let mut out = Vec::new();
    for job in state.jobs.values().filter(|j| j.state == JobState::Running) {
        for (s, stage) in job.plan.stages.iter().enumerate() {
            if job.stage_done(s) || !stage.parents.iter().all(|&p| job.stage_done(p as usize)) {
                continue;
            }
            for (t, task) in job.tasks[s].iter().enumerate() {
                if *task != TaskState::Pending {
                    continue;
                }
                // Data locality first: a stored partition's task goes to a worker holding it.
                let holders: Vec<&str> = match &stage.tasks[t].input {
                    TaskInput::Source {
                        split: Split::Stored { locations, .. },
                        ..
                    } => state
                        .workers
                        .values()
                        .filter(|w| locations.contains(&w.address))
                        .map(|w| w.id.as_str())
                        .collect(),
                    _ => Vec::new(),
                };
                let most_free = |local: bool| {
                    free.iter()
                        .filter(|(w, n)| **n > 0 && (!local || holders.contains(w)))
                        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                };
                let best = most_free(true).or_else(|| most_free(false));
                let Some((&worker, _)) = best else {
                    return out;
                };
                if let Some(n) = free.get_mut(worker) {
                    *n -= 1;
                }
                out.push(Assignment {
                    job: job.id.clone(),
                    stage: s as u32,
                    task: t as u32,
                    worker: worker.to_string(),
                });
            }
        }
    }
    out
}
