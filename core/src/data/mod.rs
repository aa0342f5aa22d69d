//! Rows and their Arrow form: the [`Data`] bound, [`Chunk`]s flowing through a task, and the
//! row <-> Arrow codec.
//!
//! Any `Serialize + Deserialize` type converts through `serde_arrow` (wrapped as a single
//! column named `item`); the types on the hot paths (gensort records, `i64`, `u64`, `f64`,
//! `String`, `(String, u64)`, `(String, i64)`) convert with Arrow builders directly.
//!
//! Inside: [`record`] the 100-byte gensort record; [`ipc`] Arrow IPC in memory.

pub mod ipc;
pub mod record;

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use arrow_array::RecordBatch;
use arrow_array::builder::StringBuilder;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, UInt64Type};
use arrow_array::{Array, ArrayRef, FixedSizeBinaryArray, Float64Array, Int64Array, StringArray, UInt64Array};
use arrow_buffer::Buffer;
use arrow_schema::{DataType, Field, FieldRef, Schema};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_arrow::schema::{SchemaLike, TracingOptions};
use serde_arrow::utils::Items;

use crate::data::record::{RECORD_LEN, Record};
use crate::error::{Error, Result};

/// What a dataset may hold: any owned, thread-safe, serde-serialisable type.
pub trait Data: Serialize + DeserializeOwned + Send + Sync + 'static {}
impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> Data for T {}

/// Rows per chunk for generic rows: large enough to amortise per-chunk work, small enough
/// to keep a task's working set in cache-friendly pieces.
pub const CHUNK_ROWS: usize = 8192;

/// A piece of a partition as it flows through a task: Arrow (as read or shuffled) or Rust
/// rows (after a closure ran). Converting lazily means a pipeline of closures never
/// round-trips through Arrow between steps, and an Arrow kernel can consume Arrow directly.
pub enum Chunk {
    /// Columnar data, not yet decoded.
    Arrow(RecordBatch),
    /// Decoded rows: a `Vec<T>` behind a type-erased box.
    Rows(Box<dyn Rows>),
}

/// A type-erased `Vec<T>`.
pub trait Rows: Send + 'static {
    /// Number of rows.
    fn len(&self) -> usize;
    /// Whether there are no rows.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The vector, for a typed downcast.
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send>;
    /// The vector, borrowed, for a typed look.
    fn as_any(&self) -> &dyn Any;
}

