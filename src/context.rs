//! The job's handle on the engine: configuration, the task pool, and the sources that start
//! every dataset. Sources list and check their input when they are called, so a missing
//! directory or a torn record file fails before any task runs.

use std::path::Path;
use std::sync::Arc;

use ringleader_core::data::record::{RECORD_LEN, Record};
use ringleader_core::data::{Data, encode};
use ringleader_core::io::source::SchemaFn;
use ringleader_core::io::source::{self, Split};
use ringleader_core::io::store::DatasetFormat;

use crate::Result;
use crate::broadcast::Broadcast;
use crate::config::Config;
use crate::dataset::Dataset;
use crate::engine::Engine;
use crate::lineage::Lineage;

/// Options for reading text.
#[derive(Debug, Clone, Copy, Default)]
pub struct TextOptions {
    /// Replace bytes that are not UTF-8 with U+FFFD instead of failing the job.
    pub lossy: bool,
}

/// The entry point of a job: creates datasets and runs their actions.
///
/// # Examples
/// ```
/// let ctx = ringleader::Context::embedded();
/// let evens = ctx.parallelize((1..=10i64).collect(), 2).unwrap().filter(|x| x % 2 == 0);
/// assert_eq!(evens.count().unwrap(), 5);
/// ```
#[derive(Clone)]
pub struct Context {
    engine: Arc<Engine>,
}

impl Context {
    /// An embedded engine with `config`.
    ///
    /// # Examples
    /// ```
    /// let config = ringleader::Config { threads: 2, shuffle_partitions: 3, ..Default::default() };
    /// let ctx = ringleader::Context::new(config).unwrap();
    /// assert_eq!(ctx.config().shuffle_partitions, 3);
    /// ```
    pub fn new(config: Config) -> Result<Context> {
        Ok(Context {
            engine: Arc::new(Engine::embedded(config)?),
        })
    }

    /// An embedded engine with default settings.
    pub fn embedded() -> Context {
        Context::new(Config::default()).unwrap_or_else(|e| panic!("cannot start the embedded engine: {e}"))
    }

    /// An engine configured from `RINGLEADER_*` environment variables: a client of the
    /// cluster named by `RINGLEADER_MASTER` when it is set, embedded otherwise.
    pub fn from_env() -> Result<Context> {
        let config = Config::from_env()?;
        match std::env::var("RINGLEADER_MASTER").ok().filter(|m| !m.trim().is_empty()) {
            Some(masters) => Context::cluster(config, &masters),
            None => Context::new(config),
        }
    }

    /// A client of the cluster whose driver(s) listen at `masters` (`host:port[,…]`).
    pub fn cluster(config: Config, masters: &str) -> Result<Context> {
        Ok(Context {
            engine: Arc::new(Engine::cluster(config, masters)?),
        })
    }

    /// Whether actions run on a cluster.
    pub fn is_cluster(&self) -> bool {
        self.engine.cluster_client().is_some()
    }

    /// The engine's settings.
    pub fn config(&self) -> &Config {
        self.engine.config()
    }

    /// A source's rows from wherever the engine says they are read (see
    /// [`crate::inputs::resolve`]): `None` for local files the workers read themselves.
    fn resolve_input<T: Data>(
        &self,
        path: &Path,
        format: DatasetFormat,
        column: Option<&str>,
    ) -> Result<Option<Dataset<T>>> {
        Ok(crate::inputs::resolve(&self.engine, path, format, column)?
            .map(|splits| self.dataset_node(Lineage::Source { splits })))
    }

    /// A typed source's rows (CSV, Parquet) from `splits`, wherever the engine reads them
    /// (see [`crate::inputs::typed`]).
    fn typed_source<T: Data>(
        &self,
        path: &Path,
        splits: impl FnOnce() -> Result<Vec<(Split, u64)>>,
    ) -> Result<Dataset<T>> {
        let splits = crate::inputs::typed(&self.engine, path, splits)?;
        Ok(self.dataset_node(Lineage::Source { splits }))
    }

    /// Bytes the most recent embedded job spilled to disk, shuffle blocks and operators'
    /// spills together (0 when it fit in memory).
    pub fn last_spilled_bytes(&self) -> u64 {
        self.engine.last_spilled_bytes()
    }

