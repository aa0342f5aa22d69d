//! Operators that change how rows are spread over partitions, or need to know which
//! partition they run in: `repartition`, `coalesce`, `map_partitions_with_index`, `sample`,
//! `zip_with_index` and `cartesian`.

use std::sync::Arc;

use ringleader_core::data::Data;
use ringleader_core::ops::sinks::Grid;
use ringleader_core::ops::{action, narrow, reduce, sinks};
use ringleader_core::plan::shipped::assert_no_capture;
use ringleader_core::plan::{ActionFn, ReduceFn, SinkFn, StepFn, TaskValue};
use ringleader_core::ship;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use ringleader_core::ops::narrow::SampleSpec;

use super::{Dataset, PartitionRows};
use crate::lineage::{Lineage, ShuffleSide};

impl<T: Data> Dataset<T> {
    /// Spreads the rows evenly over `partitions` partitions, by a shuffle (round robin
    /// from a different start in each input partition).
    ///
    /// # Examples
    /// ```
    /// let ctx = ringleader::Context::embedded();
    /// let spread = ctx.parallelize((0..100i64).collect(), 1).unwrap().repartition(4);
    /// let sizes = spread.map_partitions(|rows| Some(rows.count())).collect().unwrap();
    /// assert_eq!(sizes, vec![25, 25, 25, 25]);
    /// ```
    pub fn repartition(&self, partitions: u32) -> Dataset<T> {
        let partitions = partitions.max(1);
        let tagged: Dataset<(u32, T)> = match postcard::to_stdvec(&partitions) {
            Ok(state) => self.indexed_step(ship!(narrow::round_robin::<T> as StepFn), state),
            Err(e) => return self.invalid(format!("repartition: {e}")),
        };
        self.derive(Lineage::Shuffle {
            sides: vec![ShuffleSide::new(tagged.node, ship!(sinks::targeted::<T> as SinkFn))],
            reduce: ship!(reduce::concat::<T> as ReduceFn),
            partitions,
        })
    }

    /// At most `partitions` partitions, consecutive ones merged, without a shuffle where
    /// that can be done: source splits are read one after the other, and an upstream
    /// shuffle (through narrow steps) is planned with fewer partitions instead; a union's
    /// or a cache's partitions merge when their tasks read splits through the same steps
    /// (a union of sources, a cache whose partitions are all held). Anywhere else (a union
    /// of differently computed partitions, a cache with partitions to compute again) it is
    /// [`Dataset::repartition`].
    ///
    /// # Examples
    /// ```
    /// let ctx = ringleader::Context::embedded();
    /// let merged = ctx.parallelize((1..=6i64).collect(), 6).unwrap().coalesce(2);
    /// let sums = merged.map_partitions(|rows| Some(rows.sum::<i64>())).collect().unwrap();
    /// assert_eq!(sums, vec![6, 15]);
    /// ```
    pub fn coalesce(&self, partitions: u32) -> Dataset<T> {
        let partitions = partitions.max(1);
        match with_fewer_partitions(&self.node, partitions) {
            Some(node) => Dataset::from_node(self.engine.clone(), node),
            None => self.derive(Lineage::Coalesce {
                parent: self.node.clone(),
                partitions,
                fallback: Some(self.repartition(partitions).node),
            }),
        }
    }

    /// Hands `f` the index of each partition and its rows, once per partition.
    ///
    /// # Examples
    /// ```
    /// let ctx = ringleader::Context::embedded();
    /// let tagged = ctx.parallelize(vec!['a', 'b', 'c', 'd'], 2).unwrap()
    ///     .map_partitions_with_index(|i, rows| rows.map(move |c| (i, c)).collect::<Vec<_>>());
    /// assert_eq!(tagged.collect().unwrap(), vec![(0, 'a'), (0, 'b'), (1, 'c'), (1, 'd')]);
    /// ```
    pub fn map_partitions_with_index<U, I, F>(&self, f: F) -> Dataset<U>
    where
        U: Data,
        I: IntoIterator<Item = U>,
        I::IntoIter: Send + 'static,
        F: Fn(u32, PartitionRows<T>) -> I + Copy + Send + Sync + 'static,
    {
        const { assert_no_capture::<F>() };
        let _ = f;
        self.indexed_step(
            ship!(narrow::map_partitions_with_index::<T, U, I, F> as StepFn),
            Vec::new(),
        )
    }

