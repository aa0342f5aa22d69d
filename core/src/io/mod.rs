//! Reading and writing: where a task's rows come from and go to.
//! - [`source`]: listing inputs, cutting splits, reading text, records, Arrow IPC, Parquet,
//!   CSV, stored datasets.
//! - [`mapped`]: memory-mapped inputs that fail a task, not the process, when they shrink.
//! - [`output`]: the all-or-nothing commit of a job's output.
//! - [`output_format`]: the formats of a job's output files (text, Arrow IPC, Parquet).
//! - [`store`]: stored datasets (`ringleader://NAME`): URLs, formats, generations, placement.
//! - [`results`]: large final results held on the worker that made them.
//! - [`writeback`]: durable files written at the disk's speed.

pub mod mapped;
pub mod output;
pub mod output_format;
pub mod results;
pub mod source;
pub mod store;
pub mod writeback;
