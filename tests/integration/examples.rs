//! The shipped examples, run as users run them, checked against sequential computations.

use std::collections::HashMap;
use std::process::Command;

use ringleader::Record;
use ringleader_datasets::{gensort, numbers, text};

use crate::helpers::{Bounded, example, parts, sorted_lines};

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.env("RINGLEADER_PROGRESS", "0").bounded();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

#[test]
fn sort_example_output_is_the_sorted_input() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let spec = gensort::SortSpec {
        records: 30_000,
        files: 3,
        seed: 9,
        skew: true,
    };
    gensort::generate(&input, &spec, false).unwrap();
    let output = dir.path().join("out");
    run_ok(
        Command::new(example("sort"))
            .arg("--input")
            .arg(&input)
            .arg("--output")
            .arg(&output)
            .args(["--partitions", "5"]),
    );
    let files = parts(&output);
    assert_eq!(files.len(), 5);
    let got: Vec<u8> = files.iter().flat_map(|f| std::fs::read(f).unwrap()).collect();
    let mut want: Vec<Record> = (0..spec.records).map(|r| gensort::record(spec.seed, r, true)).collect();
    want.sort_by_key(|r| r.key());
    let got = Record::slice_from_bytes(&got).unwrap();
    assert_eq!(got.len(), want.len());
    assert!(got.windows(2).all(|w| w[0].key() <= w[1].key()), "output not sorted");
    let mut got_sorted = got.to_vec();
    got_sorted.sort_by_key(|a| a.0);
    want.sort_by_key(|a| a.0);
    assert!(got_sorted == want, "output is not a permutation of the input");
    let report = ringleader_datasets::validate::validate_sort(&input, &output).unwrap();
    assert!(report.ok() && report.duplicates > 0, "{report:?}");
}

#[test]
fn sum_example_prints_the_total_last() {
    let dir = tempfile::tempdir().unwrap();
    let (_, want) = numbers::generate(dir.path(), 3_000_000, 3, 5, false).unwrap();
    let stdout = run_ok(Command::new(example("sum")).arg("--input").arg(dir.path()));
    assert_eq!(stdout.lines().last().unwrap().trim(), want.to_string());
}

#[test]
fn sum_example_reports_overflow() {
    let dir = tempfile::tempdir().unwrap();
    let batch = arrow::record_batch::RecordBatch::try_from_iter([(
        "v",
        std::sync::Arc::new(arrow::array::Int64Array::from(vec![i64::MAX, 1])) as _,
    )])
    .unwrap();
    let mut w = arrow::ipc::writer::FileWriter::try_new(
        std::fs::File::create(dir.path().join("big.arrow")).unwrap(),
        &batch.schema(),
    )
    .unwrap();
    w.write(&batch).unwrap();
    w.finish().unwrap();
    let out = Command::new(example("sum")).arg("--input").arg(dir.path()).bounded();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("overflow"));
}

#[test]
fn wordcount_example_counts_every_word_once() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    text::generate(&input, 400_000, 2, 500, 3, false).unwrap();
    std::fs::write(input.join("extra.txt"), "Hello hello  HELLO\n\tworld\r\n").unwrap();
    let output = dir.path().join("out");
    run_ok(
        Command::new(example("wordcount"))
            .arg("--input")
            .arg(&input)
            .arg("--output")
            .arg(&output),
    );
    let mut want: HashMap<String, u64> = HashMap::new();
    for f in std::fs::read_dir(&input).unwrap() {
        for w in std::fs::read_to_string(f.unwrap().path()).unwrap().split_whitespace() {
            *want.entry(w.to_string()).or_default() += 1;
        }
    }
    let mut got: HashMap<String, u64> = HashMap::new();
    for f in parts(&output) {
        for line in std::fs::read_to_string(f).unwrap().lines() {
            let (w, n) = line.split_once('\t').expect("word<TAB>count");
            assert!(
                got.insert(w.to_string(), n.parse().unwrap()).is_none(),
                "{w} appears twice"
            );
        }
    }
    assert_eq!(got, want);
}

/// `orders_by_city` over the shop fixture, writing `output`.
pub(crate) fn orders_by_city(output: &std::path::Path) -> Command {
    let shop = crate::helpers::fixtures("shop");
    let mut command = Command::new(example("orders_by_city"));
    command
        .arg("--customers")
        .arg(shop.join("customers"))
        .arg("--orders")
        .arg(shop.join("orders"))
        .arg("--output")
        .arg(output);
    command
}

