//! The map side of shuffles: hash partitioning (with map-side combine for
//! `reduce_by_key`, de-duplication for `distinct`) and range partitioning for sorts.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};

use rustc_hash::{FxHashMap, FxHashSet, FxHasher};

use crate::data::record::Record;
use crate::data::{Chunk, Data, cast_slice, encode_vec, records_view};
use crate::error::{Error, Result};
use crate::plan::shipped::conjure;
use crate::shuffle::{BlockWriter, ShuffleSink};

/// Distinct keys a combining sink holds before it flushes partial aggregates, bounding
/// its memory whatever the number of keys.
pub const COMBINE_LIMIT: usize = 1 << 20;

/// The reduce partition of `key` among `n`: a fixed hash (the same in every process of
/// one binary), mixed so that the partition does not correlate with hash-table buckets.
pub fn reduce_partition_of<K: Hash + ?Sized>(key: &K, n: u32) -> u32 {
    let mut hasher = FxHasher::default();
    key.hash(&mut hasher);
    let mut x = hasher.finish();
    // murmur3's 64-bit finaliser
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^= x >> 33;
    ((x as u128 * n as u128) >> 64) as u32
}

/// Per-partition row buffers that write a block whenever one fills. Their capacity is
/// counted in the task's memory pool, and sized so that every partition's buffer fits in
/// an eighth of the budget: many partitions make smaller blocks, not a larger footprint.
struct Buckets<T> {
    buckets: Vec<Vec<T>>,
    flush_at: usize,
    /// The buffers' capacity, held in the task's budget.
    reservation: crate::memory::Reservation,
}

/// The least rows a bucket holds before it writes a block (unless a chunk is smaller).
const MIN_BUCKET_ROWS: usize = 1024;

impl<T: Data> Buckets<T> {
    fn new(partitions: u32) -> Self {
        let pool = crate::memory::current();
        let partitions = partitions.max(1) as usize;
        let chunk = super::chunk_rows::<T>();
        let fits = pool.limit() / 8 / partitions / std::mem::size_of::<T>().max(1);
        Buckets {
            buckets: (0..partitions).map(|_| Vec::new()).collect(),
            flush_at: fits.clamp(MIN_BUCKET_ROWS.min(chunk), chunk),
            reservation: pool.reservation(),
        }
    }

    /// Bytes one bucket's buffer takes.
    fn bucket_bytes(&self) -> usize {
        self.flush_at * std::mem::size_of::<T>()
    }

    fn push(&mut self, partition: u32, row: T, out: &mut dyn BlockWriter) -> Result<()> {
        let partitions = self.buckets.len();
        let bytes = self.bucket_bytes();
        let bucket = self
            .buckets
            .get_mut(partition as usize)
            .ok_or_else(|| Error::Plan(format!("row sent to partition {partition} of {partitions}")))?;
        if bucket.capacity() == 0 {
            // Reserve the whole block at once: untouched capacity costs nothing, and the
            // bucket never copies itself while growing. Counted even past the budget (a
            // row needs a buffer): the shuffle's stored blocks spill sooner instead.
            self.reservation.grow(bytes);
            bucket.reserve_exact(self.flush_at);
        }
        bucket.push(row);
        if bucket.len() >= self.flush_at {
            let full = std::mem::take(bucket);
            self.reservation.shrink(bytes);
            out.write(partition, encode_vec(full)?)?;
        }
        Ok(())
    }

    fn flush(&mut self, out: &mut dyn BlockWriter) -> Result<()> {
        for (p, bucket) in self.buckets.iter_mut().enumerate() {
            if !bucket.is_empty() {
                let mut rows = std::mem::take(bucket);
                if rows.len() < rows.capacity() / 2 {
                    // A block keeps its buffer: do not hold (and count) unused capacity.
                    rows.shrink_to_fit();
                }
                out.write(p as u32, encode_vec(rows)?)?;
            }
        }
        self.reservation.free();
        Ok(())
    }
}

/// Hash-partitions `(K, V)` rows (`group_by_key`, `join`).
struct HashSink<K, V> {
    buckets: Buckets<(K, V)>,
}

