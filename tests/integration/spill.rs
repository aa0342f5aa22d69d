//! The memory bound: past it, shuffle blocks and operators spill to disk, and results do
//! not change. Each result is checked against a plain sequential computation in the test,
//! at sizes that spill (120,000 rows and more), and the spill is shown to have happened.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ringleader::{Config, Context};

use crate::helpers::Bounded;

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
    let rows: Vec<(u64, u64)> = (0..200_000u64).map(|i| (i % 5000, i)).collect();
    let mut want: BTreeMap<u64, u64> = BTreeMap::new();
    for (k, v) in &rows {
        *want.entry(*k).or_default() += v;
    }
    let mut got = tiny
        .parallelize(rows, 8)
        .unwrap()
        .reduce_by_key(|a, b| a + b)
        .collect()
        .unwrap();
    got.sort();
    assert_eq!(got, want.into_iter().collect::<Vec<_>>());
    assert!(tiny.last_spilled_bytes() > 0, "a 64 KiB limit must spill");
    // Spill files are removed once the job is done.
    assert_eq!(std::fs::read_dir(spill.path()).unwrap().count(), 0);
}

/// An engine whose operators get `budget` bytes, spilling under `spill` (joins always
/// shuffle both sides here: a broadcast join holds its small side whole).
fn budgeted(budget: usize, spill: &std::path::Path) -> Context {
    Context::new(Config {
        threads: 2,
        shuffle_partitions: 2,
        memory_limit: budget,
        spill_dir: Some(spill.to_path_buf()),
        progress: false,
        broadcast_join_bytes: 0,
        ..Config::default()
    })
    .unwrap()
}

/// Runs `job` on an engine with a tiny budget and on a roomy one: both equal `want`
/// (computed sequentially by the caller), the tiny one's operators spilled, the roomy
/// one's did not, and no spill file is left.
fn spilled_or_not_equals<R: PartialEq + std::fmt::Debug>(what: &str, want: R, job: impl Fn(&Context) -> R) {
    let spill = tempfile::tempdir().unwrap();
    let tiny = budgeted(256 << 10, spill.path());
    let roomy = budgeted(1 << 30, spill.path());
    assert!(job(&tiny) == want, "{what}: the spilled result is wrong");
    assert!(
        tiny.last_operator_spilled_bytes() > 0,
        "{what}: a 256 KiB budget did not make the operator spill"
    );
    assert!(job(&roomy) == want, "{what}: the in-memory result is wrong");
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

/// A sort's output, checked to be in key order, with the rows of each key in payload
/// order (a sort need not be stable).
fn by_key_then_payload(sorted: Vec<(u64, String)>) -> Vec<(u64, String)> {
    if let Some(at) = sorted.windows(2).position(|w| w[0].0 > w[1].0) {
        panic!("not sorted by key at row {at}: {:?}", &sorted[at..at + 2]);
    }
    let mut rows = sorted;
    rows.sort();
    rows
}

#[test]
fn an_external_sort_orders_every_row_by_key() {
    let mut want = keyed_rows();
    want.sort();
    spilled_or_not_equals("sort_by_key", want, |ctx| {
        let sorted = ctx
            .parallelize(keyed_rows(), 6)
            .unwrap()
            .sort_by_key(|(k, _)| *k)
            .collect()
            .unwrap();
        by_key_then_payload(sorted)
    });
}

/// Generates `spec`'s records under `dir/in`; their sorted bytes, from the sequential oracle.
fn records_in(dir: &std::path::Path, spec: &ringleader_datasets::gensort::SortSpec) -> Vec<u8> {
    ringleader_datasets::gensort::generate(&dir.join("in"), spec, false).unwrap();
    crate::oracles::sorted_records(&dir.join("in"))
}

#[test]
fn an_external_record_sort_orders_every_record_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ringleader_datasets::gensort::SortSpec {
        records: 120_000,
        files: 3,
        seed: 4,
        skew: true,
    };
    let want = records_in(dir.path(), &spec);
    spilled_or_not_equals("sort of records", want, |ctx| sorted_records_of(ctx, dir.path()));
}

/// The records under `dir/in` sorted by key by `ctx`, in the oracle's canonical form.
fn sorted_records_of(ctx: &Context, dir: &std::path::Path) -> Vec<u8> {
    let sorted = ctx
        .record_files(dir.join("in"))
        .unwrap()
        .sort_by_key(|r| r.key())
        .collect()
        .unwrap();
    let bytes: Vec<u8> = sorted.iter().flat_map(|r| r.as_bytes().to_vec()).collect();
    crate::oracles::canonical(&bytes)
}

