//! `Dataset<T>`: a lazy, partitioned collection. Transformations add nodes to the plan;
//! actions plan it into stages and run it.
//!
//! Every closure passed here must capture nothing (a compile-time check says so and points
//! to [`Dataset::map_with`]): it is recorded as a shipped trampoline, exactly as a cluster
//! executor will receive it.

use std::fmt::Display;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;

use ringleader_core::data::record::Record;
use ringleader_core::data::{Data, decode};
use ringleader_core::io::output_format::OutputFormat;
use ringleader_core::io::store::DatasetFormat;
use ringleader_core::ops::sinks::Combiner;
use ringleader_core::ops::{action, narrow, reduce, sinks};
use ringleader_core::plan::shipped::{Shipped, assert_no_capture};
use ringleader_core::plan::{ActionFn, ReduceFn, SinkFn, StageOutput, Step, StepFn, TaskValue};
use ringleader_core::ship;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use ringleader_core::ops::action::Summable;
pub use ringleader_core::ops::narrow::PartitionRows;

use crate::Result;
use crate::engine::Engine;
use crate::lineage::{Lineage, ShuffleSide};

mod actions;
mod caching;
mod pairs;
mod partitions;

/// A lazy, partitioned collection of `T`.
pub struct Dataset<T> {
    engine: Arc<Engine>,
    pub(crate) node: Arc<Lineage>,
    _rows: PhantomData<fn() -> T>,
}

impl<T> Clone for Dataset<T> {
    fn clone(&self) -> Self {
        Dataset {
            engine: self.engine.clone(),
            node: self.node.clone(),
            _rows: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Dataset<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Dataset<{}>", std::any::type_name::<T>())
    }
}

pub use crate::outputs::{Output, Saved};

impl<T: Data> Dataset<T> {
    pub(crate) fn from_node(engine: Arc<Engine>, node: Arc<Lineage>) -> Self {
        Dataset {
            engine,
            node,
            _rows: PhantomData,
        }
    }

    fn derive<U: Data>(&self, node: Lineage) -> Dataset<U> {
        Dataset::from_node(self.engine.clone(), Arc::new(node))
    }

    fn step<U: Data>(&self, f: Shipped<StepFn>, state: Vec<u8>) -> Dataset<U> {
        self.derive(Lineage::Narrow {
            parent: self.node.clone(),
            step: Step { f, state },
            indexed: false,
        })
    }

    /// A narrow step whose state the planner prefixes with each task's partition index.
    fn indexed_step<U: Data>(&self, f: Shipped<StepFn>, state: Vec<u8>) -> Dataset<U> {
        self.derive(Lineage::Narrow {
            parent: self.node.clone(),
            step: Step { f, state },
            indexed: true,
        })
    }

    /// This dataset with a note for [`Dataset::explain`] (what the API chose for it).
    fn described(&self, what: String) -> Dataset<T> {
        self.derive(Lineage::Described {
            parent: self.node.clone(),
            what,
        })
    }

    /// How this dataset will be computed: one line per step of its lineage, the dataset
    /// itself first and its inputs indented below, with the choices made for it (a join
    /// that broadcasts one side says so, with that side's estimated size).
    ///
    /// # Examples
    /// ```
    /// let ctx = ringleader::Context::embedded();
    /// let big = ctx.parallelize((0..1000i64).map(|i| (i % 10, i)).collect(), 4).unwrap();
    /// let small = ctx.parallelize(vec![(1i64, "one".to_string())], 1).unwrap();
    /// let plan = big.join(&small).explain();
    /// assert!(plan.starts_with("broadcast hash join: the right side"), "{plan}");
    /// ```
    pub fn explain(&self) -> String {
        let mut out = String::new();
        self.node.explain(0, &mut out);
        out
    }

    /// A node that fails the job with `message` when an action runs it.
    fn invalid<U: Data>(&self, message: String) -> Dataset<U> {
        self.derive(Lineage::Invalid { message })
    }