impl<K: Data + Hash, V: Data> ShuffleSink for HashSink<K, V> {
    fn push(&mut self, chunk: Chunk, out: &mut dyn BlockWriter) -> Result<()> {
        let n = self.buckets.buckets.len() as u32;
        for (k, v) in chunk.into_rows::<(K, V)>()? {
            let p = reduce_partition_of(&k, n);
            self.buckets.push(p, (k, v), out)?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>, out: &mut dyn BlockWriter) -> Result<()> {
        self.buckets.flush(out)
    }
}

/// Sink of `group_by_key` and `join`.
pub fn hash<K: Data + Hash, V: Data>(_state: &[u8], partitions: u32) -> Result<Box<dyn ShuffleSink>> {
    Ok(Box::new(HashSink::<K, V> {
        buckets: Buckets::new(partitions),
    }))
}

/// A map task's table of partial aggregates: one value per key, merged with the job's
/// reduce function as pairs arrive. `Dataset::flat_map_reduce`'s closure fills one with
/// borrowed keys, so a key is copied only the first time the table sees it.
pub struct Combiner<K, V> {
    map: FxHashMap<K, Option<V>>,
    reduce: fn(V, V) -> V,
}

impl<K: Hash + Eq, V> Combiner<K, V> {
    /// An empty table merging with `reduce`.
    pub(crate) fn new(reduce: fn(V, V) -> V) -> Self {
        Combiner {
            map: FxHashMap::default(),
            reduce,
        }
    }

    /// Adds `value` under `key`, merging it with the value the table holds for that key;
    /// `key` is copied into the table only if it is new there.
    #[inline]
    pub fn add<Q>(&mut self, key: &Q, value: V)
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq + ToOwned<Owned = K>,
    {
        match self.map.get_mut(key) {
            Some(slot) => merge(slot, self.reduce, value),
            None => {
                self.map.insert(key.to_owned(), Some(value));
            }
        }
    }

    /// Adds `value` under an owned `key` (no copy).
    #[inline]
    pub(crate) fn add_owned(&mut self, key: K, value: V) {
        merge(self.map.entry(key).or_insert(None), self.reduce, value);
    }

    /// Number of distinct keys held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the table holds no key.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Bytes the table is taken to hold with `heap_per_entry` bytes per entry on the heap
    /// (see [`super::table_bytes`]).
    pub(crate) fn bytes(&self, heap_per_entry: usize) -> usize {
        super::table_bytes::<K, Option<V>>(self.map.capacity(), self.map.len(), heap_per_entry)
    }

    /// Empties the table (giving its memory back), yielding each key with its merged value.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = (K, V)> + use<K, V> {
        std::mem::take(&mut self.map)
            .into_iter()
            .filter_map(|(k, v)| Some((k, v?)))
    }
}

/// Merges `value` into `slot` with `reduce`.
#[inline]
fn merge<V>(slot: &mut Option<V>, reduce: fn(V, V) -> V, value: V) {
    *slot = Some(match slot.take() {
        Some(old) => reduce(old, value),
        None => value,
    });
}

/// The shipped reduce closure `F` as a plain function pointer.
pub(crate) fn reduce_fn<V, F: Fn(V, V) -> V + 'static>() -> fn(V, V) -> V {
    |a, b| {
        // SAFETY: closure types are checked zero-sized when the plan is built.
        let f: F = unsafe { conjure() };
        f(a, b)
    }
}

/// A [`Combiner`] within the task's memory budget: when its table outgrows its share (or
/// [`COMBINE_LIMIT`] keys), the partial aggregates are hash-partitioned into blocks.
struct BoundedCombiner<K, V> {
    partitions: u32,
    combiner: Combiner<K, V>,
    /// The table's share of the task's memory budget.
    reservation: crate::memory::Reservation,
}

/// Bytes a map-side table's entry is taken to hold on the heap (its rows are not Arrow yet).
const SINK_HEAP_PER_ENTRY: usize = 16;

/// Holds `bytes` of `reservation` for a map-side table of `len` entries; `false` when the
/// table should flush (the pool refused, or it reached [`COMBINE_LIMIT`]).
fn sink_fits(reservation: &mut crate::memory::Reservation, bytes: usize, len: usize) -> bool {
    len < COMBINE_LIMIT && reservation.try_resize(bytes)
}

impl<K: Data + Hash + Eq, V: Data> BoundedCombiner<K, V> {
    fn new(partitions: u32, reduce: fn(V, V) -> V) -> Self {
        BoundedCombiner {
            partitions,
            combiner: Combiner::new(reduce),
            reservation: crate::memory::current().reservation(),
        }
    }

    /// Flushes the table if it no longer fits its budget.
    fn check(&mut self, out: &mut dyn BlockWriter) -> Result<()> {
        if !sink_fits(
            &mut self.reservation,
            self.combiner.bytes(SINK_HEAP_PER_ENTRY),
            self.combiner.len(),
        ) {
            self.spill(out)?;
        }
        Ok(())
    }

    fn spill(&mut self, out: &mut dyn BlockWriter) -> Result<()> {
        let mut buckets = Buckets::<(K, V)>::new(self.partitions);
        for (k, v) in self.combiner.drain() {
            buckets.push(reduce_partition_of(&k, self.partitions), (k, v), out)?;
        }
        self.reservation.free();
        buckets.flush(out)
    }
}

