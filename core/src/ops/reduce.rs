//! The reduce side of shuffles: merge (`reduce_by_key`), group, join, de-duplicate and sort
//! the blocks of one reduce partition.

use std::hash::Hash;

use rustc_hash::{FxHashMap, FxHashSet};

use arrow_array::RecordBatch;

use crate::data::{BatchStream, Chunk, ChunkStream, Data, decode};
use crate::error::{Error, Result};
use crate::plan::shipped::conjure;
use crate::shuffle::{Side, SidePart};

use super::external::{Partitions, partition_bytes, partition_rows, spill_partition_of};
use super::in_memory_sort::{sort_batches, sort_bytes};
use super::sinks::{Combiner, reduce_fn};
use super::{chunked, table_bytes};

/// Input `which` of a reduce, its stretches told apart (see [`Side`]).
fn side_parts(sides: &mut [Side], which: usize) -> Result<Side> {
    if which >= sides.len() {
        return Err(Error::Plan(format!(
            "a reduce expected {} shuffle inputs, got {}",
            which + 1,
            sides.len()
        )));
    }
    Ok(std::mem::replace(&mut sides[which], Side { parts: Vec::new() }))
}

/// Every batch of input `which` of a reduce.
fn side(sides: &mut [Side], which: usize) -> Result<BatchStream> {
    Ok(side_parts(sides, which)?.into_stream())
}

/// Decodes every row of a shuffle side.
fn rows<T: Data>(stream: BatchStream) -> impl Iterator<Item = Result<Vec<T>>> {
    stream.map(|b| b.and_then(|b| decode::<T>(&b)))
}

/// A task's hash table, kept within its memory budget: `fit` reserves what the table takes
/// now, and when the pool refuses, the table's rows go to spill partitions and it starts
/// empty (its memory given back).
struct BoundedTable {
    reservation: crate::memory::Reservation,
    parts: Option<Partitions>,
}

impl BoundedTable {
    fn new() -> Self {
        BoundedTable {
            reservation: crate::memory::current().reservation(),
            parts: None,
        }
    }

    /// Holds `bytes` for the table; if the pool refuses, spills the rows `drain` takes out
    /// of it (leaving it empty, without its allocation).
    fn fit<R: Data>(&mut self, bytes: usize, drain: impl FnOnce() -> Vec<R>, part: impl Fn(&R) -> usize) -> Result<()> {
        if self.reservation.try_resize(bytes) {
            return Ok(());
        }
        let parts = match &mut self.parts {
            Some(p) => p,
            None => self.parts.insert(Partitions::new(self.reservation.pool(), 1)?),
        };
        parts.write(0, drain(), part)?;
        self.reservation.free();
        Ok(())
    }
}

/// Rows read back from a spill file, one at a time.
type RowIter<T> = Box<dyn Iterator<Item = Result<T>> + Send>;

/// Rows' bytes in `batch`, per row.
fn bytes_per_row(batch: &RecordBatch) -> usize {
    batch.get_array_memory_size() / batch.num_rows().max(1)
}

/// Each spilled partition in turn, its rows handed to `finish`, which builds the
/// partition's output (the partitions' spill files go when the stream ends). A partition
/// rebuilt in memory counts in the pool (as much as its files hold) until the next one is
/// read: it must be held whole, so the pool records it even past the budget.
fn per_partition<T: Data, U: Data>(
    parts: Partitions,
    finish: impl Fn(Box<dyn Iterator<Item = Result<T>> + Send>) -> Result<Vec<U>> + Send + 'static,
) -> Result<ChunkStream> {
    let (files, dir) = parts.finish()?;
    let mut files = files.into_iter();
    let size = super::chunk_rows::<U>();
    let mut pending: std::vec::IntoIter<U> = Vec::new().into_iter();
    let mut reservation = crate::memory::current().reservation();
    Ok(Box::new(std::iter::from_fn(move || {
        let _ = &dir;
        loop {
            let chunk: Vec<U> = pending.by_ref().take(size).collect();
            if !chunk.is_empty() {
                return Some(Ok(Chunk::from_rows(chunk)));
            }
            reservation.free();
            let part = files.next()?;
            reservation.grow(partition_bytes(&part));
            match partition_rows::<T>(&part[0]).and_then(&finish) {
                Ok(rows) => pending = rows.into_iter(),
                Err(e) => return Some(Err(e)),
            }
        }
    })))
}

