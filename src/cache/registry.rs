//! A program's caches as the engine keeps them: which caches it computed, where each
//! partition is (a split to read, or to compute again), and releasing them. What fills a
//! cache is [`super`]'s.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use ringleader_core::io::source::Split;
use ringleader_core::plan::ActionFn;
use ringleader_core::plan::cache::StorageLevel;
use ringleader_core::plan::shipped::Shipped;
use ringleader_core::sync::lock;

use crate::Result;
use crate::cluster::Cluster;

/// The computed partitions of each cache, by id: a split to read, or `None` to compute
/// the partition again from lineage.
pub(crate) type CachedSplits = HashMap<u64, Vec<Option<Split>>>;

/// A program's caches.
pub(crate) struct Caches {
    /// This engine's number among the engines of the process (owner of its caches in
    /// `ringleader_core::plan::cache`).
    owner: u64,
    computed: Mutex<HashMap<u64, Computed>>,
}

/// Numbers caches and engines apart within the process.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Default for Caches {
    fn default() -> Caches {
        Caches {
            owner: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            computed: Mutex::default(),
        }
    }
}

/// A cache this program computed.
pub(crate) struct Computed {
    /// Each partition's split to read, or `None` to compute it again from lineage.
    pub(crate) splits: Vec<Option<Split>>,
    /// On a cluster: the stored dataset holding it.
    pub(crate) stored: Option<String>,
}

/// What a persisted node keeps: its id, storage level, and the actions that fill it
/// (embedded, and into a stored dataset on a cluster).
#[derive(Clone, Copy)]
pub(crate) struct CacheSpec {
    pub(crate) id: u64,
    pub(crate) level: StorageLevel,
    pub(crate) put: Shipped<ActionFn>,
    pub(crate) store: Shipped<ActionFn>,
}

impl Caches {
    /// A fresh id for a `persist` call.
    pub(crate) fn next_id(&self) -> u64 {
        NEXT_ID.fetch_add(1, Ordering::Relaxed)
    }

    /// Bytes this program's cached partitions hold in memory (embedded).
    pub(crate) fn memory_used(&self) -> u64 {
        ringleader_core::plan::cache::store().memory_used(self.owner)
    }

    /// The splits of every cache computed so far.
    pub(crate) fn splits(&self) -> CachedSplits {
        lock(&self.computed)
            .iter()
            .map(|(id, c)| (*id, c.splits.clone()))
            .collect()
    }

    /// This engine's number, the owner of its caches in `ringleader_core::plan::cache`.
    pub(crate) fn owner(&self) -> u64 {
        self.owner
    }

    /// Whether cache `id` is computed.
    pub(crate) fn has(&self, id: u64) -> bool {
        lock(&self.computed).contains_key(&id)
    }

    /// Records cache `id` as computed.
    pub(crate) fn insert(&self, id: u64, computed: Computed) {
        lock(&self.computed).insert(id, computed);
    }

    /// The caches held as stored datasets on the cluster: id and dataset name.
    pub(crate) fn stored(&self) -> Vec<(u64, String)> {
        lock(&self.computed)
            .iter()
            .filter_map(|(id, c)| Some((*id, c.stored.clone()?)))
            .collect()
    }

    /// Replaces the splits of cache `id` (its partitions' live holders changed).
    pub(crate) fn set_splits(&self, id: u64, splits: Vec<Option<Split>>) {
        if let Some(computed) = lock(&self.computed).get_mut(&id) {
            computed.splits = splits;
        }
    }

    /// Forgets cache `id`: its partitions are deleted (embedded), or its stored dataset is
    /// removed from `cluster`.
    pub(crate) fn release(&self, cluster: Option<&Cluster>, id: u64) -> Result<()> {
        let Some(computed) = lock(&self.computed).remove(&id) else {
            return Ok(());
        };
        match (computed.stored, cluster) {
            (Some(name), Some(cluster)) => cluster.remove_dataset(&name),
            _ => {
                ringleader_core::plan::cache::store().remove(id);
                Ok(())
            }
        }
    }

    /// Forgets every cache (the program ends).
    pub(crate) fn release_all(&self, cluster: Option<&Cluster>) {
        let ids: Vec<u64> = lock(&self.computed).keys().copied().collect();
        for id in ids {
            if let Err(e) = self.release(cluster, id) {
                eprintln!("warning: could not release cached dataset {id}: {e}");
            }
        }
    }
}
