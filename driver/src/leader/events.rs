//! What a job's client hears: its stream of events (accepted, stage progress, results,
//! finished or failed), replayed from the state when a client (re)attaches, and the path
//! every task report takes into the log and out to the client.

use std::sync::Arc;
use std::time::Instant;

use ringleader_core::fault_injection;
use ringleader_core::ids::{JobId, StageId};
use ringleader_core::net::binary::CHUNK_BYTES;
use ringleader_core::proto::{self, job_event::Event};

use ringleader_core::sync::lock;

use super::{DriverInner, EventSender, LeaderError};
use crate::state::{Command, JobRecord, JobState};
use crate::views::{accumulators, stage_progress};

impl DriverInner {
    /// Starts streaming `job`'s events to `tx`: what happened so far, then what follows.
    pub fn watch(self: &Arc<Self>, job: &str, tx: EventSender, term: u64) {
        let events = {
            let state = self.state();
            let Some(record) = state.jobs.get(job) else { return };
            let mut events = vec![Event::Accepted(proto::JobAccepted {
                job_id: job.to_string(),
                stages: record.stages.len() as u32,
            })];
            events.extend((0..record.stages.len() as u32).map(|s| Event::Stage(stage_progress(record, s))));
            events.extend(final_events(record));
            events
        };
        let finished = events
            .iter()
            .any(|e| matches!(e, Event::Finished(_) | Event::Failed(_)));
        lock(&self.unwatched).remove(job);
        if !finished {
            lock(&self.watchers).insert(JobId::from(job), (tx.clone(), term));
        }
        let me = self.clone();
        let job = JobId::from(job);
        self.background.spawn(async move {
            for event in events {
                if tx.send(Ok(proto::JobEvent { event: Some(event) })).await.is_err() {
                    break;
                }
            }
            if finished {
                return;
            }
            // A client that goes away may be back soon (a brief network drop): its job
            // runs on unwatched and is cancelled only if no client watches it again within
            // the grace (see `cancel_unwatched`). Ctrl-C and `ringleader cancel` cancel at once.
            tx.closed().await;
            let watched_here = lock(&me.watchers).get(&job).is_some_and(|(w, _)| w.same_channel(&tx));
            if watched_here && me.leading() == Some(term) {
                lock(&me.watchers).remove(&job);
                lock(&me.unwatched).insert(job.clone(), Instant::now());
            }
        });
    }

    /// Commits a task's report (finished, failed, or a fetch failure) and tells the job's
    /// client what changed. Carried through in a task of its own even if the caller gives up
    /// (a worker whose executor went, a heartbeat call cancelled): a commit whose client is
    /// never told would leave a job ended on the drivers and waited for by its program.
    pub async fn report(self: &Arc<Self>, command: Command) -> Result<(), LeaderError> {
        let me = self.clone();
        self.background
            .spawn(async move { me.report_to_the_end(command).await })
            .await
            .unwrap_or_else(|e| {
                Err(LeaderError::Unavailable {
                    what: "report",
                    message: e.to_string(),
                })
            })
    }

    async fn report_to_the_end(self: &Arc<Self>, command: Command) -> Result<(), LeaderError> {
        let (job, stage) = match &command {
            Command::FinishTask { job, stage, .. }
            | Command::FailTask { job, stage, .. }
            | Command::FetchFailed { job, stage, .. } => (job.clone(), *stage),
            _ => return self.write(command).await.map(|_| ()),
        };
        let mut rival = None;
        if let Command::FinishTask { task, attempt, .. } = &command {
            rival = self
                .state()
                .rival_attempt(&job, stage, *task, *attempt)
                .map(|(worker, attempt)| (worker, *task, attempt));
        }
        let finished = matches!(command, Command::FinishTask { .. });
        let outcome = self.write(command).await?;
        if let Some(delay) = fault_injection::millis(fault_injection::REPORT_DELAY_MS) {
            tokio::time::sleep(delay).await;
        }
        if finished && !matches!(outcome, crate::state::Outcome::Stale) {
            self.send_map_outputs(&job, stage);
        }
        if let Some((worker, task, attempt)) = rival
            && !matches!(outcome, crate::state::Outcome::Stale)
        {
            self.stop_attempt(
                &worker,
                proto::RunningTask {
                    job_id: job.to_string(),
                    stage: stage.0,
                    task: task.0,
                    attempt: attempt.0,
                },
            )
            .await;
        }
        self.after_report(&job, stage);
        Ok(())
    }

