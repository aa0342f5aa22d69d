//! Recovering from lost parts: workers that miss their heartbeats or cannot be reached
//! (their tasks run elsewhere, their needed map outputs are recomputed, their dataset
//! partitions re-replicated), jobs left without workers, and jobs nobody watches.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringleader_core::fault_injection;
use ringleader_core::ids::{JobId, StageId, WorkerId};
use ringleader_core::proto;

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
                    tokio::spawn(self.clone().rereplicate(worker));
                }
                // Not committed (leadership lost?): try again on the next pass.
                Err(_) => {
                    lock(&self.was_live).insert(worker);
                }
            }
        }
    }

    /// Restores the replica count of the stored dataset partitions `lost` held: each gets
    /// a copy on the next live ring owner that lacks it, fetched from a surviving replica.
    pub(super) async fn rereplicate(self: Arc<Self>, lost: WorkerId) {
        let since = Instant::now();
        while fault_injection::held(fault_injection::REPAIR_HOLD) && since.elapsed() < fault_injection::HOLD_LIMIT {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let live = self.live_workers();
        let (datasets, copies) = {
            let state = self.state();
            let ring = state.ring(|w| live.contains(w));
            let address = |w: &str| -> String { state.workers.get(w).map(|r| r.address.clone()).unwrap_or_default() };
            let mut datasets = Vec::new();
            let mut copies: Vec<(String, String, usize, WorkerId, String, Vec<String>)> = Vec::new();
            for d in state
                .datasets
                .values()
                .filter(|d| d.placement.iter().any(|o| o.contains(&lost)))
            {
                for (p, owners) in d.placement.iter().enumerate() {
                    if !owners.contains(&lost) {
                        continue;
                    }
                    let owners: Vec<WorkerId> = owners.iter().filter(|o| **o != lost).cloned().collect();
                    let key = format!("{}/{p}", d.name);
                    let target = ring
                        .owners(key.as_bytes(), ring.len())
                        .into_iter()
                        .find(|w| !owners.contains(w))
                        .cloned();
                    if let Some(target) = target
                        && !owners.is_empty()
                    {
                        let from = owners.iter().map(|o| address(o)).collect();
                        copies.push((
                            d.name.clone(),
                            d.generation.clone(),
                            p,
                            target.clone(),
                            address(&target),
                            from,
                        ));
                    }
                }
                datasets.push(d.clone());
            }
            (datasets, copies)
        };
        let mut copied = Vec::new();
        for (dataset, generation, partition, target, address, from) in copies {
            let request = proto::CopyPartitionRequest {
                dataset: dataset.clone(),
                partition: partition as u32,
                from,
                generation,
            };
            let reply = match self.worker_client(&address) {
                Ok(mut worker) => worker.copy_partition(request).await.map(|_| ()),
                Err(e) => Err(e.into()),
            };
            match reply {
                Ok(()) => {
                    tracing::info!(
                        "driver {}: copied {dataset} partition {partition} to {target} (a replica was on lost {lost})",
                        self.id
                    );
                    copied.push((dataset, partition, target));
                }
                Err(e) => tracing::warn!(
                    "driver {}: re-replicating {dataset} partition {partition} to {target}: {}",
                    self.id,
                    e.message()
                ),
            }
        }
        // Each partition that listed the lost worker: its survivors and any new copy, recorded
        // only if the dataset is still the generation copied (a `put --overwrite`, a job's
        // output or an `rm` meanwhile wins).
        for record in datasets {
            for (p, placed) in record.placement.iter().enumerate() {
                if !placed.contains(&lost) {
                    continue;
                }
                let mut holders: Vec<WorkerId> = placed.iter().filter(|o| **o != lost).cloned().collect();
                holders.extend(
                    copied
                        .iter()
                        .filter(|(dataset, partition, _)| *dataset == record.name && *partition == p)
                        .map(|(_, _, target)| target.clone()),
                );
                let _ = self
                    .write(Command::RepairDataset {
                        name: record.name.clone(),
                        generation: record.generation.clone(),
                        partition: p as u32,
                        holders,
                    })
                    .await;
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
            tokio::spawn(async move {
                if let Ok(mut worker) = me.worker_client(&address) {
                    let _ = worker.stop_job(ringleader_core::proto::JobId { job_id: id }).await;
                }
            });
        }
    }
}