/// `reduce_by_key`: merges the partial values of each key with `F`. A table that outgrows
/// the budget spills its partial values by key partition; each partition is merged alone.
///
/// # Safety
/// Its closure type must be one a value of which the job API was given and checked (zero
/// sized, `Copy`): the trampoline conjures values of it from nothing, which for any other
/// type (one never made, uninhabited, or with a `Drop` or an invariant) is undefined
/// behaviour. Only plans the job API built call it.
pub unsafe fn combine<K: Data + Hash + Eq, V: Data, F: Fn(V, V) -> V + 'static>(
    _state: &[u8],
    mut sides: Vec<Side>,
) -> Result<ChunkStream> {
    let mut combiner = Combiner::<K, V>::new(reduce_fn::<V, F>());
    let mut table = BoundedTable::new();
    for batch in side(&mut sides, 0)? {
        let batch = batch?;
        let row_bytes = bytes_per_row(&batch);
        for (k, v) in decode::<(K, V)>(&batch)? {
            combiner.add_owned(k, v);
        }
        let bytes = combiner.bytes(row_bytes);
        table.fit(bytes, || combiner.drain().collect(), |(k, _)| spill_partition_of(k))?;
    }
    let Some(mut parts) = table.parts.take() else {
        let reservation = table.reservation;
        return Ok(chunked(combiner.drain().inspect(move |_| {
            let _ = &reservation;
        })));
    };
    parts.write(0, combiner.drain().collect(), |(k, _)| spill_partition_of(k))?;
    drop(table);
    per_partition::<(K, V), (K, V)>(parts, |rows| {
        let mut combiner = Combiner::<K, V>::new(reduce_fn::<V, F>());
        for row in rows {
            let (k, v) = row?;
            combiner.add_owned(k, v);
        }
        Ok(combiner.drain().collect())
    })
}

/// A key's values as a grouping reduce gathers them: `group_by_key`'s list, `cogroup`'s
/// pair of lists. Spilled parts of one key's group are merged when its partition is read.
trait Group: Data + Default {
    /// Adds the values of `other`, a later part of the same key's group.
    fn merge(&mut self, other: Self);
}

impl<V: Data> Group for Vec<V> {
    fn merge(&mut self, other: Self) {
        self.extend(other);
    }
}

impl<V: Data, W: Data> Group for (Vec<V>, Vec<W>) {
    fn merge(&mut self, other: Self) {
        self.0.extend(other.0);
        self.1.extend(other.1);
    }
}

/// Adds the rows of one batch of a grouping reduce's side to its table.
type AddBatch<K, G> = fn(&RecordBatch, &mut FxHashMap<K, G>) -> Result<()>;

/// Gathers the rows of `inputs` (each side's batches with the function adding a batch's
/// rows to the table) into one `G` per key. A table that outgrows the budget spills its
/// groups by key partition; each partition is grouped alone.
fn grouped<K: Data + Hash + Eq, G: Group>(
    inputs: Vec<(BatchStream, AddBatch<K, G>)>,
    value_size: usize,
) -> Result<ChunkStream> {
    let mut map: FxHashMap<K, G> = FxHashMap::default();
    let mut table = BoundedTable::new();
    let mut values = 0usize;
    for (batches, add) in inputs {
        for batch in batches {
            let batch = batch?;
            let row_bytes = bytes_per_row(&batch);
            values += batch.num_rows();
            add(&batch, &mut map)?;
            // Values: their Vec slots (up to twice what they hold) and their rows' bytes.
            let bytes = table_bytes::<K, G>(map.capacity(), map.len(), 0) + values * (2 * value_size + row_bytes);
            table.fit(
                bytes,
                || {
                    values = 0;
                    std::mem::take(&mut map).into_iter().collect::<Vec<_>>()
                },
                |(k, _)| spill_partition_of(k),
            )?;
        }
    }
    let Some(mut parts) = table.parts.take() else {
        let reservation = table.reservation;
        return Ok(chunked(map.into_iter().inspect(move |_| {
            let _ = &reservation;
        })));
    };
    parts.write(0, map.drain().collect::<Vec<_>>(), |(k, _)| spill_partition_of(k))?;
    drop(table);
    // Spilled groups are parts of groups, in the order they were spilled.
    per_partition::<(K, G), (K, G)>(parts, |rows| {
        let mut map: FxHashMap<K, G> = FxHashMap::default();
        for row in rows {
            let (k, g) = row?;
            map.entry(k).or_default().merge(g);
        }
        Ok(map.into_iter().collect())
    })
}

