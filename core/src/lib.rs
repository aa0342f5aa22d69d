//! # ringleader-core
//!
//! What every part of Ringleader shares: the job plan and how it runs, closure shipping, the
//! consistent-hash ring, and rows in Arrow form. The job API (`ringleader`), the driver and
//! the worker all build on it; the driver and the worker never depend on each other.
//!
//! ## Layout
//! - [`shipped`]: closures as trampoline offsets from an anchor function.
//! - [`plan`]: stages, tasks, steps and outputs: plain, serialisable data.
//! - [`data`]: the [`data::Data`] bound, chunks, and the row <-> Arrow codec.
//! - [`record`]: the 100-byte gensort record.
//! - [`source`]: listing inputs, cutting splits, reading text, records, Arrow IPC, Parquet, CSV.
//! - [`ops`]: the typed trampolines behind every operator.
//! - [`shuffle`]: shuffle sinks and transport; the embedded store with spill.
//! - [`auth`]: the cluster token every RPC carries.
//! - [`binary`]: content hashes of job binaries.
//! - [`driver_group`]: reaching the leader of a driver group, following redirects.
//! - [`cluster_shuffle`]: shuffle files on workers, read locally or over Arrow Flight.
//! - [`flight`]: the one Flight `do_get` every remote read goes through.
//! - [`exposition`]: Prometheus' text format for the daemons' `/metrics`.
//! - [`proto`]: the gRPC protocol (generated).
//! - [`exec`]: running one task (shared by the embedded engine and cluster executors).
//! - [`output`]: atomic output commit.
//! - [`tls`]: TLS between processes when certificates are given.
//! - [`serving`]: what every node (driver, worker) does around serving (token guard, TLS, accepting).
//! - [`ring`]: the consistent-hash ring.
//! - [`ipc`]: Arrow IPC streams in memory.
//! - [`machine`]: which processes share a filesystem (a machine identity).
//! - [`store`]: stored datasets: URLs, formats, generations, Flight put/get of partitions.
//! - [`error`]: the error type.
//! - [`ids`]: what job ids and dataset names may be (they become directory names).
//! - [`sync`]: the one lock helper (a poisoned lock still hands out its data).
//! - [`task_failure`]: why a task attempt failed, in the kinds the driver acts on.

pub mod auth;
pub mod binary;
pub mod clock;
pub mod cluster_shuffle;
pub mod data;
pub mod driver_group;
pub mod error;
pub mod exec;
pub mod exposition;
pub mod flight;
pub mod ids;
pub mod ipc;
pub mod machine;
pub mod mapped;
pub mod memory;
pub mod ops;
pub mod output;
pub mod plan;
pub mod record;
pub mod results;
pub mod ring;
pub mod serving;
pub mod shipped;
pub mod shuffle;
pub mod source;
pub mod spill;
pub mod store;
pub mod sync;
pub mod task_failure;
pub mod tls;
pub mod tls_diagnosis;

pub use error::{Error, Result};

/// Generated gRPC messages and services (`proto/ringleader.proto`).
#[allow(missing_docs, clippy::all)]
pub mod proto {
    tonic::include_proto!("ringleader");
}
