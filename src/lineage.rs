//! The lazy plan a job builds: a DAG of nodes, each holding shipped functions. Nothing
//! runs until an action hands the DAG to the planner.

use std::sync::Arc;

use ringleader_core::plan::{ActionFn, ReduceFn, SinkFn, Step};
use ringleader_core::shipped::Shipped;
use ringleader_core::source::Split;

use crate::cache::CacheSpec;

/// One node of a job's DAG.
pub(crate) enum Lineage {
    /// Stored input, already cut into splits.
    Source { splits: Vec<Split> },
    /// A narrow step over the parent's partitions; an `indexed` step's state starts with
    /// its partition's index (see `ringleader_core::ops::narrow::with_index`).
    Narrow {
        parent: Arc<Lineage>,
        step: Step,
        indexed: bool,
    },
    /// The parent's partitions merged, consecutive ones together, into at most
    /// `partitions` (no shuffle: source splits read one after the other).
    Coalesce { parent: Arc<Lineage>, partitions: u32 },
    /// The partitions of several parents, one after the other.
    Union { parents: Vec<Arc<Lineage>> },
    /// A hash shuffle: each side's rows go through its sink; the reduce merges the sides.
    Shuffle {
        sides: Vec<ShuffleSide>,
        reduce: Shipped<ReduceFn>,
        partitions: u32,
    },
    /// A plan that could not be built (e.g. unserialisable `map_with` state); running it
    /// reports the message. Transformations stay infallible, as in Spark.
    Invalid { message: String },
    /// A cached dataset (`persist`): read from its computed partitions once the program
    /// has them (see `crate::cache`), from `parent` until then and for any partition lost.
    Cached { parent: Arc<Lineage>, spec: CacheSpec },
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

impl Lineage {
    /// The nodes this one reads.
    pub(crate) fn parents(&self) -> Vec<&Arc<Lineage>> {
        match self {
            Lineage::Source { .. } | Lineage::Invalid { .. } => Vec::new(),
            Lineage::Narrow { parent, .. }
            | Lineage::Coalesce { parent, .. }
            | Lineage::Cached { parent, .. }
            | Lineage::Sort { parent, .. } => vec![parent],
            Lineage::Union { parents } => parents.iter().collect(),
            Lineage::Shuffle { sides, .. } => sides.iter().map(|s| &s.parent).collect(),
        }
    }
}

/// One input of a shuffle: the node whose rows it takes, the sink partitioning them and the
/// sink's serialised state.
#[derive(Clone)]
pub(crate) struct ShuffleSide {
    pub(crate) parent: Arc<Lineage>,
    pub(crate) sink: Shipped<SinkFn>,
    pub(crate) state: Vec<u8>,
}

impl ShuffleSide {
    /// A side whose sink needs no state.
    pub(crate) fn new(parent: Arc<Lineage>, sink: Shipped<SinkFn>) -> ShuffleSide {
        ShuffleSide {
            parent,
            sink,
            state: Vec::new(),
        }
    }
}
