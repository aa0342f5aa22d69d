//! Actions: what each task of a job's final stage does with its rows. The caller combines
//! the per-task values (sums partial sums, concatenates collected rows, commits files).

use std::fmt::Display;
use std::io::Write;
use std::path::PathBuf;

use arrow_array::Array;
use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, UInt64Type};
use serde::{Deserialize, Serialize};

use crate::data::record::Record;
use crate::data::{Chunk, ChunkStream, Data};
use crate::error::{Error, Result};
use crate::io::output::write_part;
use crate::io::output_format::OutputFormat;
use crate::plan::shipped::conjure;
use crate::plan::{ActionEnv, TaskValue};

/// `collect`: the partition's rows, as an Arrow IPC stream.
pub fn collect<T: Data>(_state: &[u8], input: ChunkStream, _env: &ActionEnv) -> Result<TaskValue> {
    let batches = input
        .map(|c| c.and_then(|c| c.into_batch::<T>()))
        .collect::<Result<Vec<RecordBatch>>>()?;
    Ok(TaskValue::Batches(crate::data::ipc::to_stream_bytes(&batches)?))
}

/// `take`: at most `n` rows (the state) from the start of the partition; reading stops
/// as soon as it has them.
pub fn take<T: Data>(state: &[u8], input: ChunkStream, _env: &ActionEnv) -> Result<TaskValue> {
    let mut left: u64 = postcard::from_bytes(state)?;
    let mut batches = Vec::new();
    for chunk in input {
        if left == 0 {
            break;
        }
        let mut rows = chunk?.into_rows::<T>()?;
        rows.truncate(left as usize);
        left -= rows.len() as u64;
        batches.push(crate::data::encode_vec(rows)?);
    }
    Ok(TaskValue::Batches(crate::data::ipc::to_stream_bytes(&batches)?))
}

/// `count`: the number of rows.
pub fn count(_state: &[u8], input: ChunkStream, _env: &ActionEnv) -> Result<TaskValue> {
    let mut n = 0u64;
    for chunk in input {
        n += chunk?.len() as u64;
    }
    Ok(TaskValue::Count(n))
}

/// A number `sum` can add, with overflow detected rather than wrapped.
pub trait Summable: Data + Copy {
    /// The type's name, for the overflow error.
    const NAME: &'static str;
    /// The sum of nothing.
    fn zero() -> Self;
    /// `self + other`, or `None` on overflow.
    fn checked_add(self, other: Self) -> Option<Self>;
    /// Sums a single-column Arrow batch over its value buffer, if the column has this type.
    fn sum_batch(_batch: &RecordBatch) -> Option<Result<Self>> {
        None
    }
}

fn single_column(batch: &RecordBatch) -> Option<&dyn Array> {
    (batch.num_columns() == 1).then(|| batch.column(0).as_ref())
}

/// The exact sum of `values` as `i128`, in a form the compiler vectorises: each value
/// splits into its high 32 bits (signed) and low 32 bits (unsigned), whose sums cannot
/// overflow 64 bits within a block of 2^30 values. Overflow detection then costs one
/// range check per batch instead of a branch per value.
pub fn exact_sum_i64(values: &[i64]) -> i128 {
    values
        .chunks(1 << 30)
        .map(|block| {
            let (mut high, mut low) = (0i64, 0u64);
            for &v in block {
                high += v >> 32;
                low += v as u64 & 0xFFFF_FFFF;
            }
            ((high as i128) << 32) + low as i128
        })
        .sum()
}

/// The exact sum of `values` as `u128` (see [`exact_sum_i64`]).
pub fn exact_sum_u64(values: &[u64]) -> u128 {
    values
        .chunks(1 << 30)
        .map(|block| {
            let (mut high, mut low) = (0u64, 0u64);
            for &v in block {
                high += v >> 32;
                low += v & 0xFFFF_FFFF;
            }
            ((high as u128) << 32) + low as u128
        })
        .sum()
}

