//! The memory bound: past it, shuffle blocks spill to disk, and results do not change.

use ringleader::{Config, Context};

#[test]
fn shuffles_past_the_memory_limit_spill_and_stay_correct() {
    let spill = tempfile::tempdir().unwrap();
    let tiny = Context::new(Config {
        threads: 2,
        shuffle_partitions: 4,
        memory_limit: 64 << 10,
        spill_dir: Some(spill.path().to_path_buf()),
        progress: false,
        ..Config::default()
    })
    .unwrap();
    let roomy = crate::helpers::engine(2, 4);
    let rows: Vec<(u64, u64)> = (0..200_000u64).map(|i| (i % 5000, i)).collect();
    let run = |ctx: &Context| {
        let mut v = ctx
            .parallelize(rows.clone(), 8)
            .unwrap()
            .reduce_by_key(|a, b| a + b)
            .collect()
            .unwrap();
        v.sort();
        v
    };
    assert_eq!(run(&tiny), run(&roomy));
    assert!(tiny.last_spilled_bytes() > 0, "a 64 KiB limit must spill");
    assert_eq!(roomy.last_spilled_bytes(), 0);
    // Spill files are removed once the job is done.
    assert_eq!(std::fs::read_dir(spill.path()).unwrap().count(), 0);
}

/// An engine whose operators get `budget` bytes, spilling under `spill`.
fn budgeted(budget: usize, spill: &std::path::Path) -> Context {
    Context::new(Config {
        threads: 2,
        shuffle_partitions: 2,
        memory_limit: budget,
        spill_dir: Some(spill.to_path_buf()),
        progress: false,
        ..Config::default()
    })
    .unwrap()
}

/// Runs `job` on an engine with a tiny budget and on a roomy one: the results are equal,
/// the tiny one's operators spilled, the roomy one's did not, and no spill file is left.
fn same_under_a_tiny_budget<R: PartialEq + std::fmt::Debug>(what: &str, job: impl Fn(&Context) -> R) {
    let spill = tempfile::tempdir().unwrap();
    let tiny = budgeted(256 << 10, spill.path());
    let roomy = budgeted(1 << 30, spill.path());
    let (small, large) = (job(&tiny), job(&roomy));
    assert!(small == large, "{what}: the spilled result differs");
    assert!(
        tiny.last_operator_spilled_bytes() > 0,
        "{what}: a 256 KiB budget did not make the operator spill"
    );
    assert_eq!(
        roomy.last_operator_spilled_bytes(),
        0,
        "{what}: spilled with room to spare"
    );
    assert_eq!(
        std::fs::read_dir(spill.path()).unwrap().count(),
        0,
        "{what}: spill files left"
    );
}

/// Rows with many duplicate keys and a payload that tells them apart.
fn keyed_rows() -> Vec<(u64, String)> {
    (0..120_000u64)
        .map(|i| ((i * 7919) % 3001, format!("row-{i:06}")))
        .collect()
}

#[test]
fn an_external_sort_equals_the_in_memory_sort_ties_included() {
    same_under_a_tiny_budget("sort_by_key", |ctx| {
        ctx.parallelize(keyed_rows(), 6)
            .unwrap()
            .sort_by_key(|(k, _)| *k)
            .collect()
            .unwrap()
    });
}

#[test]
fn an_external_record_sort_equals_the_in_memory_one() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ringleader_datasets::gensort::SortSpec {
        records: 60_000,
        files: 3,
        seed: 4,
        skew: true,
    };
    ringleader_datasets::gensort::generate(&dir.path().join("in"), &spec, false).unwrap();
    same_under_a_tiny_budget("sort of records", |ctx| {
        let sorted = ctx
            .record_files(dir.path().join("in"))
            .unwrap()
            .sort_by_key(|r| r.key())
            .collect()
            .unwrap();
        sorted.iter().map(|r| r.as_bytes().to_vec()).collect::<Vec<_>>()
    });
}

#[test]
fn spilling_aggregations_and_joins_equal_their_in_memory_results() {
    let rows = keyed_rows();
    same_under_a_tiny_budget("reduce_by_key", |ctx| {
        let mut v = ctx
            .parallelize(rows.clone(), 6)
            .unwrap()
            .map(|(k, s)| (k, s.len() as u64))
            .reduce_by_key(|a, b| a + b)
            .collect()
            .unwrap();
        v.sort();
        v
    });
    same_under_a_tiny_budget("group_by_key", |ctx| {
        let mut v = ctx
            .parallelize(rows.clone(), 6)
            .unwrap()
            .group_by_key()
            .collect()
            .unwrap();
        v.sort();
        v
    });
    same_under_a_tiny_budget("distinct", |ctx| {
        // Every row twice, and most of them once more under another payload.
        let words = ctx
            .parallelize(rows.clone(), 6)
            .unwrap()
            .map(|(k, s)| format!("{k}-{}", &s[..8]));
        let mut v = words.union(&words).distinct().collect().unwrap();
        v.sort();
        v
    });
    same_under_a_tiny_budget("join", |ctx| {
        let left = ctx.parallelize(rows.clone(), 6).unwrap();
        let right = ctx.parallelize((0..3001u64).map(|k| (k, k * 2)).collect(), 3).unwrap();
        let mut v = left.join(&right).collect().unwrap();
        v.sort();
        v
    });
}

#[test]
fn flat_map_reduce_with_borrowed_keys_equals_a_sequential_count_spilled_or_not() {
    // Lines of words from a vocabulary far larger than the tiny budget's tables.
    let lines: Vec<String> = (0..20_000u64)
        .map(|i| {
            (0..6)
                .map(|j| format!("w{}", (i * 31 + j * 7) % 9_001))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let mut expected = std::collections::BTreeMap::<String, u64>::new();
    for word in lines.iter().flat_map(|l| l.split_whitespace()) {
        *expected.entry(word.to_string()).or_default() += 1;
    }
    let expected: Vec<(String, u64)> = expected.into_iter().collect();
    same_under_a_tiny_budget("flat_map_reduce", |ctx| {
        let mut v = ctx
            .parallelize(lines.clone(), 6)
            .unwrap()
            .flat_map_reduce(
                |line: &String, counts: &mut ringleader::Combiner<String, u64>| {
                    for word in line.split_whitespace() {
                        counts.add(word, 1);
                    }
                },
                |a, b| a + b,
            )
            .collect()
            .unwrap();
        v.sort();
        assert_eq!(v, expected, "flat_map_reduce differs from a sequential count");
        v
    });
}

#[test]
fn a_full_spill_disk_fails_the_job_naming_the_path_and_leaves_no_spill_files() {
    let dir = tempfile::tempdir().unwrap();
    let spill = dir.path().join("spill");
    // 1 MiB for spill files, a 256 KiB budget, and 12 MB of rows to sort.
    let _full = match crate::helpers::Tmpfs::mount(&spill, "1m") {
        Ok(t) => t,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let ctx = budgeted(256 << 10, &spill);
    let rows: Vec<(u64, String)> = (0..200_000u64)
        .map(|i| (i * 7919 % 100_003, format!("{i:040}")))
        .collect();
    let error = ctx
        .parallelize(rows, 4)
        .unwrap()
        .sort_by_key(|(k, _)| *k)
        .collect()
        .expect_err("a sort that cannot spill");
    let message = format!("{error:#}");
    assert!(message.contains(&spill.display().to_string()), "{message}");
    assert!(message.contains("No space left"), "{message}");
    assert_eq!(
        crate::helpers::files_under(&spill),
        Vec::<std::path::PathBuf>::new(),
        "spill files left behind"
    );
}
