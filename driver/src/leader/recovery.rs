//! Recovering from lost parts: workers that miss their heartbeats or cannot be reached
//! (their tasks run elsewhere, their needed map outputs are recomputed, the repair loop
//! audits their dataset partitions), jobs left without workers, jobs nobody watches, and
//! dataset writes nobody commits.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringleader_core::ids::{JobId, StageId, WorkerId};

use ringleader_core::sync::lock;

use super::DriverInner;
use crate::state::{Command, JobState, Outcome};

/// How long a running job may go unwatched after a leader change before it is cancelled
/// (its client reconnects within seconds; one that does not has gone away).
const UNWATCHED_GRACE: Duration = Duration::from_secs(15);

impl DriverInner {
    /// A worker that cannot be reached counts as dead at once (not after its heartbeat
    /// timeout): its tasks run elsewhere, without counting as failures.
    pub(super) async fn unreachable(self: &Arc<Self>, worker: &str) {
        lock(&self.heartbeats).remove(worker);
        lock(&self.was_live).insert(WorkerId::from(worker));
        let live = self.live_workers();
        self.lose_dead_workers(&live).await;
    }

    /// Workers that stopped heartbeating since the last pass: their running tasks run again
    /// elsewhere and the map outputs they held are recomputed.
    pub(super) async fn lose_dead_workers(self: &Arc<Self>, live: &BTreeSet<WorkerId>) {
        let dead: Vec<WorkerId> = {
            let mut was = lock(&self.was_live);
            let dead = was.difference(live).cloned().collect();
            *was = live.clone();
            dead
        };
        for worker in dead {
            match self.write(Command::WorkerLost { worker: worker.clone() }).await {
                Ok(outcome) => {
                    let requeued = match outcome {
                        Outcome::Requeued(n) => n,
                        _ => 0,
                    };
                    tracing::warn!("driver {}: {worker} is lost; {requeued} tasks run again", self.id);
                    if requeued > 0 {
                        self.wake.notify_one();
                    }
                    self.repair_wake.notify_one();
                }
                // Not committed (leadership lost?): try again on the next pass.
                Err(_) => {
                    lock(&self.was_live).insert(worker);
                }
            }
        }
    }

    /// Gives up dataset writes placed longer than [`super::PLACED_GRACE`] ago and never
    /// committed (a `put` whose client went away; a job's output is settled when its job
    /// ends). Workers then delete what was sent of them.
    pub(super) async fn settle_placements(self: &Arc<Self>) {
        let abandoned: Vec<(String, String)> = {
            let state = self.state();
            let now = ringleader_core::clock::now_ms();
            let grace = super::PLACED_GRACE.as_millis() as u64;
            state
                .pending
                .values()
                .filter(|p| now.saturating_sub(p.placed_ms) > grace)
                .map(|p| (p.name.clone(), p.generation.clone()))
                .collect()
        };
        for (name, generation) in abandoned {
            let _ = self.write(Command::AbortDataset { name, generation }).await;
        }
    }

    /// Fails the running jobs when no worker has been alive for `no_worker_timeout`.
    pub(super) async fn fail_jobs_without_workers(self: &Arc<Self>, live: &BTreeSet<WorkerId>) {
        {
            let mut last = lock(&self.last_live);
            if !live.is_empty() {
                *last = Instant::now();
                return;
            }
            if last.elapsed() < self.no_worker_timeout {
                return;
            }
        }
        let reason = format!(
            "no live worker for {:.0} s; start workers (`ringleader worker --master …` or `ringleader cluster up`) and submit again",
            self.no_worker_timeout.as_secs_f64()
        );
        self.cancel_running(|_| true, &reason).await;
    }

    /// Cancels running jobs that nobody watched for the grace: since this driver took over,
    /// or since their client's stream closed.
    pub(super) async fn cancel_unwatched(self: &Arc<Self>) {
        let stale: BTreeSet<JobId> = lock(&self.unwatched)
            .iter()
            .filter(|(_, since)| since.elapsed() > UNWATCHED_GRACE)
            .map(|(job, _)| job.clone())
            .collect();
        if stale.is_empty() {
            return;
        }
        let reason = format!(
            "no client watched it for {} s (its client went away, or did not reconnect after a leader change)",
            UNWATCHED_GRACE.as_secs()
        );
        self.cancel_running(|job| stale.contains(job), &reason).await;
        lock(&self.unwatched).retain(|job, _| !stale.contains(job));
    }

    /// Cancels the running jobs `which` accepts, with `reason`, and stops their tasks.
    pub(crate) async fn cancel_running(self: &Arc<Self>, which: impl Fn(&str) -> bool, reason: &str) {
        let jobs: Vec<JobId> = self
            .state()
            .jobs
            .values()
            .filter(|j| j.state == JobState::Running && which(&j.id))
            .map(|j| j.id.clone())
            .collect();
        for job in jobs {
            let cancel = Command::CancelJob {
                job: job.clone(),
                reason: reason.to_string(),
            };
            if self.write(cancel).await.is_ok() {
                self.after_report(&job, StageId(0));
                self.stop_on_workers(&job);
            }
        }
    }

    /// Tells `worker` to stop one attempt now (its rival finished first), rather than let
    /// it hold a slot until it ends. Waits (at most 2 s) for the worker to hear it, so the
    /// stop arrives before anything the finished task lets the scheduler start there (an
    /// executor left running only the loser ends, which also ends a loser stuck in a closure).
    pub(super) async fn stop_attempt(self: &Arc<Self>, worker: &str, attempt: ringleader_core::proto::RunningTask) {
        let Some(address) = self.state().workers.get(worker).map(|w| w.address.clone()) else {
            return;
        };
        if let Ok(mut client) = self.worker_client(&address) {
            let _ = tokio::time::timeout(Duration::from_secs(2), client.stop_attempt(attempt)).await;
        }
    }

    /// Tells every live worker to stop `job`'s executor now, rather than at its next
    /// heartbeat (a cancelled job's tasks stop at once).
    pub(super) fn stop_on_workers(self: &Arc<Self>, job: &str) {
        let live = self.live_workers();
        let addresses: Vec<String> = self
            .state()
            .workers
            .values()
            .filter(|w| live.contains(&w.id))
            .map(|w| w.address.clone())
            .collect();
        for address in addresses {
            let (me, id) = (self.clone(), job.to_string());
            self.background.spawn(async move {
                if let Ok(mut worker) = me.worker_client(&address) {
                    let _ = worker.stop_job(ringleader_core::proto::JobId { job_id: id }).await;
                }
            });
        }
    }
}