    /// Bytes the most recent embedded job's operators (sorts, hash tables, joins) spilled
    /// because their partitions outgrew the memory budget.
    pub fn last_operator_spilled_bytes(&self) -> u64 {
        self.engine.last_operator_spilled_bytes()
    }

    pub(crate) fn dataset_node<T: Data>(&self, node: Lineage) -> Dataset<T> {
        Dataset::from_node(self.engine.clone(), Arc::new(node))
    }

    /// Split size for `total` bytes: at most the configured size, small enough that every
    /// thread gets about two splits.
    fn split_size(&self, total: u64) -> u64 {
        let per_thread = total.div_ceil(self.engine.config().threads as u64 * 2);
        let max = self.engine.config().split_size.max(1);
        per_thread.clamp(max.min(1 << 20), max)
    }

    /// Lines of the text files under `path` (a file or a directory), as `String`s without
    /// their line ends. Large files are read in several splits. Bytes that are not UTF-8
    /// fail the job, naming the file and line; see [`Context::text_files_with`].
    ///
    /// # Examples
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// std::fs::write(dir.path().join("a.txt"), "one\ntwo\n").unwrap();
    /// let ctx = ringleader::Context::embedded();
    /// assert_eq!(ctx.text_files(dir.path()).unwrap().count().unwrap(), 2);
    /// ```
    pub fn text_files(&self, path: impl AsRef<Path>) -> Result<Dataset<String>> {
        self.text_files_with(path, TextOptions::default())
    }

    /// [`Context::text_files`] with options (e.g. lossy UTF-8).
    ///
    /// # Examples
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// std::fs::write(dir.path().join("a.txt"), b"caf\xe9\n").unwrap();
    /// let ctx = ringleader::Context::embedded();
    /// let lossy = ringleader::TextOptions { lossy: true };
    /// let lines = ctx.text_files_with(dir.path(), lossy).unwrap().collect().unwrap();
    /// assert_eq!(lines, vec!["caf\u{fffd}".to_string()]);
    /// ```
    pub fn text_files_with(&self, path: impl AsRef<Path>, options: TextOptions) -> Result<Dataset<String>> {
        if let Some(stored) = self.resolve_input(path.as_ref(), DatasetFormat::Text, None)? {
            return Ok(stored);
        }
        let files = source::list_files(path.as_ref(), |_| true)?;
        let split = self.split_size(files.iter().map(|(_, n)| n).sum());
        let mut splits = Vec::new();
        for (file, len) in files {
            for (start, end) in source::byte_ranges(len, split, 1) {
                splits.push(Split::Text {
                    path: file.clone(),
                    start,
                    end,
                    lossy: options.lossy,
                });
            }
        }
        Ok(self.dataset_node(Lineage::Source { splits }))
    }

    /// The 100-byte gensort records of the files under `path`. A file whose size is not a
    /// multiple of 100 is an error naming it and the offset of its torn record.
    ///
    /// # Examples
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// std::fs::write(dir.path().join("in"), vec![7u8; 300]).unwrap();
    /// let ctx = ringleader::Context::embedded();
    /// assert_eq!(ctx.record_files(dir.path()).unwrap().count().unwrap(), 3);
    /// ```
    pub fn record_files(&self, path: impl AsRef<Path>) -> Result<Dataset<Record>> {
        if let Some(stored) = self.resolve_input(path.as_ref(), DatasetFormat::Records, None)? {
            return Ok(stored);
        }
        let files = source::list_files(path.as_ref(), |_| true)?;
        for (file, len) in &files {
            source::records::check_size(file, *len)?;
        }
        let split = self.split_size(files.iter().map(|(_, n)| n).sum());
        let mut splits = Vec::new();
        for (file, len) in files {
            for (start, end) in source::byte_ranges(len, split, RECORD_LEN as u64) {
                splits.push(Split::Records {
                    path: file.clone(),
                    start,
                    end,
                });
            }
        }
        Ok(self.dataset_node(Lineage::Source { splits }))
    }

