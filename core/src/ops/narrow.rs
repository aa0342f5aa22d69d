//! Narrow steps: each turns a partition's chunk stream into another, pipelined in one task.

use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;

use crate::data::{Chunk, ChunkStream, Data};
use crate::error::{Error, Result};
use crate::plan::shipped::conjure;

/// Conjures the zero-sized closure `F`.
fn closure<F>() -> F {
    // SAFETY: the job API checks every closure type with `assert_no_capture` before it
    // records a trampoline for it.
    unsafe { conjure::<F>() }
}

/// `map`: applies `F` to every row.
///
/// # Safety
/// Its closure type must be one a value of which the job API was given and checked (zero
/// sized, `Copy`): the trampoline conjures values of it from nothing, which for any other
/// type (one never made, uninhabited, or with a `Drop` or an invariant) is undefined
/// behaviour. Only plans the job API built call it.
pub unsafe fn map<T: Data, U: Data, F: Fn(T) -> U + 'static>(_state: &[u8], input: ChunkStream) -> Result<ChunkStream> {
    Ok(Box::new(input.map(|chunk| {
        let f = closure::<F>();
        let rows = chunk?.into_rows::<T>()?;
        Ok(Chunk::from_rows(rows.into_iter().map(f).collect::<Vec<U>>()))
    })))
}

/// `map_with`: applies `F` to the deserialised state and every row.
///
/// # Safety
/// Its closure type must be one a value of which the job API was given and checked (zero
/// sized, `Copy`): the trampoline conjures values of it from nothing, which for any other
/// type (one never made, uninhabited, or with a `Drop` or an invariant) is undefined
/// behaviour. Only plans the job API built call it.
pub unsafe fn map_with<S, T, U, F>(state: &[u8], input: ChunkStream) -> Result<ChunkStream>
where
    S: DeserializeOwned + Send + 'static,
    T: Data,
    U: Data,
    F: Fn(&S, T) -> U + 'static,
{
    let state: S = postcard::from_bytes(state)?;
    Ok(Box::new(input.map(move |chunk| {
        let f = closure::<F>();
        let rows = chunk?.into_rows::<T>()?;
        Ok(Chunk::from_rows(
            rows.into_iter().map(|x| f(&state, x)).collect::<Vec<U>>(),
        ))
    })))
}

/// `filter`: keeps the rows for which `F` is true.
///
/// # Safety
/// Its closure type must be one a value of which the job API was given and checked (zero
/// sized, `Copy`): the trampoline conjures values of it from nothing, which for any other
/// type (one never made, uninhabited, or with a `Drop` or an invariant) is undefined
/// behaviour. Only plans the job API built call it.
pub unsafe fn filter<T: Data, F: Fn(&T) -> bool + 'static>(_state: &[u8], input: ChunkStream) -> Result<ChunkStream> {
    Ok(Box::new(input.map(|chunk| {
        let f = closure::<F>();
        let mut rows = chunk?.into_rows::<T>()?;
        rows.retain(|x| f(x));
        Ok(Chunk::from_rows(rows))
    })))
}

/// `flat_map`: replaces every row by the rows `F` returns for it.
///
/// # Safety
/// Its closure type must be one a value of which the job API was given and checked (zero
/// sized, `Copy`): the trampoline conjures values of it from nothing, which for any other
/// type (one never made, uninhabited, or with a `Drop` or an invariant) is undefined
/// behaviour. Only plans the job API built call it.
pub unsafe fn flat_map<T, U, I, F>(_state: &[u8], input: ChunkStream) -> Result<ChunkStream>
where
    T: Data,
    U: Data,
    I: IntoIterator<Item = U>,
    F: Fn(T) -> I + 'static,
{
    Ok(Box::new(input.map(|chunk| {
        let f = closure::<F>();
        let rows = chunk?.into_rows::<T>()?;
        Ok(Chunk::from_rows(rows.into_iter().flat_map(f).collect::<Vec<U>>()))
    })))
}

/// `key_by`: pairs every row with the key `F` computes from it.
///
/// # Safety
/// Its closure type must be one a value of which the job API was given and checked (zero
/// sized, `Copy`): the trampoline conjures values of it from nothing, which for any other
/// type (one never made, uninhabited, or with a `Drop` or an invariant) is undefined
/// behaviour. Only plans the job API built call it.
pub unsafe fn key_by<T: Data, K: Data, F: Fn(&T) -> K + 'static>(
    _state: &[u8],
    input: ChunkStream,
) -> Result<ChunkStream> {
    Ok(Box::new(input.map(|chunk| {
        let f = closure::<F>();
        let rows = chunk?.into_rows::<T>()?;
        Ok(Chunk::from_rows(
            rows.into_iter().map(|x| (f(&x), x)).collect::<Vec<(K, T)>>(),
        ))
    })))
}

