//! Narrow steps: each turns a partition's chunk stream into another, pipelined in one task.

use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;

use crate::data::{Chunk, ChunkStream, Data};
use crate::error::{Error, Result};
use crate::shipped::conjure;

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
    let error = Arc::new(Mutex::new(None));
    let rows = PartitionRows {
        input,
        current: Vec::new().into_iter(),
        error: error.clone(),
    };
    let mut output = closure::<F>()(rows).into_iter();
    let size = super::chunk_rows::<U>();
    Ok(Box::new(std::iter::from_fn(move || {
        let chunk: Vec<U> = output.by_ref().take(size).collect();
        if let Some(e) = error.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Some(Err(e));
        }
        (!chunk.is_empty()).then(|| Ok(Chunk::from_rows(chunk)))
    })))
}