impl<T: Send + 'static> Rows for Vec<T> {
    fn len(&self) -> usize {
        Vec::len(self)
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A stream of chunks: one partition, flowing through a task's steps.
pub type ChunkStream = Box<dyn Iterator<Item = Result<Chunk>> + Send>;

/// A stream of Arrow batches: one side of a shuffle read.
pub type BatchStream = Box<dyn Iterator<Item = Result<RecordBatch>> + Send>;

impl Chunk {
    /// Wraps decoded rows.
    pub fn from_rows<T: Data>(rows: Vec<T>) -> Chunk {
        Chunk::Rows(Box::new(rows))
    }

    /// Number of rows in the chunk.
    pub fn len(&self) -> usize {
        match self {
            Chunk::Arrow(b) => b.num_rows(),
            Chunk::Rows(r) => r.len(),
        }
    }

    /// Whether the chunk holds no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The chunk's data size in bytes: Arrow's buffers as sliced, or a line's bytes for
    /// text rows; 0 for other decoded rows (whose heap size is not known).
    pub fn data_bytes(&self) -> u64 {
        match self {
            Chunk::Arrow(batch) => batch_bytes(batch),
            Chunk::Rows(rows) => rows
                .as_any()
                .downcast_ref::<Vec<String>>()
                .map_or(0, |lines| lines.iter().map(|l| l.len() as u64).sum()),
        }
    }

    /// The rows as `Vec<T>`, decoding Arrow if needed.
    pub fn into_rows<T: Data>(self) -> Result<Vec<T>> {
        match self {
            Chunk::Rows(rows) => rows.into_any().downcast::<Vec<T>>().map(|b| *b).map_err(|_| {
                Error::Plan(format!(
                    "a step expected rows of type {}, but received another type",
                    std::any::type_name::<T>()
                ))
            }),
            Chunk::Arrow(batch) => decode(&batch),
        }
    }

    /// The chunk as Arrow, encoding rows if needed.
    pub fn into_batch<T: Data>(self) -> Result<RecordBatch> {
        match self {
            Chunk::Arrow(batch) => Ok(batch),
            Chunk::Rows(_) => encode_vec(self.into_rows::<T>()?),
        }
    }
}

/// The data size of `batch` in bytes: its buffers as sliced, not their capacity.
pub fn batch_bytes(batch: &RecordBatch) -> u64 {
    batch
        .columns()
        .iter()
        .map(|c| c.to_data().get_slice_memory_size().unwrap_or(0))
        .sum::<usize>() as u64
}

/// About what `batch`'s variable-length values (strings, bytes, lists) take on the heap once
/// decoded into rows: their bytes, and 16 bytes of allocation each.
pub fn heap_bytes(batch: &RecordBatch) -> usize {
    batch.columns().iter().map(|c| array_heap_bytes(c.as_ref())).sum()
}

/// [`heap_bytes`] of one column.
fn array_heap_bytes(array: &dyn Array) -> usize {
    /// One allocation's overhead, about.
    const ALLOCATION: usize = 16;
    let values = array.len() * ALLOCATION;
    match array.data_type() {
        DataType::Utf8 => values + offsets_span(array.as_string::<i32>().value_offsets()),
        DataType::LargeUtf8 => values + offsets_span(array.as_string::<i64>().value_offsets()),
        DataType::Binary => values + offsets_span(array.as_binary::<i32>().value_offsets()),
        DataType::LargeBinary => values + offsets_span(array.as_binary::<i64>().value_offsets()),
        DataType::List(_) => values + list_values_bytes(array.as_list::<i32>().values().as_ref()),
        DataType::LargeList(_) => values + list_values_bytes(array.as_list::<i64>().values().as_ref()),
        DataType::Struct(_) => array
            .as_struct()
            .columns()
            .iter()
            .map(|c| array_heap_bytes(c.as_ref()))
            .sum(),
        _ => 0,
    }
}

/// The bytes between the first and the last of `offsets`.
fn offsets_span<O: arrow_array::OffsetSizeTrait>(offsets: &[O]) -> usize {
    match (offsets.first(), offsets.last()) {
        (Some(first), Some(last)) => (*last - *first).as_usize(),
        _ => 0,
    }
}

/// What a list's values take decoded: their own bytes and theirs on the heap.
fn list_values_bytes(values: &dyn Array) -> usize {
    values.to_data().get_slice_memory_size().unwrap_or(0) + array_heap_bytes(values)
}

/// Schema metadata key telling how a batch encodes rows.
const LAYOUT: &str = "ringleader.layout";
const LAYOUT_ITEM: &str = "item";
const LAYOUT_RECORD: &str = "record";
const LAYOUT_PAIR: &str = "pair";

/// Whether `T` and `U` are the same type (the codec's and operators' fast-path test).
pub fn is<T: 'static, U: 'static>() -> bool {
    TypeId::of::<T>() == TypeId::of::<U>()
}

/// Reinterprets a `Vec<T>` as `Vec<U>` when they are the same type.
pub fn cast_vec<T: 'static, U: 'static>(v: Vec<T>) -> std::result::Result<Vec<U>, Vec<T>> {
    if is::<T, U>() {
        let boxed: Box<dyn Any> = Box::new(v);
        Ok(*boxed
            .downcast::<Vec<U>>()
            .unwrap_or_else(|_| unreachable!("same TypeId")))
    } else {
        Err(v)
    }
}

/// Views `&[T]` as `&[U]` when they are the same type.
pub fn cast_slice<T: 'static, U: 'static>(v: &[T]) -> Option<&[U]> {
    if is::<T, U>() {
        // SAFETY: T and U are the same type (equal TypeIds).
        Some(unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<U>(), v.len()) })
    } else {
        None
    }
}

