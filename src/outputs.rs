//! Where a job's rows go, as the engine sees it: the final stage's output that collects
//! rows or counts them, and a plan whose final stage writes a stored dataset on the cluster
//! (placed by the driver first, committed with the job's success).

use ringleader_core::data::Data;
use ringleader_core::io::store::{DatasetFormat, StoreSpec};
use ringleader_core::ops::action;
use ringleader_core::plan::shipped::Shipped;
use ringleader_core::plan::{ActionFn, StageOutput, TaskValue};
use ringleader_core::ship;

use crate::Result;
use crate::engine::Engine;

/// A placeholder for the final stage's output, set by [`store_plan`].
pub(crate) fn no_output() -> StageOutput {
    StageOutput::Action {
        f: ship!(action::count as ActionFn),
        state: Vec::new(),
    }
}

/// Runs `plan` on the cluster, its final stage writing the stored dataset `name` with
/// `to_store` (`replicas` copies of each partition, placed by the driver first; replacing
/// an existing dataset of that name only with `overwrite`).
pub(crate) fn store_plan(
    engine: &Engine,
    mut plan: ringleader_core::plan::JobPlan,
    name: &str,
    replicas: u32,
    overwrite: bool,
    to_store: Shipped<ActionFn>,
    format: DatasetFormat,
) -> Result<Vec<TaskValue>> {
    let Some(cluster) = engine.cluster_client() else {
        return Err(crate::Error::Config(format!(
            "{}{name}: stored datasets live on a cluster; set RINGLEADER_MASTER, or write to a local directory",
            ringleader_core::io::store::URL_SCHEME
        )));
    };
    let partitions = plan.stages.last().map_or(0, |s| s.tasks.len()) as u32;
    let info = cluster.place(name, partitions, replicas, overwrite)?;
    let spec = StoreSpec {
        dataset: name.to_string(),
        generation: info.generation,
        format,
        replicas,
        overwrite,
        owners: info.partitions.into_iter().map(|p| p.addresses).collect(),
    };
    if let Some(last) = plan.stages.last_mut() {
        last.output = StageOutput::Action {
            f: to_store,
            state: postcard::to_stdvec(&action::StoreState { spec: spec.clone() })?,
        };
    }
    plan.store = Some(spec);
    engine.execute(&plan)
}

/// The final stage's output of `collect`: every row, back to the client.
pub(crate) fn collect_output<T: Data>() -> StageOutput {
    StageOutput::Action {
        f: ship!(action::collect::<T> as ActionFn),
        state: Vec::new(),
    }
}