/// `group_by_key`: collects each key's values (in the order they arrived), within the
/// budget (see [`grouped`]).
pub fn group<K: Data + Hash + Eq, V: Data>(_state: &[u8], mut sides: Vec<Side>) -> Result<ChunkStream> {
    fn add<K: Data + Hash + Eq, V: Data>(batch: &RecordBatch, map: &mut FxHashMap<K, Vec<V>>) -> Result<()> {
        for (k, v) in decode::<(K, V)>(batch)? {
            map.entry(k).or_default().push(v);
        }
        Ok(())
    }
    grouped::<K, Vec<V>>(vec![(side(&mut sides, 0)?, add::<K, V>)], std::mem::size_of::<V>())
}

/// `cogroup`: each key with its values on either side (an empty list where a side lacks
/// it), within the budget (see [`grouped`]).
pub fn cogroup<K: Data + Hash + Eq, V: Data, W: Data>(_state: &[u8], mut sides: Vec<Side>) -> Result<ChunkStream> {
    fn left<K: Data + Hash + Eq, V: Data, W: Data>(
        batch: &RecordBatch,
        map: &mut FxHashMap<K, (Vec<V>, Vec<W>)>,
    ) -> Result<()> {
        for (k, v) in decode::<(K, V)>(batch)? {
            map.entry(k).or_default().0.push(v);
        }
        Ok(())
    }
    fn right<K: Data + Hash + Eq, V: Data, W: Data>(
        batch: &RecordBatch,
        map: &mut FxHashMap<K, (Vec<V>, Vec<W>)>,
    ) -> Result<()> {
        for (k, w) in decode::<(K, W)>(batch)? {
            map.entry(k).or_default().1.push(w);
        }
        Ok(())
    }
    let inputs = vec![
        (side(&mut sides, 0)?, left::<K, V, W> as AddBatch<K, _>),
        (side(&mut sides, 1)?, right::<K, V, W>),
    ];
    grouped::<K, (Vec<V>, Vec<W>)>(inputs, std::mem::size_of::<V>().max(std::mem::size_of::<W>()))
}

fn flatten_groups<K: Hash + Eq + Clone, V>(map: &mut FxHashMap<K, (Vec<V>, bool)>) -> Vec<(K, V)> {
    std::mem::take(map)
        .into_iter()
        .flat_map(|(k, (vs, _))| vs.into_iter().map(move |v| (k.clone(), v)))
        .collect()
}

/// Which rows a join keeps and how it shapes them: matched pairs always; a side's rows
/// without a match on the other side only in an outer join keeping that side.
pub trait JoinShape<V, W>: 'static {
    /// The joined value (beside the key).
    type Out: Data;
    /// Whether left rows without a match are kept.
    const KEEP_LEFT: bool;
    /// Whether right rows without a match are kept.
    const KEEP_RIGHT: bool;
    /// A matched pair.
    fn both(v: V, w: W) -> Self::Out;
    /// A left row without a match (called only when [`JoinShape::KEEP_LEFT`]).
    fn left_only(v: V) -> Option<Self::Out>;
    /// A right row without a match, if this join keeps it.
    fn right_only(w: W) -> Option<Self::Out>;
}

