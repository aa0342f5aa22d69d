//! Fetching from a worker's Arrow Flight service: the one `do_get` every reader uses
//! (shuffle blocks, stored dataset partitions, held results), with the cluster token and
//! bounded waits, its failures as [`Error::FetchFailed`] naming the worker.

use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::{FlightClient, Ticket};
use futures::StreamExt;

use crate::data::BatchStream;
use crate::error::{Error, Result};

/// A Flight client of the worker at `address`, carrying the cluster token. Its channel
/// bounds every wait (see [`crate::security::tls::endpoint`]).
pub async fn client(address: &str) -> Result<FlightClient> {
    let channel = crate::security::tls::endpoint(address)
        .map_err(|e| failed(address, e.to_string()))?
        .connect()
        .await
        .map_err(|e| failed(address, format!("cannot connect: {e}")))?;
    let mut client = FlightClient::new(channel);
    crate::security::auth::add_token(client.metadata_mut()).map_err(|e| failed(address, e.to_string()))?;
    Ok(client)
}

/// The batches the worker at `address` returns for `ticket` (Flight `do_get`). The stream
/// knows their schema once its first message arrived (also when there are no rows).
pub async fn fetch(address: &str, ticket: impl Into<Vec<u8>>) -> Result<FlightRecordBatchStream> {
    client(address)
        .await?
        .do_get(Ticket::new(ticket.into()))
        .await
        .map_err(|e| failed(address, e.to_string()))
}

/// [`fetch`] for a blocking reader: each batch is awaited on `runtime` as it is pulled.
pub fn fetch_blocking(
    runtime: &tokio::runtime::Handle,
    address: &str,
    ticket: impl Into<Vec<u8>>,
) -> Result<BatchStream> {
    let mut stream = runtime.block_on(fetch(address, ticket))?;
    let runtime = runtime.clone();
    let address = address.to_string();
    Ok(Box::new(std::iter::from_fn(move || {
        runtime
            .block_on(stream.next())
            .map(|r| r.map_err(|e| failed(&address, e.to_string())))
    })))
}

fn failed(address: &str, message: String) -> Error {
    Error::FetchFailed {
        location: address.to_string(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use arrow_array::{Int64Array, RecordBatch};
    use arrow_flight::encode::FlightDataEncoderBuilder;
    use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
    use arrow_flight::{
        Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo, HandshakeRequest,
        HandshakeResponse, PollInfo, PutResult, SchemaResult,
    };
    use futures::stream::BoxStream;
    use futures::{StreamExt, TryStreamExt};
    use tonic::{Request, Response, Status, Streaming};

    use crate::error::{Error, Result};

    /// Serves ten batches slowly, then freezes its whole process as `kill -STOP` would: the thread
    /// of its one-thread runtime sleeps, so nothing (not even a ping) is answered.
    struct FreezesMidStream;

    fn unsupported<T>() -> Result<T, Status> {
        Err(Status::unimplemented("a test server"))
    }

    #[tonic::async_trait]
    impl FlightService for FreezesMidStream {
        type HandshakeStream = BoxStream<'static, Result<HandshakeResponse, Status>>;
        type ListFlightsStream = BoxStream<'static, Result<FlightInfo, Status>>;
        type DoGetStream = BoxStream<'static, Result<FlightData, Status>>;
        type DoPutStream = BoxStream<'static, Result<PutResult, Status>>;
        type DoActionStream = BoxStream<'static, Result<arrow_flight::Result, Status>>;
        type ListActionsStream = BoxStream<'static, Result<ActionType, Status>>;
        type DoExchangeStream = BoxStream<'static, Result<FlightData, Status>>;

        async fn do_get(&self, _: Request<arrow_flight::Ticket>) -> Result<Response<Self::DoGetStream>, Status> {
            let batch =
                RecordBatch::try_from_iter([("v", Arc::new(Int64Array::from(vec![1, 2, 3])) as _)]).expect("batch");
            // A batch every 400 ms for 4 s (each read by the client keeps its connection
            // busy), then the freeze.
            let batches = futures::stream::iter(0..12).then(move |i| {
                let batch = batch.clone();
                async move {
                    if i == 10 {
                        std::thread::sleep(Duration::from_secs(45));
                    }
                    tokio::time::sleep(Duration::from_millis(400)).await;
                    Ok(batch)
                }
            });
            let stream = FlightDataEncoderBuilder::new().build(batches).map_err(Status::from);
            Ok(Response::new(Box::pin(stream)))
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
        async fn do_put(&self, _: Request<Streaming<FlightData>>) -> Result<Response<Self::DoPutStream>, Status> {
            unsupported()
        }
        async fn do_action(&self, _: Request<Action>) -> Result<Response<Self::DoActionStream>, Status> {
            unsupported()
        }
        async fn list_actions(&self, _: Request<Empty>) -> Result<Response<Self::ListActionsStream>, Status> {
            unsupported()
        }
        async fn do_exchange(
            &self,
            _: Request<Streaming<FlightData>>,
        ) -> Result<Response<Self::DoExchangeStream>, Status> {
            unsupported()
        }
    }

    #[test]
    fn a_fetch_from_a_worker_that_froze_mid_stream_fails_within_the_keepalive_bound() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        listener.set_nonblocking(true).expect("nonblocking");
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("server runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let _ = tonic::transport::Server::builder()
                    .add_service(FlightServiceServer::new(FreezesMidStream))
                    .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                    .await;
            });
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("client runtime");
        let (done, outcome) = std::sync::mpsc::channel();
        let handle = runtime.handle().clone();
        let started = Instant::now();
        std::thread::spawn(move || {
            let read: Result<Vec<RecordBatch>> =
                super::fetch_blocking(&handle, &address, b"block".to_vec()).and_then(|batches| batches.collect());
            let _ = done.send(read);
        });
        let read = outcome
            .recv_timeout(Duration::from_secs(40))
            .expect("the fetch from a frozen server still waits after 40 s: nothing pinged it");
        assert!(matches!(read, Err(Error::FetchFailed { .. })), "{read:?}");
        // Ten batches 400 ms apart, then at most a ping interval and its timeout.
        let bound =
            Duration::from_secs(4) + crate::security::tls::KEEPALIVE_INTERVAL + crate::security::tls::KEEPALIVE_TIMEOUT;
        let bound = bound + Duration::from_secs(5);
        assert!(started.elapsed() < bound, "took {:?}", started.elapsed());
    }
}