    fn ipc_splits(
        &self,
        path: &Path,
        column: impl Fn(&Path, &source::ipc::Footer) -> Result<Option<usize>>,
    ) -> Result<Vec<Split>> {
        let files = source::list_files(path, |p| {
            source::has_extension(p, "arrow") || source::has_extension(p, "ipc")
        })?;
        let mut splits = Vec::new();
        for (file, _) in files {
            let footer = source::ipc::Footer::read(&file)?;
            let column = column(&file, &footer)?;
            // Two splits per file at least, so both cores work on a single file.
            let n = footer.batches;
            let per = n.div_ceil(2).max(1);
            let mut first = 0;
            while first < n {
                let end = (first + per).min(n);
                splits.push(Split::Ipc {
                    path: file.clone(),
                    first,
                    end,
                    column,
                });
                first = end;
            }
        }
        Ok(splits)
    }

    /// Rows of type `T` from the Arrow IPC files (`*.arrow`) under `path`, decoded column by
    /// column into `T`'s fields (or, for a one-column file, into `T` itself).
    ///
    /// # Examples
    /// ```
    /// # use std::sync::Arc;
    /// # use arrow_array::Int64Array;
    /// # use arrow_array::RecordBatch;
    /// let dir = tempfile::tempdir().unwrap();
    /// let batch = RecordBatch::try_from_iter([("v", Arc::new(Int64Array::from(vec![1, 2, 3])) as _)]).unwrap();
    /// let mut w = arrow_ipc::writer::FileWriter::try_new(
    ///     std::fs::File::create(dir.path().join("n.arrow")).unwrap(), &batch.schema()).unwrap();
    /// w.write(&batch).unwrap();
    /// w.finish().unwrap();
    /// let ctx = ringleader::Context::embedded();
    /// assert_eq!(ctx.arrow_files::<i64>(dir.path()).unwrap().sum().unwrap(), 6);
    /// ```
    pub fn arrow_files<T: Data>(&self, path: impl AsRef<Path>) -> Result<Dataset<T>> {
        if let Some(stored) = self.resolve_input(path.as_ref(), DatasetFormat::Arrow, None)? {
            return Ok(stored);
        }
        let splits = self.ipc_splits(path.as_ref(), |_, _| Ok(None))?;
        Ok(self.dataset_node(Lineage::Source { splits }))
    }

    /// One `Int64` column of the Arrow IPC files under `path`: `column` by name, or each
    /// file's first `Int64` column. Only that column is read, memory-mapped and without
    /// copies; [`Dataset::sum`] adds it with Arrow's kernel.
    ///
    /// # Examples
    /// ```
    /// # use std::sync::Arc;
    /// # use arrow_array::{Int64Array, StringArray};
    /// # use arrow_array::RecordBatch;
    /// let dir = tempfile::tempdir().unwrap();
    /// let batch = RecordBatch::try_from_iter([
    ///     ("name", Arc::new(StringArray::from(vec!["a", "b"])) as _),
    ///     ("qty", Arc::new(Int64Array::from(vec![40, 2])) as _),
    /// ]).unwrap();
    /// let mut w = arrow_ipc::writer::FileWriter::try_new(
    ///     std::fs::File::create(dir.path().join("t.arrow")).unwrap(), &batch.schema()).unwrap();
    /// w.write(&batch).unwrap();
    /// w.finish().unwrap();
    /// let ctx = ringleader::Context::embedded();
    /// assert_eq!(ctx.arrow_column(dir.path(), Some("qty")).unwrap().sum().unwrap(), 42);
    /// assert_eq!(ctx.arrow_column(dir.path(), None).unwrap().sum().unwrap(), 42);
    /// ```
    pub fn arrow_column(&self, path: impl AsRef<Path>, column: Option<&str>) -> Result<Dataset<i64>> {
        if let Some(stored) = self.resolve_input(path.as_ref(), DatasetFormat::Arrow, column)? {
            return Ok(stored);
        }
        let splits = self.ipc_splits(path.as_ref(), |file, footer| {
            source::ipc::find_int64_column(file, &footer.schema, column).map(Some)
        })?;
        Ok(self.dataset_node(Lineage::Source { splits }))
    }