/// `join`: matched pairs only.
pub struct Inner;
/// `left_outer_join`: every left row, with `None` where the right side lacks its key.
pub struct LeftOuter;
/// `right_outer_join`: every right row, with `None` where the left side lacks its key.
pub struct RightOuter;
/// `full_outer_join`: every row of either side.
pub struct FullOuter;

impl<V: Data, W: Data> JoinShape<V, W> for Inner {
    type Out = (V, W);
    const KEEP_LEFT: bool = false;
    const KEEP_RIGHT: bool = false;
    fn both(v: V, w: W) -> (V, W) {
        (v, w)
    }
    fn left_only(_: V) -> Option<(V, W)> {
        None
    }
    fn right_only(_: W) -> Option<(V, W)> {
        None
    }
}

impl<V: Data, W: Data> JoinShape<V, W> for LeftOuter {
    type Out = (V, Option<W>);
    const KEEP_LEFT: bool = true;
    const KEEP_RIGHT: bool = false;
    fn both(v: V, w: W) -> (V, Option<W>) {
        (v, Some(w))
    }
    fn left_only(v: V) -> Option<(V, Option<W>)> {
        Some((v, None))
    }
    fn right_only(_: W) -> Option<(V, Option<W>)> {
        None
    }
}

impl<V: Data, W: Data> JoinShape<V, W> for RightOuter {
    type Out = (Option<V>, W);
    const KEEP_LEFT: bool = false;
    const KEEP_RIGHT: bool = true;
    fn both(v: V, w: W) -> (Option<V>, W) {
        (Some(v), w)
    }
    fn left_only(_: V) -> Option<(Option<V>, W)> {
        None
    }
    fn right_only(w: W) -> Option<(Option<V>, W)> {
        Some((None, w))
    }
}

impl<V: Data, W: Data> JoinShape<V, W> for FullOuter {
    type Out = (Option<V>, Option<W>);
    const KEEP_LEFT: bool = true;
    const KEEP_RIGHT: bool = true;
    fn both(v: V, w: W) -> (Option<V>, Option<W>) {
        (Some(v), Some(w))
    }
    fn left_only(v: V) -> Option<(Option<V>, Option<W>)> {
        Some((Some(v), None))
    }
    fn right_only(w: W) -> Option<(Option<V>, Option<W>)> {
        Some((None, Some(w)))
    }
}

/// A join's build side: each key's left values, and whether a right row matched it.
type BuildTable<K, V> = FxHashMap<K, (Vec<V>, bool)>;

/// A join partition being joined: its build table and its probe side, chunk by chunk.
type JoinPartition<K, V, W> = (BuildTable<K, V>, ProbeChunks<K, W>);

/// A probe side's rows, a chunk at a time.
type ProbeChunks<K, W> = Box<dyn Iterator<Item = Result<Vec<(K, W)>>> + Send>;

