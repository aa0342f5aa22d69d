//! Caching on the embedded engine: a cached dataset's lineage runs once however many
//! actions read it (counted by the closures themselves), partitions that do not fit are
//! computed again, alone, and everything is released at `unpersist` and when the program's
//! context goes. Results are checked against the uncached computation.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use ringleader::{Config, Context, StorageLevel};

/// An engine of `memory` bytes whose spill (and disk cache) files go under `spill`.
fn budgeted(memory: usize, spill: &std::path::Path) -> Context {
    Context::new(Config {
        threads: 2,
        shuffle_partitions: 3,
        memory_limit: memory,
        spill_dir: Some(spill.to_path_buf()),
        progress: false,
        ..Config::default()
    })
    .unwrap()
}

fn cache_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("cache-"))
        .count()
}

static SQUARED: AtomicU64 = AtomicU64::new(0);

#[test]
fn a_cached_dataset_is_computed_once_for_every_action_at_every_level() {
    for level in [StorageLevel::Memory, StorageLevel::Disk, StorageLevel::MemoryAndDisk] {
        let spill = tempfile::tempdir().unwrap();
        let ctx = budgeted(64 << 20, spill.path());
        SQUARED.store(0, Ordering::SeqCst);
        let squares = ctx
            .parallelize((1..=1000i64).collect(), 4)
            .unwrap()
            .map(|x| {
                SQUARED.fetch_add(1, Ordering::SeqCst);
                x * x
            })
            .persist(level);
        assert!(!squares.is_cached());
        let want: Vec<i64> = (1..=1000i64).map(|x| x * x).collect();
        assert_eq!(squares.collect().unwrap(), want, "{level:?}");
        assert!(squares.is_cached());
        assert_eq!(squares.sum().unwrap(), want.iter().sum::<i64>());
        assert_eq!(squares.filter(|x| x % 2 == 0).count().unwrap(), 500);
        assert_eq!(SQUARED.load(Ordering::SeqCst), 1000, "{level:?}: the map ran again");
        let on_disk = cache_files(spill.path());
        assert_eq!(on_disk, if level == StorageLevel::Disk { 4 } else { 0 }, "{level:?}");
        squares.unpersist().unwrap();
        assert_eq!(cache_files(spill.path()), 0, "{level:?}: files left after unpersist");
        assert!(!squares.is_cached());
        assert_eq!(squares.count().unwrap(), 1000);
        assert_eq!(
            SQUARED.load(Ordering::SeqCst),
            2000,
            "{level:?}: unpersist did not release it"
        );
    }
}

static TRIPLED: AtomicU64 = AtomicU64::new(0);

#[test]
fn partitions_past_the_cache_budget_are_recomputed_alone_or_kept_on_disk() {
    let spill = tempfile::tempdir().unwrap();
    // Half of 1 MiB for the cache: 4 partitions of 40,000 i64 (320 KB each) do not all fit.
    let ctx = budgeted(1 << 20, spill.path());
    let rows: Vec<i64> = (0..160_000).collect();
    let source = ctx.parallelize(rows.clone(), 4).unwrap().map(|x| {
        TRIPLED.fetch_add(1, Ordering::SeqCst);
        x * 3
    });
    let memory = source.persist(StorageLevel::Memory);
    let want: i64 = rows.iter().map(|x| x * 3).sum();
    assert_eq!(memory.sum().unwrap(), want);
    let first = TRIPLED.load(Ordering::SeqCst);
    assert_eq!(memory.sum().unwrap(), want);
    let recomputed = TRIPLED.load(Ordering::SeqCst) - first;
    assert!(
        recomputed > 0 && recomputed < 160_000,
        "memory only: {recomputed} rows recomputed, want some partitions (not all) again"
    );
    memory.unpersist().unwrap();

    let spilled = source.persist(StorageLevel::MemoryAndDisk);
    assert_eq!(spilled.sum().unwrap(), want);
    let first = TRIPLED.load(Ordering::SeqCst);
    assert!(cache_files(spill.path()) > 0, "memory and disk wrote nothing to disk");
    assert_eq!(
        spilled.collect().unwrap(),
        rows.iter().map(|x| x * 3).collect::<Vec<_>>()
    );
    assert_eq!(TRIPLED.load(Ordering::SeqCst), first, "memory and disk recomputed");
    // The program ends: its context and every dataset of it go.
    drop((spilled, memory, source, ctx));
    assert_eq!(cache_files(spill.path()), 0, "the program ended and left cache files");
}

/// The sum of each partition, in order.
fn partition_sums(ds: &ringleader::Dataset<i64>) -> Vec<i64> {
    ds.map_partitions(|rows| Some(rows.sum::<i64>())).collect().unwrap()
}