fn batch_with_layout(columns: Vec<(&str, ArrayRef)>, layout: &str) -> Result<RecordBatch> {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, a)| Field::new(*name, a.data_type().clone(), a.null_count() > 0))
        .collect();
    let schema = Schema::new(fields).with_metadata(HashMap::from([(LAYOUT.to_string(), layout.to_string())]));
    Ok(RecordBatch::try_new(
        Arc::new(schema),
        columns.into_iter().map(|(_, a)| a).collect(),
    )?)
}

fn string_array<'a>(strings: impl Iterator<Item = &'a str>, rows: usize, bytes: usize) -> ArrayRef {
    let mut builder = StringBuilder::with_capacity(rows, bytes);
    for s in strings {
        builder.append_value(s);
    }
    Arc::new(builder.finish())
}

/// Encodes rows as one Arrow batch.
pub fn encode<T: Data>(rows: &[T]) -> Result<RecordBatch> {
    if let Some(records) = cast_slice::<T, Record>(rows) {
        return encode_records(Record::slice_as_bytes(records).to_vec());
    }
    if let Some(v) = cast_slice::<T, i64>(rows) {
        return batch_with_layout(vec![("item", Arc::new(Int64Array::from(v.to_vec())))], LAYOUT_ITEM);
    }
    if let Some(v) = cast_slice::<T, u64>(rows) {
        return batch_with_layout(vec![("item", Arc::new(UInt64Array::from(v.to_vec())))], LAYOUT_ITEM);
    }
    if let Some(v) = cast_slice::<T, f64>(rows) {
        return batch_with_layout(vec![("item", Arc::new(Float64Array::from(v.to_vec())))], LAYOUT_ITEM);
    }
    if let Some(v) = cast_slice::<T, String>(rows) {
        let bytes = v.iter().map(String::len).sum();
        let a = string_array(v.iter().map(String::as_str), v.len(), bytes);
        return batch_with_layout(vec![("item", a)], LAYOUT_ITEM);
    }
    if let Some(v) = cast_slice::<T, (String, u64)>(rows) {
        let bytes = v.iter().map(|(s, _)| s.len()).sum();
        let keys = string_array(v.iter().map(|(s, _)| s.as_str()), v.len(), bytes);
        let values: ArrayRef = Arc::new(UInt64Array::from_iter_values(v.iter().map(|(_, n)| *n)));
        return batch_with_layout(vec![("0", keys), ("1", values)], LAYOUT_PAIR);
    }
    if let Some(v) = cast_slice::<T, (String, i64)>(rows) {
        let bytes = v.iter().map(|(s, _)| s.len()).sum();
        let keys = string_array(v.iter().map(|(s, _)| s.as_str()), v.len(), bytes);
        let values: ArrayRef = Arc::new(Int64Array::from_iter_values(v.iter().map(|(_, n)| *n)));
        return batch_with_layout(vec![("0", keys), ("1", values)], LAYOUT_PAIR);
    }
    encode_serde(rows)
}

/// The schema [`encode`] gives rows of `T` (that of an empty batch of them).
pub fn schema_of<T: Data>() -> Result<arrow_schema::SchemaRef> {
    Ok(encode_vec(Vec::<T>::new())?.schema())
}

/// `batch` with one column per field of its rows: rows of a struct type encoded as one
/// struct column (the layout `encode` gives them) are unnested; a batch already in table
/// form (a CSV or columnar source's) is returned as it is.
pub fn as_table(batch: RecordBatch) -> Result<RecordBatch> {
    let item = batch.schema().metadata().get(LAYOUT).map(String::as_str) == Some(LAYOUT_ITEM);
    if item
        && batch.num_columns() == 1
        && let Some(rows) = batch.column(0).as_struct_opt()
    {
        return Ok(RecordBatch::from(rows.clone()));
    }
    Ok(batch)
}

/// Encodes rows, taking ownership so gensort records convert without a copy.
pub fn encode_vec<T: Data>(rows: Vec<T>) -> Result<RecordBatch> {
    match cast_vec::<T, Record>(rows) {
        Ok(records) => encode_records(Record::vec_into_bytes(records)),
        Err(rows) => encode(&rows),
    }
}

fn encode_records(bytes: Vec<u8>) -> Result<RecordBatch> {
    records_batch(Buffer::from_vec(bytes))
}

