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

/// The db-benchmark's groupby questions in DuckDB's SQL (as its own scripts ask them).
const GROUPBY_SQL: [&str; 10] = [
    "SELECT id1, sum(v1) AS v1 FROM x GROUP BY id1",
    "SELECT id1, id2, sum(v1) AS v1 FROM x GROUP BY id1, id2",
    "SELECT id3, sum(v1) AS v1, avg(v3) AS v3 FROM x GROUP BY id3",
    "SELECT id4, avg(v1) AS v1, avg(v2) AS v2, avg(v3) AS v3 FROM x GROUP BY id4",
    "SELECT id6, sum(v1) AS v1, sum(v2) AS v2, sum(v3) AS v3 FROM x GROUP BY id6",
    "SELECT id4, id5, quantile_cont(v3, 0.5) AS median_v3, stddev(v3) AS sd_v3 FROM x GROUP BY id4, id5",
    "SELECT id3, max(v1) - min(v2) AS range_v1_v2 FROM x GROUP BY id3",
    "SELECT id6, v3 AS largest2_v3 FROM (SELECT id6, v3, row_number() OVER (PARTITION BY id6 ORDER BY v3 DESC) AS order_v3 FROM x WHERE v3 IS NOT NULL) sub_query WHERE order_v3 <= 2",
    "SELECT id2, id4, pow(corr(v1, v2), 2) AS r2 FROM x GROUP BY id2, id4",
    "SELECT id1, id2, id3, id4, id5, id6, sum(v3) AS v3, count(*) AS count FROM x GROUP BY id1, id2, id3, id4, id5, id6",
];

/// Each question's checksum as DuckDB answers it on `tables` (each a name and its CSV
/// file): the answer's rows, then the sum
/// of each value column (the columns after its `keys` grouping columns; nulls and NaN
/// skipped).
fn duckdb_checksums(
    python: &std::path::Path,
    tables: &[(&str, &std::path::Path)],
    questions: &[(&str, usize)],
) -> Vec<Vec<f64>> {
    let mut script = "import duckdb, math\ncon = duckdb.connect()\n".to_string();
    for (name, csv) in tables {
        script.push_str(&format!(
            "con.execute(\"CREATE TABLE {name} AS SELECT * FROM read_csv_auto('{}')\")\n",
            csv.display()
        ));
    }
    for (sql, keys) in questions {
        script.push_str(&format!(
            "rows = con.execute(\"{sql}\").fetchall()\nsums = [sum(float(r[c]) for r in rows if r[c] is not None and not math.isnan(float(r[c]))) for c in range({keys}, len(rows[0]) if rows else {keys})]\nprint(' '.join(repr(v) for v in [float(len(rows))] + sums))\n"
        ));
    }
    let out = Command::new(python).args(["-c", &script]).bounded();
    assert!(out.status.success(), "duckdb: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split(' ').map(|v| v.parse().unwrap()).collect())
        .collect()
}

/// `q<N>: …, checksum A B C` lines of the groupby and join examples, by question.
fn printed_checksums(stdout: &str) -> Vec<Vec<f64>> {
    stdout
        .lines()
        .filter(|l| l.starts_with('q'))
        .map(|l| {
            let (_, sums) = l.rsplit_once("checksum ").unwrap();
            sums.split(' ').map(|v| v.parse().unwrap()).collect()
        })
        .collect()
}

/// Checksums equal to a relative 1e-9 (sums of floats in another order round differently).
fn assert_checksums_close(got: &[Vec<f64>], want: &[Vec<f64>], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: questions answered");
    for (q, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.len(), w.len(), "{what} q{}: {g:?} vs DuckDB's {w:?}", q + 1);
        for (a, b) in g.iter().zip(w) {
            assert!(
                (a - b).abs() <= 1e-9 * b.abs().max(1.0),
                "{what} q{}: {g:?}, DuckDB {w:?}",
                q + 1
            );
        }
    }
}

#[test]
fn groupby_example_answers_every_question_as_duckdb_does() {
    let Some(python) = crate::outputs::python_with_duckdb() else {
        crate::helpers::skip(
            "the groupby questions against DuckDB",
            "no Python with duckdb (.ci/run installs one)",
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let files = ringleader_datasets::dbbench::groupby(dir.path(), 100_000, 10, 7, false).unwrap();
    let keys = [1, 2, 1, 1, 1, 2, 1, 1, 2, 6];
    let questions: Vec<(&str, usize)> = GROUPBY_SQL.iter().copied().zip(keys).collect();
    let want = duckdb_checksums(&python, &[("x", &files[0])], &questions);
    for cached in [true, false] {
        let mut command = Command::new(example("groupby"));
        command.arg("--input").arg(&files[0]);
        if !cached {
            command.arg("--no-cache");
        }
        let stdout = run_ok(&mut command);
        assert_eq!(stdout.contains("load: 100000 rows"), cached, "{stdout}");
        assert_checksums_close(&printed_checksums(&stdout), &want, "groupby");
    }
}

#[test]
fn join_example_answers_every_question_as_duckdb_does() {
    let Some(python) = crate::outputs::python_with_duckdb() else {
        crate::helpers::skip(
            "the join questions against DuckDB",
            "no Python with duckdb (.ci/run installs one)",
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    ringleader_datasets::dbbench::join(dir.path(), 200_000, 9, false).unwrap();
    let csv = |t: &str| dir.path().join(format!("J1_200000_{t}.csv"));
    let (x, small, medium, big) = (csv("x"), csv("small"), csv("medium"), csv("big"));
    let tables = [
        ("x", x.as_path()),
        ("small", &small),
        ("medium", &medium),
        ("big", &big),
    ];
    // The answer's rows, sum(v1), sum(v2): the columns after the first (its rows' ones).
    let sums = "SELECT 1, v1, v2 FROM";
    let questions = [
        format!("{sums} x JOIN small USING (id1)"),
        format!("{sums} x JOIN medium USING (id2)"),
        format!("{sums} x LEFT JOIN medium USING (id2)"),
        format!("{sums} x JOIN medium USING (id5)"),
        format!("{sums} x JOIN big USING (id3)"),
    ];
    let questions: Vec<(&str, usize)> = questions.iter().map(|q| (q.as_str(), 1)).collect();
    let want = duckdb_checksums(&python, &tables, &questions);
    // Medium has 200 rows: joins with it broadcast it; big is shuffled.
    for threshold in ["4M", "0"] {
        let stdout = run_ok(
            Command::new(example("join"))
                .arg("--input")
                .arg(dir.path())
                .env("RINGLEADER_BROADCAST_JOIN_BYTES", threshold),
        );
        assert!(stdout.contains("load x: 200000 rows"), "{stdout}");
        assert_checksums_close(&printed_checksums(&stdout), &want, "join");
    }
}