#[test]
fn coalesce_merges_held_cache_partitions_and_unions_of_sources_without_a_shuffle() {
    let spill = tempfile::tempdir().unwrap();
    let ctx = budgeted(64 << 20, spill.path());
    let rows: Vec<i64> = (1..=6).collect();
    // Consecutive partitions merged: 1+2+3 and 4+5+6 (a round-robin shuffle spreads them).
    let cached = ctx.parallelize(rows.clone(), 6).unwrap().persist(StorageLevel::Memory);
    assert_eq!(cached.count().unwrap(), 6);
    assert_eq!(partition_sums(&cached.coalesce(2)), [6, 15]);
    let plan = cached.coalesce(2).explain();
    assert!(
        plan.starts_with("coalesce into 2") && !plan.contains("shuffle of"),
        "{plan}"
    );
    let more = ctx.parallelize(vec![10i64, 20, 30], 3).unwrap();
    let union = ctx.parallelize(rows, 3).unwrap().union(&more);
    assert_eq!(partition_sums(&union.coalesce(2)), [21, 60]);
    // Parts computed differently (one side mapped) cannot merge: shuffled, every row kept.
    let mixed = union.union(&more.map(|x| x + 1)).coalesce(2);
    assert_eq!(partition_sums(&mixed).len(), 2);
    assert_eq!(mixed.sum().unwrap(), 21 + 60 + 63);

    // A cache whose partitions do not all fit is read and computed again, then shuffled.
    let small = budgeted(1 << 20, spill.path());
    let big: Vec<i64> = (0..160_000).collect();
    let partial = small.parallelize(big.clone(), 4).unwrap().persist(StorageLevel::Memory);
    assert_eq!(partial.count().unwrap(), 160_000);
    let merged = partial.coalesce(2);
    assert_eq!(partition_sums(&merged).len(), 2);
    assert_eq!(merged.sum().unwrap(), big.iter().sum::<i64>());
}

static SUMMED: AtomicU64 = AtomicU64::new(0);

#[test]
fn a_cache_after_a_shuffle_feeds_iterations_without_running_the_shuffle_again() {
    let spill = tempfile::tempdir().unwrap();
    let ctx = budgeted(64 << 20, spill.path());
    let pairs: Vec<(u32, i64)> = (0..5000).map(|i| (i % 37, i as i64)).collect();
    let sums = ctx
        .parallelize(pairs.clone(), 5)
        .unwrap()
        .map(|(k, v)| {
            SUMMED.fetch_add(1, Ordering::SeqCst);
            (k, v)
        })
        .reduce_by_key(|a, b| a + b)
        .cache();
    let mut want: BTreeMap<u32, i64> = BTreeMap::new();
    for (k, v) in &pairs {
        *want.entry(*k).or_default() += v;
    }
    // An iteration: each round joins the cached sums with the last round's values.
    let mut current = ctx.parallelize(want.keys().map(|k| (*k, 0i64)).collect(), 2).unwrap();
    for _ in 0..3 {
        current = current.join(&sums).map(|(k, (acc, s))| (k, acc + s));
        let round: BTreeMap<u32, i64> = current.collect().unwrap().into_iter().collect();
        current = ctx.parallelize(round.into_iter().collect(), 2).unwrap();
    }
    let got: BTreeMap<u32, i64> = current.collect().unwrap().into_iter().collect();
    let tripled: BTreeMap<u32, i64> = want.iter().map(|(k, s)| (*k, 3 * s)).collect();
    assert_eq!(got, tripled);
    assert_eq!(
        SUMMED.load(Ordering::SeqCst),
        5000,
        "the shuffle's map side ran more than once"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]

    /// Whatever the level and the budget, a cached dataset's results equal the uncached.
    #[test]
    fn cached_results_equal_uncached_ones(xs in prop::collection::vec((0u8..10, -100i64..100), 0..400), parts in 1usize..5, level in 0usize..3, small in any::<bool>()) {
        let spill = tempfile::tempdir().unwrap();
        let ctx = budgeted(if small { 64 << 10 } else { 64 << 20 }, spill.path());
        let level = [StorageLevel::Memory, StorageLevel::Disk, StorageLevel::MemoryAndDisk][level];
        let ds = ctx.parallelize(xs.clone(), parts).unwrap().reduce_by_key(|a, b| a + b);
        let cached = ds.persist(level);
        let mut plain = ds.collect().unwrap();
        plain.sort();
        for _ in 0..2 {
            let mut got = cached.collect().unwrap();
            got.sort();
            prop_assert_eq!(&got, &plain);
        }
        prop_assert_eq!(cached.count().unwrap(), plain.len() as u64);
    }
}
