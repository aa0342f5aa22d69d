//! The lazy plan a job builds: a DAG of nodes, each holding shipped functions. Nothing
//! runs until an action hands the DAG to the planner.

use std::sync::Arc;

use ringleader_core::io::source::Split;
use ringleader_core::plan::shipped::Shipped;
use ringleader_core::plan::{ActionFn, ReduceFn, SinkFn, Step};

use crate::cache::registry::CacheSpec;

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
    /// `partitions` (no shuffle: source splits read one after the other). Where the
    /// parent's tasks cannot merge when the plan is made (a union of differently computed
    /// parts, a cache with partitions to compute again), `fallback` is planned instead.
    Coalesce {
        parent: Arc<Lineage>,
        partitions: u32,
        fallback: Option<Arc<Lineage>>,
    },
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
    /// The parent, unchanged, with a note for [`crate::Dataset::explain`] (what the API
    /// chose, such as a broadcast join).
    Described { parent: Arc<Lineage>, what: String },
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
            | Lineage::Described { parent, .. }
            | Lineage::Sort { parent, .. } => vec![parent],
            Lineage::Union { parents } => parents.iter().collect(),
            Lineage::Shuffle { sides, .. } => sides.iter().map(|s| &s.parent).collect(),
        }
    }
}

impl Lineage {
    /// About how many bytes this node's rows take, where the inputs say: their sizes,
    /// through narrow steps unchanged; `None` past a shuffle or for stored inputs.
    pub(crate) fn estimated_bytes(&self) -> Option<u64> {
        match self {
            Lineage::Source { splits } => splits_bytes(splits),
            Lineage::Union { parents } => parents.iter().map(|p| p.estimated_bytes()).sum(),
            Lineage::Narrow { parent, .. }
            | Lineage::Coalesce { parent, .. }
            | Lineage::Cached { parent, .. }
            | Lineage::Described { parent, .. } => parent.estimated_bytes(),
            Lineage::Shuffle { .. } | Lineage::Sort { .. } | Lineage::Invalid { .. } => None,
        }
    }

    /// One line per node, indented by depth: what the planner will make of this lineage.
    pub(crate) fn explain(&self, depth: usize, out: &mut String) {
        let line = match self {
            Lineage::Source { splits } => format!(
                "source: {} splits{}",
                splits.len(),
                self.estimated_bytes()
                    .map(|b| format!(", about {b} bytes"))
                    .unwrap_or_default()
            ),
            Lineage::Narrow { .. } => "narrow step".to_string(),
            Lineage::Coalesce {
                partitions, fallback, ..
            } => format!(
                "coalesce into {partitions} partitions{}",
                if fallback.is_some() {
                    " (a shuffle where they cannot merge)"
                } else {
                    ""
                }
            ),
            Lineage::Union { parents } => format!("union of {}", parents.len()),
            Lineage::Shuffle { sides, partitions, .. } => {
                format!("shuffle of {} side(s) into {partitions} partitions", sides.len())
            }
            Lineage::Invalid { message } => format!("invalid: {message}"),
            Lineage::Cached { spec, .. } => format!("cached ({:?}, cache {})", spec.level, spec.id),
            Lineage::Described { what, .. } => what.clone(),
            Lineage::Sort { partitions, .. } => format!("sort into {partitions} partitions"),
        };
        out.push_str(&format!("{}{line}\n", "  ".repeat(depth)));
        for parent in self.parents() {
            parent.explain(depth + 1, out);
        }
    }
}

/// About how many bytes the rows of `splits` take (their files' bytes; a file read by
/// several splits counted once), if known.
fn splits_bytes(splits: &[Split]) -> Option<u64> {
    let mut whole_files = std::collections::BTreeSet::new();
    let mut total = 0u64;
    for split in splits {
        match split {
            Split::Text { start, end, .. } | Split::Records { start, end, .. } => total += end - start,
            Split::Csv { piece, .. } => total += piece.end - piece.start,
            Split::Ipc { path, .. } | Split::Parquet { path, .. } => {
                if whole_files.insert(path.clone()) {
                    total += std::fs::metadata(path).ok()?.len();
                }
            }
            Split::Inline { ipc } => total += ipc.len() as u64,
            Split::Concat { splits } => total += splits_bytes(splits)?,
            Split::Stored { .. } | Split::Cached { .. } => return None,
        }
    }
    Some(total)
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
