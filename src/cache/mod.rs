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

pub(crate) mod registry;

use std::sync::Arc;

use ringleader_core::io::source::Split;
use ringleader_core::io::store::DatasetFormat;
use ringleader_core::plan::StageOutput;
use ringleader_core::plan::cache::CacheState;

pub(crate) use registry::{CacheSpec, Computed};

use crate::Result;
use crate::engine::Engine;
use crate::lineage::Lineage;

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
    let stored = engine.caches().stored();
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
        engine.caches().set_splits(id, splits);
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
                owner: engine.caches().owner(),
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
            let plan = crate::planner::plan(parent, crate::outputs::no_output(), &engine.caches().splits())?;
            crate::outputs::store_plan(engine, plan, &name, 1, true, spec.store, DatasetFormat::Arrow)?;
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
    engine.caches().insert(spec.id, computed);
    Ok(())
}