/// What `orders_by_city` finds in the shop fixture, a sorted line per city:
/// `city<TAB>orders<TAB>total<TAB>names`.
pub(crate) const SHOP_CITIES: [&str; 4] = [
    "Boston\t1\t300\tMargaret",
    "Helsinki\t1\t120\tLinus",
    "London\t2\t260\tAda",
    "New York\t4\t190\tBarbara,Grace",
];

#[test]
fn orders_by_city_joins_and_groups() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out");
    run_ok(&mut orders_by_city(&output));
    let lines = sorted_lines(&output);
    assert_eq!(lines, SHOP_CITIES);
}

#[test]
fn example_refuses_existing_output_and_bad_flags() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = crate::helpers::fixtures("text");
    let out = Command::new(example("wordcount"))
        .arg("--input")
        .arg(&fixtures)
        .arg("--output")
        .arg(dir.path())
        .bounded();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    let out = Command::new(example("wordcount")).arg("--bogus").bounded();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Usage"));
}

#[test]
fn job_binaries_link_neither_the_daemons_nor_raft() {
    // A job depends on the `ringleader` library alone (the command and its daemons are the
    // `ringleader-cli` crate): none of their code, nor Raft's or its storage's, is linked.
    for job in ["sort", "wordcount"] {
        let bytes = std::fs::read(example(job)).unwrap();
        for name in ["ringleader_driver", "ringleader_worker", "openraft", "redb"] {
            let linked = bytes.windows(name.len()).any(|w| w == name.as_bytes());
            assert!(!linked, "examples/{job} contains {name}");
        }
        // The check can see crate names: the core library's are there.
        let core = b"ringleader_core";
        assert!(
            bytes.windows(core.len()).any(|w| w == core),
            "examples/{job} names no crate"
        );
    }
}

#[test]
fn pagerank_example_equals_a_sequential_pagerank_and_reads_its_links_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let graph = dir.path().join("graph");
    ringleader_datasets::graph::generate(&graph, 3000, 30_000, 3, 4, false).unwrap();
    let output = dir.path().join("ranks");
    let stdout = run_ok(
        Command::new(example("pagerank"))
            .arg("--input")
            .arg(&graph)
            .arg("--output")
            .arg(&output)
            .args(["--iterations", "10"]),
    );
    let want = crate::oracles::pagerank(&graph, 10);
    crate::oracles::assert_ranks_close(&sorted_lines(&output), &want);
    for i in 1..=10 {
        assert!(
            stdout.contains(&format!("iteration {i}: ")),
            "iteration {i} missing: {stdout}"
        );
    }
    assert_eq!(stdout.matches("(links read from the cache)").count(), 10, "{stdout}");
}

#[test]
fn kmeans_example_equals_a_sequential_kmeans_round_by_round() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("points");
    std::fs::create_dir(&input).unwrap();
    // 3 files of points in 3 dimensions around 4 centres, in no particular order.
    let mut state = 12345u64;
    let mut next = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    for f in 0..3 {
        let mut text = String::new();
        for _ in 0..700 {
            let centre = (next() * 4.0).floor() * 7.0;
            let p: Vec<String> = (0..3).map(|_| format!("{}", centre + next() * 6.0 - 3.0)).collect();
            text.push_str(&p.join(" "));
            text.push('\n');
        }
        std::fs::write(input.join(format!("points-{f}.txt")), text).unwrap();
    }
    let stdout =
        run_ok(
            Command::new(example("kmeans"))
                .arg("--input")
                .arg(&input)
                .args(["--k", "4", "--iterations", "20"]),
        );
    let (want, moved) = crate::oracles::kmeans(&input, 4, 20);
    let rounds: Vec<u64> = stdout
        .lines()
        .filter_map(|l| {
            l.strip_prefix("iteration ")?
                .split_once(": ")?
                .1
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert_eq!(rounds, moved, "points moved per round:\n{stdout}");
    assert!(moved.len() > 1 && moved.last() == Some(&0), "{moved:?}");
    for (i, centroid) in want.iter().enumerate() {
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("centroid {i}: ")))
            .unwrap_or_else(|| panic!("no centroid {i}:\n{stdout}"));
        let got: Vec<f64> = line.split(' ').map(|x| x.parse().unwrap()).collect();
        for (g, w) in got.iter().zip(centroid) {
            assert!((g - w).abs() < 1e-5, "centroid {i}: {got:?}, want {centroid:?}");
        }
    }
}
