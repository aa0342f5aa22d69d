//! Reading partitions of stored datasets (`ringleader://NAME`, `ringleader put`): each is
//! an Arrow IPC file on its ring owners (see [`crate::store`]). A task placed on an owner
//! reads it from disk; elsewhere it is streamed with Flight `do_get` from the first owner
//! that answers, a batch at a time as the task pulls it.

use futures::StreamExt;

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
        // The first replica that starts sending is read to the end, a batch at a time as
        // the task pulls it (never the whole partition in memory at once); one that fails
        // later fails the task (a fetch failure: it runs again).
        let opened = runtime.block_on(async {
            let mut stream = crate::store::get_partition(address, id).await?;
            let first = stream.next().await.transpose().map_err(|e| Error::FetchFailed {
                location: address.clone(),
                message: e.to_string(),
            })?;
            Ok::<_, Error>((stream, first))
        });
        match opened {
            Ok((mut stream, first)) => {
                let address = address.clone();
                let rest = std::iter::from_fn(move || {
                    runtime.block_on(stream.next()).map(|batch| {
                        batch.map_err(|e| Error::FetchFailed {
                            location: address.clone(),
                            message: e.to_string(),
                        })
                    })
                });
                return Ok(Box::new(
                    first.map(Ok).into_iter().chain(rest).map(|b| b.map(Chunk::Arrow)),
                ));
            }
            Err(e) => failures.push(format!("{address}: {e}")),
        }
    }
    Err(Error::Unreachable {
        what: format!("dataset {} partition {}", id.dataset, id.partition),
        message: format!("no replica of {} answered: {}", locations.len(), failures.join("; ")),
    })
}