/// The rows of one partition, as `map_partitions` hands them to its closure. A read error
/// ends the iteration early and is reported as the task's error.
pub struct PartitionRows<T> {
    input: ChunkStream,
    current: std::vec::IntoIter<T>,
    error: Arc<Mutex<Option<Error>>>,
}

impl<T: Data> Iterator for PartitionRows<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        loop {
            if let Some(x) = self.current.next() {
                return Some(x);
            }
            match self.input.next()?.and_then(|c| c.into_rows::<T>()) {
                Ok(rows) => self.current = rows.into_iter(),
                Err(e) => {
                    *self.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    return None;
                }
            }
        }
    }
}

/// `map_partitions`: hands the whole partition to `F` as an iterator, once per task.
///
/// # Safety
/// Its closure type must be one a value of which the job API was given and checked (zero
/// sized, `Copy`): the trampoline conjures values of it from nothing, which for any other
/// type (one never made, uninhabited, or with a `Drop` or an invariant) is undefined
/// behaviour. Only plans the job API built call it.
pub unsafe fn map_partitions<T, U, I, F>(_state: &[u8], input: ChunkStream) -> Result<ChunkStream>
where
    T: Data,
    U: Data,
    I: IntoIterator<Item = U>,
    I::IntoIter: Send + 'static,
    F: Fn(PartitionRows<T>) -> I + 'static,
{
    Ok(whole_partition(input, closure::<F>()))
}

/// `map_partitions_with_index`: hands `F` the partition's index and its rows, once per task
/// (the index comes first in the step's state, see [`with_index`]).
///
/// # Safety
/// Its closure type must be one a value of which the job API was given and checked (zero
/// sized, `Copy`): the trampoline conjures values of it from nothing, which for any other
/// type (one never made, uninhabited, or with a `Drop` or an invariant) is undefined
/// behaviour. Only plans the job API built call it.
pub unsafe fn map_partitions_with_index<T, U, I, F>(state: &[u8], input: ChunkStream) -> Result<ChunkStream>
where
    T: Data,
    U: Data,
    I: IntoIterator<Item = U>,
    I::IntoIter: Send + 'static,
    F: Fn(u32, PartitionRows<T>) -> I + 'static,
{
    let (index, _) = split_index(state)?;
    Ok(whole_partition(input, move |rows| closure::<F>()(index, rows)))
}

/// `map_partitions_with_index` with shipped state: `F` gets the state, the index and the rows.
///
/// # Safety
/// As [`map_partitions_with_index`].
pub unsafe fn map_partitions_with_index_and<S, T, U, I, F>(state: &[u8], input: ChunkStream) -> Result<ChunkStream>
where
    S: DeserializeOwned + Send + 'static,
    T: Data,
    U: Data,
    I: IntoIterator<Item = U>,
    I::IntoIter: Send + 'static,
    F: Fn(&S, u32, PartitionRows<T>) -> I + 'static,
{
    let (index, rest) = split_index(state)?;
    let state: S = postcard::from_bytes(rest)?;
    Ok(whole_partition(input, move |rows| closure::<F>()(&state, index, rows)))
}

/// The output of `f` over the whole partition `input`, cut into chunks.
fn whole_partition<T, U, I>(input: ChunkStream, f: impl FnOnce(PartitionRows<T>) -> I) -> ChunkStream
where
    T: Data,
    U: Data,
    I: IntoIterator<Item = U>,
    I::IntoIter: Send + 'static,
{
    let error = Arc::new(Mutex::new(None));
    let rows = PartitionRows {
        input,
        current: Vec::new().into_iter(),
        error: error.clone(),
    };
    let mut output = f(rows).into_iter();
    let size = super::chunk_rows::<U>();
    Box::new(std::iter::from_fn(move || {
        let chunk: Vec<U> = output.by_ref().take(size).collect();
        if let Some(e) = error.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Some(Err(e));
        }
        (!chunk.is_empty()).then(|| Ok(Chunk::from_rows(chunk)))
    }))
}

/// Bytes of the partition index that [`with_index`] puts before a step's state.
const INDEX_BYTES: usize = 4;

/// A step's state for task `index`: the index, then the step's own state. The planner
/// makes it for steps that need to know their partition (`map_partitions_with_index`,
/// `sample`, `repartition`, `zip_with_index`).
pub fn with_index(index: u32, state: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(INDEX_BYTES + state.len());
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(state);
    out
}

/// The partition index and the step's own state, from a state made by [`with_index`].
pub fn split_index(state: &[u8]) -> Result<(u32, &[u8])> {
    match state.split_first_chunk::<INDEX_BYTES>() {
        Some((index, rest)) => Ok((u32::from_le_bytes(*index), rest)),
        None => Err(Error::Plan(
            "a step that needs its partition index was planned without one".into(),
        )),
    }
}

