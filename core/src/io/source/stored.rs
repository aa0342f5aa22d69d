//! Reading partitions of stored datasets (`ringleader://NAME`, `ringleader put`): each is
//! an Arrow IPC file on its ring owners (see [`crate::io::store`]). A task placed on an owner
//! reads it from disk; elsewhere it is streamed with Flight `do_get` from the first owner
//! that answers, a few batches ahead of the task, on a thread of its own.

use futures::StreamExt;

use crate::data::{Chunk, ChunkStream};
use crate::error::{Error, Result};
use crate::net::executor_env::DATASET_DIR;
use crate::net::ticket::PartitionId;

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
                    crate::io::store::URL_SCHEME,
                    names.join(", ")
                ))
            })?;
            Ok(Chunk::Arrow(batch.project(&[index])?))
        }
        other => Ok(other),
    })))
}

fn read(id: &PartitionId, locations: &[String]) -> Result<ChunkStream> {
    if let Ok(root) = std::env::var(DATASET_DIR) {
        let path = id.path(std::path::Path::new(&root));
        if path.exists() {
            return super::ipc::open(&path, 0, usize::MAX, None);
        }
    }
    // Its own thread drives the connection, so it answers the server's keep-alive pings
    // however slowly the task pulls batches.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| Error::Cluster(format!("cannot start a runtime to fetch {}: {e}", id.dataset)))?;
    let mut failures = Vec::new();
    for address in locations {
        // The first replica that starts sending is read to the end, at most READ_AHEAD
        // batches ahead of the task (never the whole partition in memory at once); one that
        // fails later fails the task (a fetch failure: it runs again).
        let opened = runtime.block_on(async {
            let mut stream = crate::io::store::get_partition(address, id).await?;
            let first = stream.next().await.transpose().map_err(|e| Error::FetchFailed {
                location: address.clone(),
                message: e.to_string(),
            })?;
            Ok::<_, Error>((stream, first))
        });
        match opened {
            Ok((mut stream, first)) => {
                let (tx, rx) = tokio::sync::mpsc::channel(crate::io::store::READ_AHEAD);
                let location = address.clone();
                runtime.spawn(async move {
                    while let Some(batch) = stream.next().await {
                        let batch = batch.map_err(|e| Error::FetchFailed {
                            location: location.clone(),
                            message: e.to_string(),
                        });
                        let failed = batch.is_err();
                        if tx.send(batch).await.is_err() || failed {
                            break;
                        }
                    }
                });
                let rest = Pumped {
                    runtime: Some(runtime),
                    rx,
                };
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

/// Batches a runtime of their own fetches ahead; the runtime stops when they are dropped.
struct Pumped {
    runtime: Option<tokio::runtime::Runtime>,
    rx: tokio::sync::mpsc::Receiver<Result<arrow_array::RecordBatch>>,
}

impl Iterator for Pumped {
    type Item = Result<arrow_array::RecordBatch>;
    fn next(&mut self) -> Option<Self::Item> {
        self.rx.blocking_recv()
    }
}

impl Drop for Pumped {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