macro_rules! summable_int {
    ($t:ty, $arrow:ty, $exact:ident) => {
        impl Summable for $t {
            const NAME: &'static str = stringify!($t);
            fn zero() -> Self {
                0
            }
            fn checked_add(self, other: Self) -> Option<Self> {
                <$t>::checked_add(self, other)
            }
            fn sum_batch(batch: &RecordBatch) -> Option<Result<Self>> {
                let array = single_column(batch)?.as_primitive_opt::<$arrow>()?;
                if array.null_count() > 0 {
                    let sum = array.iter().flatten().try_fold(0, <$t>::checked_add);
                    return Some(sum.ok_or(Error::Overflow(Self::NAME)));
                }
                Some(<$t>::try_from($exact(array.values())).map_err(|_| Error::Overflow(Self::NAME)))
            }
        }
    };
}
summable_int!(i64, Int64Type, exact_sum_i64);
summable_int!(u64, UInt64Type, exact_sum_u64);

impl Summable for i32 {
    const NAME: &'static str = "i32";
    fn zero() -> Self {
        0
    }
    fn checked_add(self, other: Self) -> Option<Self> {
        i32::checked_add(self, other)
    }
}

impl Summable for f64 {
    const NAME: &'static str = "f64";
    fn zero() -> Self {
        0.0
    }
    fn checked_add(self, other: Self) -> Option<Self> {
        Some(self + other)
    }
    fn sum_batch(batch: &RecordBatch) -> Option<Result<Self>> {
        let array = single_column(batch)?.as_primitive_opt::<Float64Type>()?;
        if array.null_count() > 0 {
            return Some(Ok(array.iter().flatten().sum()));
        }
        Some(Ok(lane_sum_f64(array.values())))
    }
}

/// The sum of `values` in eight running totals, which the compiler keeps in vector registers
/// (one running total would make every addition wait for the one before it).
pub fn lane_sum_f64(values: &[f64]) -> f64 {
    const LANES: usize = 8;
    let mut lanes = [0.0f64; LANES];
    let chunks = values.chunks_exact(LANES);
    let rest: f64 = chunks.remainder().iter().sum();
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += v;
        }
    }
    lanes.iter().sum::<f64>() + rest
}

/// Adds two partial sums, failing on overflow.
pub fn add<T: Summable>(a: T, b: T) -> Result<T> {
    a.checked_add(b).ok_or(Error::Overflow(T::NAME))
}

/// `sum`: the partition's total (Arrow kernels on Arrow chunks, a checked loop otherwise).
pub fn sum<T: Summable>(_state: &[u8], input: ChunkStream, _env: &ActionEnv) -> Result<TaskValue> {
    let mut total = T::zero();
    for chunk in input {
        let part = match chunk? {
            Chunk::Arrow(batch) => match T::sum_batch(&batch) {
                Some(s) => s?,
                None => sum_rows(Chunk::Arrow(batch).into_rows::<T>()?)?,
            },
            rows => sum_rows(rows.into_rows::<T>()?)?,
        };
        total = add(total, part)?;
    }
    Ok(TaskValue::Bytes(postcard::to_stdvec(&total)?))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn exact_sums_equal_wide_sums(v in prop::collection::vec(any::<i64>(), 0..2000), u in prop::collection::vec(any::<u64>(), 0..2000)) {
            prop_assert_eq!(exact_sum_i64(&v), v.iter().map(|&x| x as i128).sum::<i128>());
            prop_assert_eq!(exact_sum_u64(&u), u.iter().map(|&x| x as u128).sum::<u128>());
        }
    }
}

fn sum_rows<T: Summable>(rows: Vec<T>) -> Result<T> {
    rows.into_iter().try_fold(T::zero(), add)
}

/// `reduce`: folds the partition with `F`; `None` for an empty partition.
///
/// # Safety
/// Its closure type must be one a value of which the job API was given and checked (zero
/// sized, `Copy`): the trampoline conjures values of it from nothing, which for any other
/// type (one never made, uninhabited, or with a `Drop` or an invariant) is undefined
/// behaviour. Only plans the job API built call it.
pub unsafe fn reduce<T: Data, F: Fn(T, T) -> T + 'static>(
    _state: &[u8],
    input: ChunkStream,
    _env: &ActionEnv,
) -> Result<TaskValue> {
    // SAFETY: closure types are checked zero-sized when the plan is built.
    let f: F = unsafe { conjure() };
    let mut acc: Option<T> = None;
    for chunk in input {
        for x in chunk?.into_rows::<T>()? {
            acc = Some(match acc {
                Some(a) => f(a, x),
                None => x,
            });
        }
    }
    Ok(TaskValue::Bytes(postcard::to_stdvec(&acc)?))
}

