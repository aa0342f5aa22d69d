//! The reduce side of shuffles: merge (`reduce_by_key`), group, join, de-duplicate and sort
//! the blocks of one reduce partition.

use std::hash::Hash;

use rustc_hash::{FxHashMap, FxHashSet};

use arrow::record_batch::RecordBatch;

use crate::data::{BatchStream, Chunk, ChunkStream, Data, cast_slice, cast_vec, decode, is, records_view};
use crate::error::{Error, Result};
use crate::record::{KEY_LEN, Record};
use crate::shipped::conjure;

use super::chunked;
use super::sinks::combine_into;

fn side(sides: &mut [BatchStream], which: usize) -> Result<BatchStream> {
    if which >= sides.len() {
        return Err(Error::Plan(format!(
            "a reduce expected {} shuffle inputs, got {}",
            which + 1,
            sides.len()
        )));
    }
    Ok(std::mem::replace(&mut sides[which], Box::new(std::iter::empty())))
}

/// Decodes every row of a shuffle side.
fn rows<T: Data>(stream: BatchStream) -> impl Iterator<Item = Result<Vec<T>>> {
    stream.map(|b| b.and_then(|b| decode::<T>(&b)))
}

/// `reduce_by_key`: merges the partial values of each key with `F`.
pub fn combine<K: Data + Hash + Eq, V: Data, F: Fn(V, V) -> V + 'static>(
    _state: &[u8],
    mut sides: Vec<BatchStream>,
) -> Result<ChunkStream> {
    // SAFETY: closure types are checked zero-sized when the plan is built.
    let f: F = unsafe { conjure() };
    let mut map: FxHashMap<K, Option<V>> = FxHashMap::default();
    for batch in rows::<(K, V)>(side(&mut sides, 0)?) {
        for (k, v) in batch? {
            combine_into(&mut map, &f, k, v);
        }
    }
    Ok(chunked(map.into_iter().filter_map(|(k, v)| v.map(|v| (k, v)))))
}

/// `group_by_key`: collects each key's values.
pub fn group<K: Data + Hash + Eq, V: Data>(_state: &[u8], mut sides: Vec<BatchStream>) -> Result<ChunkStream> {
    let mut map: FxHashMap<K, Vec<V>> = FxHashMap::default();
    for batch in rows::<(K, V)>(side(&mut sides, 0)?) {
        for (k, v) in batch? {
            map.entry(k).or_default().push(v);
        }
    }
    Ok(chunked(map.into_iter()))
}

/// `join`: an inner hash join, building on the left side and streaming the right.
pub fn join<K, V, W>(_state: &[u8], mut sides: Vec<BatchStream>) -> Result<ChunkStream>
where
    K: Data + Hash + Eq + Clone,
    V: Data + Clone,
    W: Data + Clone,
{
    let mut build: FxHashMap<K, Vec<V>> = FxHashMap::default();
    for batch in rows::<(K, V)>(side(&mut sides, 0)?) {
        for (k, v) in batch? {
            build.entry(k).or_default().push(v);
        }
    }
    let probe = side(&mut sides, 1)?;
    Ok(Box::new(rows::<(K, W)>(probe).map(move |batch| {
        let mut out: Vec<(K, (V, W))> = Vec::new();
        for (k, w) in batch? {
            if let Some(vs) = build.get(&k) {
                for v in vs {
                    out.push((k.clone(), (v.clone(), w.clone())));
                }
            }
        }
        Ok(Chunk::from_rows(out))
    })))
}

/// `distinct`: one copy of each row.
pub fn distinct<T: Data + Hash + Eq>(_state: &[u8], mut sides: Vec<BatchStream>) -> Result<ChunkStream> {
    let mut seen: FxHashSet<T> = FxHashSet::default();
    for batch in rows::<T>(side(&mut sides, 0)?) {
        seen.extend(batch?);
    }
    Ok(chunked(seen.into_iter()))
}

