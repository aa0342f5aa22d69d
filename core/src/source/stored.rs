//! Reading partitions of stored datasets (`ringleader://NAME`, `ringleader put`): each is
//! an Arrow IPC file on its ring owners (see [`crate::store`]). A task placed on an owner
//! reads it from disk; elsewhere it is streamed with Flight `do_get` from the first owner
//! that answers.

use crate::data::{Chunk, ChunkStream};
use crate::error::{Error, Result};
use crate::store::{DATASET_DIR_VAR, PartitionId};

/// Streams a stored partition, only `column` of it if given. `locations` are the
/// addresses of the workers holding it, primary first.
pub fn open(id: &PartitionId, locations: &[String], column: Option<&str>) -> Result<ChunkStream> {
    let chunks = read(id, locations)?;
    let Some(column) = column else {
        return Ok(chunks);
    };
    let (column, dataset) = (column.to_string(), id.dataset.clone());
    Ok(Box::new(chunks.map(move |chunk| match chunk? {
        Chunk::Arrow(batch) => {
            let schema = batch.schema();
            let index = schema.index_of(&column).map_err(|_| {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                Error::Config(format!(
                    "{}{dataset} has no column {column:?} (columns: {})",
                    crate::store::URL_SCHEME,
                    names.join(", ")
                ))
            })?;
            Ok(Chunk::Arrow(batch.project(&[index])?))
        }
        other => Ok(other),
    })))
}

fn read(id: &PartitionId, locations: &[String]) -> Result<ChunkStream> {
    if let Ok(root) = std::env::var(DATASET_DIR_VAR) {
        let path = id.path(std::path::Path::new(&root));
        if path.exists() {
            return super::ipc::open(&path, 0, usize::MAX, None);
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Cluster(format!("cannot start a runtime to fetch {}: {e}", id.dataset)))?;
    let mut failures = Vec::new();
    for address in locations {
        let fetched = runtime.block_on(async {
            use futures::TryStreamExt;
            crate::store::get_partition(address, id)
                .await?
                .try_collect::<Vec<_>>()
                .await
                .map_err(|e| Error::FetchFailed {
                    location: address.clone(),
                    message: e.to_string(),
                })
        });
        match fetched {
            // The whole partition is read while the runtime lives, then handed on.
            Ok(batches) => return Ok(Box::new(batches.into_iter().map(|b| Ok(Chunk::Arrow(b))))),
            Err(e) => failures.push(format!("{address}: {e}")),
        }
    }
    Err(Error::Unreachable {
        what: format!("dataset {} partition {}", id.dataset, id.partition),
        message: format!("no replica of {} answered: {}", locations.len(), failures.join("; ")),
    })
}
