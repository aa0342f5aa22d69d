//! Actions beyond `collect`, `count`, `sum` and `reduce`: `first`, `fold`, `top`,
//! `take_ordered` and `count_by_value` (Spark's names, in Rust's style).

use std::collections::HashMap;
use std::hash::Hash;

use ringleader_core::data::Data;
use ringleader_core::ops::action::{self, Bounded, bounded_rows};
use ringleader_core::plan::shipped::assert_no_capture;
use ringleader_core::plan::{ActionFn, TaskValue};
use ringleader_core::ship;

use super::Dataset;
use crate::Result;

impl<T: Data> Dataset<T> {
    /// The first row (of the first partition that has one), or `None` for an empty dataset.
    ///
    /// # Examples
    /// ```
    /// let ctx = ringleader::Context::embedded();
    /// assert_eq!(ctx.parallelize(vec![7i64, 8], 2).unwrap().first().unwrap(), Some(7));
    /// assert_eq!(ctx.parallelize(Vec::<i64>::new(), 2).unwrap().first().unwrap(), None);
    /// ```
    pub fn first(&self) -> Result<Option<T>> {
        Ok(self.take(1)?.into_iter().next())
    }

    /// Folds every partition with `f` starting from `zero`, then the partitions' results,
    /// again from `zero` (as Spark's `fold`: `f` should be associative, and `zero` its
    /// identity for a result that does not depend on the partitioning).
    ///
    /// # Examples
    /// ```
    /// let ctx = ringleader::Context::embedded();
    /// let xs = ctx.parallelize(vec![3i64, 4, 5], 2).unwrap();
    /// assert_eq!(xs.fold(0, |a, b| a + b).unwrap(), 12);
    /// assert_eq!(xs.fold(1, |a, b| a * b).unwrap(), 60);
    /// ```
    pub fn fold<F: Fn(T, T) -> T + Copy + Send + Sync + 'static>(&self, zero: T, f: F) -> Result<T>
    where
        T: Clone,
    {
        const { assert_no_capture::<F>() };
        let state = postcard::to_stdvec(&zero)?;
        let mut acc = zero;
        for v in self.run(ship!(action::fold::<T, F> as ActionFn), state)? {
            if let TaskValue::Bytes(b) = v {
                acc = f(acc, postcard::from_bytes(&b)?);
            }
        }
        Ok(acc)
    }

    /// The `n` rows with the largest keys `key` computes, largest first (of equal keys,
    /// earlier rows first). Each task keeps a heap of `n` rows; nothing is sorted whole.
    ///
    /// # Examples
    /// ```
    /// let ctx = ringleader::Context::embedded();
    /// let xs = ctx.parallelize(vec![5i64, 1, 9, 3, 7], 2).unwrap();
    /// assert_eq!(xs.top(2, |x| *x).unwrap(), vec![9, 7]);
    /// ```
    pub fn top<K, F>(&self, n: usize, key: F) -> Result<Vec<T>>
    where
        K: Ord + 'static,
        F: Fn(&T) -> K + Copy + Send + Sync + 'static,
    {
        self.bounded(n, true, key)
    }

    /// The `n` rows with the smallest keys `key` computes, smallest first (of equal keys,
    /// earlier rows first). Each task keeps a heap of `n` rows; nothing is sorted whole.
    ///
    /// # Examples
    /// ```
    /// let ctx = ringleader::Context::embedded();
    /// let words = ctx.parallelize(vec!["pear".to_string(), "fig".to_string(), "apple".to_string()], 2).unwrap();
    /// assert_eq!(words.take_ordered(2, |w| w.len()).unwrap(), vec!["fig", "pear"]);
    /// ```
    pub fn take_ordered<K, F>(&self, n: usize, key: F) -> Result<Vec<T>>
    where
        K: Ord + 'static,
        F: Fn(&T) -> K + Copy + Send + Sync + 'static,
    {
        self.bounded(n, false, key)
    }

    fn bounded<K, F>(&self, n: usize, largest: bool, key: F) -> Result<Vec<T>>
    where
        K: Ord + 'static,
        F: Fn(&T) -> K + Copy + Send + Sync + 'static,
    {
        const { assert_no_capture::<F>() };
        let spec = Bounded { n: n as u64, largest };
        let rows = Self::rows_of(self.run(
            ship!(action::bounded::<T, K, F> as ActionFn),
            postcard::to_stdvec(&spec)?,
        )?)?;
        // Every task's rows, in partition order: ties still go to the earlier row.
        Ok(bounded_rows(rows, key, spec))
    }

    /// How many times each distinct row occurs, counted on the cluster and returned to the
    /// caller (an action, as Spark's `countByValue`).
    ///
    /// # Examples
    /// ```
    /// let ctx = ringleader::Context::embedded();
    /// let counts = ctx.parallelize(vec!['a', 'b', 'a'], 2).unwrap().count_by_value().unwrap();
    /// assert_eq!((counts[&'a'], counts[&'b']), (2, 1));
    /// ```
    pub fn count_by_value(&self) -> Result<HashMap<T, u64>>
    where
        T: Hash + Eq,
    {
        self.map(|x: T| (x, ())).count_by_key()
    }
}