/// Rows a map task combines before it judges whether combining pays (as DataFusion's
/// partial aggregation probes its first rows).
pub const COMBINE_PROBE_ROWS: u64 = 100_000;
/// Combining stops when the probed rows held more than this share of distinct keys: nearly
/// every row a key of its own (db-benchmark's q10, a join key) gains nothing from a table
/// and costs one more hash and insert per row.
pub const COMBINE_SKIP_RATIO: f64 = 0.8;

/// Combines `(K, V)` rows per key before partitioning (`reduce_by_key`), or, once its first
/// [`COMBINE_PROBE_ROWS`] rows show that keys hardly repeat, partitions them as they come
/// (the reduce side combines them either way).
struct CombineSink<K, V> {
    table: BoundedCombiner<K, V>,
    /// Rows probed so far, and the distinct keys among them (tables flushed included).
    probed: u64,
    distinct: u64,
    /// Set when combining stopped: the rows' buckets from then on.
    passing: Option<Buckets<(K, V)>>,
}

impl<K: Data + Hash + Eq, V: Data> ShuffleSink for CombineSink<K, V> {
    fn push(&mut self, chunk: Chunk, out: &mut dyn BlockWriter) -> Result<()> {
        let rows = chunk.into_rows::<(K, V)>()?;
        if let Some(buckets) = &mut self.passing {
            let partitions = self.table.partitions;
            for (k, v) in rows {
                buckets.push(reduce_partition_of(&k, partitions), (k, v), out)?;
            }
            return Ok(());
        }
        let probing = self.probed < COMBINE_PROBE_ROWS;
        let before = self.table.combiner.len();
        let count = rows.len() as u64;
        for (k, v) in rows {
            self.table.combiner.add_owned(k, v);
        }
        if probing {
            self.probed += count;
            self.distinct += (self.table.combiner.len() - before) as u64;
            if self.probed >= COMBINE_PROBE_ROWS && self.distinct as f64 > COMBINE_SKIP_RATIO * self.probed as f64 {
                self.table.spill(out)?;
                self.passing = Some(Buckets::new(self.table.partitions));
                return Ok(());
            }
        }
        self.table.check(out)
    }

    fn finish(mut self: Box<Self>, out: &mut dyn BlockWriter) -> Result<()> {
        if let Some(mut buckets) = self.passing.take() {
            buckets.flush(out)?;
        }
        self.table.spill(out)
    }
}

/// Sink of `reduce_by_key`: combines map-side with `F`, then hash-partitions.
///
/// # Safety
/// Its closure type must be one a value of which the job API was given and checked (zero
/// sized, `Copy`): the trampoline conjures values of it from nothing, which for any other
/// type (one never made, uninhabited, or with a `Drop` or an invariant) is undefined
/// behaviour. Only plans the job API built call it.
pub unsafe fn combine<K: Data + Hash + Eq, V: Data, F: Fn(V, V) -> V + 'static>(
    _state: &[u8],
    partitions: u32,
) -> Result<Box<dyn ShuffleSink>> {
    Ok(Box::new(CombineSink::<K, V> {
        table: BoundedCombiner::new(partitions, reduce_fn::<V, F>()),
        probed: 0,
        distinct: 0,
        passing: None,
    }))
}

/// Hands each `T` row to `E`, which adds pairs to the map task's [`Combiner`]
/// (`flat_map_reduce`).
struct EmitCombineSink<T, K, V, E> {
    table: BoundedCombiner<K, V>,
    _types: std::marker::PhantomData<fn(T) -> E>,
}

impl<T: Data, K: Data + Hash + Eq, V: Data, E: Fn(&T, &mut Combiner<K, V>) + 'static> ShuffleSink
    for EmitCombineSink<T, K, V, E>
{
    fn push(&mut self, chunk: Chunk, out: &mut dyn BlockWriter) -> Result<()> {
        // SAFETY: closure types are checked zero-sized when the plan is built.
        let emit: E = unsafe { conjure() };
        for row in &chunk.into_rows::<T>()? {
            emit(row, &mut self.table.combiner);
        }
        self.table.check(out)
    }

    fn finish(mut self: Box<Self>, out: &mut dyn BlockWriter) -> Result<()> {
        self.table.spill(out)
    }
}

/// Sink of `flat_map_reduce`: `E` emits pairs with borrowed keys into a table combined
/// with `F`, which is hash-partitioned like [`combine`]'s.
///
/// # Safety
/// Its closure type must be one a value of which the job API was given and checked (zero
/// sized, `Copy`): the trampoline conjures values of it from nothing, which for any other
/// type (one never made, uninhabited, or with a `Drop` or an invariant) is undefined
/// behaviour. Only plans the job API built call it.
pub unsafe fn emit_combine<T: Data, K: Data + Hash + Eq, V: Data, E, F>(
    _state: &[u8],
    partitions: u32,
) -> Result<Box<dyn ShuffleSink>>
where
    E: Fn(&T, &mut Combiner<K, V>) + 'static,
    F: Fn(V, V) -> V + 'static,
{
    Ok(Box::new(EmitCombineSink::<T, K, V, E> {
        table: BoundedCombiner::new(partitions, reduce_fn::<V, F>()),
        _types: std::marker::PhantomData,
    }))
}

