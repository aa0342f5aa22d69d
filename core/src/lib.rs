//! # ringleader-core
//!
//! What every part of Ringleader shares: the job plan and how it runs, closure shipping, the
//! consistent-hash ring, and rows in Arrow form. The job API (`ringleader`), the driver and
//! the worker all build on it; the driver and the worker never depend on each other.
//!
//! ## Layout
//! The folders are the concerns; each folder's doc is the map of its files.
//! - [`plan`]: what a job is: stages, tasks, steps and outputs as plain serialisable data;
//!   [`plan::shipped`] closures as trampoline offsets, [`plan::accumulator`] counters closures
//!   add to, [`plan::cache`] the embedded engine's cached partitions.
//! - [`ops`]: the typed trampolines behind every operator (narrow steps, sinks, reduces,
//!   external sorts, actions).
//! - [`data`]: the [`data::Data`] bound, chunks, the row <-> Arrow codec, gensort records,
//!   Arrow IPC in memory.
//! - [`io`]: reading inputs ([`io::source`]), memory-mapped inputs that fail a task and not
//!   the process, writing and committing outputs, stored datasets, held results, writeback.
//! - [`exec`]: one task, the same embedded and on a cluster.
//! - [`memory`]: the process's memory budget and what operators spill past it.
//! - [`shuffle`]: sinks and the embedded shuffle; [`shuffle::cluster`] shuffle files on
//!   workers, read locally or over Flight.
//! - [`net`]: between processes: Flight fetches and tickets, reaching the driver group,
//!   serving, the executor's environment, job binaries, machines, the ring.
//! - [`security`]: the cluster token and job credentials, TLS, the pages over TLS.
//! - [`proto`]: the gRPC protocol (generated); [`ids`]: typed ids and the names that become
//!   directories; [`task_failure`]: the kinds of failure a task reports.
//! - [`exposition`]: Prometheus' text format; [`clock`]: wall-clock time; [`sync`]: the lock
//!   helper; [`error`]: the error type; [`fault_injection`]: the faults tests inject.
//!
//! A task's path: its plan names an input (an [`io::source::Split`] or a shuffle read),
//! steps resolved through [`plan::shipped`], and an output; [`exec::run`] opens the input,
//! pipes chunks through the steps under the [`memory`] budget, and writes a shuffle or runs
//! the job's action, whose large results stay on the worker ([`io::results`]) and travel by
//! [`net::flight`].

pub mod clock;
pub mod data;
pub mod error;
pub mod exec;
pub mod exposition;
pub mod fault_injection;
pub mod ids;
pub mod io;
pub mod memory;
pub mod net;
pub mod ops;
pub mod plan;
pub mod security;
pub mod shuffle;
pub mod sync;
pub mod task_failure;

pub use error::{Error, Result};

/// Generated gRPC messages and services (`proto/ringleader.proto`).
#[allow(missing_docs, clippy::all)]
pub mod proto {
    tonic::include_proto!("ringleader");
}
