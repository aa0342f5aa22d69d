//! Operators on pair datasets beyond `reduce_by_key`, `group_by_key` and `join`: the outer
//! joins, `cogroup`, `aggregate_by_key` and `count_by_key` (Spark's names, in Rust's style).

use std::collections::HashMap;
use std::hash::Hash;

use ringleader_core::data::Data;
use ringleader_core::ops::reduce::{FullOuter, JoinShape, LeftOuter, RightOuter};
use ringleader_core::ops::{reduce, sinks};
use ringleader_core::plan::{ReduceFn, SinkFn};
use ringleader_core::ship;
use ringleader_core::shipped::assert_no_capture;

use super::Dataset;
use crate::Result;
use crate::lineage::ShuffleSide;

impl<K: Data + Hash + Eq, V: Data> Dataset<(K, V)> {
    /// A hash join of `self` and `other` on the key, shaped by `S` (which rows it keeps).
    pub(super) fn hash_join<W, S>(&self, other: &Dataset<(K, W)>) -> Dataset<(K, S::Out)>
    where
        K: Clone,
        V: Clone,
        W: Data + Clone,
        S: JoinShape<V, W>,
    {
        self.shuffle_sides(
            vec![
                ShuffleSide::new(self.node.clone(), ship!(sinks::hash::<K, V> as SinkFn)),
                ShuffleSide::new(other.node.clone(), ship!(sinks::hash::<K, W> as SinkFn)),
            ],
            ship!(reduce::join::<K, V, W, S> as ReduceFn),
        )
    }

    /// Every row of `self` with each matching value of `other`, or `None` where `other`
    /// lacks its key (Spark's `leftOuterJoin`).
    ///
    /// # Examples
    /// ```
    /// let ctx = ringleader::Context::embedded();
    /// let names = ctx.parallelize(vec![(1i64, "ada".to_string()), (2, "bob".to_string())], 1).unwrap();
    /// let ages = ctx.parallelize(vec![(1i64, 36i64), (3, 50)], 1).unwrap();
    /// let mut joined = names.left_outer_join(&ages).collect().unwrap();
    /// joined.sort();
    /// assert_eq!(joined, vec![(1, ("ada".to_string(), Some(36))), (2, ("bob".to_string(), None))]);
    /// ```
    pub fn left_outer_join<W: Data + Clone>(&self, other: &Dataset<(K, W)>) -> Dataset<(K, (V, Option<W>))>
    where
        K: Clone,
        V: Clone,
    {
        self.hash_join::<W, LeftOuter>(other)
    }

    /// Every row of `other` with each matching value of `self`, or `None` where `self`
    /// lacks its key (Spark's `rightOuterJoin`).
    ///
    /// # Examples
    /// ```
    /// let ctx = ringleader::Context::embedded();
    /// let names = ctx.parallelize(vec![(1i64, "ada".to_string()), (2, "bob".to_string())], 1).unwrap();
    /// let ages = ctx.parallelize(vec![(1i64, 36i64), (3, 50)], 1).unwrap();
    /// let mut joined = names.right_outer_join(&ages).collect().unwrap();
    /// joined.sort();
    /// assert_eq!(joined, vec![(1, (Some("ada".to_string()), 36)), (3, (None, 50))]);
    /// ```
    pub fn right_outer_join<W: Data + Clone>(&self, other: &Dataset<(K, W)>) -> Dataset<(K, (Option<V>, W))>
    where
        K: Clone,
        V: Clone,
    {
        self.hash_join::<W, RightOuter>(other)
    }

    /// Every row of either side, paired with each match on the other side or with `None`
    /// (Spark's `fullOuterJoin`).
    ///
    /// # Examples
    /// ```
    /// let ctx = ringleader::Context::embedded();
    /// let names = ctx.parallelize(vec![(1i64, "ada".to_string()), (2, "bob".to_string())], 1).unwrap();
    /// let ages = ctx.parallelize(vec![(1i64, 36i64), (3, 50)], 1).unwrap();
    /// let mut joined = names.full_outer_join(&ages).collect().unwrap();
    /// joined.sort();
    /// assert_eq!(
    ///     joined,
    ///     vec![
    ///         (1, (Some("ada".to_string()), Some(36))),
    ///         (2, (Some("bob".to_string()), None)),
    ///         (3, (None, Some(50))),
    ///     ]
    /// );
    /// ```
    // The row type spelled out is what the caller matches on: an alias would hide it.
    #[allow(clippy::type_complexity)]
    pub fn full_outer_join<W: Data + Clone>(&self, other: &Dataset<(K, W)>) -> Dataset<(K, (Option<V>, Option<W>))>
    where
        K: Clone,
        V: Clone,
    {
        self.hash_join::<W, FullOuter>(other)
    }

