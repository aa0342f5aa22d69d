//! The repair loop: while this driver leads, it audits every stored partition's replicas
//! (each live worker lists the partitions on its disk) after a worker is lost, when one comes
//! back, and every few seconds; it copies a partition to the next live ring owner until R
//! live workers hold its current generation, retrying a failed copy with a backoff, and
//! records the holders it confirmed only if the dataset is still the generation it audited
//! (compare-and-set, see `state::datasets`). What it could not repair, and why, is kept
//! for `ringleader datasets` and `/metrics`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringleader_core::fault_injection;
use ringleader_core::ids::WorkerId;
use ringleader_core::proto;
use ringleader_core::sync::lock;

use super::DriverInner;
use crate::state::{Command, DatasetRecord};

/// How often the loop audits when nothing wakes it.
const AUDIT_EVERY: Duration = Duration::from_secs(2);
/// How long a worker may take to list its partitions.
const AUDIT_PATIENCE: Duration = Duration::from_secs(5);
/// How long one copy may take.
const COPY_PATIENCE: Duration = Duration::from_secs(300);
/// The first wait after a failed copy to a worker; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// The longest wait between copies of one partition to one worker.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What one pass found and decided before it looks at each partition.
struct Audit<'a> {
    /// Workers alive now.
    live: &'a BTreeSet<WorkerId>,
    /// Their addresses.
    addresses: &'a HashMap<WorkerId, String>,
    /// What each worker that answered holds (`DATASET/GENERATION/PARTITION`).
    held: &'a HashMap<WorkerId, HashSet<String>>,
    /// Whether a test holds copies back during this pass.
    copies_held_back: bool,
}

/// A copy that failed: when it may be tried again, the wait after it fails again, and why
/// it failed (kept so that a partition short of replicas while its copies back off says why).
#[derive(Debug, Clone)]
struct Backoff {
    /// When a copy may be tried again.
    next: Instant,
    /// The last wait.
    wait: Duration,
    /// The last failure.
    why: String,
}

/// What the last audit found of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionHealth {
    /// Live workers confirmed to hold its current generation.
    pub live: u32,
    /// Why it has fewer than its dataset's replicas, if it does.
    pub short_because: Option<String>,
}

/// The repair loop's memory: the last audit's findings and the copies that wait to be tried
/// again. Leader-local soft state.
#[derive(Debug, Default)]
pub struct RepairState {
    /// By (dataset, partition).
    health: HashMap<(String, u32), PartitionHealth>,
    /// By (dataset, partition, target): the copies that failed last, and when to try again.
    backoff: HashMap<(String, u32, WorkerId), Backoff>,
    /// Since when a test has held repairs back.
    held_since: Option<Instant>,
}

/// A dataset's partition that no holder confirms on its disk: its commit is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "no worker confirms partition {partition} of {name} (generation {generation}) on its disk: the upload did not reach one; store the dataset again"
)]
pub struct Unconfirmed {
    /// The partition.
    pub partition: usize,
    /// The dataset.
    pub name: String,
    /// Its generation.
    pub generation: String,
}

/// Why a partition short of replicas got no new copy on this pass (shown as its health).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
enum NoCopy {
    /// No live worker holds it.
    #[error("no live worker holds it: it cannot be copied (its holders are lost, or their disks were emptied)")]
    NoHolder,
    /// Every other live owner's last copy failed and its wait has not run out.
    #[error("{held_by} of {replicas} replicas; copying to {target} failed: {why} (next try in {next_in_s:.1} s)")]
    BackingOff {
        held_by: usize,
        replicas: u32,
        target: WorkerId,
        why: String,
        next_in_s: f64,
    },
    /// No other live worker to copy it to.
    #[error("{held_by} of {replicas} replicas; no other live worker to copy it to now")]
    NoOtherWorker { held_by: usize, replicas: u32 },
    /// The copy was tried and failed.
    #[error("{held_by} of {replicas} replicas; copying to {target} failed: {why}")]
    Failed {
        held_by: usize,
        replicas: u32,
        target: WorkerId,
        why: String,
    },
}

