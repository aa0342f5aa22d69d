//! Serving shuffle blocks and stored dataset partitions with Arrow Flight, from the worker
//! daemon rather than the executor, so they outlive the process that wrote them. `do_get`
//! streams a file batch by batch and `do_put` writes as it receives: neither holds a
//! whole partition in memory.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow::record_batch::RecordBatch;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo, HandshakeRequest, HandshakeResponse,
    PollInfo, PutResult, SchemaResult, Ticket,
};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use ringleader_core::fault_injection::ShuffleServing;
use ringleader_core::io::store::READ_AHEAD;
use ringleader_core::net::ticket::FlightTicket;
use ringleader_core::net::ticket::PartitionId;
use ringleader_core::shuffle::cluster::ShuffleFiles;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::service::WorkerInner;

/// The Flight service of a worker: `do_get` of shuffle blocks and stored dataset
/// partitions, `do_put` of dataset partitions.
pub struct ShuffleFlight {
    files: ShuffleFiles,
    datasets: PathBuf,
    inner: Arc<WorkerInner>,
    /// How shuffle blocks are served (a test's fault, see
    /// [`ringleader_core::fault_injection`]).
    serving: ShuffleServing,
}

impl ShuffleFlight {
    /// Serves the shuffle blocks and datasets of the worker `inner`, counting the bytes.
    pub fn new(inner: Arc<WorkerInner>) -> Self {
        ShuffleFlight {
            files: ShuffleFiles::new(inner.shuffle_dir()),
            datasets: inner.dataset_dir(),
            inner,
            serving: ShuffleServing::from_env(),
        }
    }
}

/// A `do_get` stream being served, counted in the worker's open streams until it is dropped
/// (sent to its end, failed, or abandoned by its reader); a stopping worker waits for it.
struct OpenStream {
    inner: Arc<WorkerInner>,
    /// Counts the stream in [`WorkerInner::streams`] until dropped.
    _tracked: tokio_util::task::task_tracker::TaskTrackerToken,
}

