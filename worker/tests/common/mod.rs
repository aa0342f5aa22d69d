//! What the worker's tests share: a stored partition of 8 MiB on a worker's disk.

use std::path::Path;

use ringleader_core::net::ticket::PartitionId;

/// Batches and rows per batch of [`big_partition`]: 8 MiB of int64 values, more than flow
/// control sends ahead of a reader.
pub const BATCHES: i64 = 64;
/// Rows per batch of [`big_partition`].
pub const ROWS: i64 = 16_384;

/// Writes partition 0 of dataset `big` (generation `g1`) under `data_dir`: the values
/// 0..BATCHES*ROWS in order. Its id.
pub fn big_partition(data_dir: &Path) -> PartitionId {
    let id = PartitionId {
        dataset: "big".into(),
        generation: "g1".into(),
        partition: 0,
    };
    let path = id.path(&data_dir.join("datasets"));
    let encoded =
        (0..BATCHES).map(|b| ringleader_core::data::encode(&(0..ROWS).map(|i| b * ROWS + i).collect::<Vec<_>>()));
    ringleader_core::io::store::write_ipc_file(&path, || None, encoded).expect("partition");
    id
}
