//! Choosing where tasks run: a pure function of the state and the set of live workers,
//! so it can be tested without processes. Jobs are served in submission order; a stage is
//! ready when the stages it reads are done; each task goes to the live worker with the most
//! free slots (ties by id).

use std::collections::{BTreeMap, BTreeSet};

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
                let best = free
                    .iter()
                    .filter(|(_, n)| **n > 0)
                    .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)));
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