/// What `sample` draws, shipped as its state.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct SampleSpec {
    /// Each row may be drawn more than once (a Poisson number of copies) or at most once.
    pub with_replacement: bool,
    /// Expected copies of each row (at most 1 without replacement).
    pub fraction: f64,
    /// The seed; partition `i` draws from a generator seeded with it and `i`.
    pub seed: u64,
}

/// `sample`: keeps each row with probability `fraction` (or a Poisson(`fraction`) number of
/// copies of it, with replacement), drawn from a generator seeded by the seed and the
/// partition's index: the same rows for the same seed and input, on any engine.
pub fn sample<T: Data + Clone>(state: &[u8], input: ChunkStream) -> Result<ChunkStream> {
    use rand::{Rng, SeedableRng};
    let (index, rest) = split_index(state)?;
    let spec: SampleSpec = postcard::from_bytes(rest)?;
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(
        spec.seed ^ (u64::from(index) + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15),
    );
    let poisson = if spec.with_replacement && spec.fraction > 0.0 {
        Some(
            rand_distr::Poisson::new(spec.fraction)
                .map_err(|e| Error::Plan(format!("sample fraction {}: {e}", spec.fraction)))?,
        )
    } else {
        None
    };
    Ok(Box::new(input.map(move |chunk| {
        let rows = chunk?.into_rows::<T>()?;
        let mut kept = Vec::new();
        for row in rows {
            let copies = match &poisson {
                Some(p) => rng.sample::<f64, _>(p) as u64,
                None if spec.with_replacement => 0,
                None => u64::from(rng.r#gen::<f64>() < spec.fraction),
            };
            for _ in 1..copies {
                kept.push(row.clone());
            }
            if copies > 0 {
                kept.push(row);
            }
        }
        Ok(Chunk::from_rows(kept))
    })))
}

/// `repartition`'s map side: tags each row with the partition it goes to, round robin from
/// a start that differs per input partition (its index), so many small inputs still fill
/// the outputs evenly. The state (after the index) is the number of output partitions.
pub fn round_robin<T: Data>(state: &[u8], input: ChunkStream) -> Result<ChunkStream> {
    let (index, rest) = split_index(state)?;
    let partitions: u32 = postcard::from_bytes(rest)?;
    let partitions = partitions.max(1);
    let mut next = index.wrapping_mul(0x9e37_79b9) % partitions;
    Ok(Box::new(input.map(move |chunk| {
        let rows = chunk?.into_rows::<T>()?;
        let tagged: Vec<(u32, T)> = rows
            .into_iter()
            .map(|row| {
                let target = next;
                next = (next + 1) % partitions;
                (target, row)
            })
            .collect();
        Ok(Chunk::from_rows(tagged))
    })))
}

/// `zip_with_index`: pairs each row with its index in the whole dataset; the state (after
/// the partition index) holds every partition's first index.
pub fn zip_with_index<T: Data>(state: &[u8], input: ChunkStream) -> Result<ChunkStream> {
    let (index, rest) = split_index(state)?;
    let starts: Vec<u64> = postcard::from_bytes(rest)?;
    let mut next = *starts.get(index as usize).ok_or_else(|| {
        Error::Plan(format!(
            "zip_with_index was planned for {} partitions, not partition {index}",
            starts.len()
        ))
    })?;
    Ok(Box::new(input.map(move |chunk| {
        let rows = chunk?.into_rows::<T>()?;
        let numbered: Vec<(T, u64)> = rows
            .into_iter()
            .map(|row| {
                next += 1;
                (row, next - 1)
            })
            .collect();
        Ok(Chunk::from_rows(numbered))
    })))
}

/// The names of `U`'s columns, for [`select`]: its fields' names (an error for a type
/// that is not a struct with named fields).
pub fn column_names<U: Data>() -> Result<Vec<String>> {
    Ok(crate::data::table_schema::<U>()?
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect())
}

/// `select`: the rows as `U`, a struct naming some of `T`'s fields. A chunk still in Arrow
/// form keeps only `U`'s columns, undecoded (the step after it decodes those alone); decoded
/// rows are encoded first.
pub fn select<T: Data, U: Data>(_state: &[u8], input: ChunkStream) -> Result<ChunkStream> {
    let names = column_names::<U>()?;
    Ok(Box::new(input.map(move |chunk| {
        let batch = crate::data::as_table(chunk?.into_batch::<T>()?)?;
        let schema = batch.schema();
        let indices = names
            .iter()
            .map(|name| {
                schema.index_of(name).map_err(|_| {
                    let have: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                    Error::Plan(format!(
                        "select: the rows have no column {name:?} (they have {})",
                        have.join(", ")
                    ))
                })
            })
            .collect::<Result<Vec<usize>>>()?;
        Ok(Chunk::Arrow(batch.project(&indices)?))
    })))
}