impl DriverInner {
    /// Runs the repair loop until the process ends.
    pub async fn repair_forever(self: Arc<Self>) {
        loop {
            tokio::select! {
                _ = self.repair_wake.notified() => {}
                _ = tokio::time::sleep(AUDIT_EVERY) => {}
            }
            if self.leading().is_none() {
                *lock(&self.repair) = RepairState::default();
                continue;
            }
            self.repair_pass().await;
        }
    }

    /// Whether a test holds repairs back now ([`fault_injection::REPAIR_HOLD`], at most
    /// [`fault_injection::HOLD_LIMIT`]).
    fn repair_held(&self) -> bool {
        let mut repair = lock(&self.repair);
        if !fault_injection::held(fault_injection::REPAIR_HOLD) {
            repair.held_since = None;
            return false;
        }
        repair.held_since.get_or_insert_with(Instant::now).elapsed() < fault_injection::HOLD_LIMIT
    }

    /// What the last audit found of partition `partition` of dataset `name`, on the leader.
    pub fn partition_health(&self, name: &str, partition: u32) -> Option<PartitionHealth> {
        lock(&self.repair).health.get(&(name.to_string(), partition)).cloned()
    }

    /// Partitions the last audit found short of their replicas.
    pub fn under_replicated(&self) -> usize {
        lock(&self.repair)
            .health
            .values()
            .filter(|h| h.short_because.is_some())
            .count()
    }

    /// One audit of every stored partition, and the copies it calls for.
    async fn repair_pass(self: &Arc<Self>) {
        let live = self.live_workers();
        let (datasets, addresses): (Vec<DatasetRecord>, HashMap<WorkerId, String>) = {
            let state = self.state();
            if state.datasets.is_empty() {
                lock(&self.repair).health.clear();
                return;
            }
            let addresses = state
                .workers
                .values()
                .filter(|w| live.contains(&w.id))
                .map(|w| (w.id.clone(), w.address.clone()))
                .collect();
            (state.datasets.values().cloned().collect(), addresses)
        };
        tracing::debug!("driver {}: auditing {} workers", self.id, addresses.len());
        let held = self.audit(&addresses).await;
        tracing::debug!("driver {}: {} workers answered the audit", self.id, held.len());
        let audit = Audit {
            live: &live,
            addresses: &addresses,
            held: &held,
            copies_held_back: self.repair_held(),
        };
        let mut health = HashMap::new();
        for record in datasets {
            for partition in 0..record.placement.len() as u32 {
                let found = self.repair_partition(&record, partition, &audit).await;
                health.insert((record.name.clone(), partition), found);
            }
        }
        lock(&self.repair).health = health;
    }

    /// A write's placement kept to the holders that confirm it: the workers whose disk lists
    /// the partition whole now. A partition no holder confirms makes the commit an error
    /// (nothing is acknowledged that is not on a disk); one with fewer than R confirmed
    /// holders is committed on those, and the repair loop copies it to more.
    pub(crate) async fn confirmed_placement(
        &self,
        name: &str,
        generation: &str,
        placement: Vec<Vec<WorkerId>>,
    ) -> Result<Vec<Vec<WorkerId>>, Unconfirmed> {
        let addresses: HashMap<WorkerId, String> = {
            let state = self.state();
            placement
                .iter()
                .flatten()
                .filter_map(|w| state.workers.get(w).map(|r| (w.clone(), r.address.clone())))
                .collect()
        };
        let held = self.audit(&addresses).await;
        placement
            .into_iter()
            .enumerate()
            .map(|(p, holders)| {
                let key = format!("{name}/{generation}/{p}");
                let confirmed: Vec<WorkerId> = holders
                    .into_iter()
                    .filter(|w| held.get(w).is_some_and(|parts| parts.contains(&key)))
                    .collect();
                if confirmed.is_empty() {
                    Err(Unconfirmed {
                        partition: p,
                        name: name.to_string(),
                        generation: generation.to_string(),
                    })
                } else {
                    Ok(confirmed)
                }
            })
            .collect()
    }