    /// Applies `f` to every row.
    ///
    /// # Examples
    /// ```
    /// let ctx = ringleader::Context::embedded();
    /// let doubled = ctx.parallelize(vec![1i64, 2, 3], 2).unwrap().map(|x| x * 2);
    /// assert_eq!(doubled.collect().unwrap(), vec![2, 4, 6]);
    /// ```
    ///
    /// A closure that captures a variable does not compile; pass the data with
    /// [`Dataset::map_with`] instead:
    /// ```compile_fail
    /// let ctx = ringleader::Context::embedded();
    /// let factor = 3i64;
    /// let _ = ctx.parallelize(vec![1i64], 1).unwrap().map(move |x| x * factor).collect();
    /// ```
    ///
    /// Nor does one that captures a zero-sized value with a `Drop` (every task would make
    /// values of it from nothing): a shipped closure is `Copy`.
    /// ```compile_fail,E0277
    /// struct Guard;
    /// impl Drop for Guard {
    ///     fn drop(&mut self) {}
    /// }
    /// let ctx = ringleader::Context::embedded();
    /// let guard = Guard;
    /// let _ = ctx.parallelize(vec![1i64], 1).unwrap().map(move |x| {
    ///     let _ = &guard;
    ///     x
    /// });
    /// ```
    pub fn map<U: Data, F: Fn(T) -> U + Copy + Send + Sync + 'static>(&self, f: F) -> Dataset<U> {
        const { assert_no_capture::<F>() };
        let _ = f;
        self.step(ship!(narrow::map::<T, U, F> as StepFn), Vec::new())
    }

    /// Applies `f` to `state` and every row; `state` is serialised into the plan, so a
    /// closure gets the data it needs without capturing it.
    ///
    /// # Examples
    /// ```
    /// let ctx = ringleader::Context::embedded();
    /// let scaled = ctx.parallelize(vec![1i64, 2], 1).unwrap().map_with(10i64, |factor, x| x * factor);
    /// assert_eq!(scaled.collect().unwrap(), vec![10, 20]);
    /// ```
    pub fn map_with<S, U, F>(&self, state: S, f: F) -> Dataset<U>
    where
        S: Serialize + DeserializeOwned + Send + 'static,
        U: Data,
        F: Fn(&S, T) -> U + Copy + Send + Sync + 'static,
    {
        const { assert_no_capture::<F>() };
        let _ = f;
        match postcard::to_stdvec(&state) {
            Ok(bytes) => self.step(ship!(narrow::map_with::<S, T, U, F> as StepFn), bytes),
            Err(e) => self.invalid(format!("cannot serialise the state of map_with: {e}")),
        }
    }

    /// The rows as `U`, a struct with some of `T`'s fields (same names and types): only
    /// those columns are decoded from then on (from a cached dataset or a columnar source,
    /// the others are never read into rows; right after a CSV or Parquet source, they are
    /// not even parsed). A field `T` lacks is an error when the plan is
    /// built, naming it.
    ///
    /// # Examples
    /// ```
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Sale { city: String, amount: i64, note: String }
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Amount { amount: i64 }
    /// let ctx = ringleader::Context::embedded();
    /// let sales = ctx.parallelize(vec![Sale { city: "Oslo".into(), amount: 3, note: "a".into() }], 1).unwrap();
    /// assert_eq!(sales.select::<Amount>().map(|a| a.amount).sum().unwrap(), 3);
    /// // A field the rows lack fails before any task runs, naming it.
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Price { price: i64 }
    /// let error = sales.select::<Price>().count().unwrap_err();
    /// assert!(error.to_string().contains("\"price\""), "{error}");
    /// ```
    pub fn select<U: Data>(&self) -> Dataset<U> {
        let known = (|| -> std::result::Result<Vec<String>, String> {
            let have = narrow::column_names::<T>().map_err(|e| e.to_string())?;
            let want = narrow::column_names::<U>().map_err(|e| e.to_string())?;
            match want.iter().find(|w| !have.contains(w)) {
                Some(missing) => Err(format!(
                    "select: {} has no field {missing:?} (it has {})",
                    std::any::type_name::<T>(),
                    have.join(", ")
                )),
                None => Ok(want),
            }
        })();
        match known {
            Ok(_) => match self.node.as_ref() {
                // Right after a CSV or Parquet source, only `U`'s columns are read at all.
                Lineage::Source { splits } => match crate::columns::projected_splits::<T, U>(splits) {
                    Some(splits) => self.derive(Lineage::Source { splits }),
                    None => self.step(ship!(narrow::select::<T, U> as StepFn), Vec::new()),
                },
                _ => self.step(ship!(narrow::select::<T, U> as StepFn), Vec::new()),
            },
            Err(message) => self.invalid(message),
        }
    }