/// De-duplicates rows before partitioning (`distinct`).
struct DistinctSink<T> {
    partitions: u32,
    seen: FxHashSet<T>,
    /// The table's share of the task's memory budget.
    reservation: crate::memory::Reservation,
}

impl<T: Data + Hash + Eq> DistinctSink<T> {
    fn spill(&mut self, out: &mut dyn BlockWriter) -> Result<()> {
        let mut buckets = Buckets::<T>::new(self.partitions);
        for x in std::mem::take(&mut self.seen) {
            buckets.push(reduce_partition_of(&x, self.partitions), x, out)?;
        }
        self.reservation.free();
        buckets.flush(out)
    }
}

impl<T: Data + Hash + Eq> ShuffleSink for DistinctSink<T> {
    fn push(&mut self, chunk: Chunk, out: &mut dyn BlockWriter) -> Result<()> {
        self.seen.extend(chunk.into_rows::<T>()?);
        let bytes = super::table_bytes::<T, ()>(self.seen.capacity(), self.seen.len(), SINK_HEAP_PER_ENTRY);
        if !sink_fits(&mut self.reservation, bytes, self.seen.len()) {
            self.spill(out)?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>, out: &mut dyn BlockWriter) -> Result<()> {
        self.spill(out)
    }
}

/// Sink of `distinct`.
pub fn distinct<T: Data + Hash + Eq>(_state: &[u8], partitions: u32) -> Result<Box<dyn ShuffleSink>> {
    Ok(Box::new(DistinctSink::<T> {
        partitions,
        seen: FxHashSet::default(),
        reservation: crate::memory::current().reservation(),
    }))
}

/// Sends each `(target, row)` pair's row to partition `target` (`repartition`, whose
/// map-side step chose the targets round robin).
struct TargetSink<T> {
    buckets: Buckets<T>,
}

impl<T: Data> ShuffleSink for TargetSink<T> {
    fn push(&mut self, chunk: Chunk, out: &mut dyn BlockWriter) -> Result<()> {
        let n = self.buckets.buckets.len() as u32;
        for (target, row) in chunk.into_rows::<(u32, T)>()? {
            self.buckets.push(target % n, row, out)?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>, out: &mut dyn BlockWriter) -> Result<()> {
        self.buckets.flush(out)
    }
}

/// Sink of `repartition`: rows tagged with their target partition, sent there untagged.
pub fn targeted<T: Data>(_state: &[u8], partitions: u32) -> Result<Box<dyn ShuffleSink>> {
    Ok(Box::new(TargetSink::<T> {
        buckets: Buckets::new(partitions),
    }))
}

/// How `cartesian` lays its output out: `left` slices of the left side by `right` slices
/// of the right, output partition `l * right + r` pairing left slice `l` with right slice `r`.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct Grid {
    /// Slices of the left side.
    pub left: u32,
    /// Slices of the right side.
    pub right: u32,
    /// Whether this sink's rows are the left side's.
    pub is_left: bool,
}

impl Grid {
    /// The output partitions a row of slice `slice` of this side goes to.
    fn targets(&self, slice: u32) -> impl Iterator<Item = u32> + use<> {
        let (left, right, is_left) = (self.left.max(1), self.right.max(1), self.is_left);
        (0..if is_left { right } else { left }).map(move |other| {
            if is_left {
                (slice % left) * right + other
            } else {
                other * right + slice % right
            }
        })
    }
}

/// Copies each `(slice, row)` pair's row to every output partition of its slice's row (or
/// column) of the [`Grid`].
struct GridSink<T> {
    grid: Grid,
    buckets: Buckets<T>,
}

impl<T: Data + Clone> ShuffleSink for GridSink<T> {
    fn push(&mut self, chunk: Chunk, out: &mut dyn BlockWriter) -> Result<()> {
        for (slice, row) in chunk.into_rows::<(u32, T)>()? {
            for target in self.grid.targets(slice) {
                self.buckets.push(target, row.clone(), out)?;
            }
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>, out: &mut dyn BlockWriter) -> Result<()> {
        self.buckets.flush(out)
    }
}

/// Sink of `cartesian`: the state is the [`Grid`].
pub fn grid<T: Data + Clone>(state: &[u8], partitions: u32) -> Result<Box<dyn ShuffleSink>> {
    let grid: Grid = postcard::from_bytes(state)?;
    if grid.left.max(1) * grid.right.max(1) != partitions {
        return Err(Error::Plan(format!(
            "a cartesian grid of {} by {} slices cannot fill {partitions} partitions",
            grid.left, grid.right
        )));
    }
    Ok(Box::new(GridSink::<T> {
        grid,
        buckets: Buckets::new(partitions),
    }))
}

/// Range-partitions rows by the key `F` computes, against sampled bounds (`sort_by_key`).
/// Into a store that keeps sorted runs and is spilling, it holds a share of the budget
/// of rows, sorts them, and writes each partition's slice as one run (the reducer then
/// merges the runs instead of sorting and writing everything again); otherwise it sends
/// rows to per-partition buffers that write blocks as they fill.
struct RangeSink<T, K, F> {
    bounds: Vec<K>,
    partitions: u32,
    /// Chosen at the first chunk.
    mode: Option<RangeMode<T>>,
    _f: std::marker::PhantomData<fn() -> F>,
}

enum RangeMode<T> {
    Blocks(Buckets<T>),
    Runs(HeldForRuns),
}

/// A map task's rows held to be sorted into runs.
struct HeldForRuns {
    batches: Vec<arrow_array::RecordBatch>,
    /// What the held rows take once sorted ([`super::in_memory_sort::sort_bytes`]).
    bytes: usize,
    /// What the held rows may take sorted before they are sorted and written.
    limit: usize,
    /// What they take before a refusal of the budget makes them be written: the tasks
    /// running side by side share `limit` (below it the budget is overdrawn rather than
    /// runs cut small, as a sort holds at least a batch).
    least: usize,
    /// The rows and what sorting them takes, counted in the task's budget.
    reservation: crate::memory::Reservation,
}

/// One partition's slice of sorted rows, encoded a batch of about
/// [`crate::memory::spill::SPILL_BATCH_BYTES`] at a time as it grows.
struct RunBatches<T> {
    rows: Vec<T>,
    batches: Vec<arrow_array::RecordBatch>,
}

impl<T> Default for RunBatches<T> {
    fn default() -> Self {
        RunBatches {
            rows: Vec::new(),
            batches: Vec::new(),
        }
    }
}

impl<T: Data> RunBatches<T> {
    fn push(&mut self, row: T) -> Result<()> {
        let per_batch = crate::memory::spill::rows_per_batch::<T>();
        if self.rows.len() == per_batch {
            let full = std::mem::replace(&mut self.rows, Vec::with_capacity(per_batch));
            self.batches.push(encode_vec(full)?);
        }
        self.rows.push(row);
        Ok(())
    }

