//! # ringleader-core
//!
//! What every part of Ringleader shares: the job plan and how it runs, closure shipping, the
//! consistent-hash ring, and rows in Arrow form. The job API (`ringleader`), the driver and
//! the worker all build on it; the driver and the worker never depend on each other.
//!
//! ## Layout
//! What a job is:
//! - [`plan`]: stages, tasks, steps and outputs: plain, serialisable data.
//! - [`shipped`]: closures as trampoline offsets from an anchor function.
//! - [`ops`]: the typed trampolines behind every operator (narrow steps, sinks, reduces,
//!   external sorts, actions).
//! - [`data`]: the [`data::Data`] bound, chunks, and the row <-> Arrow codec; [`record`]:
//!   the 100-byte gensort record.
//!
//! Reading and writing:
//! - [`source`]: listing inputs, cutting splits, reading text, records, Arrow IPC, Parquet,
//!   CSV, stored datasets; [`mapped`]: memory-mapped inputs that fail a task, not the process.
//! - [`output`]: the all-or-nothing commit of a job's output; [`ipc`]: Arrow IPC in memory.
//! - [`store`]: stored datasets (`ringleader://NAME`): URLs, formats, generations, placement.
//!
//! Running a task:
//! - [`exec`]: one task, the same embedded and on a cluster.
//! - [`memory`]: the process's memory budget; [`spill`]: what operators write past it.
//! - [`shuffle`]: sinks and the embedded shuffle; [`cluster_shuffle`]: shuffle files on
//!   workers, read locally or over Flight; [`flight`]: the one Flight `do_get`.
//! - [`accumulator`]: counters and sums closures add to, gathered per task.
//! - [`results`]: large final results held on the worker that made them; [`cache`]: the
//!   embedded engine's cached partitions.
//!
//! Between processes:
//! - [`proto`]: the gRPC protocol (generated); [`task_failure`]: the kinds of failure a task
//!   reports; [`ids`]: typed ids and the names that become directories; [`ticket`]: what a
//!   Flight `do_get` asks a worker for.
//! - [`executor_env`]: what a worker tells the executor it starts.
//! - [`auth`]: the cluster token and job credentials; [`tls`] and [`tls_diagnosis`]: TLS and
//!   what to say when the two ends disagree about it; [`serving`]: what every node does
//!   around serving; [`web_tls`]: the nodes' HTTP pages over TLS.
//! - [`driver_group`]: reaching the leader of a driver group; [`binary`]: job binaries by
//!   content hash; [`machine`]: which processes share a filesystem; [`ring`]: the
//!   consistent-hash ring.
//! - [`exposition`]: Prometheus' text format; [`clock`]: wall-clock time; [`sync`]: the lock
//!   helper; [`error`]: the error type; [`fault_injection`]: the faults tests inject.
//!
//! A task's path: its plan names an input (a [`source::Split`] or a shuffle read), steps
//! resolved through [`shipped`], and an output; [`exec::run`] opens the input, pipes chunks
//! through the steps under the [`memory`] budget, and writes a shuffle or runs the job's
//! action, whose large results stay on the worker ([`results`]) and travel by [`flight`].

pub mod accumulator;
pub mod auth;
pub mod binary;
pub mod cache;
pub mod clock;
pub mod cluster_shuffle;
pub mod data;
pub mod driver_group;
pub mod error;
pub mod exec;
pub mod executor_env;
pub mod exposition;
pub mod fault_injection;
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
pub mod ticket;
pub mod tls;
pub mod tls_diagnosis;
pub mod web_tls;
pub mod writeback;

pub use error::{Error, Result};

/// Generated gRPC messages and services (`proto/ringleader.proto`).
#[allow(missing_docs, clippy::all)]
pub mod proto {
    tonic::include_proto!("ringleader");
}