/// `join` and the outer joins: a hash join, building on the left side and streaming the
/// right, shaped by `S`. A build side that outgrows the budget turns it into a grace hash
/// join: both sides go to spill partitions by key, and each partition is joined alone.
pub fn join<K, V, W, S>(_state: &[u8], mut sides: Vec<Side>) -> Result<ChunkStream>
where
    K: Data + Hash + Eq + Clone,
    V: Data + Clone,
    W: Data + Clone,
    S: JoinShape<V, W>,
{
    let mut build: BuildTable<K, V> = FxHashMap::default();
    let pool = crate::memory::current();
    let mut reservation = pool.reservation();
    let mut parts: Option<Partitions> = None;
    let mut built = 0usize;
    for batch in side(&mut sides, 0)? {
        let batch = batch?;
        let rows = decode::<(K, V)>(&batch)?;
        if let Some(parts) = &mut parts {
            parts.write(0, rows, |(k, _)| spill_partition_of(k))?;
            continue;
        }
        let row_bytes = bytes_per_row(&batch);
        built += batch.num_rows();
        for (k, v) in rows {
            build.entry(k).or_default().0.push(v);
        }
        let bytes = table_bytes::<K, (Vec<V>, bool)>(build.capacity(), build.len(), 0)
            + built * (2 * std::mem::size_of::<V>() + row_bytes);
        if !reservation.try_resize(bytes) {
            let mut spilled = Partitions::new(&pool, 2)?;
            spilled.write(0, flatten_groups(&mut build), |(k, _)| spill_partition_of(k))?;
            reservation.free();
            parts = Some(spilled);
        }
    }
    let probe = side(&mut sides, 1)?;
    let Some(mut parts) = parts else {
        let mut whole = Some((build, Box::new(rows::<(K, W)>(probe)) as ProbeChunks<K, W>));
        return Ok(joined::<K, V, W, S>(move || {
            let _ = &reservation;
            whole.take().map(Ok)
        }));
    };
    for batch in rows::<(K, W)>(probe) {
        parts.write(1, batch?, |(k, _)| spill_partition_of(k))?;
    }
    let (files, dir) = parts.finish()?;
    let mut files = files.into_iter();
    // Per spilled partition: its build side in a table, counted in the pool (as much as its
    // file holds, even past the budget: it must be whole), then its probe side streamed
    // against it a chunk at a time.
    let size = super::chunk_rows::<(K, W)>();
    let mut reservation = pool.reservation();
    Ok(joined::<K, V, W, S>(move || {
        let _ = &dir;
        reservation.free();
        let part = files.next()?;
        reservation.grow(partition_bytes(&part[..1]));
        Some((|| {
            let mut build: BuildTable<K, V> = FxHashMap::default();
            for row in partition_rows::<(K, V)>(&part[0])? {
                let (k, v) = row?;
                build.entry(k).or_default().0.push(v);
            }
            let mut probe = partition_rows::<(K, W)>(&part[1])?;
            let chunks: ProbeChunks<K, W> = Box::new(std::iter::from_fn(move || {
                match probe.by_ref().take(size).collect::<Result<Vec<(K, W)>>>() {
                    Ok(chunk) if chunk.is_empty() => None,
                    other => Some(other),
                }
            }));
            Ok((build, chunks))
        })())
    }))
}

/// The joined rows of the partitions `next_partition` opens in turn: each partition's probe
/// chunks against its table, then (for a join keeping left rows) its unmatched left rows.
fn joined<K, V, W, S>(
    mut next_partition: impl FnMut() -> Option<Result<JoinPartition<K, V, W>>> + Send + 'static,
) -> ChunkStream
where
    K: Data + Hash + Eq + Clone,
    V: Data + Clone,
    W: Data + Clone,
    S: JoinShape<V, W>,
{
    let size = super::chunk_rows::<(K, S::Out)>();
    let mut current: Option<JoinPartition<K, V, W>> = None;
    let mut unmatched: std::vec::IntoIter<(K, S::Out)> = Vec::new().into_iter();
    Box::new(std::iter::from_fn(move || {
        loop {
            let chunk: Vec<(K, S::Out)> = unmatched.by_ref().take(size).collect();
            if !chunk.is_empty() {
                return Some(Ok(Chunk::from_rows(chunk)));
            }
            if let Some((build, probe)) = &mut current {
                match probe.next() {
                    Some(Ok(batch)) => {
                        let out = probe_rows::<K, V, W, S>(build, batch);
                        if !out.is_empty() {
                            return Some(Ok(Chunk::from_rows(out)));
                        }
                    }
                    Some(Err(e)) => return Some(Err(e)),
                    None => {
                        if let Some((build, _)) = current.take()
                            && S::KEEP_LEFT
                        {
                            unmatched = unmatched_left::<K, V, W, S>(build).into_iter();
                        }
                    }
                }
                continue;
            }
            match next_partition()? {
                Ok(partition) => current = Some(partition),
                Err(e) => return Some(Err(e)),
            }
        }
    }))
}

/// The joined rows of `probe` against `build` (marking the keys matched).
fn probe_rows<K, V, W, S>(build: &mut BuildTable<K, V>, probe: Vec<(K, W)>) -> Vec<(K, S::Out)>
where
    K: Hash + Eq + Clone,
    V: Clone,
    W: Clone,
    S: JoinShape<V, W>,
{
    let mut out: Vec<(K, S::Out)> = Vec::new();
    for (k, w) in probe {
        match build.get_mut(&k) {
            Some((vs, matched)) => {
                *matched = true;
                for v in vs.iter() {
                    out.push((k.clone(), S::both(v.clone(), w.clone())));
                }
            }
            None => {
                if let Some(row) = S::right_only(w) {
                    out.push((k, row));
                }
            }
        }
    }
    out
}

