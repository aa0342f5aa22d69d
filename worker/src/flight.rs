//! Serving shuffle blocks with Arrow Flight `do_get`, from the worker daemon rather than
//! the executor, so map output outlives the process that wrote it.

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo, HandshakeRequest, HandshakeResponse,
    PollInfo, PutResult, SchemaResult, Ticket,
};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use std::path::PathBuf;

use arrow_flight::decode::FlightRecordBatchStream;
use ringleader_core::cluster_shuffle::{BlockId, ShuffleFiles, valid_job_id};
use ringleader_core::source::stored::partition_path;
use tonic::{Request, Response, Status, Streaming};

/// The Flight service of a worker: `do_get` of shuffle blocks and stored dataset
/// partitions, `do_put` of dataset partitions (`ringleader put`).
pub struct ShuffleFlight {
    files: ShuffleFiles,
    datasets: PathBuf,
}

impl ShuffleFlight {
    /// Serves shuffle blocks from `files` and datasets from `datasets`.
    pub fn new(files: ShuffleFiles, datasets: PathBuf) -> Self {
        ShuffleFlight { files, datasets }
    }

    fn dataset_path(&self, name: &str, partition: &str) -> Result<PathBuf, Status> {
        let partition: u32 = partition
            .parse()
            .map_err(|_| Status::invalid_argument("bad partition number"))?;
        if !valid_job_id(name) {
            return Err(Status::invalid_argument(format!(
                "{name:?} is not a dataset name (letters, digits, - and _)"
            )));
        }
        Ok(partition_path(&self.datasets, name, partition))
    }
}

fn read_ipc(path: &std::path::Path) -> Result<Vec<arrow::record_batch::RecordBatch>, Status> {
    let file = std::fs::File::open(path).map_err(|e| Status::not_found(format!("{}: {e}", path.display())))?;
    let reader = arrow::ipc::reader::FileReader::try_new(std::io::BufReader::new(file), None)
        .map_err(|e| Status::internal(format!("{}: {e}", path.display())))?;
    reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Status::internal(format!("{}: {e}", path.display())))
}

/// Writes `batches` to `path` as an IPC file, under a temporary name first.
pub fn write_ipc(path: &std::path::Path, batches: &[arrow::record_batch::RecordBatch]) -> Result<(), Status> {
    let fail = |e: String| Status::internal(format!("{}: {e}", path.display()));
    let Some(first) = batches.first() else {
        return Err(Status::invalid_argument(
            "an empty partition has no schema; send at least one batch",
        ));
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    }
    let temp = path.with_extension("arrow.tmp");
    let file = std::fs::File::create(&temp).map_err(|e| fail(e.to_string()))?;
    let mut writer = arrow::ipc::writer::FileWriter::try_new(std::io::BufWriter::new(file), first.schema().as_ref())
        .map_err(|e| fail(e.to_string()))?;
    for b in batches {
        writer.write(b).map_err(|e| fail(e.to_string()))?;
    }
    writer.finish().map_err(|e| fail(e.to_string()))?;
    drop(writer);
    std::fs::rename(&temp, path).map_err(|e| fail(e.to_string()))
}

fn unsupported<T>() -> Result<T, Status> {
    Err(Status::unimplemented(
        "a Ringleader worker serves shuffle blocks with do_get only",
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
        let ticket = request.into_inner().ticket;
        let batches = if let Some(rest) = ticket.strip_prefix(b"dataset/".as_slice()) {
            let text = std::str::from_utf8(rest).map_err(|_| Status::invalid_argument("bad ticket"))?;
            let (name, partition) = text
                .split_once('/')
                .ok_or_else(|| Status::invalid_argument("bad ticket"))?;
            let path = self.dataset_path(name, partition)?;
            tokio::task::spawn_blocking(move || read_ipc(&path))
                .await
                .map_err(|e| Status::internal(e.to_string()))??
        } else {
            let block = BlockId::parse(&ticket).map_err(|e| Status::invalid_argument(e.to_string()))?;
            let files = self.files.clone();
            tokio::task::spawn_blocking(move || files.read_block(&block).and_then(|s| s.collect::<Result<Vec<_>, _>>()))
                .await
                .map_err(|e| Status::internal(e.to_string()))?
                .map_err(|e| Status::not_found(e.to_string()))?
        };
        let stream = FlightDataEncoderBuilder::new()
            .build(futures::stream::iter(batches.into_iter().map(Ok::<_, FlightError>)))
            .map_err(|e| Status::internal(e.to_string()));
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
        let mut input = request.into_inner();
        let first = input
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("empty do_put"))?;
        let descriptor = first.flight_descriptor.clone();
        let data = futures::stream::once(async { Ok(first) })
            .chain(input)
            .map_err(FlightError::from);
        let mut stream = FlightRecordBatchStream::new_from_flight_data(data);
        let mut batches = Vec::new();
        while let Some(batch) = stream.next().await {
            batches.push(batch.map_err(|e| Status::invalid_argument(format!("bad partition data: {e}")))?);
        }
        let path = match descriptor.as_ref().map(|d| d.path.as_slice()) {
            Some([kind, name, partition]) if kind == "dataset" => self.dataset_path(name, partition)?,
            _ => {
                return Err(Status::invalid_argument(
                    "do_put needs a descriptor path [\"dataset\", NAME, PARTITION]",
                ));
            }
        };
        tokio::task::spawn_blocking(move || write_ipc(&path, &batches))
            .await
            .map_err(|e| Status::internal(e.to_string()))??;
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
