//! Operators on pair datasets beyond `reduce_by_key`, `group_by_key` and `join`: the outer
//! joins, `cogroup`, `aggregate_by_key` and `count_by_key` (Spark's names, in Rust's style).

use std::collections::HashMap;
use std::hash::Hash;

use ringleader_core::data::Data;
use ringleader_core::ops::reduce::{FullOuter, JoinShape, LeftOuter, RightOuter};
use ringleader_core::ops::{reduce, sinks};
use ringleader_core::plan::shipped::assert_no_capture;
use ringleader_core::plan::{ReduceFn, SinkFn};
use ringleader_core::ship;

use std::sync::Arc;

use super::Dataset;
use crate::Result;
use crate::lineage::{Lineage, ShuffleSide};

/// Rows grouped by key, as a broadcast join's table.
fn grouped<K: Hash + Eq, W>(rows: Vec<(K, W)>) -> HashMap<K, Vec<W>> {
    let mut table: HashMap<K, Vec<W>> = HashMap::new();
    for (k, w) in rows {
        table.entry(k).or_default().push(w);
    }
    table
}

impl<K: Data + Hash + Eq, V: Data> Dataset<(K, V)> {
    /// A hash join of `self` and `other` on the key, shaped by `S` (which rows it keeps):
    /// a broadcast join when a side it may send whole is estimated at most
    /// [`crate::Config::broadcast_join_bytes`] (the smaller, if both are), else a shuffle of
    /// both sides.
    pub(super) fn hash_join<W, S>(&self, other: &Dataset<(K, W)>) -> Dataset<(K, S::Out)>
    where
        K: Clone,
        V: Clone,
        W: Data + Clone,
        S: JoinShape<V, W>,
    {
        let limit = self.engine.config().broadcast_join_bytes;
        let small = |d: &Arc<Lineage>| d.estimated_bytes().filter(|b| *b <= limit && limit > 0);
        let right = small(&other.node).filter(|_| !S::KEEP_RIGHT);
        let left = small(&self.node).filter(|_| !S::KEEP_LEFT);
        match (left, right) {
            (Some(l), Some(r)) if l < r => return self.broadcast_left::<W, S>(other, l),
            (_, Some(r)) => return self.broadcast_right::<W, S>(other, r),
            (Some(l), None) => return self.broadcast_left::<W, S>(other, l),
            (None, None) => {}
        }
        self.shuffle_sides(
            vec![
                ShuffleSide::new(self.node.clone(), ship!(sinks::hash::<K, V> as SinkFn)),
                ShuffleSide::new(other.node.clone(), ship!(sinks::hash::<K, W> as SinkFn)),
            ],
            ship!(reduce::join::<K, V, W, S> as ReduceFn),
        )
    }

    /// A join sending `other` (about `bytes`) to every task of `self`: its rows are
    /// collected now, grouped by key and broadcast; each task probes them with its rows.
    fn broadcast_right<W, S>(&self, other: &Dataset<(K, W)>, bytes: u64) -> Dataset<(K, S::Out)>
    where
        K: Clone,
        V: Clone,
        W: Data + Clone,
        S: JoinShape<V, W>,
    {
        let table = match other
            .collect()
            .and_then(|rows| crate::broadcast::share(&self.engine, grouped(rows)))
        {
            Ok(table) => table,
            Err(e) => return self.invalid(format!("join: broadcasting the right side failed: {e}")),
        };
        let joined = self.map_partitions_with_index_and(table, |table, _, rows| {
            let table = table.shared();
            rows.flat_map(move |(k, v): (K, V)| {
                let mut out = Vec::new();
                match table.get(&k) {
                    Some(ws) => out.extend(ws.iter().map(|w| (k.clone(), S::both(v.clone(), w.clone())))),
                    None if S::KEEP_LEFT => out.extend(S::left_only(v).map(|row| (k, row))),
                    None => {}
                }
                out
            })
        });
        joined.described(format!(
            "broadcast hash join: the right side (about {bytes} bytes) sent to every task"
        ))
    }

    /// A join sending `self` (about `bytes`) to every task of `other`, which probes it.
    fn broadcast_left<W, S>(&self, other: &Dataset<(K, W)>, bytes: u64) -> Dataset<(K, S::Out)>
    where
        K: Clone,
        V: Clone,
        W: Data + Clone,
        S: JoinShape<V, W>,
    {
        let table = match self
            .collect()
            .and_then(|rows| crate::broadcast::share(&self.engine, grouped(rows)))
        {
            Ok(table) => table,
            Err(e) => return self.invalid(format!("join: broadcasting the left side failed: {e}")),
        };
        let joined = other.map_partitions_with_index_and(table, |table, _, rows| {
            let table = table.shared();
            rows.flat_map(move |(k, w): (K, W)| {
                let mut out = Vec::new();
                match table.get(&k) {
                    Some(vs) => out.extend(vs.iter().map(|v| (k.clone(), S::both(v.clone(), w.clone())))),
                    None if S::KEEP_RIGHT => out.extend(S::right_only(w).map(|row| (k, row))),
                    None => {}
                }
                out
            })
        });
        joined.described(format!(
            "broadcast hash join: the left side (about {bytes} bytes) sent to every task"
        ))
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