/// The left rows of `build` no right row matched.
fn unmatched_left<K, V, W, S: JoinShape<V, W>>(build: BuildTable<K, V>) -> Vec<(K, S::Out)>
where
    K: Clone,
{
    let mut out = Vec::new();
    for (k, (vs, matched)) in build {
        if !matched {
            out.extend(vs.into_iter().filter_map(|v| Some((k.clone(), S::left_only(v)?))));
        }
    }
    out
}

/// `repartition`: the partition's rows as they arrive, undecoded.
pub fn concat<T: Data>(_state: &[u8], mut sides: Vec<Side>) -> Result<ChunkStream> {
    Ok(Box::new(side(&mut sides, 0)?.map(|batch| batch.map(Chunk::Arrow))))
}

/// `cartesian`: every pair of a left row and a right row of this partition (one slice of
/// each side, see [`super::sinks::Grid`]). The left slice is held in memory within the
/// budget, on disk past it (read again for each chunk of the right side).
pub fn cartesian<T: Data + Clone, U: Data + Clone>(_state: &[u8], mut sides: Vec<Side>) -> Result<ChunkStream> {
    let pool = crate::memory::current();
    let mut reservation = pool.reservation();
    let mut held: Vec<T> = Vec::new();
    let mut spilled: Option<Partitions> = None;
    for batch in side(&mut sides, 0)? {
        let batch = batch?;
        let rows = decode::<T>(&batch)?;
        if let Some(parts) = &mut spilled {
            parts.write(0, rows, |_| 0)?;
            continue;
        }
        held.extend(rows);
        if !reservation.try_grow(batch.get_array_memory_size() * 2) {
            let mut parts = Partitions::new(&pool, 1)?;
            parts.write(0, std::mem::take(&mut held), |_| 0)?;
            reservation.free();
            spilled = Some(parts);
        }
    }
    let left = match spilled {
        None => LeftSlice::Memory(std::sync::Arc::new(held)),
        Some(parts) => {
            let (mut files, dir) = parts.finish()?;
            LeftSlice::Disk(files.swap_remove(0).swap_remove(0), dir)
        }
    };
    let size = super::chunk_rows::<(T, U)>();
    let mut right = rows::<U>(side(&mut sides, 1)?);
    let mut pairs: Box<dyn Iterator<Item = Result<(T, U)>> + Send> = Box::new(std::iter::empty());
    Ok(Box::new(std::iter::from_fn(move || {
        let _ = &reservation;
        loop {
            let chunk: Result<Vec<(T, U)>> = pairs.by_ref().take(size).collect();
            match chunk {
                Ok(chunk) if chunk.is_empty() => {}
                other => return Some(other.map(Chunk::from_rows)),
            }
            let us = match right.next()? {
                Ok(us) => std::sync::Arc::new(us),
                Err(e) => return Some(Err(e)),
            };
            pairs = match left.rows() {
                Ok(ts) => Box::new(ts.flat_map(move |t| {
                    let us = us.clone();
                    let pairs: Box<dyn Iterator<Item = Result<(T, U)>> + Send> = match t {
                        Ok(t) => Box::new((0..us.len()).map(move |i| Ok((t.clone(), us[i].clone())))),
                        Err(e) => Box::new(std::iter::once(Err(e))),
                    };
                    pairs
                })),
                Err(e) => return Some(Err(e)),
            };
        }
    })))
}