    /// Writes what it holds as one sorted run of `partition` (nothing if empty) and starts
    /// the next.
    fn write(&mut self, partition: u32, out: &mut dyn BlockWriter) -> Result<()> {
        if !self.rows.is_empty() {
            self.batches.push(encode_vec(std::mem::take(&mut self.rows))?);
        }
        if self.batches.is_empty() {
            return Ok(());
        }
        out.write_sorted_run(partition, std::mem::take(&mut self.batches))
    }
}

/// The partition of `key` among the ranges `bounds` cut.
fn range_of<K: Ord>(bounds: &[K], key: &K) -> u32 {
    bounds.partition_point(|b| b < key) as u32
}

impl HeldForRuns {
    /// Holds `batch`, counted in the task's budget (with what sorting it takes, as the
    /// reduce side counts it): when the budget refuses, the rows held so far are sorted and
    /// written first if they take at least `least` bytes sorted, else held past the budget.
    /// Writes the runs once they take `limit`.
    fn hold<T: Data, K: Data + Ord, F: Fn(&T) -> K + 'static>(
        &mut self,
        batch: arrow_array::RecordBatch,
        bounds: &[K],
        out: &mut dyn BlockWriter,
    ) -> Result<()> {
        // The rows' own bytes: a batch of a memory-mapped file reports the whole mapping.
        let size = crate::data::batch_bytes(&batch) as usize;
        let needed = super::in_memory_sort::sort_bytes::<T, K>(&batch, size);
        if !self.reservation.try_grow(needed) {
            if self.bytes >= self.least {
                self.write_runs::<T, K, F>(bounds, out)?;
            }
            if !self.reservation.try_grow(needed) {
                self.reservation.grow(needed);
            }
        }
        self.bytes += needed;
        self.batches.push(batch);
        if self.bytes >= self.limit {
            self.write_runs::<T, K, F>(bounds, out)?;
        }
        Ok(())
    }