    /// Keeps the rows for which `f` is true.
    ///
    /// # Examples
    /// ```
    /// let ctx = ringleader::Context::embedded();
    /// let odd = ctx.parallelize((1..=5i64).collect(), 2).unwrap().filter(|x| x % 2 == 1);
    /// assert_eq!(odd.collect().unwrap(), vec![1, 3, 5]);
    /// ```
    pub fn filter<F: Fn(&T) -> bool + Copy + Send + Sync + 'static>(&self, f: F) -> Dataset<T> {
        const { assert_no_capture::<F>() };
        let _ = f;
        self.step(ship!(narrow::filter::<T, F> as StepFn), Vec::new())
    }

    /// Replaces every row by the rows `f` returns for it.
    ///
    /// # Examples
    /// ```
    /// let ctx = ringleader::Context::embedded();
    /// let lines = ctx.parallelize(vec!["a b".to_string(), "c".to_string()], 1).unwrap();
    /// let words = lines.flat_map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>());
    /// assert_eq!(words.collect().unwrap(), vec!["a", "b", "c"]);
    /// ```
    pub fn flat_map<U, I, F>(&self, f: F) -> Dataset<U>
    where
        U: Data,
        I: IntoIterator<Item = U>,
        F: Fn(T) -> I + Copy + Send + Sync + 'static,
    {
        const { assert_no_capture::<F>() };
        let _ = f;
        self.step(ship!(narrow::flat_map::<T, U, I, F> as StepFn), Vec::new())
    }

    /// A shuffle of this dataset's rows through `sink`, reduced by `reduce`.
    fn shuffle<U: Data>(&self, sink: Shipped<SinkFn>, reduce: Shipped<ReduceFn>) -> Dataset<U> {
        self.shuffle_sides(vec![ShuffleSide::new(self.node.clone(), sink)], reduce)
    }

    /// A shuffle of several sides into [`crate::Config::shuffle_partitions`] partitions.
    fn shuffle_sides<U: Data>(&self, sides: Vec<ShuffleSide>, reduce: Shipped<ReduceFn>) -> Dataset<U> {
        self.derive(Lineage::Shuffle {
            sides,
            reduce,
            partitions: self.engine.config().shuffle_partitions,
        })
    }

    /// `flat_map` then `reduce_by_key` in one step, without an owned key per pair: `f` adds
    /// the pairs of each row to the map task's [`Combiner`] with borrowed keys (a `&str`
    /// slice of the row, say), and a key is copied only the first time the table sees it.
    /// The values of each key are merged with `reduce`, as `reduce_by_key` does.
    ///
    /// # Examples
    /// ```
    /// use ringleader::Combiner;
    /// let ctx = ringleader::Context::embedded();
    /// let lines = ctx.parallelize(vec!["a b a".to_string(), "b a".to_string()], 2).unwrap();
    /// let counts = lines.flat_map_reduce(
    ///     |line: &String, words: &mut Combiner<String, u64>| {
    ///         for word in line.split_whitespace() {
    ///             words.add(word, 1);
    ///         }
    ///     },
    ///     |a, b| a + b,
    /// );
    /// let mut counts = counts.collect().unwrap();
    /// counts.sort();
    /// assert_eq!(counts, vec![("a".to_string(), 3), ("b".to_string(), 2)]);
    /// ```
    pub fn flat_map_reduce<K, V, F, R>(&self, f: F, reduce: R) -> Dataset<(K, V)>
    where
        K: Data + Hash + Eq,
        V: Data,
        F: Fn(&T, &mut Combiner<K, V>) + Copy + Send + Sync + 'static,
        R: Fn(V, V) -> V + Copy + Send + Sync + 'static,
    {
        const { assert_no_capture::<F>() };
        const { assert_no_capture::<R>() };
        let _ = (f, reduce);
        self.shuffle(
            ship!(sinks::emit_combine::<T, K, V, F, R> as SinkFn),
            ship!(reduce::combine::<K, V, R> as ReduceFn),
        )
    }

    /// Hands each whole partition to `f` as an iterator, once per partition (e.g. to set up
    /// something expensive once, or to combine rows locally).
    ///
    /// # Examples
    /// ```
    /// let ctx = ringleader::Context::embedded();
    /// let sums = ctx.parallelize((1..=4i64).collect(), 2).unwrap().map_partitions(|rows| Some(rows.sum::<i64>()));
    /// assert_eq!(sums.collect().unwrap(), vec![3, 7]);
    /// ```
    pub fn map_partitions<U, I, F>(&self, f: F) -> Dataset<U>
    where
        U: Data,
        I: IntoIterator<Item = U>,
        I::IntoIter: Send + 'static,
        F: Fn(PartitionRows<T>) -> I + Copy + Send + Sync + 'static,
    {
        const { assert_no_capture::<F>() };
        let _ = f;
        self.step(ship!(narrow::map_partitions::<T, U, I, F> as StepFn), Vec::new())
    }

    /// Pairs every row with a key computed by `f`.
    ///
    /// # Examples
    /// ```
    /// let ctx = ringleader::Context::embedded();
    /// let keyed = ctx.parallelize(vec!["apple".to_string()], 1).unwrap().key_by(|s| s.len());
    /// assert_eq!(keyed.collect().unwrap(), vec![(5, "apple".to_string())]);
    /// ```
    pub fn key_by<K: Data, F: Fn(&T) -> K + Copy + Send + Sync + 'static>(&self, f: F) -> Dataset<(K, T)> {
        const { assert_no_capture::<F>() };
        let _ = f;
        self.step(ship!(narrow::key_by::<T, K, F> as StepFn), Vec::new())
    }

    /// The rows of `self` followed by those of `other`.
    ///
    /// # Examples
    /// ```
    /// let ctx = ringleader::Context::embedded();
    /// let a = ctx.parallelize(vec![1i64], 1).unwrap();
    /// let b = ctx.parallelize(vec![2i64], 1).unwrap();
    /// assert_eq!(a.union(&b).collect().unwrap(), vec![1, 2]);
    /// ```
    pub fn union(&self, other: &Dataset<T>) -> Dataset<T> {
        self.derive(Lineage::Union {
            parents: vec![self.node.clone(), other.node.clone()],
        })
    }

    /// One copy of each distinct row (a shuffle, de-duplicated on both sides).
    ///
    /// # Examples
    /// ```
    /// let ctx = ringleader::Context::embedded();
    /// let mut d = ctx.parallelize(vec![3i64, 1, 3, 1], 2).unwrap().distinct().collect().unwrap();
    /// d.sort();
    /// assert_eq!(d, vec![1, 3]);
    /// ```
    pub fn distinct(&self) -> Dataset<T>
    where
        T: Hash + Eq,
    {
        self.shuffle(
            ship!(sinks::distinct::<T> as SinkFn),
            ship!(reduce::distinct::<T> as ReduceFn),
        )
    }

    /// Sorts by the key `f` computes, ascending, into [`Config::shuffle_partitions`]
    /// partitions whose concatenation is sorted: keys are sampled to choose range bounds
    /// (TeraSort's method), rows are range-partitioned, and each partition is sorted.
    ///
    /// [`Config::shuffle_partitions`]: crate::Config::shuffle_partitions
    ///
    /// # Examples
    /// ```
    /// let ctx = ringleader::Context::embedded();
    /// let sorted = ctx.parallelize(vec![5i64, 3, 9, 1], 2).unwrap().sort_by_key(|x| *x);
    /// assert_eq!(sorted.collect().unwrap(), vec![1, 3, 5, 9]);
    /// ```
    pub fn sort_by_key<K, F>(&self, f: F) -> Dataset<T>
    where
        K: Data + Ord + Clone,
        F: Fn(&T) -> K + Copy + Send + Sync + 'static,
    {
        self.sort_by_key_into(self.engine.config().shuffle_partitions, f)
    }

    /// [`Dataset::sort_by_key`] into exactly `partitions` partitions.
    ///
    /// # Examples
    /// ```
    /// let ctx = ringleader::Context::embedded();
    /// let words = ctx.parallelize(vec!["pear".to_string(), "fig".to_string(), "apple".to_string()], 2).unwrap();
    /// let by_length = words.sort_by_key_into(2, |w| w.len());
    /// assert_eq!(by_length.collect().unwrap(), vec!["fig", "pear", "apple"]);
    /// ```
    pub fn sort_by_key_into<K, F>(&self, partitions: u32, f: F) -> Dataset<T>
    where
        K: Data + Ord + Clone,
        F: Fn(&T) -> K + Copy + Send + Sync + 'static,
    {
        const { assert_no_capture::<F>() };
        let _ = f;
        self.derive(Lineage::Sort {
            parent: self.node.clone(),
            sample: ship!(action::sample_keys::<T, K, F> as ActionFn),
            sink: ship!(sinks::range_from_samples::<T, K, F> as SinkFn),
            reduce: ship!(reduce::sort::<T, K, F> as ReduceFn),
            partitions: partitions.max(1),
        })
    }

    /// The plan of an action over this dataset, once every cache it reaches is computed.
    fn plan(&self, output: StageOutput) -> Result<ringleader_core::plan::JobPlan> {
        crate::cache::prepare(&self.engine, &self.node)?;
        crate::planner::plan(&self.node, output, &self.engine.caches().splits())
    }

    fn run(&self, f: Shipped<ActionFn>, state: Vec<u8>) -> Result<Vec<TaskValue>> {
        let plan = self.plan(StageOutput::Action { f, state })?;
        self.engine.execute(&plan)
    }

    fn rows_of(values: Vec<TaskValue>) -> Result<Vec<T>> {
        let mut rows = Vec::new();
        for v in values {
            if let TaskValue::Batches(bytes) = v {
                for batch in ringleader_core::data::ipc::from_stream_bytes(&bytes)? {
                    rows.extend(decode::<T>(&batch)?);
                }
            }
        }
        Ok(rows)
    }

    /// All rows, in partition order.
    ///
    /// # Examples
    /// ```
    /// let ctx = ringleader::Context::embedded();
    /// assert_eq!(ctx.parallelize(vec![1i64, 2], 2).unwrap().collect().unwrap(), vec![1, 2]);
    /// ```
    pub fn collect(&self) -> Result<Vec<T>> {
        let plan = self.plan(crate::outputs::collect_output::<T>())?;
        Self::rows_of(self.engine.execute(&plan)?)
    }

    /// The first `n` rows, in partition order.
    ///
    /// # Examples
    /// ```
    /// let ctx = ringleader::Context::embedded();
    /// assert_eq!(ctx.parallelize((1..=100i64).collect(), 4).unwrap().take(3).unwrap(), vec![1, 2, 3]);
    /// ```
    pub fn take(&self, n: usize) -> Result<Vec<T>> {
        let mut rows =
            Self::rows_of(self.run(ship!(action::take::<T> as ActionFn), postcard::to_stdvec(&(n as u64))?)?)?;
        rows.truncate(n);
        Ok(rows)
    }

    /// The number of rows.
    ///
    /// # Examples
    /// ```
    /// let ctx = ringleader::Context::embedded();
    /// assert_eq!(ctx.parallelize(vec![(); 7], 3).unwrap().count().unwrap(), 7);
    /// ```
    pub fn count(&self) -> Result<u64> {
        let values = self.run(ship!(action::count as ActionFn), Vec::new())?;
        Ok(values
            .iter()
            .map(|v| if let TaskValue::Count(n) = v { *n } else { 0 })
            .sum())
    }

    /// The sum of all rows; integer overflow is an error, never a wrap.
    ///
    /// # Examples
    /// ```
    /// let ctx = ringleader::Context::embedded();
    /// assert_eq!(ctx.parallelize(vec![1i64, 2, 3], 2).unwrap().sum().unwrap(), 6);
    /// assert!(ctx.parallelize(vec![i64::MAX, 1], 1).unwrap().sum().is_err());
    /// ```
    pub fn sum(&self) -> Result<T>
    where
        T: Summable,
    {
        let mut total = T::zero();
        for v in self.run(ship!(action::sum::<T> as ActionFn), Vec::new())? {
            if let TaskValue::Bytes(b) = v {
                total = action::add(total, postcard::from_bytes(&b)?)?;
            }
        }
        Ok(total)
    }

    /// Folds all rows with `f` (which should be associative and commutative); `None` for
    /// an empty dataset.
    ///
    /// # Examples
    /// ```
    /// let ctx = ringleader::Context::embedded();
    /// let max = ctx.parallelize(vec![4i64, 9, 2], 2).unwrap().reduce(|a, b| a.max(b)).unwrap();
    /// assert_eq!(max, Some(9));
    /// ```
    pub fn reduce<F: Fn(T, T) -> T + Copy + Send + Sync + 'static>(&self, f: F) -> Result<Option<T>> {
        const { assert_no_capture::<F>() };
        let mut acc: Option<T> = None;
        for v in self.run(ship!(action::reduce::<T, F> as ActionFn), Vec::new())? {
            if let TaskValue::Bytes(b) = v
                && let Some(x) = postcard::from_bytes::<Option<T>>(&b)?
            {
                acc = Some(match acc {
                    Some(a) => f(a, x),
                    None => x,
                });
            }
        }
        Ok(acc)
    }

    /// Writes the rows with `to_files` into a local directory the workers can see, with
    /// `to_store` into a stored dataset (`ringleader://NAME`), or through a temporary stored
    /// dataset streamed back here when the workers are on other machines: where it goes is
    /// the engine's choice ([`crate::outputs::save`]).
    fn save(&self, output: Output, writers: crate::outputs::Writers) -> Result<Saved> {
        crate::outputs::save(&self.engine, &|out| self.plan(out), output, writers)
    }

    /// The writers of a save whose local state is its staging directory.
    fn writers(
        to_files: Shipped<ActionFn>,
        to_store: Shipped<ActionFn>,
        format: DatasetFormat,
    ) -> crate::outputs::Writers {
        crate::outputs::Writers {
            to_files,
            files_state: Box::new(|dir| Ok(postcard::to_stdvec(&action::SaveState { dir })?)),
            to_store,
            format,
            parquet: false,
        }
    }

    /// Writes the rows column by column (a struct's fields become columns) into a
    /// columnar file per partition under `output`, committed all at once; on a cluster,
    /// `ringleader://NAME` stores an Arrow dataset instead (for `save_arrow`).
    fn save_columnar(&self, output: Output, format: OutputFormat) -> Result<Saved> {
        // A row type Arrow cannot hold is refused before any task runs.
        ringleader_core::data::schema_of::<T>().map_err(|e| {
            crate::Error::Plan(format!(
                "rows of type {} cannot be written as Arrow columns: {e}",
                std::any::type_name::<T>()
            ))
        })?;
        format.check_built()?;
        let writers = crate::outputs::Writers {
            to_files: ship!(action::save_columnar::<T> as ActionFn),
            files_state: Box::new(move |dir| Ok(postcard::to_stdvec(&action::ColumnarState { dir, format })?)),
            to_store: ship!(action::store_columnar::<T> as ActionFn),
            format: DatasetFormat::Arrow,
            parquet: format == OutputFormat::Parquet,
        };
        self.save(output, writers)
    }

    /// Writes the rows as Arrow IPC files, column by column (a struct's fields become
    /// columns), into `part-00000.arrow`, `part-00001.arrow`, … (one per partition) under
    /// `output`; or, on a cluster, into the stored dataset `ringleader://NAME`. The output
    /// appears only when the whole job succeeded. DuckDB, Polars and pyarrow read it.
    ///
    /// # Examples
    /// ```
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Count { word: String, count: u64 }
    /// let dir = tempfile::tempdir().unwrap();
    /// let ctx = ringleader::Context::embedded();
    /// let counts = ctx.parallelize(vec![Count { word: "a".into(), count: 2 }], 1).unwrap();
    /// let saved = counts.save_arrow(dir.path().join("out")).unwrap();
    /// assert_eq!(saved.rows, 1);
    /// assert!(dir.path().join("out/part-00000.arrow").exists());
    /// ```
    pub fn save_arrow(&self, output: impl Into<Output>) -> Result<Saved> {
        self.save_columnar(output.into(), OutputFormat::Arrow)
    }

    /// Writes the rows as Parquet (Snappy-compressed), column by column (a struct's fields
    /// become columns), into `part-00000.parquet`, `part-00001.parquet`, … (one per
    /// partition) under `output`. The output appears only when the whole job succeeded.
    /// DuckDB, Polars, pyarrow and Spark read it. Needs the `parquet` feature; without it,
    /// this fails with [`Error::FeatureOff`](crate::Error) before any task runs.
    ///
    /// # Examples
    /// ```
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Count { word: String, count: u64 }
    /// let dir = tempfile::tempdir().unwrap();
    /// let ctx = ringleader::Context::embedded();
    /// let counts = ctx.parallelize(vec![Count { word: "a".into(), count: 2 }], 1).unwrap();
    /// let saved = counts.save_parquet(dir.path().join("out"));
    /// if cfg!(feature = "parquet") {
    ///     assert_eq!(saved.unwrap().rows, 1);
    ///     assert!(dir.path().join("out/part-00000.parquet").exists());
    /// } else {
    ///     assert!(saved.is_err());
    ///     assert!(!dir.path().join("out").exists(), "nothing is written");
    /// }
    /// ```
    pub fn save_parquet(&self, output: impl Into<Output>) -> Result<Saved> {
        self.save_columnar(output.into(), OutputFormat::Parquet)
    }

    /// Writes each row's `Display` as a line into `part-00000`, `part-00001`, … (one per
    /// partition) under `output`. The output appears only when the whole job succeeded.
    ///
    /// # Examples
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let out = dir.path().join("out");
    /// let ctx = ringleader::Context::embedded();
    /// ctx.parallelize(vec![1i64, 2], 1).unwrap().save_text(&out).unwrap();
    /// assert_eq!(std::fs::read_to_string(out.join("part-00000")).unwrap(), "1\n2\n");
    /// ```
    pub fn save_text(&self, output: impl Into<Output>) -> Result<Saved>
    where
        T: Display,
    {
        let writers = Self::writers(
            ship!(action::save_text::<T> as ActionFn),
            ship!(action::store_text::<T> as ActionFn),
            DatasetFormat::Text,
        );
        self.save(output.into(), writers)
    }
}

