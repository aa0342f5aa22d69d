//! The lazy plan a job builds: a DAG of nodes, each holding shipped functions. Nothing
//! runs until an action hands the DAG to the planner.

use std::sync::Arc;

use ringleader_core::plan::{ActionFn, ReduceFn, SinkFn, Step};
use ringleader_core::shipped::Shipped;
use ringleader_core::source::Split;

/// One node of a job's DAG.
pub(crate) enum Lineage {
    /// Stored input, already cut into splits.
    Source { splits: Vec<Split> },
    /// A narrow step over the parent's partitions.
    Narrow { parent: Arc<Lineage>, step: Step },
    /// The partitions of several parents, one after the other.
    Union { parents: Vec<Arc<Lineage>> },
    /// A hash shuffle: each side's rows go through its sink; the reduce merges the sides.
    Shuffle {
        sides: Vec<(Arc<Lineage>, Shipped<SinkFn>)>,
        reduce: Shipped<ReduceFn>,
        partitions: u32,
    },
    /// A plan that could not be built (e.g. unserialisable `map_with` state); running it
    /// reports the message. Transformations stay infallible, as in Spark.
    Invalid { message: String },
    /// A sampled range shuffle (`sort_by_key`): a stage of the same job samples the keys;
    /// each map task chooses the range bounds from the samples.
    Sort {
        parent: Arc<Lineage>,
        sample: Shipped<ActionFn>,
        sink: Shipped<SinkFn>,
        reduce: Shipped<ReduceFn>,
        partitions: u32,
    },
}