/// `sort_by_key`: sorts the partition by the key `F` computes (ascending; ties keep the
/// order in which rows arrived, so the result is deterministic).
pub fn sort<T: Data, K: Data + Ord, F: Fn(&T) -> K + 'static>(
    _state: &[u8],
    mut sides: Vec<BatchStream>,
) -> Result<ChunkStream> {
    let input = side(&mut sides, 0)?;
    if is::<T, Record>() && is::<K, [u8; KEY_LEN]>() {
        return sort_record_blocks::<T, K, F>(input.collect::<Result<Vec<_>>>()?);
    }
    let mut all: Vec<T> = Vec::new();
    for batch in rows::<T>(input) {
        let batch = batch?;
        if all.is_empty() {
            all = batch;
        } else {
            all.extend(batch);
        }
    }
    if is::<K, [u8; KEY_LEN]>() {
        let order = sort_ten_byte_keys(&all, |row| {
            // SAFETY: closure types are checked zero-sized when the plan is built.
            let key = unsafe { conjure::<F>() }(row);
            // SAFETY: K is [u8; KEY_LEN] (checked just above).
            unsafe { std::mem::transmute_copy::<K, [u8; KEY_LEN]>(&key) }
        });
        return Ok(permute(all, order));
    }
    // SAFETY: closure types are checked zero-sized when the plan is built.
    let f: F = unsafe { conjure() };
    let mut keyed: Vec<(K, u32)> = all.iter().enumerate().map(|(i, r)| (f(r), i as u32)).collect();
    keyed.sort_unstable();
    Ok(permute(all, keyed.into_iter().map(|(_, i)| i).collect()))
}

fn views(blocks: &[RecordBatch]) -> Result<Vec<&[Record]>> {
    blocks
        .iter()
        .map(|b| records_view(b).ok_or_else(|| Error::Codec("a sort block is not a batch of records".into())))
        .collect()
}

/// Sorts record blocks without first gathering them: sorts packed (key, block, row)
/// integers, then copies each record once, straight from its block into an output chunk.
fn sort_record_blocks<T: Data, K: Data, F: Fn(&T) -> K + 'static>(blocks: Vec<RecordBatch>) -> Result<ChunkStream> {
    use rayon::prelude::*;
    let parts = views(&blocks)?;
    if parts.len() >= 1 << 16 || parts.iter().any(|p| p.len() >= 1 << 32) {
        let all: Vec<Record> = parts.concat();
        let order = sort_ten_byte_keys(&all, |r| r.key());
        return Ok(permute(
            cast_vec::<Record, T>(all).map_err(|_| Error::Plan("record cast".into()))?,
            order,
        ));
    }
    let mut packed: Vec<u128> = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
    for (b, part) in parts.iter().enumerate() {
        let rows = cast_slice::<Record, T>(part).ok_or_else(|| Error::Plan("record cast".into()))?;
        packed.par_extend(rows.par_iter().enumerate().map(|(r, row)| {
            // SAFETY: closure types are checked zero-sized when the plan is built; K is
            // [u8; KEY_LEN] (checked by the caller).
            let key = unsafe { std::mem::transmute_copy::<K, [u8; KEY_LEN]>(&conjure::<F>()(row)) };
            let mut wide = [0u8; 16];
            wide[..KEY_LEN].copy_from_slice(&key);
            u128::from_be_bytes(wide) | ((b as u128) << 32) | r as u128
        }));
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
/// (80 key bits, 32 index bits), so the sort compares integers, never bytes.
fn sort_ten_byte_keys<T>(rows: &[T], key: impl Fn(&T) -> [u8; KEY_LEN] + Sync) -> Vec<u32>
where
    T: Sync,
{
    use rayon::prelude::*;
    let mut packed: Vec<u128> = rows
        .par_iter()
        .enumerate()
        .map(|(i, r)| {
            let k = key(r);
            let mut wide = [0u8; 16];
            wide[..KEY_LEN].copy_from_slice(&k);
            (u128::from_be_bytes(wide) & !((1u128 << 48) - 1)) | i as u128
        })
        .collect();
    packed.par_sort_unstable();
    packed.into_iter().map(|p| p as u32).collect()
}

/// Streams `rows` in the order of `order` (a permutation of their indices).
fn permute<T: Data>(rows: Vec<T>, order: Vec<u32>) -> ChunkStream {
    match cast_vec::<T, Record>(rows) {
        Ok(records) => {
            let size = super::chunk_rows::<Record>();
            let order = std::sync::Arc::new(order);
            let chunks = order.len().div_ceil(size);
            Box::new((0..chunks).map(move |c| {
                let slice = &order[c * size..((c + 1) * size).min(order.len())];
                let out: Vec<Record> = slice.iter().map(|&i| records[i as usize]).collect();
                Ok(Chunk::from_rows(out))
            }))
        }
        Err(rows) => {
            let mut slots: Vec<Option<T>> = rows.into_iter().map(Some).collect();
            let sorted: Vec<T> = order.into_iter().filter_map(|i| slots[i as usize].take()).collect();
            chunked(sorted.into_iter())
        }
    }
}