#[test]
fn spilling_aggregations_and_joins_equal_sequential_results() {
    let rows = keyed_rows();

    // Keys enough that a reduce task's table (about 30,000 of them) is past the budget
    // whatever the shuffle's blocks hold at the time (3001 keys spilled only sometimes).
    let wide: Vec<(u64, u64)> = (0..120_000u64).map(|i| ((i * 7919) % 60_001, i % 97)).collect();
    let mut sums: BTreeMap<u64, u64> = BTreeMap::new();
    for (k, v) in &wide {
        *sums.entry(*k).or_default() += v;
    }
    spilled_or_not_equals("reduce_by_key", sums.into_iter().collect(), |ctx| {
        let mut v = ctx
            .parallelize(wide.clone(), 6)
            .unwrap()
            .reduce_by_key(|a, b| a + b)
            .collect()
            .unwrap();
        v.sort();
        v
    });

    let mut groups: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for (k, s) in &rows {
        groups.entry(*k).or_default().push(s.clone());
    }
    for values in groups.values_mut() {
        values.sort();
    }
    spilled_or_not_equals("group_by_key", groups.into_iter().collect(), |ctx| {
        let mut v: Vec<(u64, Vec<String>)> = ctx
            .parallelize(rows.clone(), 6)
            .unwrap()
            .group_by_key()
            .collect()
            .unwrap();
        for (_, values) in v.iter_mut() {
            values.sort();
        }
        v.sort();
        v
    });

    // Every row twice, and most of them once more under another payload.
    let word = |(k, s): &(u64, String)| format!("{k}-{}", &s[..8]);
    let distinct: BTreeSet<String> = rows.iter().map(word).collect();
    spilled_or_not_equals("distinct", distinct.into_iter().collect(), |ctx| {
        let words = ctx
            .parallelize(rows.clone(), 6)
            .unwrap()
            .map(|(k, s)| format!("{k}-{}", &s[..8]));
        let mut v = words.union(&words).distinct().collect().unwrap();
        v.sort();
        v
    });

    let right: Vec<(u64, u64)> = (0..3001u64).map(|k| (k, k * 2)).collect();
    let lookup: HashMap<u64, Vec<u64>> = right.iter().fold(HashMap::new(), |mut m, (k, w)| {
        m.entry(*k).or_default().push(*w);
        m
    });
    let mut joined: Vec<(u64, (String, u64))> = rows
        .iter()
        .flat_map(|(k, s)| lookup.get(k).into_iter().flatten().map(move |w| (*k, (s.clone(), *w))))
        .collect();
    joined.sort();
    spilled_or_not_equals("join", joined, |ctx| {
        let left = ctx.parallelize(rows.clone(), 6).unwrap();
        let right = ctx.parallelize(right.clone(), 3).unwrap();
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
                .map(|j| format!("w{}", (i * 31 + j * 7) % 40_009))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let mut expected = BTreeMap::<String, u64>::new();
    for word in lines.iter().flat_map(|l| l.split_whitespace()) {
        *expected.entry(word.to_string()).or_default() += 1;
    }
    let expected: Vec<(String, u64)> = expected.into_iter().collect();
    spilled_or_not_equals("flat_map_reduce", expected, |ctx| {
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
            crate::helpers::skip("a full spill disk", &why);
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
    assert!(
        message.contains("RINGLEADER_SPILL_DIR") && message.contains("RINGLEADER_MEMORY"),
        "the message does not say what to do: {message}"
    );
    assert_eq!(
        crate::helpers::files_under(&spill),
        Vec::<std::path::PathBuf>::new(),
        "spill files left behind"
    );
}

#[test]
fn an_unwritable_spill_directory_is_refused_before_any_job_naming_the_variable() {
    // A directory nobody may write, even root: a read-only mount where this test may mount
    // one, else a directory without write permission (enough for anyone but root).
    let dir = tempfile::tempdir().unwrap();
    let spill = dir.path().join("read-only");
    let _mounted = match crate::helpers::Tmpfs::mount_read_only(&spill) {
        Ok(t) => Some(t),
        // SAFETY: geteuid has no preconditions.
        Err(_) if unsafe { libc::geteuid() } != 0 => {
            use std::os::unix::fs::PermissionsExt;
            std::fs::create_dir(&spill).unwrap();
            std::fs::set_permissions(&spill, std::fs::Permissions::from_mode(0o500)).unwrap();
            None
        }
        Err(why) => panic!("root could not mount a read-only tmpfs: {why}"),
    };
    let out = std::process::Command::new(crate::helpers::example("sum"))
        .arg("--input")
        .arg(crate::helpers::fixtures("numbers"))
        .env_remove("RINGLEADER_MASTER")
        .env("RINGLEADER_SPILL_DIR", &spill)
        .bounded();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a job ran with an unwritable spill directory");
    assert!(
        stderr.contains("RINGLEADER_SPILL_DIR") && stderr.contains(&spill.display().to_string()),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "the job printed a result");
}

/// Outer joins, `cogroup` and `cartesian` past the budget: the grace join keeps every
/// unmatched row of the side it keeps, the spilled groups merge, the spilled left slice is
/// read again for each chunk of the right side.
#[test]
fn spilling_outer_joins_cogroup_and_cartesian_equal_sequential_results() {
    let rows = keyed_rows();
    // Keys 0..3001 on the left; the right has every third of them and keys the left lacks.
    let right: Vec<(u64, u64)> = (0..4000u64).filter(|k| k % 3 == 0).map(|k| (k, k * 2)).collect();
    let lookup: BTreeMap<u64, Vec<u64>> = right.iter().fold(BTreeMap::new(), |mut m, (k, w)| {
        m.entry(*k).or_default().push(*w);
        m
    });
    let left_keys: BTreeSet<u64> = rows.iter().map(|(k, _)| *k).collect();
    type FullRows = Vec<(u64, (Option<String>, Option<u64>))>;
    let mut full: FullRows = Vec::new();
    for (k, s) in &rows {
        match lookup.get(k) {
            Some(ws) => full.extend(ws.iter().map(|w| (*k, (Some(s.clone()), Some(*w))))),
            None => full.push((*k, (Some(s.clone()), None))),
        }
    }
    for (k, w) in &right {
        if !left_keys.contains(k) {
            full.push((*k, (None, Some(*w))));
        }
    }
    full.sort();
    spilled_or_not_equals("full_outer_join", full, |ctx| {
        let left = ctx.parallelize(rows.clone(), 6).unwrap();
        let right = ctx.parallelize(right.clone(), 3).unwrap();
        let mut v = left.full_outer_join(&right).collect().unwrap();
        v.sort();
        v
    });

    let mut groups: BTreeMap<u64, (Vec<String>, Vec<u64>)> = BTreeMap::new();
    for (k, s) in &rows {
        groups.entry(*k).or_default().0.push(s.clone());
    }
    for (k, w) in &right {
        groups.entry(*k).or_default().1.push(*w);
    }
    for (vs, ws) in groups.values_mut() {
        vs.sort();
        ws.sort();
    }
    spilled_or_not_equals("cogroup", groups.into_iter().collect(), |ctx| {
        let left = ctx.parallelize(rows.clone(), 6).unwrap();
        let right = ctx.parallelize(right.clone(), 3).unwrap();
        let mut v = left.cogroup(&right).collect().unwrap();
        for (_, (vs, ws)) in v.iter_mut() {
            vs.sort();
            ws.sort();
        }
        v.sort();
        v
    });

    // 30,000 left rows by 40 right rows: each of the 4 partitions holds a left slice of
    // about 15,000 rows, past a 256 KiB budget.
    let names: Vec<String> = (0..30_000u64).map(|i| format!("left-row-{i:08}")).collect();
    let small: Vec<u64> = (0..40u64).collect();
    let mut pairs: Vec<(String, u64)> = names
        .iter()
        .flat_map(|n| small.iter().map(move |s| (n.clone(), *s)))
        .collect();
    pairs.sort();
    spilled_or_not_equals("cartesian", pairs, |ctx| {
        let left = ctx.parallelize(names.clone(), 5).unwrap();
        let right = ctx.parallelize(small.clone(), 2).unwrap();
        let mut v = left.cartesian(&right).collect().unwrap();
        v.sort();
        v
    });
}

/// Past its budget, a sort's map tasks write their rows as sorted runs and the reducers
/// merge those runs straight from the shuffle: the rows are spilled about once, not once
/// by the shuffle and once more by the reducers' own runs.
#[test]
fn a_sort_past_its_budget_merges_the_map_sides_runs_without_writing_the_rows_again() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ringleader_datasets::gensort::SortSpec {
        records: 400_000,
        files: 4,
        seed: 9,
        skew: false,
    };
    let want = records_in(dir.path(), &spec);
    let spill = tempfile::tempdir().unwrap();
    let ctx = Context::new(Config {
        threads: 2,
        shuffle_partitions: 4,
        memory_limit: 8 << 20,
        split_size: 4 << 20,
        spill_dir: Some(spill.path().to_path_buf()),
        progress: false,
        ..Config::default()
    })
    .unwrap();
    assert!(sorted_records_of(&ctx, dir.path()) == want, "the sort is wrong");
    let input = 400_000 * 100;
    let (all, operators) = (ctx.last_spilled_bytes(), ctx.last_operator_spilled_bytes());
    assert!(all > input / 2, "40 MB under an 8 MiB budget spilled only {all} bytes");
    assert!(
        all < input * 3 / 2,
        "{all} bytes spilled for {input} bytes of records ({operators} by the reducers): written twice"
    );
    assert_eq!(std::fs::read_dir(spill.path()).unwrap().count(), 0, "spill files left");
}