    /// Sorts the held rows by `F`'s key and writes each partition's slice (cut at
    /// `bounds`) as one sorted run, in batches of about [`crate::memory::spill::SPILL_BATCH_BYTES`].
    fn write_runs<T: Data, K: Data + Ord, F: Fn(&T) -> K + 'static>(
        &mut self,
        bounds: &[K],
        out: &mut dyn BlockWriter,
    ) -> Result<()> {
        if self.batches.is_empty() {
            return Ok(());
        }
        let sorted = super::in_memory_sort::sort_batches::<T, K, F>(std::mem::take(&mut self.batches))?;
        self.bytes = 0;
        // SAFETY: closure types are checked zero-sized when the plan is built.
        let f: F = unsafe { conjure() };
        let (mut partition, mut run) = (0u32, RunBatches::default());
        for chunk in sorted {
            for row in chunk?.into_rows::<T>()? {
                // Keys only grow: the row's range is this one or a later one.
                let key = f(&row);
                let mut p = partition;
                while (p as usize) < bounds.len() && bounds[p as usize] < key {
                    p += 1;
                }
                if p != partition {
                    run.write(partition, out)?;
                    partition = p;
                }
                run.push(row)?;
            }
        }
        run.write(partition, out)?;
        self.reservation.free();
        Ok(())
    }
}

impl<T: Data, K: Data + Ord, F: Fn(&T) -> K + 'static> ShuffleSink for RangeSink<T, K, F> {
    fn push(&mut self, chunk: Chunk, out: &mut dyn BlockWriter) -> Result<()> {
        let mode = self.mode.get_or_insert_with(|| {
            if out.wants_sorted_runs() {
                let pool = crate::memory::current();
                // What an eighth of the budget of records takes sorted.
                let limit = pool.limit() / 8 * 5 / 2;
                RangeMode::Runs(HeldForRuns {
                    batches: Vec::new(),
                    bytes: 0,
                    limit,
                    least: limit / rayon::current_num_threads().max(1),
                    reservation: pool.reservation(),
                })
            } else {
                RangeMode::Blocks(Buckets::new(self.partitions))
            }
        });
        let buckets = match mode {
            RangeMode::Runs(held) => return held.hold::<T, K, F>(chunk.into_batch::<T>()?, &self.bounds, out),
            RangeMode::Blocks(buckets) => buckets,
        };
        // SAFETY: closure types are checked zero-sized when the plan is built.
        let f: F = unsafe { conjure() };
        if let Chunk::Arrow(batch) = &chunk
            && let Some(records) = records_view(batch).and_then(cast_slice::<Record, T>)
        {
            // Records straight from a memory-mapped file: scatter them without decoding.
            for row in records {
                let p = range_of(&self.bounds, &f(row));
                // SAFETY: `T` is `Record` (checked by `cast_slice`), which is `Copy`.
                buckets.push(p, unsafe { std::ptr::read(row) }, out)?;
            }
            return Ok(());
        }
        for row in chunk.into_rows::<T>()? {
            let p = range_of(&self.bounds, &f(&row));
            buckets.push(p, row, out)?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>, out: &mut dyn BlockWriter) -> Result<()> {
        match self.mode.take() {
            Some(RangeMode::Blocks(mut buckets)) => buckets.flush(out),
            Some(RangeMode::Runs(mut held)) => held.write_runs::<T, K, F>(&self.bounds, out),
            None => Ok(()),
        }
    }
}

/// Sink of `sort_by_key`: the state is the serialised `Vec<K>` of range bounds.
///
/// # Safety
/// Its closure type must be one a value of which the job API was given and checked (zero
/// sized, `Copy`): the trampoline conjures values of it from nothing, which for any other
/// type (one never made, uninhabited, or with a `Drop` or an invariant) is undefined
/// behaviour. Only plans the job API built call it.
pub unsafe fn range<T: Data, K: Data + Ord, F: Fn(&T) -> K + 'static>(
    state: &[u8],
    partitions: u32,
) -> Result<Box<dyn ShuffleSink>> {
    let bounds: Vec<K> = postcard::from_bytes(state)?;
    // A plan's bounds cut `partitions` ranges: fewer than that many, in order.
    if bounds.len() >= partitions.max(1) as usize || !bounds.is_sorted() {
        return Err(Error::Plan(format!(
            "range bounds: {} bounds (sorted: {}) cannot cut {partitions} partitions",
            bounds.len(),
            bounds.is_sorted()
        )));
    }
    Ok(Box::new(RangeSink::<T, K, F> {
        bounds,
        partitions,
        mode: None,
        _f: std::marker::PhantomData,
    }))
}

