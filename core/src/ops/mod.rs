//! The typed trampolines behind every operator. Each is a generic `fn` monomorphised per
//! row type and closure type; the job API records them as [`Shipped`](crate::plan::shipped::Shipped)
//! offsets, and the executor calls them on chunks.
//!
//! Modules: [`narrow`] (steps inside a stage), [`sinks`] (map side of shuffles),
//! [`reduce`] (reduce side), [`action`] (what the final stage does), [`in_memory_sort`]
//! (sorting rows in memory, for both sides), and [`external`] (the reduce side's spilling
//! when a partition outgrows its memory budget).

pub mod action;
pub mod external;
pub mod in_memory_sort;
pub mod narrow;
pub mod reduce;
pub mod sinks;

use crate::data::record::Record;
use crate::data::{CHUNK_ROWS, Chunk, ChunkStream, Data};

/// Rows per chunk for type `T`: gensort records travel in 8 MB chunks, others in
/// [`CHUNK_ROWS`].
pub fn chunk_rows<T: 'static>() -> usize {
    if crate::data::is::<T, Record>() {
        80_000
    } else {
        CHUNK_ROWS
    }
}

/// What a hash table holding `len` entries in `capacity` slots of `(K, V)` takes: its
/// slots (and their control bytes), and per entry `heap_per_entry` (what its rows took in
/// Arrow, standing for keys and values on the heap such as strings) plus an allocation's
/// overhead.
pub fn table_bytes<K, V>(capacity: usize, len: usize, heap_per_entry: usize) -> usize {
    capacity * (std::mem::size_of::<(K, V)>() + 1) + len * (heap_per_entry + 16)
}

/// Cuts an iterator of rows into a stream of chunks.
pub fn chunked<T: Data, I: Iterator<Item = T> + Send + 'static>(mut rows: I) -> ChunkStream {
    let size = chunk_rows::<T>();
    Box::new(std::iter::from_fn(move || {
        let chunk: Vec<T> = rows.by_ref().take(size).collect();
        (!chunk.is_empty()).then(|| Ok(Chunk::from_rows(chunk)))
    }))
}