    /// [`Dataset::map_partitions_with_index`] with `state` shipped in the plan, as
    /// [`Dataset::map_with`] does for `map`.
    ///
    /// # Examples
    /// ```
    /// let ctx = ringleader::Context::embedded();
    /// let offset = ctx.parallelize(vec![1i64, 2, 3, 4], 2).unwrap()
    ///     .map_partitions_with_index_and(100i64, |base, i, rows| rows.map(move |x| x + base * i as i64).collect::<Vec<_>>());
    /// assert_eq!(offset.collect().unwrap(), vec![1, 2, 103, 104]);
    /// ```
    pub fn map_partitions_with_index_and<S, U, I, F>(&self, state: S, f: F) -> Dataset<U>
    where
        S: Serialize + DeserializeOwned + Send + 'static,
        U: Data,
        I: IntoIterator<Item = U>,
        I::IntoIter: Send + 'static,
        F: Fn(&S, u32, PartitionRows<T>) -> I + Copy + Send + Sync + 'static,
    {
        const { assert_no_capture::<F>() };
        let _ = f;
        match postcard::to_stdvec(&state) {
            Ok(bytes) => self.indexed_step(
                ship!(narrow::map_partitions_with_index_and::<S, T, U, I, F> as StepFn),
                bytes,
            ),
            Err(e) => self.invalid(format!(
                "cannot serialise the state of map_partitions_with_index_and: {e}"
            )),
        }
    }

    /// A random sample: each row kept with probability `fraction`, or, `with_replacement`,
    /// a Poisson(`fraction`) number of copies of it. The same seed gives the same rows for
    /// the same input and partitions, on any engine.
    ///
    /// # Examples
    /// ```
    /// let ctx = ringleader::Context::embedded();
    /// let xs = ctx.parallelize((0..10_000i64).collect(), 4).unwrap();
    /// let a = xs.sample(false, 0.1, 7).collect().unwrap();
    /// assert_eq!(a, xs.sample(false, 0.1, 7).collect().unwrap(), "the same seed, the same rows");
    /// assert!((800..1200).contains(&a.len()), "{} rows", a.len());
    /// assert!(xs.sample(false, 1.5, 7).collect().is_err(), "a fraction over 1 needs replacement");
    /// ```
    pub fn sample(&self, with_replacement: bool, fraction: f64, seed: u64) -> Dataset<T>
    where
        T: Clone,
    {
        let valid = fraction.is_finite() && fraction >= 0.0 && (with_replacement || fraction <= 1.0);
        if !valid {
            return self.invalid(format!(
                "sample: fraction {fraction} must be a number from 0{}",
                if with_replacement {
                    " up"
                } else {
                    " to 1 (without replacement)"
                }
            ));
        }
        let spec = SampleSpec {
            with_replacement,
            fraction,
            seed,
        };
        match postcard::to_stdvec(&spec) {
            Ok(state) => self.indexed_step(ship!(narrow::sample::<T> as StepFn), state),
            Err(e) => self.invalid(format!("sample: {e}")),
        }
    }

    /// Pairs each row with its index in the dataset (partition order). Runs a job at once
    /// to count each partition's rows, as Spark's `zipWithIndex` does; a failure of that
    /// job fails the actions of the dataset returned.
    ///
    /// # Examples
    /// ```
    /// let ctx = ringleader::Context::embedded();
    /// let numbered = ctx.parallelize(vec!['a', 'b', 'c'], 2).unwrap().zip_with_index();
    /// assert_eq!(numbered.collect().unwrap(), vec![('a', 0), ('b', 1), ('c', 2)]);
    /// ```
    pub fn zip_with_index(&self) -> Dataset<(T, u64)> {
        let counts = match self.run(ship!(action::count as ActionFn), Vec::new()) {
            Ok(values) => values,
            Err(e) => return self.invalid(format!("zip_with_index: counting the partitions failed: {e}")),
        };
        let mut starts = Vec::with_capacity(counts.len());
        let mut next = 0u64;
        for value in &counts {
            starts.push(next);
            if let TaskValue::Count(n) = value {
                next += n;
            }
        }
        match postcard::to_stdvec(&starts) {
            Ok(state) => self.indexed_step(ship!(narrow::zip_with_index::<T> as StepFn), state),
            Err(e) => self.invalid(format!("zip_with_index: {e}")),
        }
    }

