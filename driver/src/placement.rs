//! Where a stored dataset's partitions go: the workers a new write places each partition
//! on, and the order in which the repair loop tries workers for a copy it lacks. Beside
//! the [`crate::scheduler`], which says where tasks run; both read the state and decide
//! nothing else.
//!
//! The policy is the driver's `--placement` (give every driver of a group the same one: the
//! leader's decides):
//! - `ring` (the default): consistent hashing on the ring of live workers, weighted by
//!   slots. A partition's owners depend on its name and the workers alone, so a worker
//!   joining or leaving moves only the partitions it owns.
//! - `balanced`: the live workers holding the fewest stored partitions first (ring order
//!   breaks ties), counting the committed datasets' and those this write places (not other
//!   writes still in flight): a new worker's empty disk fills first, instead of waiting for
//!   the ring to send it new names.

use std::collections::BTreeMap;

use ringleader_core::ids::WorkerId;

use crate::state::ClusterState;

/// How new partitions and repair copies pick their workers (see the module's doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum PlacementPolicy {
    /// Consistent hashing on the ring of live workers, weighted by slots.
    #[default]
    Ring,
    /// The live workers holding the fewest stored partitions first.
    Balanced,
}

/// Placement over the workers `eligible` accepts, as `policy` says.
pub struct Placement {
    policy: PlacementPolicy,
    /// The eligible workers, weighted by slots.
    ring: ringleader_core::net::ring::Ring<WorkerId>,
    /// Stored partitions per eligible worker (committed datasets, and what this placement
    /// placed so far).
    held: BTreeMap<WorkerId, u64>,
}

impl Placement {
    /// Placement over the workers of `state` that `eligible` accepts.
    pub fn new(state: &ClusterState, policy: PlacementPolicy, eligible: impl Fn(&WorkerId) -> bool) -> Placement {
        let ring = state.ring(|w| eligible(&WorkerId::from(w)));
        let mut held: BTreeMap<WorkerId, u64> = ring.nodes().map(|w| (w.clone(), 0)).collect();
        // Only `balanced` reads the counts (the repair loop makes a placement per partition).
        if policy == PlacementPolicy::Balanced {
            for holder in state.datasets.values().flat_map(|d| d.placement.iter().flatten()) {
                if let Some(n) = held.get_mut(holder) {
                    *n += 1;
                }
            }
        }
        Placement { policy, ring, held }
    }

    /// How many workers placement chooses from.
    pub fn workers(&self) -> usize {
        self.held.len()
    }

    /// Every eligible worker for `partition` of `dataset`, best first, those `skip`
    /// accepts left out.
    pub fn order(&self, dataset: &str, partition: u32, skip: impl Fn(&WorkerId) -> bool) -> Vec<WorkerId> {
        let by_ring: Vec<WorkerId> = self
            .ring
            .partition_owners(dataset, partition, self.ring.len())
            .into_iter()
            .filter(|w| !skip(w))
            .cloned()
            .collect();
        match self.policy {
            PlacementPolicy::Ring => by_ring,
            PlacementPolicy::Balanced => {
                let mut by_load = by_ring;
                // A stable sort: equal loads keep their ring order.
                by_load.sort_by_key(|w| self.held.get(w).copied().unwrap_or(0));
                by_load
            }
        }
    }

    /// The workers a new write places `partition` of `dataset` on, best first: `replicas`
    /// owners (noted as holding it, for the partitions placed after it), then `spare` more
    /// for the writer to fall back on.
    pub fn owners(&mut self, dataset: &str, partition: u32, replicas: usize, spare: usize) -> Vec<WorkerId> {
        let owners: Vec<WorkerId> = self
            .order(dataset, partition, |_| false)
            .into_iter()
            .take(replicas + spare)
            .collect();
        for w in owners.iter().take(replicas) {
            *self.held.entry(w.clone()).or_default() += 1;
        }
        owners
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Command, DatasetRecord};

    /// A state of `workers` workers of 2 slots, `worker-1` holding `stored` partitions of a
    /// dataset.
    fn state(workers: u32, stored: usize) -> ClusterState {
        let mut state = ClusterState::default();
        for i in 1..=workers {
            state.apply(Command::RegisterWorker {
                address: format!("127.0.0.1:{}", 7000 + i),
                slots: 2,
                pid: i,
                shuffle_dir: String::new(),
                machine: String::new(),
                incarnation: String::new(),
            });
        }
        state.datasets.insert(
            "old".into(),
            DatasetRecord {
                name: "old".into(),
                generation: "g".into(),
                format: ringleader_core::io::store::DatasetFormat::Text,
                replicas: 1,
                placement: vec![vec![WorkerId::from("worker-1")]; stored],
                rows: vec![0; stored],
                bytes: vec![0; stored],
            },
        );
        state
    }

    #[test]
    fn the_ring_places_by_name_alone_and_skips_what_it_is_told_to() {
        let state = state(4, 10);
        let mut ring = Placement::new(&state, PlacementPolicy::Ring, |_| true);
        let first = ring.owners("data", 3, 2, 0);
        assert_eq!(first.len(), 2);
        assert_ne!(first[0], first[1], "two replicas on one worker");
        // The same name and partition: the same owners, whatever was placed meanwhile.
        assert_eq!(ring.owners("data", 3, 2, 0), first);
        let rest = ring.order("data", 3, |w| *w == first[0]);
        assert_eq!(rest.len(), 3);
        assert_eq!(rest[0], first[1], "the ring's order, less the skipped worker");
        let only_two = Placement::new(&state, PlacementPolicy::Ring, |w| w.as_str() != "worker-4");
        assert_eq!(only_two.workers(), 3);
        assert!(
            only_two
                .order("data", 3, |_| false)
                .iter()
                .all(|w| w.as_str() != "worker-4")
        );
    }

    #[test]
    fn balanced_placement_fills_the_emptiest_workers_first() {
        let state = state(3, 6);
        let mut balanced = Placement::new(&state, PlacementPolicy::Balanced, |_| true);
        let mut placed: BTreeMap<String, u32> = BTreeMap::new();
        for p in 0..6 {
            // One replica and two spares: only the replica counts as held.
            for w in balanced.owners("data", p, 1, 2).into_iter().take(1) {
                *placed.entry(w.to_string()).or_default() += 1;
            }
        }
        // worker-1 holds 6 already: the 6 new partitions go to the other two, 3 each.
        assert_eq!(placed.get("worker-1"), None, "{placed:?}");
        assert_eq!(placed.get("worker-2"), Some(&3), "{placed:?}");
        assert_eq!(placed.get("worker-3"), Some(&3), "{placed:?}");
        // Three replicas of the next: worker-1, which holds the most, last.
        let next = balanced.owners("data", 6, 3, 0);
        assert_eq!(next.len(), 3);
        assert_eq!(next[2], "worker-1", "{next:?}");
    }
}
