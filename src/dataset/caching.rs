//! `persist`, `cache` and `unpersist`: a dataset computed once and read by the program's
//! later actions (see `crate::cache`).

use ringleader_core::data::Data;
use ringleader_core::ops::action;
use ringleader_core::plan::ActionFn;
use ringleader_core::plan::cache::{self, StorageLevel};
use ringleader_core::ship;

use super::Dataset;
use crate::Result;
use crate::cache::CacheSpec;
use crate::lineage::Lineage;

impl<T: Data> Dataset<T> {
    /// This dataset, kept at `level` once the first action computes it: later actions of
    /// the program read its partitions instead of computing them again. Use the dataset
    /// returned (`let links = links.persist(StorageLevel::MemoryAndDisk);`). Embedded, the
    /// partitions stay in this process as Arrow batches (memory within half the memory
    /// budget) or Arrow files; on a cluster, on the workers that computed them. A partition
    /// not kept (memory full under [`StorageLevel::Memory`], or its worker lost) is computed
    /// again from lineage. Released by [`Dataset::unpersist`] or when the program ends.
    ///
    /// # Examples
    /// ```
    /// use ringleader::StorageLevel;
    /// let ctx = ringleader::Context::embedded();
    /// let squares = ctx.parallelize((1..=4i64).collect(), 2).unwrap().map(|x| x * x).persist(StorageLevel::Disk);
    /// assert_eq!(squares.sum().unwrap(), 30);
    /// // Read from the cache: the map does not run again.
    /// assert_eq!(squares.collect().unwrap(), vec![1, 4, 9, 16]);
    /// squares.unpersist().unwrap();
    /// ```
    pub fn persist(&self, level: StorageLevel) -> Dataset<T> {
        let spec = CacheSpec {
            id: self.engine.caches().next_id(),
            level,
            put: ship!(cache::put::<T> as ActionFn),
            store: ship!(action::store_columnar::<T> as ActionFn),
        };
        self.derive(Lineage::Cached {
            parent: self.node.clone(),
            spec,
        })
    }

    /// [`Dataset::persist`] in memory ([`StorageLevel::Memory`], as Spark's `cache`).
    ///
    /// # Examples
    /// ```
    /// let ctx = ringleader::Context::embedded();
    /// let words = ctx.parallelize(vec!["a".to_string(), "b".to_string()], 2).unwrap().cache();
    /// assert_eq!(words.count().unwrap(), 2);
    /// assert_eq!(words.collect().unwrap(), vec!["a", "b"]);
    /// ```
    pub fn cache(&self) -> Dataset<T> {
        self.persist(StorageLevel::Memory)
    }

    /// Releases this dataset's cached partitions (a dataset made by `persist` or `cache`;
    /// anything else has none). Later actions compute it from lineage again.
    pub fn unpersist(&self) -> Result<()> {
        match self.node.as_ref() {
            Lineage::Cached { spec, .. } => self.engine.caches().release(self.engine.cluster_client(), spec.id),
            _ => Ok(()),
        }
    }

    /// Whether an action has computed this cached dataset (and `unpersist` has not
    /// released it since); `false` for a dataset that is not cached.
    pub fn is_cached(&self) -> bool {
        match self.node.as_ref() {
            Lineage::Cached { spec, .. } => self.engine.caches().splits().contains_key(&spec.id),
            _ => false,
        }
    }
}