/// A batch of records over `bytes` (a whole number of records), without copying.
pub fn records_batch(bytes: Buffer) -> Result<RecordBatch> {
    let array = FixedSizeBinaryArray::try_new(RECORD_LEN as i32, bytes, None)?;
    batch_with_layout(vec![("record", Arc::new(array))], LAYOUT_RECORD)
}

/// The records of a batch of records, viewed in place (no copy); `None` if the batch does
/// not hold a non-null `FixedSizeBinary(100)` column.
pub fn records_view(batch: &RecordBatch) -> Option<&[Record]> {
    if batch.num_columns() != 1 || batch.column(0).null_count() > 0 {
        return None;
    }
    let array = batch.column(0).as_fixed_size_binary_opt()?;
    if array.value_length() as usize != RECORD_LEN {
        return None;
    }
    let start = array.offset() * RECORD_LEN;
    Record::slice_from_bytes(array.value_data().get(start..start + array.len() * RECORD_LEN)?)
}

/// How `serde_arrow` maps Rust types: nullable where the type says so, and the common
/// 32-bit-offset string, binary and list types other tools expect.
pub fn tracing_options() -> TracingOptions {
    TracingOptions::default()
        .allow_null_fields(true)
        .strings_as_large_utf8(false)
        .bytes_as_large_binary(false)
        .sequence_as_large_list(false)
}

/// The Arrow schema of `T`'s fields as top-level columns (e.g. the columns of a CSV file).
pub fn table_schema<T: Data>() -> Result<arrow_schema::SchemaRef> {
    let fields = Vec::<FieldRef>::from_type::<T>(tracing_options()).map_err(|e| {
        Error::Codec(format!(
            "{} has no table schema (a struct with named fields is needed): {e}",
            std::any::type_name::<T>()
        ))
    })?;
    Ok(Arc::new(Schema::new(fields)))
}

/// Rows of a struct type as a batch with one column per field, of `fields` (its
/// [`table_schema`]): what columnar outputs hold, for other tools to read.
pub fn encode_table<T: Data>(fields: &[FieldRef], rows: &[T]) -> Result<RecordBatch> {
    Ok(serde_arrow::to_record_batch(fields, &rows)?)
}

/// Per-type schema cache: tracing a type's schema is deterministic, so do it once.
fn traced_fields<T: Data>() -> Option<Vec<FieldRef>> {
    static CACHE: OnceLock<RwLock<HashMap<TypeId, Option<Vec<FieldRef>>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(hit) = cache.read().unwrap_or_else(|e| e.into_inner()).get(&TypeId::of::<T>()) {
        return hit.clone();
    }
    let traced = Vec::<FieldRef>::from_type::<serde_arrow::utils::Item<T>>(tracing_options()).ok();
    cache
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(TypeId::of::<T>(), traced.clone());
    traced
}

fn encode_serde<T: Data>(rows: &[T]) -> Result<RecordBatch> {
    let fields = match traced_fields::<T>() {
        Some(f) => f,
        None => Vec::<FieldRef>::from_samples(Items(rows), tracing_options())?,
    };
    let batch = serde_arrow::to_record_batch(&fields, &Items(rows))?;
    let schema = batch
        .schema()
        .as_ref()
        .clone()
        .with_metadata(HashMap::from([(LAYOUT.to_string(), LAYOUT_ITEM.to_string())]));
    Ok(batch.with_schema(Arc::new(schema))?)
}