    /// The holders (worker addresses) of a job's stored partition that confirm it on their
    /// disk now, asked before the task's success is committed: a job's `ringleader://` output
    /// is acknowledged only where it is, as a `put`'s is.
    pub(crate) async fn confirmed_holders(
        &self,
        name: &str,
        generation: &str,
        partition: u32,
        holders: &[String],
    ) -> Vec<String> {
        if fault_injection::held(fault_injection::STORED_REPORT_HOLD) {
            tracing::info!("holding the report of partition {partition} of {name} (a test's hold)");
            let started = Instant::now();
            while fault_injection::held(fault_injection::STORED_REPORT_HOLD)
                && started.elapsed() < fault_injection::HOLD_LIMIT
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let addresses: HashMap<WorkerId, String> = {
            let state = self.state();
            state
                .workers
                .values()
                .filter(|w| holders.contains(&w.address))
                .map(|w| (w.id.clone(), w.address.clone()))
                .collect()
        };
        let held = self.audit(&addresses).await;
        let key = format!("{name}/{generation}/{partition}");
        let confirmed: HashSet<String> = addresses
            .into_iter()
            .filter(|(id, _)| held.get(id).is_some_and(|parts| parts.contains(&key)))
            .map(|(_, address)| address)
            .collect();
        holders.iter().filter(|h| confirmed.contains(*h)).cloned().collect()
    }

    /// Each live worker's stored partitions (`DATASET/GENERATION/PARTITION`); a worker that
    /// does not answer in time is left out (its copies count as unknown, not live).
    async fn audit(&self, addresses: &HashMap<WorkerId, String>) -> HashMap<WorkerId, HashSet<String>> {
        let asks = addresses.iter().map(|(id, address)| async move {
            let mut client = self.worker_client(address).ok()?;
            let listed = tokio::time::timeout(AUDIT_PATIENCE, client.list_partitions(proto::ListPartitionsRequest {}))
                .await
                .ok()?
                .ok()?;
            Some((id.clone(), listed.into_inner().partitions.into_iter().collect()))
        });
        futures::future::join_all(asks).await.into_iter().flatten().collect()
    }

    /// Audits one partition, copies it where it is short, and records its confirmed holders
    /// if they changed: what it found.
    async fn repair_partition(
        self: &Arc<Self>,
        record: &DatasetRecord,
        partition: u32,
        audit: &Audit<'_>,
    ) -> PartitionHealth {
        let (live, held) = (audit.live, audit.held);
        let key = format!("{}/{}/{partition}", record.name, record.generation);
        let listed = record.placement[partition as usize].clone();
        let holds = |w: &WorkerId| held.get(w).is_some_and(|parts| parts.contains(&key));
        // Listed holders confirmed by their own listing first, then copies nobody listed
        // (a copy whose record was lost); listed live workers that did not answer stay
        // listed, uncounted.
        let mut holders: Vec<WorkerId> = listed.iter().filter(|w| holds(w)).cloned().collect();
        let mut unlisted: Vec<&WorkerId> = held.keys().filter(|w| holds(w) && !holders.contains(w)).collect();
        unlisted.sort();
        holders.extend(unlisted.into_iter().cloned());
        let mut confirmed = holders.len() as u32;
        let mut short_because = None;
        if confirmed < record.replicas && audit.copies_held_back {
            short_because = Some(format!(
                "{confirmed} of {} replicas; copies held back ({} is set)",
                record.replicas,
                fault_injection::REPAIR_HOLD
            ));
        } else if confirmed < record.replicas {
            match self.copy_to_next_owner(record, partition, &holders, audit).await {
                Ok(target) => {
                    holders.push(target);
                    confirmed += 1;
                }
                Err(why) => short_because = Some(why.to_string()),
            }
            if confirmed < record.replicas && short_because.is_none() {
                short_because = Some(format!(
                    "{confirmed} of {} replicas; copying to another worker next",
                    record.replicas
                ));
            }
        }
        let unknown = listed
            .iter()
            .filter(|w| live.contains(*w) && !held.contains_key(*w) && !holders.contains(w))
            .cloned();
        let placement: Vec<WorkerId> = holders.iter().cloned().chain(unknown).collect();
        if placement != listed {
            let _ = self
                .write(Command::RepairDataset {
                    name: record.name.clone(),
                    generation: record.generation.clone(),
                    partition,
                    holders: placement,
                })
                .await;
        }
        PartitionHealth {
            live: confirmed,
            short_because,
        }
    }

    /// Copies a partition held by `holders` to the first live ring owner of it that lacks it
    /// and whose backoff allows a try now: that worker, or why none took a copy.
    async fn copy_to_next_owner(
        self: &Arc<Self>,
        record: &DatasetRecord,
        partition: u32,
        holders: &[WorkerId],
        audit: &Audit<'_>,
    ) -> Result<WorkerId, NoCopy> {
        let (live, addresses, held) = (audit.live, audit.addresses, audit.held);
        if holders.is_empty() {
            return Err(NoCopy::NoHolder);
        }
        let (held_by, replicas) = (holders.len(), record.replicas);
        let ring_order: Vec<WorkerId> = {
            let state = self.state();
            crate::placement::Placement::new(&state, self.placement, |w| live.contains(w) && held.contains_key(w))
                .order(&record.name, partition, |w| holders.contains(w))
        };
        let Some(target) = ring_order
            .iter()
            .find(|w| self.may_try(&record.name, partition, w))
            .cloned()
        else {
            let waiting = ring_order
                .first()
                .and_then(|w| self.backing_off(&record.name, partition, w).map(|b| (w, b)));
            return Err(match waiting {
                Some((w, backoff)) => NoCopy::BackingOff {
                    held_by,
                    replicas,
                    target: w.clone(),
                    why: backoff.why,
                    next_in_s: backoff.next.saturating_duration_since(Instant::now()).as_secs_f64(),
                },
                None => NoCopy::NoOtherWorker { held_by, replicas },
            });
        };
        let from: Vec<String> = holders.iter().filter_map(|h| addresses.get(h).cloned()).collect();
        let request = proto::CopyPartitionRequest {
            dataset: record.name.clone(),
            partition,
            from,
            generation: record.generation.clone(),
        };
        let address = addresses.get(&target).cloned().unwrap_or_default();
        let copied = match self.worker_client(&address) {
            Ok(mut worker) => match tokio::time::timeout(COPY_PATIENCE, worker.copy_partition(request)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(e.message().to_string()),
                Err(_) => Err(format!("no answer within {} s", COPY_PATIENCE.as_secs())),
            },
            Err(e) => Err(e.to_string()),
        };
        match copied {
            Ok(()) => {
                tracing::info!(
                    "driver {}: copied {} partition {partition} to {target}",
                    self.id,
                    record.name
                );
                lock(&self.repair)
                    .backoff
                    .remove(&(record.name.clone(), partition, target.clone()));
                Ok(target)
            }
            Err(why) => {
                let wait = self.backed_off(&record.name, partition, &target, &why);
                tracing::warn!(
                    "driver {}: copying {} partition {partition} to {target}: {why} (trying again in {:.1} s)",
                    self.id,
                    record.name,
                    wait.as_secs_f64()
                );
                Err(NoCopy::Failed {
                    held_by,
                    replicas,
                    target,
                    why,
                })
            }
        }
    }

    /// Whether a copy of the partition to `target` may be tried now.
    fn may_try(&self, name: &str, partition: u32, target: &WorkerId) -> bool {
        self.backing_off(name, partition, target).is_none()
    }

    /// The failed copy of the partition to `target` whose wait has not run out, if one has.
    fn backing_off(&self, name: &str, partition: u32, target: &WorkerId) -> Option<Backoff> {
        lock(&self.repair)
            .backoff
            .get(&(name.to_string(), partition, target.clone()))
            .filter(|b| Instant::now() < b.next)
            .cloned()
    }

    /// Notes a failed copy (`why`): the next try waits twice as long as the last (at most
    /// [`MAX_BACKOFF`]); the wait.
    fn backed_off(&self, name: &str, partition: u32, target: &WorkerId, why: &str) -> Duration {
        let mut repair = lock(&self.repair);
        let entry = repair
            .backoff
            .entry((name.to_string(), partition, target.clone()))
            .or_insert(Backoff {
                next: Instant::now(),
                wait: FIRST_BACKOFF / 2,
                why: String::new(),
            });
        let wait = (entry.wait * 2).min(MAX_BACKOFF);
        *entry = Backoff {
            next: Instant::now() + wait,
            wait,
            why: why.to_string(),
        };
        wait
    }
}
