//! The lazy plan a job builds: a DAG of nodes, each holding shipped functions. Nothing
//! runs until an action hands the DAG to the planner.

use std::sync::Arc;

use ringleader_core::Result;
use ringleader_core::plan::{ActionFn, ReduceFn, SinkFn, Step};
use ringleader_core::shipped::Shipped;
use ringleader_core::source::Split;

/// Computes range bounds from serialised key samples (runs in the job's own process).
pub(crate) type BoundsFn = fn(&[Vec<u8>], u32) -> Result<Vec<u8>>;

/// One node of a job's DAG.
pub(crate) enum Node {
    /// Stored input, already cut into splits.
    Source { splits: Vec<Split> },
    /// A narrow step over the parent's partitions.
    Narrow { parent: Arc<Node>, step: Step },
    /// The partitions of several parents, one after the other.
    Union { parents: Vec<Arc<Node>> },
    /// A hash shuffle: each side's rows go through its sink; the reduce merges the sides.
    Shuffle {
        sides: Vec<(Arc<Node>, Shipped<SinkFn>)>,
        reduce: Shipped<ReduceFn>,
        partitions: u32,
    },
    /// A plan that could not be built (e.g. unserialisable `map_with` state); running it
    /// reports the message. Transformations stay infallible, as in Spark.
    Invalid { message: String },
    /// A sampled range shuffle (`sort_by_key`): bounds come from a sampling job.
    Sort {
        parent: Arc<Node>,
        sample: Shipped<ActionFn>,
        bounds: BoundsFn,
        sink: Shipped<SinkFn>,
        reduce: Shipped<ReduceFn>,
        partitions: u32,
    },
}