/// `cartesian`'s left slice: in memory, or in a spill file (with the directory holding
/// it, removed when the slice is dropped).
enum LeftSlice<T> {
    Memory(std::sync::Arc<Vec<T>>),
    Disk(Option<std::path::PathBuf>, #[allow(dead_code)] tempfile::TempDir),
}

impl<T: Data + Clone> LeftSlice<T> {
    /// Its rows, from the start.
    fn rows(&self) -> Result<RowIter<T>> {
        match self {
            LeftSlice::Memory(rows) => {
                let rows = rows.clone();
                Ok(Box::new((0..rows.len()).map(move |i| Ok(rows[i].clone()))))
            }
            LeftSlice::Disk(file, _) => partition_rows::<T>(file),
        }
    }
}

/// `distinct`: one copy of each row. A set that outgrows the budget spills its rows by
/// partition; each partition is de-duplicated alone.
pub fn distinct<T: Data + Hash + Eq>(_state: &[u8], mut sides: Vec<Side>) -> Result<ChunkStream> {
    let mut seen: FxHashSet<T> = FxHashSet::default();
    let mut table = BoundedTable::new();
    for batch in side(&mut sides, 0)? {
        let batch = batch?;
        let row_bytes = bytes_per_row(&batch);
        seen.extend(decode::<T>(&batch)?);
        let bytes = table_bytes::<T, ()>(seen.capacity(), seen.len(), row_bytes);
        table.fit(
            bytes,
            || std::mem::take(&mut seen).into_iter().collect(),
            spill_partition_of,
        )?;
    }
    let Some(mut parts) = table.parts.take() else {
        let reservation = table.reservation;
        return Ok(chunked(seen.into_iter().inspect(move |_| {
            let _ = &reservation;
        })));
    };
    parts.write(0, seen.drain().collect(), spill_partition_of)?;
    drop(table);
    per_partition::<T, T>(parts, |rows| {
        let mut seen: FxHashSet<T> = FxHashSet::default();
        for row in rows {
            seen.insert(row?);
        }
        Ok(seen.into_iter().collect())
    })
}

/// `sort_by_key`: sorts the partition by the key `F` computes (ascending; ties keep the
/// order in which rows arrived, so the result is deterministic). Within the task's memory
/// budget it sorts in memory; past it, it sorts what it holds into a run on disk and
/// starts again, then merges the runs (an external merge sort). Runs the map tasks
/// already sorted (a spilling shuffle asks its sinks for them) join the merge as they
/// are: the rows are not written a second time.
///
/// # Safety
/// Its closure type must be one a value of which the job API was given and checked (zero
/// sized, `Copy`): the trampoline conjures values of it from nothing, which for any other
/// type (one never made, uninhabited, or with a `Drop` or an invariant) is undefined
/// behaviour. Only plans the job API built call it.
pub unsafe fn sort<T: Data, K: Data + Ord, F: Fn(&T) -> K + 'static>(
    _state: &[u8],
    mut sides: Vec<Side>,
) -> Result<ChunkStream> {
    let input = side_parts(&mut sides, 0)?;
    let pool = crate::memory::current();
    let mut reservation = pool.reservation();
    let mut held: Vec<RecordBatch> = Vec::new();
    let mut runs = super::external::Runs::new(&pool);
    for part in input.parts {
        let blocks = match part {
            SidePart::Blocks(blocks) => blocks,
            SidePart::SortedRun(run, bytes) => {
                // Runs the map side sorted are merged as they are; what came before them
                // becomes a run first, so that ties keep the order rows arrived in.
                write_held::<T, K, F>(&mut runs, &mut held, &mut reservation)?;
                runs.add_sorted(run, bytes);
                continue;
            }
        };
        for batch in blocks {
            let batch = batch?;
            let size = sort_bytes::<T, K>(&batch, batch.get_array_memory_size());
            if !reservation.try_grow(size) {
                write_held::<T, K, F>(&mut runs, &mut held, &mut reservation)?;
                if !reservation.try_grow(size) {
                    // One batch is the least a sort can hold.
                    reservation.grow(size);
                }
            }
            held.push(batch);
        }
    }
    if runs.is_empty() {
        let sorted = sort_batches::<T, K, F>(held)?;
        // The reservation lives as long as the sorted rows are being handed on.
        return Ok(Box::new(sorted.inspect(move |_| {
            let _ = &reservation;
        })));
    }
    write_held::<T, K, F>(&mut runs, &mut held, &mut reservation)?;
    drop(reservation);
    runs.merge::<T, K>(|row: &T| {
        // SAFETY: closure types are checked zero-sized when the plan is built.
        let f = unsafe { conjure::<F>() };
        f(row)
    })
}