impl Dataset<Record> {
    /// Writes the raw 100-byte records, in order, into `part-00000`, `part-00001`, …
    /// under `output` (gensort's format). The output appears only when the job succeeded.
    ///
    /// # Examples
    /// ```
    /// use ringleader::Record;
    /// let dir = tempfile::tempdir().unwrap();
    /// let ctx = ringleader::Context::embedded();
    /// let records = ctx.parallelize(vec![Record([1; 100]), Record([0; 100])], 1).unwrap();
    /// records.sort_by_key_into(1, |r| r.key()).save_records(dir.path().join("out")).unwrap();
    /// let bytes = std::fs::read(dir.path().join("out/part-00000")).unwrap();
    /// assert_eq!((bytes.len(), bytes[0]), (200, 0));
    /// ```
    pub fn save_records(&self, output: impl Into<Output>) -> Result<Saved> {
        let writers = Self::writers(
            ship!(action::save_records as ActionFn),
            ship!(action::store_records as ActionFn),
            DatasetFormat::Records,
        );
        self.save(output.into(), writers)
    }
}

impl<K: Data + Hash + Eq, V: Data> Dataset<(K, V)> {
    /// Merges the values of each key with `f`, combining on the map side first so only one
    /// value per key and map task crosses the shuffle.
    ///
    /// # Examples
    /// ```
    /// let ctx = ringleader::Context::embedded();
    /// let pairs = ctx.parallelize(vec![("a".to_string(), 1u64), ("b".to_string(), 1), ("a".to_string(), 1)], 2).unwrap();
    /// let mut counts = pairs.reduce_by_key(|x, y| x + y).collect().unwrap();
    /// counts.sort();
    /// assert_eq!(counts, vec![("a".to_string(), 2), ("b".to_string(), 1)]);
    /// ```
    pub fn reduce_by_key<F: Fn(V, V) -> V + Copy + Send + Sync + 'static>(&self, f: F) -> Dataset<(K, V)> {
        const { assert_no_capture::<F>() };
        let _ = f;
        self.shuffle(
            ship!(sinks::combine::<K, V, F> as SinkFn),
            ship!(reduce::combine::<K, V, F> as ReduceFn),
        )
    }

    /// Gathers the values of each key (in no particular order).
    ///
    /// # Examples
    /// ```
    /// let ctx = ringleader::Context::embedded();
    /// let pairs = ctx.parallelize(vec![(1i64, 'x'), (1, 'y'), (2, 'z')], 2).unwrap();
    /// let mut groups = pairs.group_by_key().collect().unwrap();
    /// groups.sort();
    /// for (_, vs) in &mut groups { vs.sort(); }
    /// assert_eq!(groups, vec![(1, vec!['x', 'y']), (2, vec!['z'])]);
    /// ```
    pub fn group_by_key(&self) -> Dataset<(K, Vec<V>)> {
        self.shuffle(
            ship!(sinks::hash::<K, V> as SinkFn),
            ship!(reduce::group::<K, V> as ReduceFn),
        )
    }

    /// Inner hash join on the key: every pair of values, one from each side, whose keys match.
    ///
    /// # Examples
    /// ```
    /// let ctx = ringleader::Context::embedded();
    /// let names = ctx.parallelize(vec![(1i64, "ada".to_string()), (2, "bob".to_string())], 1).unwrap();
    /// let ages = ctx.parallelize(vec![(1i64, 36i64), (3, 50)], 1).unwrap();
    /// assert_eq!(names.join(&ages).collect().unwrap(), vec![(1, ("ada".to_string(), 36))]);
    /// ```
    pub fn join<W: Data + Clone>(&self, other: &Dataset<(K, W)>) -> Dataset<(K, (V, W))>
    where
        K: Clone,
        V: Clone,
    {
        self.hash_join::<W, reduce::Inner>(other)
    }
}

#[cfg(test)]
mod tests {
    /// Without the `parquet` feature, `save_parquet` fails before any task runs, naming the
    /// feature, and leaves no output; with it, the file is written.
    #[test]
    fn save_parquet_needs_the_feature_and_says_so_before_running() {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = dir.path().join("out");
        let ctx = crate::Context::embedded();
        let rows = ctx.parallelize(vec![1i64, 2, 3], 2).expect("parallelize");
        let saved = rows.save_parquet(out.as_path());
        if cfg!(feature = "parquet") {
            assert_eq!(saved.expect("saved").rows, 3);
            assert!(out.join("part-00000.parquet").exists());
        } else {
            let error = saved.expect_err("no parquet feature");
            assert!(
                matches!(error, crate::Error::FeatureOff { feature: "parquet", .. }),
                "{error}"
            );
            assert!(error.to_string().contains("--features parquet"), "{error}");
            assert!(!out.exists(), "nothing written");
        }
    }
}