/// `fold`: folds the partition with `F`, starting from the zero value (the state).
///
/// # Safety
/// Its closure type must be one a value of which the job API was given and checked (zero
/// sized, `Copy`): the trampoline conjures values of it from nothing, which for any other
/// type (one never made, uninhabited, or with a `Drop` or an invariant) is undefined
/// behaviour. Only plans the job API built call it.
pub unsafe fn fold<T: Data, F: Fn(T, T) -> T + 'static>(
    state: &[u8],
    input: ChunkStream,
    _env: &ActionEnv,
) -> Result<TaskValue> {
    // SAFETY: closure types are checked zero-sized when the plan is built.
    let f: F = unsafe { conjure() };
    let mut acc: T = postcard::from_bytes(state)?;
    for chunk in input {
        for x in chunk?.into_rows::<T>()? {
            acc = f(acc, x);
        }
    }
    Ok(TaskValue::Bytes(postcard::to_stdvec(&acc)?))
}

/// What `top` and `take_ordered` keep: the `n` rows with the largest keys, or the smallest.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Bounded {
    /// Rows kept.
    pub n: u64,
    /// Keep the largest keys (`top`) rather than the smallest (`take_ordered`).
    pub largest: bool,
}

/// A row held by [`bounded`]'s heap, ordered by its key and then by arrival (so that of
/// equal keys the earlier rows are kept).
struct Ranked<K, T> {
    key: K,
    arrival: u64,
    row: T,
}

impl<K: Ord, T> Ranked<K, T> {
    fn rank(&self) -> (&K, u64) {
        (&self.key, self.arrival)
    }
}

impl<K: Ord, T> PartialEq for Ranked<K, T> {
    fn eq(&self, other: &Self) -> bool {
        self.rank() == other.rank()
    }
}
impl<K: Ord, T> Eq for Ranked<K, T> {}
impl<K: Ord, T> PartialOrd for Ranked<K, T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<K: Ord, T> Ord for Ranked<K, T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.rank().cmp(&other.rank())
    }
}

/// The `n` rows of `rows` with the smallest keys (or the largest), in that order; a heap
/// of `n` rows, never a sort of them all. Of equal keys the earlier rows are kept.
pub fn bounded_rows<T, K: Ord>(rows: impl IntoIterator<Item = T>, key: impl Fn(&T) -> K, spec: Bounded) -> Vec<T> {
    use std::cmp::Reverse;
    let n = spec.n as usize;
    if n == 0 {
        return Vec::new();
    }
    let ranked = rows.into_iter().enumerate().map(|(i, row)| Ranked {
        key: key(&row),
        // Later rows rank lower among equal keys in either order.
        arrival: if spec.largest { u64::MAX - i as u64 } else { i as u64 },
        row,
    });
    if spec.largest {
        let mut heap: std::collections::BinaryHeap<Reverse<Ranked<K, T>>> = std::collections::BinaryHeap::new();
        for r in ranked {
            heap.push(Reverse(r));
            if heap.len() > n {
                heap.pop();
            }
        }
        heap.into_sorted_vec().into_iter().map(|Reverse(r)| r.row).collect()
    } else {
        let mut heap: std::collections::BinaryHeap<Ranked<K, T>> = std::collections::BinaryHeap::new();
        for r in ranked {
            heap.push(r);
            if heap.len() > n {
                heap.pop();
            }
        }
        heap.into_sorted_vec().into_iter().map(|r| r.row).collect()
    }
}

/// `top` and `take_ordered`: the partition's `n` rows with the largest (or smallest) keys
/// `F` computes, as an Arrow IPC stream (see [`bounded_rows`]).
///
/// # Safety
/// Its closure type must be one a value of which the job API was given and checked (zero
/// sized, `Copy`): the trampoline conjures values of it from nothing, which for any other
/// type (one never made, uninhabited, or with a `Drop` or an invariant) is undefined
/// behaviour. Only plans the job API built call it.
pub unsafe fn bounded<T: Data, K: Ord, F: Fn(&T) -> K + 'static>(
    state: &[u8],
    input: ChunkStream,
    _env: &ActionEnv,
) -> Result<TaskValue> {
    // SAFETY: closure types are checked zero-sized when the plan is built.
    let f: F = unsafe { conjure() };
    let spec: Bounded = postcard::from_bytes(state)?;
    let mut kept: Vec<T> = Vec::new();
    for chunk in input {
        // The rows kept so far first: of equal keys, earlier rows stay.
        let rows = chunk?.into_rows::<T>()?;
        kept = bounded_rows(std::mem::take(&mut kept).into_iter().chain(rows), &f, spec);
    }
    let batch = crate::data::encode_vec(kept)?;
    Ok(TaskValue::Batches(crate::data::ipc::to_stream_bytes(&[batch])?))
}

