//! A stopping worker cuts nothing under way: a Flight stream another worker's reducer is
//! reading goes on to its last batch after the stop, and the background work in flight (a
//! report on its way to the driver) is waited for before the worker's serving ends. A real
//! worker's services on loopback (real gRPC), stopped as its daemon is on SIGTERM.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

mod common;

#[test]
fn a_stopped_worker_finishes_its_flight_streams_and_background_work_before_it_ends() {
    let dir = tempfile::tempdir().expect("dir");
    let data_dir = dir.path().join("worker");
    let id = common::big_partition(&data_dir);
    let (batches, rows) = (common::BATCHES, common::ROWS);

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _inside = runtime.enter();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    // The driver is never called here (its channel is made lazily).
    let driver = ringleader_core::net::driver_group::DriverGroup::new(vec!["127.0.0.1:9".into()]).expect("group");
    let inner = ringleader_worker::service::WorkerInner::new(address.clone(), data_dir, driver, 1 << 30, None);
    let require = ringleader_core::security::auth::RequireToken::from_process().expect("no token asked");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = runtime.spawn({
        let inner = inner.clone();
        async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            ringleader_worker::serve_until(inner, listener, &require, shutdown).await
        }
    });

    // A reducer's read, from a thread of its own: the first batch, then the stop.
    let mut chunks =
        ringleader_core::io::source::stored::open(&id, std::slice::from_ref(&address), None).expect("open");
    let first = chunks.next().expect("a batch").expect("read");
    let total = inner.counters.served.load(Ordering::Relaxed);
    // Work a request left behind, still running when the stop comes.
    let reported = Arc::new(AtomicBool::new(false));
    inner.background.spawn({
        let reported = reported.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            reported.store(true, Ordering::Relaxed);
        }
    });
    stop.send(()).expect("serving");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !serving.is_finished(),
        "the worker stopped serving with a stream in flight"
    );

    let mut read = first.len() as i64;
    for chunk in chunks {
        read += chunk.expect("the stream goes on after the stop").len() as i64;
    }
    assert_eq!(read, batches * rows, "every row arrived");
    assert!(inner.counters.served.load(Ordering::Relaxed) > total);

    let ended = runtime
        .block_on(tokio::time::timeout(Duration::from_secs(15), serving))
        .expect("the worker stops once its stream and background work are done")
        .expect("joined");
    assert!(ended.is_ok(), "{ended:?}");
    assert!(
        reported.load(Ordering::Relaxed),
        "the worker ended before its background work"
    );
}