    /// Rows of type `T` from the Parquet files (`*.parquet`) under `path`, a split per row
    /// group; of a struct, only the columns named by its fields are read. Where the workers cannot see the client's files, the rows are read here and
    /// travel as a temporary Arrow dataset; `ringleader://NAME` reads a stored Arrow dataset.
    ///
    /// Needs the `parquet` feature; without it, this fails with [`Error::FeatureOff`](crate::Error).
    ///
    /// # Examples
    /// ```
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Row { v: i64 }
    /// let dir = tempfile::tempdir().unwrap();
    /// let ctx = ringleader::Context::embedded();
    /// let rows = ctx.parallelize(vec![Row { v: 1 }, Row { v: 2 }, Row { v: 3 }], 2).unwrap();
    /// let written = rows.save_parquet(dir.path().join("t"));
    /// if cfg!(feature = "parquet") {
    ///     written.unwrap();
    ///     assert_eq!(ctx.parquet_files::<Row>(dir.path().join("t")).unwrap().map(|r| r.v).sum().unwrap(), 6);
    /// } else {
    ///     assert!(matches!(written, Err(ringleader::Error::FeatureOff { feature: "parquet", .. })));
    /// }
    /// ```
    pub fn parquet_files<T: Data>(&self, path: impl AsRef<Path>) -> Result<Dataset<T>> {
        // A struct's fields are the columns read; any other type reads them all.
        let columns = ringleader_core::data::table_schema::<T>()
            .ok()
            .map(|schema| schema.fields().iter().map(|f| f.name().clone()).collect::<Vec<_>>());
        self.typed_source(path.as_ref(), || {
            let files = source::list_files(path.as_ref(), |p| source::has_extension(p, "parquet"))?;
            let mut splits = Vec::new();
            for (file, bytes) in files {
                let groups = source::parquet::row_groups(&file)?;
                for rg in 0..groups {
                    let split = Split::Parquet {
                        path: file.clone(),
                        row_groups: vec![rg],
                        columns: columns.clone(),
                    };
                    splits.push((split, bytes / groups.max(1) as u64));
                }
            }
            Ok(splits)
        })
    }

    /// Rows of type `T` from the CSV files (`*.csv`, with a header line) under `path`. Each
    /// of `T`'s fields is the column of its name (a missing one fails here, naming it and the
    /// header), parsed as the field's type: a value of the wrong type fails the job, naming
    /// the file, line and column. Only those columns are parsed, so a row type of two fields
    /// reads two columns of a wide file. A large file is read by several tasks, cut on record
    /// boundaries (quoted fields may hold newlines and doubled quotes, as RFC 4180 has them). Where the workers cannot see the client's files,
    /// the rows are parsed here and travel as a temporary Arrow dataset; `ringleader://NAME`
    /// reads a stored Arrow dataset (e.g. a job's output of `T` rows).
    ///
    /// # Examples
    /// ```
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Sale { city: String, amount: i64 }
    /// let dir = tempfile::tempdir().unwrap();
    /// std::fs::write(dir.path().join("s.csv"), "city,amount\nOslo,3\nLima,4\n").unwrap();
    /// let ctx = ringleader::Context::embedded();
    /// let total = ctx.csv_files::<Sale>(dir.path()).unwrap().map(|s| s.amount).sum().unwrap();
    /// assert_eq!(total, 7);
    /// ```
    pub fn csv_files<T: Data>(&self, path: impl AsRef<Path>) -> Result<Dataset<T>> {
        let row_schema = crate::columns::csv_schema::<T>()?;
        self.typed_source(path.as_ref(), || {
            let files = source::list_files(path.as_ref(), |p| source::has_extension(p, "csv"))?;
            let split = self.split_size(files.iter().map(|(_, n)| n).sum());
            let schema = ringleader_core::ship!(crate::columns::csv_schema::<T> as SchemaFn);
            let mut splits = Vec::new();
            for (file, len) in files {
                for piece in source::csv::plan(&file, len, &row_schema, split)? {
                    let bytes = piece.end - piece.start;
                    splits.push((
                        Split::Csv {
                            path: file.clone(),
                            schema,
                            piece,
                        },
                        bytes,
                    ));
                }
            }
            Ok(splits)
        })
    }