/// Where a save action writes: the job's staging directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SaveState {
    /// The staging directory (see [`crate::io::output::OutputCommit`]).
    pub dir: PathBuf,
}

/// `save_text`: one line per row (its `Display`), into `part-NNNNN`.
pub fn save_text<T: Data + Display>(state: &[u8], input: ChunkStream, env: &ActionEnv) -> Result<TaskValue> {
    let SaveState { dir } = postcard::from_bytes(state)?;
    let path = dir.join(crate::io::output::part_name(env.partition.0));
    write_part(&dir, env.partition.0, env.attempt, |out| {
        let (mut rows, mut bytes) = (0u64, 0u64);
        let mut line = String::new();
        for chunk in input {
            for x in chunk?.into_rows::<T>()? {
                use std::fmt::Write as _;
                line.clear();
                let _ = writeln!(line, "{x}");
                out.write_all(line.as_bytes()).map_err(|e| Error::io(&path, e))?;
                rows += 1;
                bytes += line.len() as u64;
            }
        }
        Ok(TaskValue::Written { rows, bytes })
    })
}

/// `save_arrow` / `save_parquet` (the format is the state's): the rows of `T`, column by
/// column, into `part-NNNNN.arrow` or `part-NNNNN.parquet`.
pub fn save_columnar<T: Data>(state: &[u8], input: ChunkStream, env: &ActionEnv) -> Result<TaskValue> {
    let ColumnarState { dir, format } = postcard::from_bytes(state)?;
    let part = crate::io::output::part_name(env.partition.0);
    let name = match format.extension() {
        Some(extension) => format!("{part}.{extension}"),
        None => part,
    };
    let path = dir.join(&name);
    let (schema, batches) = columnar_batches::<T>(input)?;
    crate::io::output::write_file(&dir, &name, env.attempt, |out| {
        let rows = format.write(&path, out, schema, batches)?;
        std::io::Write::flush(out).map_err(|e| Error::io(&path, e))?;
        let bytes = out
            .get_ref()
            .get_ref()
            .metadata()
            .map_err(|e| Error::io(&path, e))?
            .len();
        Ok(TaskValue::Written { rows, bytes })
    })
}

/// Rows of `T` as the batches a columnar output holds: a struct's fields as columns, other
/// types (numbers, strings, tuples, records) in the codec's own columns.
fn columnar_batches<T: Data>(input: ChunkStream) -> Result<(arrow_schema::SchemaRef, crate::data::BatchStream)> {
    match crate::data::table_schema::<T>() {
        Ok(schema) => {
            let fields = schema.fields().clone();
            let batches = input.map(move |chunk| crate::data::encode_table(&fields, &chunk?.into_rows::<T>()?));
            Ok((schema, Box::new(batches)))
        }
        Err(_) => Ok((
            crate::data::schema_of::<T>()?,
            Box::new(input.map(|chunk| chunk?.into_batch::<T>())),
        )),
    }
}

/// `save_arrow` into a stored dataset: like [`save_columnar`]'s files, a struct's fields
/// as columns.
pub fn store_columnar<T: Data>(state: &[u8], input: ChunkStream, env: &ActionEnv) -> Result<TaskValue> {
    let (schema, batches) = columnar_batches::<T>(input)?;
    write_stored(state, env, schema, batches)
}

/// The state of [`save_columnar`]: the staging directory and the format.
#[derive(Debug, Serialize, Deserialize)]
pub struct ColumnarState {
    /// The output's staging directory.
    pub dir: PathBuf,
    /// The files' format.
    pub format: OutputFormat,
}

