//! Cached partitions of the embedded engine: a dataset's partitions kept in Arrow form
//! between the actions of one program, in memory (counted against its engine's budget) or
//! in Arrow IPC files on disk. A cluster keeps its cached partitions as stored partitions on
//! the workers instead (see `ringleader::dataset::cache`). The store is one per process;
//! cache ids are unique in it, and each engine (owner) has its own budget.
//!
//! A partition the store does not hold (never kept: memory full under
//! [`StorageLevel::Memory`]; or removed) is computed again from lineage by the planner.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use arrow_array::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::data::{Chunk, ChunkStream, Data, batch_bytes};
use crate::error::{Error, Result};
use crate::memory::spill::{SpillWriter, read};
use crate::plan::{ActionEnv, TaskValue};
use crate::sync::lock;

/// Where a cached dataset's partitions are kept (Spark's storage levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StorageLevel {
    /// In memory, as Arrow batches; a partition that does not fit the cache's budget is not
    /// kept, and is computed again whenever it is read.
    Memory,
    /// In Arrow IPC files on disk, read back through the page cache.
    Disk,
    /// In memory while the budget allows, on disk past it.
    MemoryAndDisk,
}

/// One cached partition.
enum Held {
    Memory(Vec<RecordBatch>),
    Disk(PathBuf),
}

/// One cached partition as the store keeps it: where, its bytes in memory, its owner.
struct Entry {
    held: Held,
    memory: u64,
    owner: u64,
}

/// A process's cached partitions, by (cache id, partition).
#[derive(Default)]
pub struct CacheStore {
    held: Mutex<HashMap<(u64, u32), Entry>>,
    /// Bytes each owner holds in memory.
    used: Mutex<HashMap<u64, u64>>,
}

/// The process's cache store.
pub fn store() -> &'static CacheStore {
    static STORE: OnceLock<CacheStore> = OnceLock::new();
    STORE.get_or_init(CacheStore::default)
}

impl CacheStore {
    /// Bytes of cached partitions `owner` holds in memory now.
    pub fn memory_used(&self, owner: u64) -> u64 {
        lock(&self.used).get(&owner).copied().unwrap_or(0)
    }

    /// Whether partition `partition` of cache `id` is held.
    pub fn holds(&self, id: u64, partition: u32) -> bool {
        lock(&self.held).contains_key(&(id, partition))
    }

    /// Keeps `batches` as partition `partition` of the cache `cache` describes; `false`
    /// when they were not kept (memory only, and its owner's budget is full).
    pub fn put(&self, cache: &CacheState, partition: u32, batches: Vec<RecordBatch>) -> Result<bool> {
        let (id, level) = (cache.id, cache.level);
        let bytes: u64 = batches.iter().map(batch_bytes).sum();
        let in_memory = level != StorageLevel::Disk && {
            let mut used = lock(&self.used);
            let used = used.entry(cache.owner).or_default();
            let fits = *used + bytes <= cache.budget;
            if fits {
                *used += bytes;
            }
            fits
        };
        let held = if in_memory {
            Held::Memory(batches)
        } else if level == StorageLevel::Memory {
            return Ok(false);
        } else {
            let name = format!("cache-{}-{id}-{partition}.arrow", std::process::id());
            let mut file = SpillWriter::new(&cache.dir, &name);
            for batch in &batches {
                file.write(batch)?;
            }
            match file.finish()? {
                Some((path, _)) => Held::Disk(path),
                None => Held::Memory(Vec::new()),
            }
        };
        let entry = Entry {
            held,
            memory: if in_memory { bytes } else { 0 },
            owner: cache.owner,
        };
        let old = lock(&self.held).insert((id, partition), entry);
        self.release(old);
        Ok(true)
    }

    /// The rows of partition `partition` of cache `id`.
    pub fn read(&self, id: u64, partition: u32) -> Result<ChunkStream> {
        let held = lock(&self.held);
        match held.get(&(id, partition)) {
            Some(Entry {
                held: Held::Memory(batches),
                ..
            }) => {
                let batches = batches.clone();
                Ok(Box::new(batches.into_iter().map(|b| Ok(Chunk::Arrow(b)))))
            }
            Some(Entry {
                held: Held::Disk(path), ..
            }) => Ok(Box::new(read(path)?.map(|b| b.map(Chunk::Arrow)))),
            None => Err(Error::Plan(format!(
                "partition {partition} of cached dataset {id} is no longer cached"
            ))),
        }
    }

