//! Cached datasets: `persist` marks a node of the lineage; before an action runs, each
//! cached node its lineage reaches that this program has not computed yet is computed once,
//! by a job of its own, and later plans read its partitions instead of its lineage.
//!
//! Embedded, the partitions stay in this process (`ringleader_core::plan::cache`: Arrow batches
//! in memory within half the memory budget, or Arrow files on disk). On a cluster they are
//! a stored dataset with one copy per partition, written by the workers that computed them
//! and read where they are; the program removes it at `unpersist` or when it ends.
//!
//! A partition not held (memory full under `StorageLevel::Memory`, or its only holder
//! lost) is computed again from lineage, alone, by the task that would have read it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use ringleader_core::io::source::Split;
use ringleader_core::io::store::DatasetFormat;
use ringleader_core::plan::cache::{CacheState, StorageLevel};
use ringleader_core::plan::shipped::Shipped;
use ringleader_core::plan::{ActionFn, StageOutput};
use ringleader_core::sync::lock;

use crate::Result;
use crate::engine::Engine;
use crate::lineage::Lineage;

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
struct Computed {
    splits: Vec<Option<Split>>,
    /// On a cluster: the stored dataset holding it.
    stored: Option<String>,
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

    /// Whether cache `id` is computed.
    fn has(&self, id: u64) -> bool {
        lock(&self.computed).contains_key(&id)
    }

    /// Forgets cache `id`: its partitions are deleted (embedded), or its stored dataset is
    /// removed (cluster).
    pub(crate) fn release(&self, engine: &Engine, id: u64) -> Result<()> {
        let Some(computed) = lock(&self.computed).remove(&id) else {
            return Ok(());
        };
        match (computed.stored, engine.cluster_client()) {
            (Some(name), Some(cluster)) => cluster.remove_dataset(&name),
            _ => {
                ringleader_core::plan::cache::store().remove(id);
                Ok(())
            }
        }
    }

    /// Forgets every cache (the program ends).
    pub(crate) fn release_all(&self, engine: &Engine) {
        let ids: Vec<u64> = lock(&self.computed).keys().copied().collect();
        for id in ids {
            if let Err(e) = self.release(engine, id) {
                eprintln!("warning: could not release cached dataset {id}: {e}");
            }
        }
    }
}

/// Before an action over `node`: finds which cached partitions on the cluster lost every
/// holder (they are computed again from lineage), then computes every cache `node` reaches
/// that is not computed yet.
pub(crate) fn prepare(engine: &Arc<Engine>, node: &Arc<Lineage>) -> Result<()> {
    refresh_stored(engine)?;
    materialize(engine, node)
}

/// Keeps only live holders in the splits of the program's caches on the cluster; a
/// partition with none is computed again from lineage by the task that would read it.
fn refresh_stored(engine: &Engine) -> Result<()> {
    let Some(cluster) = engine.cluster_client() else {
        return Ok(());
    };
    let stored: Vec<(u64, String)> = lock(&engine.caches().computed)
        .iter()
        .filter_map(|(id, c)| Some((*id, c.stored.clone()?)))
        .collect();
    if stored.is_empty() {
        return Ok(());
    }
    let live = cluster.live_addresses()?;
    for (id, name) in stored {
        let info = cluster.dataset(&name)?;
        let splits: Vec<Option<Split>> = info
            .partitions
            .into_iter()
            .map(|p| {
                let locations: Vec<String> = p.addresses.into_iter().filter(|a| live.contains(a)).collect();
                (!locations.is_empty()).then(|| Split::Stored {
                    dataset: info.name.clone(),
                    generation: info.generation.clone(),
                    partition: p.partition,
                    locations,
                    column: None,
                })
            })
            .collect();
        if let Some(computed) = lock(&engine.caches().computed).get_mut(&id) {
            computed.splits = splits;
        }
    }
    Ok(())
}

/// Computes every cache `node` reaches that is not computed yet, innermost first.
fn materialize(engine: &Arc<Engine>, node: &Arc<Lineage>) -> Result<()> {
    for parent in node.parents() {
        materialize(engine, parent)?;
    }
    let Lineage::Cached { parent, spec } = node.as_ref() else {
        return Ok(());
    };
    if engine.caches().has(spec.id) {
        return Ok(());
    }
    let computed = match engine.cluster_client() {
        None => {
            let config = engine.config();
            // Cached partitions may take half the memory budget; jobs get what they leave.
            let state = postcard::to_stdvec(&CacheState {
                id: spec.id,
                level: spec.level,
                owner: engine.caches().owner,
                budget: config.memory_limit as u64 / 2,
                dir: config.spill_dir.clone().unwrap_or_else(std::env::temp_dir),
            })?;
            let plan = crate::planner::plan(
                parent,
                StageOutput::Action { f: spec.put, state },
                &engine.caches().splits(),
            )?;
            let partitions = engine.execute(&plan)?.len() as u32;
            let store = ringleader_core::plan::cache::store();
            Computed {
                splits: (0..partitions)
                    .map(|p| {
                        store.holds(spec.id, p).then_some(Split::Cached {
                            cache: spec.id,
                            partition: p,
                        })
                    })
                    .collect(),
                stored: None,
            }
        }
        Some(cluster) => {
            let name = ringleader_core::io::store::cache_dataset(engine.session(), spec.id);
            let plan = crate::planner::plan(parent, crate::dataset::no_output(), &engine.caches().splits())?;
            crate::dataset::store_plan(engine, plan, &name, 1, true, spec.store, DatasetFormat::Arrow)?;
            let info = cluster.dataset(&name)?;
            Computed {
                splits: info
                    .partitions
                    .into_iter()
                    .map(|p| {
                        Some(Split::Stored {
                            dataset: info.name.clone(),
                            generation: info.generation.clone(),
                            partition: p.partition,
                            locations: p.addresses,
                            column: None,
                        })
                    })
                    .collect(),
                stored: Some(name),
            }
        }
    };
    lock(&engine.caches().computed).insert(spec.id, computed);
    Ok(())
}