    /// Tells the job's client what changed and wakes the scheduler.
    pub fn after_report(self: &Arc<Self>, job: &str, stage: StageId) {
        let events: Vec<Event> = {
            let state = self.state();
            let Some(record) = state.jobs.get(job) else { return };
            let mut events = vec![Event::Stage(stage_progress(record, stage.0))];
            events.extend(final_events(record));
            events
        };
        let last = events.iter().any(|e| !matches!(e, Event::Stage(_)));
        let sender = if last {
            lock(&self.watchers).remove(job)
        } else {
            lock(&self.watchers).get(job).cloned()
        };
        if last {
            tracing::debug!(
                "{job}: ended; its client is {}",
                if sender.is_some() { "told" } else { "not watching" }
            );
        }
        if let Some((tx, _)) = sender {
            if last {
                // The final events must all arrive: send them in order from a task.
                self.background.spawn(async move {
                    for event in events {
                        if tx.send(Ok(proto::JobEvent { event: Some(event) })).await.is_err() {
                            break;
                        }
                    }
                });
            } else {
                for event in events {
                    let _ = tx.try_send(Ok(proto::JobEvent { event: Some(event) }));
                }
            }
        }
        self.wake.notify_one();
    }
}

/// The events that end a job's stream: its results and `Finished`, or `Failed`.
fn final_events(record: &JobRecord) -> Vec<Event> {
    match &record.state {
        JobState::Running => Vec::new(),
        // Succeeded is never reported as failed, also when its values are gone.
        JobState::Succeeded if record.results_dropped => vec![Event::Finished(proto::JobFinished {
            tasks: 0,
            results_dropped: true,
            accumulators: accumulators(record),
        })],
        JobState::Succeeded => {
            let mut events = Vec::new();
            let values = record.result();
            for (task, value) in values.iter().enumerate() {
                let bytes = postcard::to_stdvec(value).unwrap_or_default();
                for piece in bytes.chunks(CHUNK_BYTES) {
                    events.push(Event::Result(proto::ResultChunk {
                        task: task as u32,
                        data: piece.to_vec(),
                    }));
                }
            }
            events.push(Event::Finished(proto::JobFinished {
                tasks: values.len() as u32,
                results_dropped: false,
                accumulators: accumulators(record),
            }));
            events
        }
        JobState::Failed(m) | JobState::Cancelled(m) => vec![Event::Failed(proto::JobFailed { message: m.clone() })],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{ClusterState, Command, Outcome};

    #[test]
    fn a_succeeded_job_whose_results_are_gone_is_reported_succeeded_never_failed() {
        let mut state = ClusterState::default();
        let plan = crate::scheduler::tests::job(1);
        let Outcome::JobSubmitted(id) = state.apply(Command::SubmitJob {
            name: "t".into(),
            binary: "0".repeat(32),
            args: Vec::new(),
            env: Default::default(),
            working_dir: String::new(),
            plan,
            submission: "s".into(),
            submitted_ms: 0,
        }) else {
            panic!("not submitted");
        };
        let record = state.jobs.get_mut(&id).expect("job");
        record.state = JobState::Succeeded;
        record.results_dropped = true;
        let events = final_events(record);
        assert!(
            matches!(
                events.as_slice(),
                [Event::Finished(proto::JobFinished {
                    results_dropped: true,
                    ..
                })]
            ),
            "{events:?}"
        );
    }
}
