//! A stored partition read from another worker travels a few batches ahead of its reader,
//! never whole into the reader's memory: a worker's Flight service on loopback (real gRPC)
//! serves an 8 MiB partition, and after the reader's first batch it has sent only a
//! fraction of it.

use std::sync::atomic::Ordering;
use std::time::Duration;

mod common;

#[test]
fn a_remote_stored_partition_is_streamed_a_few_batches_ahead_not_collected_whole() {
    let dir = tempfile::tempdir().expect("dir");
    let data_dir = dir.path().join("worker");
    let id = common::big_partition(&data_dir);
    let (batches, rows) = (common::BATCHES, common::ROWS);
    let path = id.path(&data_dir.join("datasets"));
    let total = std::fs::metadata(&path).expect("size").len();

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    // The driver is never called here (its channel is made lazily, inside the runtime).
    let inner = {
        let _inside = runtime.enter();
        let driver = ringleader_core::net::driver_group::DriverGroup::new(vec!["127.0.0.1:9".into()]).expect("group");
        ringleader_worker::service::WorkerInner::new(address.clone(), data_dir, driver, 1 << 30, None)
    };
    let flight = ringleader_worker::flight::ShuffleFlight::new(inner.clone());
    runtime.spawn(
        tonic::transport::Server::builder()
            .add_service(arrow_flight::flight_service_server::FlightServiceServer::new(flight))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    // Read as an executor does, from a thread of its own, on no worker's disk.
    let mut chunks =
        ringleader_core::io::source::stored::open(&id, std::slice::from_ref(&address), None).expect("open");
    let first = chunks.next().expect("a batch").expect("read");
    // Time for the server to send all that flow control and the read-ahead let it.
    std::thread::sleep(Duration::from_millis(300));
    let served = inner.counters.served.load(Ordering::Relaxed);
    assert!(
        served < total / 2,
        "{served} of {total} bytes sent after the first batch: the partition was read whole"
    );
    let mut read = first.len() as i64;
    for chunk in chunks {
        read += chunk.expect("read").len() as i64;
    }
    assert_eq!(read, batches * rows);
}