/// Decodes a batch into rows of `T`.
///
/// Batches written by [`encode`] carry their layout in the schema metadata; batches from
/// outside (Arrow IPC, Parquet, CSV files) decode column by column into `T`'s fields, and a
/// single column decodes into a primitive `T` directly.
pub fn decode<T: Data>(batch: &RecordBatch) -> Result<Vec<T>> {
    if batch.num_rows() == 0 {
        return Ok(Vec::new());
    }
    let layout = batch.schema().metadata().get(LAYOUT).cloned();
    if is::<T, Record>() {
        let column = batch
            .column(0)
            .as_fixed_size_binary_opt()
            .filter(|a| a.value_length() as usize == RECORD_LEN);
        let Some(array) = column else {
            return Err(Error::Codec(format!(
                "expected a FixedSizeBinary({RECORD_LEN}) column of records, found {}",
                batch.column(0).data_type()
            )));
        };
        let bytes = &array.value_data()[..array.len() * RECORD_LEN];
        let records = Record::slice_from_bytes(bytes).unwrap_or_default().to_vec();
        return cast_vec::<Record, T>(records).map_err(|_| unreachable_cast());
    }
    if batch.num_columns() == 1
        && let Some(rows) = decode_primitive::<T>(batch.column(0))?
    {
        return Ok(rows);
    }
    if layout.as_deref() == Some(LAYOUT_PAIR)
        && batch.num_columns() == 2
        && let Some(rows) = decode_pair::<T>(batch)?
    {
        return Ok(rows);
    }
    if layout.as_deref() == Some(LAYOUT_ITEM) {
        let Items(rows): Items<Vec<T>> = serde_arrow::from_record_batch(batch)?;
        return Ok(rows);
    }
    match serde_arrow::from_record_batch::<Vec<T>>(batch) {
        Ok(rows) => Ok(rows),
        Err(table_err) if batch.num_columns() == 1 => {
            let field = batch.schema().field(0).clone().with_name("item");
            let renamed = RecordBatch::try_new(Arc::new(Schema::new(vec![field])), vec![batch.column(0).clone()])?;
            serde_arrow::from_record_batch::<Items<Vec<T>>>(&renamed)
                .map(|Items(rows)| rows)
                .map_err(|_| table_err.into())
        }
        Err(e) => Err(e.into()),
    }
}

fn unreachable_cast() -> Error {
    Error::Plan("internal: type cast between equal types failed".into())
}

fn decode_primitive<T: Data>(column: &ArrayRef) -> Result<Option<Vec<T>>> {
    if column.null_count() > 0 {
        return Ok(None);
    }
    if is::<T, i64>() {
        if let Some(a) = column.as_primitive_opt::<Int64Type>() {
            return cast_to::<i64, T>(a.values().to_vec());
        }
    } else if is::<T, u64>() {
        if let Some(a) = column.as_primitive_opt::<UInt64Type>() {
            return cast_to::<u64, T>(a.values().to_vec());
        }
    } else if is::<T, f64>() {
        if let Some(a) = column.as_primitive_opt::<Float64Type>() {
            return cast_to::<f64, T>(a.values().to_vec());
        }
    } else if is::<T, String>()
        && let Some(a) = column.as_any().downcast_ref::<StringArray>()
    {
        let v: Vec<String> = a.iter().map(|s| s.unwrap_or_default().to_string()).collect();
        return cast_to::<String, T>(v);
    }
    Ok(None)
}

fn cast_to<U: 'static, T: 'static>(v: Vec<U>) -> Result<Option<Vec<T>>> {
    cast_vec::<U, T>(v).map(Some).map_err(|_| unreachable_cast())
}

fn decode_pair<T: Data>(batch: &RecordBatch) -> Result<Option<Vec<T>>> {
    let Some(keys) = batch.column(0).as_any().downcast_ref::<StringArray>() else {
        return Ok(None);
    };
    if is::<T, (String, u64)>() {
        if let Some(values) = batch.column(1).as_primitive_opt::<UInt64Type>() {
            let v: Vec<(String, u64)> = keys
                .iter()
                .zip(values.values().iter())
                .map(|(k, v)| (k.unwrap_or_default().to_string(), *v))
                .collect();
            return cast_vec::<(String, u64), T>(v)
                .map(Some)
                .map_err(|_| unreachable_cast());
        }
    } else if is::<T, (String, i64)>()
        && let Some(values) = batch.column(1).as_primitive_opt::<Int64Type>()
    {
        let v: Vec<(String, i64)> = keys
            .iter()
            .zip(values.values().iter())
            .map(|(k, v)| (k.unwrap_or_default().to_string(), *v))
            .collect();
        return cast_vec::<(String, i64), T>(v)
            .map(Some)
            .map_err(|_| unreachable_cast());
    }
    Ok(None)
}

/// Whether `DataType` is a 64-bit signed integer (used by the `sum` fast path).
pub fn is_int64(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Int64)
}