    /// Forgets every partition of cache `id` (its memory given back, its files deleted).
    pub fn remove(&self, id: u64) {
        let gone: Vec<Entry> = {
            let mut held = lock(&self.held);
            let keys: Vec<(u64, u32)> = held.keys().filter(|(c, _)| *c == id).copied().collect();
            keys.into_iter().filter_map(|k| held.remove(&k)).collect()
        };
        for entry in gone {
            self.release(Some(entry));
        }
    }

    fn release(&self, entry: Option<Entry>) {
        let Some(entry) = entry else { return };
        match entry.held {
            Held::Disk(path) => {
                let _ = std::fs::remove_file(path);
            }
            Held::Memory(_) => {
                if let Some(used) = lock(&self.used).get_mut(&entry.owner) {
                    *used = used.saturating_sub(entry.memory);
                }
            }
        }
    }
}

/// What [`put`] is told: the cache, its storage level, and its owner's budget.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CacheState {
    /// The cache's id (one per `persist` call, unique in the process).
    pub id: u64,
    /// Where its partitions go.
    pub level: StorageLevel,
    /// The engine that cached it.
    pub owner: u64,
    /// The bytes the owner's cached partitions may hold in memory.
    pub budget: u64,
    /// Where partitions on disk go.
    pub dir: PathBuf,
}

/// The action that fills a cache: keeps the partition's rows, in Arrow form, in this
/// process's store. Its value counts the rows (and says nothing of whether they were kept:
/// the planner asks the store).
pub fn put<T: Data>(state: &[u8], input: ChunkStream, env: &ActionEnv) -> Result<TaskValue> {
    let cache: CacheState = postcard::from_bytes(state)?;
    let batches = input
        .map(|c| c.and_then(|c| c.into_batch::<T>()))
        .collect::<Result<Vec<RecordBatch>>>()?;
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    store().put(&cache, env.partition.0, batches)?;
    Ok(TaskValue::Count(rows as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(rows: std::ops::Range<i64>) -> RecordBatch {
        crate::data::encode(&rows.collect::<Vec<i64>>()).expect("batch")
    }

    fn read_back(store: &CacheStore, id: u64, partition: u32) -> Vec<i64> {
        store
            .read(id, partition)
            .expect("held")
            .flat_map(|c| c.expect("chunk").into_rows::<i64>().expect("rows"))
            .collect()
    }

    #[test]
    fn partitions_stay_in_memory_within_the_budget_and_go_to_disk_or_away_past_it() {
        let dir = tempfile::tempdir().expect("dir");
        let store = CacheStore::default();
        let one = batch_bytes(&batch(0..1000));
        let cache = |id: u64, level: StorageLevel, owner: u64| CacheState {
            id,
            level,
            owner,
            budget: one + one / 2,
            dir: dir.path().to_path_buf(),
        };
        assert!(
            store
                .put(&cache(1, StorageLevel::Memory, 7), 0, vec![batch(0..1000)])
                .expect("put")
        );
        assert_eq!(store.memory_used(7), one);
        // No room for a second one: memory only drops it, memory-and-disk writes a file.
        assert!(
            !store
                .put(&cache(1, StorageLevel::Memory, 7), 1, vec![batch(1000..2000)])
                .expect("put")
        );
        assert!(!store.holds(1, 1));
        let both = vec![batch(5..505), batch(505..1005)];
        assert!(
            store
                .put(&cache(2, StorageLevel::MemoryAndDisk, 7), 0, both)
                .expect("put")
        );
        assert_eq!(store.memory_used(7), one, "the second partition went to disk");
        // Another owner has a budget of its own.
        assert!(
            store
                .put(&cache(4, StorageLevel::Memory, 8), 0, vec![batch(0..1000)])
                .expect("put")
        );
        assert_eq!(store.memory_used(8), one);
        // A disk partition goes to disk however small.
        assert!(
            store
                .put(&cache(3, StorageLevel::Disk, 7), 0, vec![batch(7..9)])
                .expect("put")
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("dir").count(),
            2,
            "two partitions on disk"
        );
        assert_eq!(read_back(&store, 1, 0), (0..1000).collect::<Vec<_>>());
        assert_eq!(read_back(&store, 2, 0), (5..1005).collect::<Vec<_>>());
        assert_eq!(read_back(&store, 3, 0), vec![7, 8]);
        for id in 1..=4 {
            store.remove(id);
        }
        assert_eq!(store.memory_used(7) + store.memory_used(8), 0, "memory given back");
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0, "files deleted");
        assert!(store.read(1, 0).is_err());
    }
}