/// Sorts what `held` holds (if anything) into a run, and gives its memory back.
fn write_held<T: Data, K: Data + Ord, F: Fn(&T) -> K + 'static>(
    runs: &mut super::external::Runs,
    held: &mut Vec<RecordBatch>,
    reservation: &mut crate::memory::Reservation,
) -> Result<()> {
    if !held.is_empty() {
        runs.write::<T>(sort_batches::<T, K, F>(std::mem::take(held))?)?;
        reservation.free();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::in_memory_sort::sort_record_blocks;
    use super::*;
    use crate::data::record::{KEY_LEN, Record};

    use crate::data::record::RECORD_LEN;

    /// A key of the record's payload, not of its own key: what a user may sort by.
    fn payload_key(r: &Record) -> [u8; KEY_LEN] {
        let mut key = [0u8; KEY_LEN];
        key.copy_from_slice(&r.as_bytes()[RECORD_LEN - KEY_LEN..]);
        key
    }

    fn sorted_keys<F: Fn(&Record) -> [u8; KEY_LEN] + 'static>(_: F, blocks: Vec<RecordBatch>) -> Vec<[u8; KEY_LEN]> {
        let mut keys = Vec::new();
        for chunk in sort_record_blocks::<Record, [u8; KEY_LEN], F>(blocks).expect("sorts") {
            let records: Vec<Record> = chunk.expect("chunk").into_rows().expect("records");
            keys.extend(records.iter().map(payload_key));
        }
        keys
    }

    #[test]
    fn a_spilled_partition_rebuilt_in_memory_counts_in_the_pool() {
        let root = tempfile::tempdir().expect("dir");
        let limit = crate::memory::MIN_BUDGET;
        let pool = crate::memory::MemoryPool::new(limit, root.path().join("spill"));
        let batches: Vec<Result<RecordBatch>> = (0..40u64)
            .map(|b| crate::data::encode(&(0..5000u64).map(|i| (i % 3000, b * 5000 + i)).collect::<Vec<_>>()))
            .collect();
        let groups = crate::memory::scope(pool.clone(), || {
            let sides = vec![Side::blocks(Box::new(batches.into_iter()))];
            group::<u64, u64>(&[], sides)
                .expect("group")
                .map(|c| c.expect("chunk").into_rows::<(u64, Vec<u64>)>().expect("rows").len())
                .sum::<usize>()
        });
        assert_eq!(groups, 3000);
        assert!(pool.spilled() > 0, "it did not spill");
        // A partition (about a sixteenth of 200,000 pairs) is larger than the budget: it is
        // held whole, and the pool says so.
        assert!(pool.peak() > limit, "peak {} within {limit}", pool.peak());
        assert_eq!(pool.used(), 0);
    }

    #[test]
    fn record_blocks_sort_by_the_users_key_however_many_blocks_there_are() {
        let record = |i: u32| {
            let mut r = Record([0u8; RECORD_LEN]);
            // Its own key ascends with i, the payload's key descends: the two orders differ.
            r.0[..4].copy_from_slice(&i.to_be_bytes());
            r.0[RECORD_LEN - 4..].copy_from_slice(&(u32::MAX - i).to_be_bytes());
            r
        };
        for blocks in [16usize, 1 << 16] {
            let batches: Vec<RecordBatch> = (0..blocks as u32)
                .map(|i| {
                    let bytes = Record::vec_into_bytes(vec![record(i)]);
                    crate::data::records_batch(arrow_buffer::Buffer::from_vec(bytes)).expect("batch")
                })
                .collect();
            let keys = sorted_keys(payload_key, batches);
            assert_eq!(keys.len(), blocks);
            assert!(
                keys.windows(2).all(|w| w[0] <= w[1]),
                "{blocks} blocks are not in the order of the user's key"
            );
        }
    }
}