    /// Every pair of a row of `self` and a row of `other`. Each side is cut into slices
    /// (about the square root of [`crate::Config::shuffle_partitions`] each) and every
    /// partition pairs one slice of `self` with one of `other`; a slice of `self` larger
    /// than the memory budget is read again from disk for each chunk of `other`.
    ///
    /// # Examples
    /// ```
    /// let ctx = ringleader::Context::embedded();
    /// let a = ctx.parallelize(vec![1i64, 2], 2).unwrap();
    /// let b = ctx.parallelize(vec!['x', 'y'], 1).unwrap();
    /// let mut pairs = a.cartesian(&b).collect().unwrap();
    /// pairs.sort();
    /// assert_eq!(pairs, vec![(1, 'x'), (1, 'y'), (2, 'x'), (2, 'y')]);
    /// ```
    pub fn cartesian<U: Data + Clone>(&self, other: &Dataset<U>) -> Dataset<(T, U)>
    where
        T: Clone,
    {
        let total = self.engine.config().shuffle_partitions.max(1);
        let left = (total as f64).sqrt().ceil() as u32;
        let right = total.div_ceil(left);
        let side = |node: &Arc<Lineage>, slices: u32, is_left: bool, sink| -> Result<ShuffleSide, postcard::Error> {
            let tag = postcard::to_stdvec(&slices)?;
            let grid = Grid { left, right, is_left };
            Ok(ShuffleSide {
                parent: Arc::new(Lineage::Narrow {
                    parent: node.clone(),
                    step: ringleader_core::plan::Step {
                        f: if is_left {
                            ship!(narrow::round_robin::<T> as StepFn)
                        } else {
                            ship!(narrow::round_robin::<U> as StepFn)
                        },
                        state: tag,
                    },
                    indexed: true,
                }),
                sink,
                state: postcard::to_stdvec(&grid)?,
            })
        };
        let sides = side(&self.node, left, true, ship!(sinks::grid::<T> as SinkFn)).and_then(|l| {
            Ok(vec![
                l,
                side(&other.node, right, false, ship!(sinks::grid::<U> as SinkFn))?,
            ])
        });
        match sides {
            Ok(sides) => self.derive(Lineage::Shuffle {
                sides,
                reduce: ship!(reduce::cartesian::<T, U> as ReduceFn),
                partitions: left * right,
            }),
            Err(e) => self.invalid(format!("cartesian: {e}")),
        }
    }
}

/// `node` with at most `partitions` partitions and no new shuffle, if it can be had: source
/// splits merged (through plain narrow steps), or the nearest upstream shuffle or sort
/// (through narrow steps) planned with fewer partitions.
fn with_fewer_partitions(node: &Arc<Lineage>, partitions: u32) -> Option<Arc<Lineage>> {
    match node.as_ref() {
        Lineage::Source { .. } => Some(Arc::new(Lineage::Coalesce {
            parent: node.clone(),
            partitions,
            fallback: None,
        })),
        Lineage::Narrow { parent, step, indexed } => {
            if *indexed {
                // Its state depends on the partition: merging changes nothing below it.
                let parent = with_fewer_partitions(parent, partitions)?;
                return Some(Arc::new(Lineage::Narrow {
                    parent,
                    step: step.clone(),
                    indexed: true,
                }));
            }
            match with_fewer_partitions(parent, partitions)? {
                // Merged source splits keep their steps on top of the merge.
                merged if matches!(merged.as_ref(), Lineage::Coalesce { .. }) => Some(Arc::new(Lineage::Coalesce {
                    parent: node.clone(),
                    partitions,
                    fallback: None,
                })),
                parent => Some(Arc::new(Lineage::Narrow {
                    parent,
                    step: step.clone(),
                    indexed: false,
                })),
            }
        }
        Lineage::Shuffle {
            sides,
            reduce,
            partitions: before,
        } => Some(Arc::new(Lineage::Shuffle {
            sides: sides.clone(),
            reduce: *reduce,
            partitions: partitions.min(*before),
        })),
        Lineage::Sort {
            parent,
            sample,
            sink,
            reduce,
            partitions: before,
        } => Some(Arc::new(Lineage::Sort {
            parent: parent.clone(),
            sample: *sample,
            sink: *sink,
            reduce: *reduce,
            partitions: partitions.min(*before),
        })),
        Lineage::Coalesce {
            parent,
            partitions: before,
            fallback: None,
        } => with_fewer_partitions(parent, partitions.min(*before)),
        // A union's partitions may be computed differently; a cache's may be read or
        // computed again, partition by partition: whether they merge is known only when the
        // plan is made (see `Dataset::coalesce`).
        Lineage::Coalesce { fallback: Some(_), .. }
        | Lineage::Union { .. }
        | Lineage::Invalid { .. }
        | Lineage::Cached { .. } => None,
        Lineage::Described { parent, what } => Some(Arc::new(Lineage::Described {
            parent: with_fewer_partitions(parent, partitions)?,
            what: what.clone(),
        })),
    }
}
