//! Partitions of stored datasets (`ringleader put`): each is an Arrow IPC file
//! `{datasets}/{name}/part-{p}.arrow` on its ring owners. A task placed on an owner reads
//! it from disk; elsewhere it is fetched with Flight `do_get` from the first owner that
//! answers.

use std::path::PathBuf;

use crate::data::{Chunk, ChunkStream};
use crate::error::{Error, Result};

/// The environment variable a worker sets for its executors: its datasets directory.
pub const DATASET_DIR_VAR: &str = "RINGLEADER_DATASET_DIR";

/// The file of partition `partition` of `dataset` under a worker's datasets directory.
pub fn partition_path(root: &std::path::Path, dataset: &str, partition: u32) -> PathBuf {
    root.join(dataset).join(format!("part-{partition}.arrow"))
}

/// The Flight ticket naming a stored partition.
pub fn ticket(dataset: &str, partition: u32) -> String {
    format!("dataset/{dataset}/{partition}")
}

/// Streams a stored partition.
pub fn open(dataset: &str, partition: u32, locations: &[String]) -> Result<ChunkStream> {
    if let Ok(root) = std::env::var(DATASET_DIR_VAR) {
        let path = partition_path(std::path::Path::new(&root), dataset, partition);
        if path.exists() {
            return super::ipc::open(&path, 0, usize::MAX, None);
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Cluster(format!("cannot start a runtime to fetch {dataset}: {e}")))?;
    let mut failures = Vec::new();
    for address in locations {
        match crate::cluster_shuffle::fetch_ticket(runtime.handle(), address, ticket(dataset, partition)) {
            Ok(stream) => {
                // Drain while the runtime lives, then hand the batches on.
                let batches = stream.collect::<Result<Vec<_>>>();
                match batches {
                    Ok(b) => return Ok(Box::new(b.into_iter().map(|b| Ok(Chunk::Arrow(b))))),
                    Err(e) => failures.push(e.to_string()),
                }
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
    Err(Error::FetchFailed {
        location: locations.join(","),
        message: format!(
            "no replica of dataset {dataset} partition {partition} answered: {}",
            failures.join("; ")
        ),
    })
}
