//! Sorting rows in memory, and what it takes: a reduce task's sort of its partition, and a
//! map task's sorted runs (records by their packed keys, other rows by their key and then
//! their order).

use arrow_array::RecordBatch;

use crate::data::record::{INDEX_MASK, KEY_LEN, Record, packed_key};
use crate::data::{Chunk, ChunkStream, Data, cast_slice, cast_vec, decode, is, records_view};
use crate::error::{Error, Result};
use crate::plan::shipped::conjure;

use super::chunked;

/// What sorting the rows of `batch` (of `T`, held as `bytes` bytes of Arrow) takes. Records
/// are sorted in place with a 16-byte packed key beside each (2.5 times their bytes, as
/// measured). Other rows are decoded beside their Arrow batch: each row a `T` and a
/// `(K, index)` to sort by, and their strings, bytes and lists on the heap twice (the row's,
/// and the key's if it copies them). (Counted as 1.5 times the Arrow bytes, a sort of words
/// took 4.6 times its budget.)
pub fn sort_bytes<T: 'static, K>(batch: &RecordBatch, bytes: usize) -> usize {
    if is::<T, Record>() {
        bytes * 5 / 2
    } else {
        let rows = batch.num_rows() * (std::mem::size_of::<T>() + std::mem::size_of::<(K, usize)>());
        bytes + rows + 2 * crate::data::heap_bytes(batch)
    }
}

/// Sorts the rows of `blocks` in memory (ties in the order given).
pub fn sort_batches<T: Data, K: Data + Ord, F: Fn(&T) -> K + 'static>(blocks: Vec<RecordBatch>) -> Result<ChunkStream> {
    if is::<T, Record>() && is::<K, [u8; KEY_LEN]>() {
        return sort_record_blocks::<T, K, F>(blocks);
    }
    // Room for every row at once: a vector grown by doubling would hold up to twice them.
    let mut all: Vec<T> = Vec::with_capacity(blocks.iter().map(RecordBatch::num_rows).sum());
    for batch in &blocks {
        all.extend(decode::<T>(batch)?);
    }
    drop(blocks);
    if is::<K, [u8; KEY_LEN]>() {
        let order = sort_ten_byte_keys(&all, ten_byte_key::<T, K, F>);
        return Ok(permute(all, order));
    }
    // SAFETY: closure types are checked zero-sized when the plan is built.
    let f: F = unsafe { conjure() };
    let mut keyed: Vec<(K, usize)> = all.iter().enumerate().map(|(i, r)| (f(r), i)).collect();
    keyed.sort_unstable();
    // Collected in the keys' place, the order would keep their room.
    let mut order: Vec<usize> = keyed.into_iter().map(|(_, i)| i).collect();
    order.shrink_to_fit();
    Ok(permute(all, order))
}

fn views(blocks: &[RecordBatch]) -> Result<Vec<&[Record]>> {
    blocks
        .iter()
        .map(|b| records_view(b).ok_or_else(|| Error::Codec("a sort block is not a batch of records".into())))
        .collect()
}

/// The user's sort key of `row`, `F`'s, as the 10 bytes it is: callers check that `K` is
/// `[u8; KEY_LEN]`.
fn ten_byte_key<T, K: Data, F: Fn(&T) -> K + 'static>(row: &T) -> [u8; KEY_LEN] {
    debug_assert!(is::<K, [u8; KEY_LEN]>());
    // SAFETY: closure types are checked zero-sized when the plan is built; K is
    // [u8; KEY_LEN] (checked by every caller).
    unsafe { std::mem::transmute_copy::<K, [u8; KEY_LEN]>(&conjure::<F>()(row)) }
}

/// Sorts record blocks without first gathering them: sorts packed (key, block, row)
/// integers, then copies each record once, straight from its block into an output chunk.
pub(super) fn sort_record_blocks<T: Data, K: Data, F: Fn(&T) -> K + 'static>(
    blocks: Vec<RecordBatch>,
) -> Result<ChunkStream> {
    use rayon::prelude::*;
    let parts = views(&blocks)?;
    if parts.len() >= 1 << 16 || parts.iter().any(|p| p.len() >= 1 << 32) {
        // Too many blocks or rows to pack their indexes: gather them, sorted by the user's key.
        let all = cast_vec::<Record, T>(parts.concat()).map_err(|_| Error::Plan("record cast".into()))?;
        let order = sort_ten_byte_keys(&all, ten_byte_key::<T, K, F>);
        return Ok(permute(all, order));
    }
    let mut packed: Vec<u128> = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
    for (b, part) in parts.iter().enumerate() {
        let rows = cast_slice::<Record, T>(part).ok_or_else(|| Error::Plan("record cast".into()))?;
        packed.par_extend(
            rows.par_iter()
                .enumerate()
                .map(|(r, row)| packed_key(&ten_byte_key::<T, K, F>(row), ((b as u128) << 32) | r as u128)),
        );
    }
    packed.par_sort_unstable();
    let size = super::chunk_rows::<Record>();
    let chunks = packed.len().div_ceil(size);
    Ok(Box::new((0..chunks).map(move |c| {
        let parts = views(&blocks)?;
        let slice = &packed[c * size..((c + 1) * size).min(packed.len())];
        let out: Vec<Record> = slice
            .iter()
            .map(|&p| parts[(p >> 32) as u16 as usize][p as u32 as usize])
            .collect();
        let out = cast_vec::<Record, T>(out).map_err(|_| Error::Plan("record cast".into()))?;
        Ok(Chunk::from_rows(out))
    })))
}

/// Orders rows by a 10-byte key packed with the row index into one `u128`
/// (80 key bits, 48 index bits), so the sort compares integers, never bytes.
fn sort_ten_byte_keys<T>(rows: &[T], key: impl Fn(&T) -> [u8; KEY_LEN] + Sync) -> Vec<usize>
where
    T: Sync,
{
    use rayon::prelude::*;
    let mut packed: Vec<u128> = rows
        .par_iter()
        .enumerate()
        .map(|(i, r)| packed_key(&key(r), i as u128))
        .collect();
    packed.par_sort_unstable();
    packed.into_iter().map(|p| (p & INDEX_MASK) as usize).collect()
}

/// Streams `rows` in the order of `order` (a permutation of their indices).
fn permute<T: Data>(rows: Vec<T>, order: Vec<usize>) -> ChunkStream {
    match cast_vec::<T, Record>(rows) {
        Ok(records) => {
            let size = super::chunk_rows::<Record>();
            let order = std::sync::Arc::new(order);
            let chunks = order.len().div_ceil(size);
            Box::new((0..chunks).map(move |c| {
                let slice = &order[c * size..((c + 1) * size).min(order.len())];
                let out: Vec<Record> = slice.iter().map(|&i| records[i]).collect();
                Ok(Chunk::from_rows(out))
            }))
        }
        Err(rows) => {
            let mut slots: Vec<Option<T>> = rows.into_iter().map(Some).collect();
            // Exactly as many as there are rows (collected from a filter, the vector would
            // grow by doubling: up to twice the rows, and copies of them on the way).
            let mut sorted: Vec<T> = Vec::with_capacity(order.len());
            sorted.extend(order.into_iter().filter_map(|i| slots[i].take()));
            chunked(sorted.into_iter())
        }
    }
}