impl OpenStream {
    fn new(inner: Arc<WorkerInner>) -> OpenStream {
        inner.counters.streams_open.fetch_add(1, Ordering::Relaxed);
        let _tracked = inner.streams.token();
        OpenStream { inner, _tracked }
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.inner.counters.streams_open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Runs a blocking batch reader on its own thread and streams what it yields, at most
/// [`READ_AHEAD`] batches ahead of the consumer.
fn stream_blocking<I>(
    open: impl FnOnce() -> Result<I, Status> + Send + 'static,
) -> BoxStream<'static, Result<RecordBatch, Status>>
where
    I: Iterator<Item = Result<RecordBatch, Status>>,
{
    let (tx, rx) = tokio::sync::mpsc::channel(READ_AHEAD);
    tokio::task::spawn_blocking(move || {
        let batches = match open() {
            Ok(batches) => batches,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        for batch in batches {
            // The reader went away: stop reading.
            if tx.blocking_send(batch).is_err() {
                return;
            }
        }
    });
    ReceiverStream::new(rx).boxed()
}

fn unsupported<T>() -> Result<T, Status> {
    Err(Status::unimplemented(
        "a Ringleader worker serves do_get (shuffle blocks, dataset partitions) and do_put (dataset partitions) only",
    ))
}

#[tonic::async_trait]
impl FlightService for ShuffleFlight {
    type HandshakeStream = BoxStream<'static, Result<HandshakeResponse, Status>>;
    type ListFlightsStream = BoxStream<'static, Result<FlightInfo, Status>>;
    type DoGetStream = BoxStream<'static, Result<FlightData, Status>>;
    type DoPutStream = BoxStream<'static, Result<PutResult, Status>>;
    type DoActionStream = BoxStream<'static, Result<arrow_flight::Result, Status>>;
    type ListActionsStream = BoxStream<'static, Result<ActionType, Status>>;
    type DoExchangeStream = BoxStream<'static, Result<FlightData, Status>>;

    async fn do_get(&self, request: Request<Ticket>) -> Result<Response<Self::DoGetStream>, Status> {
        let caller = ringleader_core::security::auth::Caller::of(&request);
        let ticket = request.into_inner().ticket;
        // Stored datasets are the cluster's shared storage (any job reads its inputs);
        // shuffle blocks are read only by their own job.
        let mut schema = None;
        let ticket = FlightTicket::parse(&ticket).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let batches = match ticket {
            FlightTicket::Result(id) => {
                caller.may_act_for(&id.job)?;
                let files = self.files.clone();
                stream_blocking(move || {
                    let batches = ringleader_core::io::results::read_held(&files, &id)
                        .map_err(|e| Status::not_found(e.to_string()))?;
                    Ok(batches.map(|b| b.map_err(|e| Status::internal(e.to_string()))))
                })
            }
            FlightTicket::Partition(id) => {
                let path = id.path(&self.datasets);
                // Sent first even when the partition has no rows: its copy needs it (an empty
                // partition's copy failed for want of a schema, and repair never finished).
                let read = path.clone();
                schema = tokio::task::spawn_blocking(move || {
                    ringleader_core::io::store::read_ipc_file(&read)
                        .ok()
                        .map(|(schema, _)| schema)
                })
                .await
                .ok()
                .flatten();
                stream_blocking(move || {
                    if !path.exists() {
                        return Err(Status::not_found(format!(
                            "dataset {} partition {} is not on this worker",
                            id.dataset, id.partition
                        )));
                    }
                    let (_, batches) = ringleader_core::io::store::read_ipc_file(&path)
                        .map_err(|e| Status::internal(e.to_string()))?;
                    Ok(batches.map(|b| b.map_err(|e| Status::internal(e.to_string()))))
                })
            }
            FlightTicket::Block(block) => {
                caller.may_act_for(&block.job)?;
                let files = self.files.clone();
                let batches = stream_blocking(move || {
                    let batches = files.read_block(&block).map_err(|e| Status::not_found(e.to_string()))?;
                    Ok(batches.map(|b| b.map_err(|e| Status::internal(e.to_string()))))
                });
                match self.serving {
                    ShuffleServing::Normal => batches,
                    ShuffleServing::Slow(pause) => batches
                        .then(move |batch| async move {
                            tokio::time::sleep(pause).await;
                            batch
                        })
                        .boxed(),
                }
            }
        };
        let inner = self.inner.clone();
        let open = OpenStream::new(self.inner.clone());
        let counted = batches.inspect_ok(move |batch| {
            let _open = &open;
            let bytes = ringleader_core::data::batch_bytes(batch);
            inner.counters.served.fetch_add(bytes, Ordering::Relaxed);
        });
        let mut encoder = FlightDataEncoderBuilder::new();
        if let Some(schema) = schema {
            encoder = encoder.with_schema(schema);
        }
        let stream = encoder
            .build(counted.map_err(FlightError::from))
            // A reader's own status (not found, ...) keeps its code.
            .map_err(Status::from);
        Ok(Response::new(stream.boxed()))
    }

    async fn handshake(
        &self,
        _: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        unsupported()
    }
    async fn list_flights(&self, _: Request<Criteria>) -> Result<Response<Self::ListFlightsStream>, Status> {
        unsupported()
    }
    async fn get_flight_info(&self, _: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        unsupported()
    }
    async fn poll_flight_info(&self, _: Request<FlightDescriptor>) -> Result<Response<PollInfo>, Status> {
        unsupported()
    }
    async fn get_schema(&self, _: Request<FlightDescriptor>) -> Result<Response<SchemaResult>, Status> {
        unsupported()
    }
    async fn do_put(&self, request: Request<Streaming<FlightData>>) -> Result<Response<Self::DoPutStream>, Status> {
        let caller = ringleader_core::security::auth::Caller::of(&request);
        let grant = request
            .metadata()
            .get(ringleader_core::security::auth::STORE_GRANT_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        // A task attempt's copy carries its fence; a `put`'s upload none.
        let fence = request
            .metadata()
            .get(ringleader_core::io::store::FENCE_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                ringleader_core::io::store::Fence::parse(v)
                    .ok_or_else(|| Status::invalid_argument(format!("malformed fence {v:?}: TERM.ATTEMPT")))
            })
            .transpose()?
            .unwrap_or(ringleader_core::io::store::Fence::UPLOAD);
        let mut input = request.into_inner();
        let first = input
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("empty do_put"))?;
        let path = match first.flight_descriptor.as_ref().map(|d| d.path.as_slice()) {
            Some([kind, rest @ ..]) if kind == "dataset" => {
                let parts: Vec<&str> = rest.iter().map(String::as_str).collect();
                let id = PartitionId::from_parts(&parts).map_err(|e| Status::invalid_argument(e.to_string()))?;
                caller.may_store(&format!("{}/{}", id.dataset, id.generation), grant.as_deref())?;
                id.path(&self.datasets)
            }
            _ => {
                return Err(Status::invalid_argument(
                    "do_put needs a descriptor path [\"dataset\", NAME, GENERATION, PARTITION]",
                ));
            }
        };
        let delay = ringleader_core::fault_injection::millis(ringleader_core::fault_injection::STORE_RECEIVE_DELAY_MS);
        let data = futures::stream::once(async { Ok(first) })
            .chain(input)
            .then(move |message| async move {
                if let Some(delay) = delay {
                    tokio::time::sleep(delay).await;
                }
                message
            })
            .map_err(FlightError::from);
        let decoded = FlightRecordBatchStream::new_from_flight_data(data);
        let (_, bytes) = ringleader_core::io::store::write_flight(path, Some(fence), decoded, "the do_put data")
            .await
            .map_err(|e| match e {
                ringleader_core::Error::Format { .. } => Status::invalid_argument(format!("bad partition data: {e}")),
                // A newer attempt's copy is in place: this writer is stale.
                ringleader_core::Error::Superseded(_) => Status::aborted(e.to_string()),
                e => Status::internal(e.to_string()),
            })?;
        self.inner.counters.received.fetch_add(bytes, Ordering::Relaxed);
        Ok(Response::new(futures::stream::empty().boxed()))
    }

    async fn do_action(&self, _: Request<Action>) -> Result<Response<Self::DoActionStream>, Status> {
        unsupported()
    }
    async fn list_actions(&self, _: Request<Empty>) -> Result<Response<Self::ListActionsStream>, Status> {
        unsupported()
    }
    async fn do_exchange(&self, _: Request<Streaming<FlightData>>) -> Result<Response<Self::DoExchangeStream>, Status> {
        unsupported()
    }
}
