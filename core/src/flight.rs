//! Fetching from a worker's Arrow Flight service: the one `do_get` every reader uses
//! (shuffle blocks, stored dataset partitions, held results), with the cluster token and
//! bounded waits, its failures as [`Error::FetchFailed`] naming the worker.

use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::{FlightClient, Ticket};
use futures::StreamExt;

use crate::data::BatchStream;
use crate::error::{Error, Result};

/// A Flight client of the worker at `address`, carrying the cluster token. Its channel
/// bounds every wait (see [`crate::tls::endpoint`]).
pub async fn client(address: &str) -> Result<FlightClient> {
    let channel = crate::tls::endpoint(address)
        .map_err(|message| failed(address, message))?
        .connect()
        .await
        .map_err(|e| failed(address, format!("cannot connect: {e}")))?;
    let mut client = FlightClient::new(channel);
    crate::auth::add_token(client.metadata_mut()).map_err(|e| failed(address, e.to_string()))?;
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