    /// A dataset stored on the cluster (`ringleader put --name NAME`, or a job's output to
    /// `ringleader://NAME`), of any format whose rows decode into `T`: one split per
    /// partition, each run on a worker that holds it when one is free. Cluster mode only.
    /// `text_files("ringleader://NAME")` and the other sources read one too, checking
    /// its format.
    pub fn dataset<T: Data>(&self, name: &str) -> Result<Dataset<T>> {
        let name = match ringleader_core::io::store::parse_url(Path::new(name)) {
            Some(parsed) => parsed?,
            None => name.to_string(),
        };
        let splits = crate::inputs::stored(&self.engine, &name, crate::inputs::Expect::Any, None)?;
        Ok(self.dataset_node(Lineage::Source { splits }))
    }

    /// A counter or sum named `name` (the job page lists it), starting at zero: closures add
    /// to it through their state, and [`Accumulator::value`] reads it after an action. Each
    /// successful task's updates count once, also when tasks are retried, recomputed or
    /// speculated.
    ///
    /// # Examples
    /// ```
    /// let ctx = ringleader::Context::embedded();
    /// let blank = ctx.accumulator::<u64>("blank lines");
    /// let lines = ctx.parallelize(vec!["a".to_string(), String::new(), "b".to_string()], 2).unwrap();
    /// let words = lines.map_with(blank.clone(), |blank, line| {
    ///     if line.is_empty() {
    ///         blank.add(1);
    ///     }
    ///     line.len()
    /// });
    /// assert_eq!(words.count().unwrap(), 3);
    /// assert_eq!(blank.value(), 1);
    /// ```
    pub fn accumulator<T: crate::Accumulable>(&self, name: &str) -> crate::Accumulator<T> {
        crate::Accumulator::new(name)
    }

    /// Sends `value` to every task once per worker (not once per task): tasks read it with
    /// [`Broadcast::value`] through the state of `map_with` and its friends, where only
    /// the handle travels. Embedded it stays in this process; on a cluster it is stored with
    /// a copy on every live worker (by Flight, never through the driver group's log) and
    /// removed when the program ends.
    ///
    /// # Examples
    /// ```
    /// let ctx = ringleader::Context::embedded();
    /// let names = ctx.broadcast(vec!["zero".to_string(), "one".to_string()]).unwrap();
    /// let named = ctx.parallelize(vec![1usize, 0, 1], 2).unwrap().map_with(names, |names, i| names.value()[i].clone());
    /// assert_eq!(named.collect().unwrap(), vec!["one", "zero", "one"]);
    /// ```
    pub fn broadcast<T: Data>(&self, value: T) -> Result<Broadcast<T>> {
        crate::broadcast::share(&self.engine, value)
    }

    /// A dataset of `rows`, cut into `partitions` pieces shipped inside the plan.
    ///
    /// # Examples
    /// ```
    /// let ctx = ringleader::Context::embedded();
    /// let words = ctx.parallelize(vec!["a".to_string(), "b".to_string()], 2).unwrap();
    /// assert_eq!(words.collect().unwrap(), vec!["a", "b"]);
    /// ```
    pub fn parallelize<T: Data>(&self, rows: Vec<T>, partitions: usize) -> Result<Dataset<T>> {
        let partitions = partitions.max(1);
        // Exactly `partitions` splits, as Spark slices a collection: the rows in order, as
        // evenly as they go (some empty when there are fewer rows than partitions).
        let bound = |i: usize| i * rows.len() / partitions;
        // Each split with its size in bytes.
        let mut splits: Vec<(Split, u64)> = Vec::new();
        for piece in (0..partitions).map(|i| &rows[bound(i)..bound(i + 1)]) {
            let ipc = ringleader_core::data::ipc::to_stream_bytes(&[encode(piece)?])?;
            let bytes = ipc.len() as u64;
            splits.push((Split::Inline { ipc }, bytes));
        }
        let splits = crate::inputs::inline(&self.engine, splits)?;
        Ok(self.dataset_node(Lineage::Source { splits }))
    }
}