/// `save_records`: the raw 100-byte records, in order, into `part-NNNNN`.
pub fn save_records(state: &[u8], input: ChunkStream, env: &ActionEnv) -> Result<TaskValue> {
    let SaveState { dir } = postcard::from_bytes(state)?;
    let path = dir.join(crate::io::output::part_name(env.partition.0));
    write_part(&dir, env.partition.0, env.attempt, |out| {
        let mut rows = 0u64;
        for chunk in input {
            let bytes = match chunk? {
                Chunk::Arrow(batch) => {
                    let records = crate::data::decode::<Record>(&batch)?;
                    Record::vec_into_bytes(records)
                }
                rows => Record::vec_into_bytes(rows.into_rows::<Record>()?),
            };
            rows += (bytes.len() / crate::data::record::RECORD_LEN) as u64;
            out.write_all(&bytes).map_err(|e| Error::io(&path, e))?;
        }
        Ok(TaskValue::Written {
            rows,
            bytes: rows * crate::data::record::RECORD_LEN as u64,
        })
    })
}

/// Sampling for range bounds: up to `max` keys (the state) computed by `F`, spread evenly
/// over what the task read.
///
/// # Safety
/// Its closure type must be one a value of which the job API was given and checked (zero
/// sized, `Copy`): the trampoline conjures values of it from nothing, which for any other
/// type (one never made, uninhabited, or with a `Drop` or an invariant) is undefined
/// behaviour. Only plans the job API built call it.
pub unsafe fn sample_keys<T: Data, K: Data, F: Fn(&T) -> K + 'static>(
    state: &[u8],
    input: ChunkStream,
    _env: &ActionEnv,
) -> Result<TaskValue> {
    let max: u64 = postcard::from_bytes(state)?;
    // SAFETY: closure types are checked zero-sized when the plan is built.
    let f: F = unsafe { conjure() };
    let mut keys: Vec<K> = Vec::new();
    for chunk in input {
        keys.extend(chunk?.into_rows::<T>()?.iter().map(&f));
    }
    let max = max.max(1) as usize;
    if keys.len() > max {
        let stride = keys.len() as f64 / max as f64;
        let mut i = 0usize;
        keys.retain(|_| {
            let keep = ((i as f64) % stride) < 1.0;
            i += 1;
            keep
        });
    }
    Ok(TaskValue::Bytes(postcard::to_stdvec(&keys)?))
}

/// Where a store action writes: a new generation of a stored dataset.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoreState {
    /// The dataset, its generation, format and replica count, and the owners per partition.
    pub spec: crate::io::store::StoreSpec,
}

/// `save_text` into a stored dataset: each row's `Display` as a `String` row.
pub fn store_text<T: Data + Display>(state: &[u8], input: ChunkStream, env: &ActionEnv) -> Result<TaskValue> {
    let lines = input.map(|chunk| {
        let rows = chunk?.into_rows::<T>()?;
        let lines: Vec<String> = rows.iter().map(ToString::to_string).collect();
        crate::data::encode_vec(lines)
    });
    write_stored(state, env, crate::data::schema_of::<String>()?, lines)
}

/// `save_records` into a stored dataset.
pub fn store_records(state: &[u8], input: ChunkStream, env: &ActionEnv) -> Result<TaskValue> {
    let batches = input.map(|chunk| chunk?.into_batch::<Record>());
    write_stored(state, env, crate::data::schema_of::<Record>()?, batches)
}

/// `save_arrow` into a stored dataset: rows of `T`, column by column.
pub fn store_rows<T: Data>(state: &[u8], input: ChunkStream, env: &ActionEnv) -> Result<TaskValue> {
    let batches = input.map(|chunk| chunk?.into_batch::<T>());
    write_stored(state, env, crate::data::schema_of::<T>()?, batches)
}

fn write_stored(
    state: &[u8],
    env: &ActionEnv,
    schema: arrow_schema::SchemaRef,
    batches: impl Iterator<Item = Result<RecordBatch>>,
) -> Result<TaskValue> {
    let StoreState { spec } = postcard::from_bytes(state)?;
    let (rows, bytes, holders) =
        crate::io::store::write_partition(&spec, env.stage, env.partition.0, env.attempt, schema, batches)?;
    Ok(TaskValue::Stored { rows, bytes, holders })
}