/// `sort_by_key`'s map side in a job that sampled its keys first: `state` is the sampling
/// stage's values (each task's keys, a postcard `Vec<K>`), from which every map task
/// chooses the same bounds ([`range_bounds`]) before it range-partitions like [`range`].
///
/// # Safety
/// Its closure type must be one a value of which the job API was given and checked (zero
/// sized, `Copy`): the trampoline conjures values of it from nothing, which for any other
/// type (one never made, uninhabited, or with a `Drop` or an invariant) is undefined
/// behaviour. Only plans the job API built call it.
pub unsafe fn range_from_samples<T: Data, K: Data + Ord + Clone, F: Fn(&T) -> K + 'static>(
    state: &[u8],
    partitions: u32,
) -> Result<Box<dyn ShuffleSink>> {
    let samples: Vec<Vec<u8>> = postcard::from_bytes(state)?;
    // SAFETY: `F` is this function's own closure type, under the same contract.
    unsafe { range::<T, K, F>(&range_bounds::<K>(&samples, partitions)?, partitions) }
}

/// Chooses `partitions - 1` range bounds from sampled keys (each task's sample serialised
/// as a `Vec<K>`): the sorted sample's quantiles, duplicates removed.
pub fn range_bounds<K: Data + Ord + Clone>(samples: &[Vec<u8>], partitions: u32) -> Result<Vec<u8>> {
    let mut keys: Vec<K> = Vec::new();
    for s in samples {
        keys.extend(postcard::from_bytes::<Vec<K>>(s)?);
    }
    keys.sort_unstable();
    let mut bounds: Vec<K> = Vec::new();
    let n = partitions.max(1) as usize;
    if !keys.is_empty() {
        for i in 1..n {
            let k = &keys[(i * keys.len() / n).min(keys.len() - 1)];
            if bounds.last() != Some(k) {
                bounds.push(k.clone());
            }
        }
    }
    Ok(postcard::to_stdvec(&bounds)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{MemoryPool, scope};
    use arrow_array::RecordBatch;

    /// Keeps every block written, by partition.
    #[derive(Default)]
    struct Blocks(Vec<(u32, RecordBatch)>);

    impl BlockWriter for Blocks {
        fn write(&mut self, partition: u32, batch: RecordBatch) -> Result<()> {
            self.0.push((partition, batch));
            Ok(())
        }
    }

    #[test]
    fn many_partitions_make_smaller_blocks_not_buffers_past_the_budget() {
        // An eighth of 16 MiB holds 2048 rows for each of 64 partitions (not 10,000).
        let limit = 16 << 20;
        let pool = MemoryPool::new(limit, std::env::temp_dir());
        let partitions = 64;
        let rows: Vec<(u64, u64)> = (0..200_000u64).map(|i| (i, i * 3)).collect();
        let mut blocks = Blocks::default();
        scope(pool.clone(), || {
            let mut sink = hash::<u64, u64>(&[], partitions).expect("sink");
            for chunk in rows.chunks(10_000) {
                sink.push(Chunk::from_rows(chunk.to_vec()), &mut blocks).expect("push");
                assert!(pool.used() > 0, "the buffers are counted in the pool");
            }
            sink.finish(&mut blocks).expect("finish");
        });
        assert!(
            pool.peak() <= limit / 8,
            "buffers held {} bytes of a {limit}-byte budget",
            pool.peak()
        );
        assert_eq!(pool.used(), 0, "given back once flushed");
        let mut seen: Vec<(u64, u64)> = Vec::new();
        for (p, batch) in &blocks.0 {
            let block = crate::data::decode::<(u64, u64)>(batch).expect("decode");
            assert!(block.iter().all(|(k, _)| reduce_partition_of(k, partitions) == *p));
            seen.extend(block);
        }
        seen.sort();
        assert_eq!(seen, rows, "every row in exactly one block");
    }

    /// The rows a `reduce_by_key` sink summing values writes for `rows`, pushed in chunks.
    fn combined(rows: &[(u64, u64)]) -> Vec<(u64, u64)> {
        fn sink_of<F: Fn(u64, u64) -> u64 + Copy + 'static>(_: F) -> Box<dyn ShuffleSink> {
            // SAFETY: a capture-free closure, as the job API checks.
            unsafe { combine::<u64, u64, F>(&[], 4) }.expect("sink")
        }
        let mut blocks = Blocks::default();
        let mut sink = sink_of(|a, b| a + b);
        for chunk in rows.chunks(8192) {
            sink.push(Chunk::from_rows(chunk.to_vec()), &mut blocks).expect("push");
        }
        sink.finish(&mut blocks).expect("finish");
        let mut written = Vec::new();
        for (p, batch) in &blocks.0 {
            let block = crate::data::decode::<(u64, u64)>(batch).expect("decode");
            assert!(block.iter().all(|(k, _)| reduce_partition_of(k, 4) == *p));
            written.extend(block);
        }
        written
    }

    /// Sums by key, sequentially.
    fn sums(rows: &[(u64, u64)]) -> std::collections::BTreeMap<u64, u64> {
        let mut sums = std::collections::BTreeMap::new();
        for &(k, v) in rows {
            *sums.entry(k).or_default() += v;
        }
        sums
    }

    #[test]
    fn combining_stops_when_its_probe_finds_keys_that_hardly_repeat() {
        // Keys repeating ten times: combined, one row per key.
        let repeating: Vec<(u64, u64)> = (0..200_000u64).map(|i| (i % 20_000, i)).collect();
        let written = combined(&repeating);
        assert_eq!(written.len(), 20_000);
        assert_eq!(sums(&written), sums(&repeating));
        // Distinct keys through the probe, then a few hot ones: they pass uncombined, and
        // the sums the reduce side makes of them are the same.
        // (The probe ends with the chunk of 8192 rows that reaches its count.)
        let probe = COMBINE_PROBE_ROWS.div_ceil(8192) * 8192;
        let mixed: Vec<(u64, u64)> = (0..probe)
            .map(|i| (i + 1_000, 1))
            .chain((0..probe).map(|i| (i % 1_000, i)))
            .collect();
        let written = combined(&mixed);
        assert_eq!(
            written.len() as u64,
            2 * probe,
            "the rows after the probe are not combined"
        );
        assert_eq!(sums(&written), sums(&mixed));
    }

    /// Asks for sorted runs, and keeps each one written (and counts blocks).
    #[derive(Default)]
    struct RunsWanted {
        blocks: usize,
        runs: Vec<(u32, Vec<RecordBatch>)>,
    }

    impl BlockWriter for RunsWanted {
        fn write(&mut self, _: u32, _: RecordBatch) -> Result<()> {
            self.blocks += 1;
            Ok(())
        }

        fn wants_sorted_runs(&self) -> bool {
            true
        }

        fn write_sorted_run(&mut self, partition: u32, batches: Vec<RecordBatch>) -> Result<()> {
            self.runs.push((partition, batches));
            Ok(())
        }
    }

    fn first_of(row: &(u64, u64)) -> u64 {
        row.0
    }

    /// A range sink of `(u64, u64)` rows by `F`'s key.
    fn range_sink<F: Fn(&(u64, u64)) -> u64 + 'static>(_: F, bounds: &[u64], partitions: u32) -> Box<dyn ShuffleSink> {
        let state = postcard::to_stdvec(bounds).expect("bounds");
        // SAFETY: `F` is a function item's type (zero sized), as the job API checks.
        unsafe { range::<(u64, u64), u64, F>(&state, partitions) }.expect("sink")
    }

    #[test]
    fn a_range_sink_into_a_spilling_store_writes_each_partitions_rows_as_sorted_runs() {
        let pool = MemoryPool::new(16 << 20, std::env::temp_dir());
        let bounds = [1000u64, 5000, 5001];
        // Keys repeat; the second field is the row's place in the input.
        let rows: Vec<(u64, u64)> = (0..300_000u64).map(|i| ((i * 7919) % 10_000, i)).collect();
        let mut out = RunsWanted::default();
        scope(pool.clone(), || {
            let mut sink = range_sink(first_of, &bounds, 4);
            for chunk in rows.chunks(10_000) {
                sink.push(Chunk::from_rows(chunk.to_vec()), &mut out).expect("push");
            }
            sink.finish(&mut out).expect("finish");
        });
        assert_eq!(out.blocks, 0, "blocks written to a store that asked for runs");
        let mut seen = Vec::new();
        for (p, batches) in &out.runs {
            let run: Vec<(u64, u64)> = batches
                .iter()
                .flat_map(|b| crate::data::decode::<(u64, u64)>(b).expect("rows"))
                .collect();
            assert!(
                run.windows(2).all(|w| w[0] < w[1]),
                "a run is not sorted by key with ties in input order"
            );
            assert!(
                run.iter().all(|(k, _)| range_of(&bounds, k) == *p),
                "a row in the run of another partition"
            );
            seen.extend(run);
        }
        // An eighth of the budget held at a time: several runs per partition.
        let per_partition = out.runs.iter().filter(|(p, _)| *p == 0).count();
        assert!(
            per_partition > 1,
            "{per_partition} run(s) of partition 0 for 4.8 MB of rows"
        );
        seen.sort();
        let mut want = rows;
        want.sort();
        assert!(seen == want, "the runs do not hold every row once");
        assert_eq!(pool.used(), 0, "the held rows' memory was not given back");
        // What an eighth of the budget of records takes sorted, and one chunk more.
        assert!(
            pool.peak() <= (16 << 20) * 3 / 8,
            "held rows and their sort took {} bytes of a 16 MiB budget",
            pool.peak()
        );
    }
}