    /// Each key of either side with all its values on each side (an empty list where a
    /// side lacks it; values in no particular order).
    ///
    /// # Examples
    /// ```
    /// let ctx = ringleader::Context::embedded();
    /// let a = ctx.parallelize(vec![(1i64, 'x'), (1, 'y'), (2, 'z')], 2).unwrap();
    /// let b = ctx.parallelize(vec![(1i64, 10u8), (3, 30)], 1).unwrap();
    /// let mut groups = a.cogroup(&b).collect().unwrap();
    /// groups.sort();
    /// for (_, (xs, _)) in &mut groups { xs.sort(); }
    /// assert_eq!(groups, vec![(1, (vec!['x', 'y'], vec![10])), (2, (vec!['z'], vec![])), (3, (vec![], vec![30]))]);
    /// ```
    // The row type spelled out is what the caller matches on: an alias would hide it.
    #[allow(clippy::type_complexity)]
    pub fn cogroup<W: Data>(&self, other: &Dataset<(K, W)>) -> Dataset<(K, (Vec<V>, Vec<W>))> {
        self.shuffle_sides(
            vec![
                ShuffleSide::new(self.node.clone(), ship!(sinks::hash::<K, V> as SinkFn)),
                ShuffleSide::new(other.node.clone(), ship!(sinks::hash::<K, W> as SinkFn)),
            ],
            ship!(reduce::cogroup::<K, V, W> as ReduceFn),
        )
    }

    /// Aggregates each key's values into a `U`: `seq` folds a value into an accumulator
    /// that starts at `zero`, `comb` merges two accumulators. Map-side combined like
    /// [`Dataset::reduce_by_key`]: one accumulator per key and map task crosses the
    /// shuffle. `zero` travels with the plan.
    ///
    /// # Examples
    /// ```
    /// let ctx = ringleader::Context::embedded();
    /// let pairs = ctx.parallelize(vec![("a".to_string(), 3i64), ("b".to_string(), 5), ("a".to_string(), 1)], 2).unwrap();
    /// // The sum and the count of each key's values: a mean without a second pass.
    /// let stats = pairs.aggregate_by_key((0i64, 0u64), |(s, n), v| (s + v, n + 1), |(s1, n1), (s2, n2)| (s1 + s2, n1 + n2));
    /// let mut stats = stats.collect().unwrap();
    /// stats.sort();
    /// assert_eq!(stats, vec![("a".to_string(), (4, 2)), ("b".to_string(), (5, 1))]);
    /// ```
    pub fn aggregate_by_key<U, S, C>(&self, zero: U, seq: S, comb: C) -> Dataset<(K, U)>
    where
        U: Data + Clone,
        S: Fn(U, V) -> U + Copy + Send + Sync + 'static,
        C: Fn(U, U) -> U + Copy + Send + Sync + 'static,
    {
        const { assert_no_capture::<S>() };
        // Capturing `seq`, which is zero-sized, keeps this closure capture-free.
        self.map_with(zero, move |zero: &U, (k, v): (K, V)| (k, seq(zero.clone(), v)))
            .reduce_by_key(comb)
    }

    /// The number of rows of each key, counted on the cluster and returned to the caller
    /// (an action, as Spark's `countByKey`).
    ///
    /// # Examples
    /// ```
    /// let ctx = ringleader::Context::embedded();
    /// let pairs = ctx.parallelize(vec![('a', 1i64), ('b', 2), ('a', 3)], 2).unwrap();
    /// let counts = pairs.count_by_key().unwrap();
    /// assert_eq!((counts[&'a'], counts[&'b']), (2, 1));
    /// ```
    pub fn count_by_key(&self) -> Result<HashMap<K, u64>> {
        Ok(self
            .map(|(k, _): (K, V)| (k, 1u64))
            .reduce_by_key(|a, b| a + b)
            .collect()?
            .into_iter()
            .collect())
    }
}
