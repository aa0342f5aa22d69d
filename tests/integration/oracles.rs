//! Independent oracles: what a job must output, computed sequentially in the test from its
//! input files, with nothing of Ringleader's engine in between. Fault, spill and cluster
//! tests compare their runs with these, not with another run of the same engine.

use std::collections::BTreeMap;
use std::path::Path;

use crate::helpers::files_under;

/// Every file under `dir`, in name order.
fn input_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = files_under(dir);
    files.sort();
    files
}

/// The word count of every file under `dir` (words split at whitespace), as the
/// `word<TAB>count` lines a word count writes, sorted.
pub fn word_counts(dir: &Path) -> Vec<String> {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for file in input_files(dir) {
        let text = std::fs::read_to_string(&file).unwrap();
        for word in text.split_whitespace() {
            *counts.entry(word.to_string()).or_default() += 1;
        }
    }
    counts.into_iter().map(|(w, n)| format!("{w}\t{n}")).collect()
}

/// The 100-byte records of every file under `dir`, sorted by their 10-byte key (ties by
/// the whole record: a sort need not be stable, see [`canonical`]).
pub fn sorted_records(dir: &Path) -> Vec<u8> {
    let bytes: Vec<u8> = input_files(dir)
        .iter()
        .flat_map(|f| std::fs::read(f).unwrap())
        .collect();
    assert_eq!(bytes.len() % 100, 0, "records of 100 bytes under {}", dir.display());
    let mut records: Vec<&[u8]> = bytes.chunks(100).collect();
    records.sort_by(|a, b| a[..10].cmp(&b[..10]).then(a.cmp(b)));
    records.concat()
}

/// A sort's output, checked to be in key order, with each run of equal keys put in the
/// order [`sorted_records`] gives them (a sort need not be stable).
pub fn canonical(bytes: &[u8]) -> Vec<u8> {
    assert_eq!(bytes.len() % 100, 0, "a sort's output is whole records");
    let mut records: Vec<&[u8]> = bytes.chunks(100).collect();
    if let Some(at) = records.windows(2).position(|w| w[0][..10] > w[1][..10]) {
        panic!(
            "the output is not sorted by key: record {} is greater than the next",
            at
        );
    }
    records.sort_by(|a, b| a[..10].cmp(&b[..10]).then(a.cmp(b)));
    records.concat()
}

/// Asserts that the part files of `output` hold exactly the records under `input`, in key
/// order.
pub fn assert_sorted(input: &Path, output: &Path) {
    let got = canonical(&crate::helpers::concat(output));
    let want = sorted_records(input);
    assert_eq!(got.len(), want.len(), "records in and out");
    assert!(got == want, "the output's records are not the input's");
}

/// The number of rows and the sum of the first (int64) column of the Arrow IPC files under
/// `dir`, read with the arrow crate.
pub fn int64_sum(dir: &Path) -> (u64, i64) {
    let (mut rows, mut sum) = (0u64, 0i64);
    for file in input_files(dir) {
        let reader = arrow::ipc::reader::FileReader::try_new(std::fs::File::open(&file).unwrap(), None).unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            rows += batch.num_rows() as u64;
            let column = batch
                .column(0)
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .unwrap();
            sum += column.values().iter().sum::<i64>();
        }
    }
    (rows, sum)
}

/// Customers and orders as CSV files, and the per-city lines `orders_by_city` must print,
/// computed sequentially: `city<TAB>orders<TAB>total<TAB>names`.
pub fn shop(dir: &Path) -> Vec<String> {
    std::fs::create_dir_all(dir.join("customers")).unwrap();
    std::fs::create_dir_all(dir.join("orders")).unwrap();
    let cities = ["Oslo", "Lima", "Pune", "Turku", "Quito"];
    let mut customers = String::from("customer_id,name,city\n");
    for c in 0..40 {
        customers.push_str(&format!("{c},name{},{}\n", c % 17, cities[c % cities.len()]));
    }
    std::fs::write(dir.join("customers/customers.csv"), customers).unwrap();
    let mut per_city: BTreeMap<&str, (u64, i64, Vec<String>)> = BTreeMap::new();
    for f in 0..3 {
        let mut orders = String::from("order_id,customer_id,amount\n");
        for o in 0..700 {
            let id = f * 1000 + o;
            // Customers 40 and up do not exist: their orders join nothing.
            let customer = (id * 7) % 45;
            let amount = ((id * 13) % 500) as i64 - 100;
            orders.push_str(&format!("{id},{customer},{amount}\n"));
            if customer < 40 {
                let entry = per_city.entry(cities[customer % cities.len()]).or_default();
                entry.0 += 1;
                entry.1 += amount;
                entry.2.push(format!("name{}", customer % 17));
            }
        }
        std::fs::write(dir.join(format!("orders/orders-{f}.csv")), orders).unwrap();
    }
    per_city
        .into_iter()
        .map(|(city, (count, total, mut names))| {
            names.sort();
            names.dedup();
            format!("{city}\t{count}\t{total}\t{}", names.join(","))
        })
        .collect()
}

/// What the chaos job prints after collecting every line of the text under `dir`:
/// `collected N lines, B bytes` (bytes without the newlines).
pub fn collected_lines(dir: &Path) -> String {
    let (mut lines, mut bytes) = (0usize, 0usize);
    for file in input_files(dir) {
        for line in std::fs::read_to_string(&file).unwrap().lines() {
            lines += 1;
            bytes += line.len();
        }
    }
    format!("collected {lines} lines, {bytes} bytes")
}

/// Every line of every file under `dir` but `_SUCCESS`, sorted: what a text input holds, or
/// what a text output or a `get` of a text dataset wrote.
pub fn lines_under(dir: &Path) -> Vec<String> {
    let files: Vec<_> = input_files(dir)
        .into_iter()
        .filter(|f| f.file_name().is_none_or(|n| n != "_SUCCESS"))
        .collect();
    crate::helpers::sorted_lines_of(&files)
}

/// PageRank of the edge lists under `dir` (`SRC DST` lines), computed sequentially as
/// Spark's example defines it: distinct edges; every vertex with out-links starts at 1;
/// each round a vertex's new rank is `0.15 + 0.85 × Σ rank(u) / outdegree(u)` over its
/// in-links, and only vertices with in-links have one.
pub fn pagerank(dir: &Path, iterations: u32) -> std::collections::BTreeMap<u64, f64> {
    use std::collections::{BTreeMap, BTreeSet};
    let mut links: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    for line in lines_under(dir) {
        let mut ids = line.split_whitespace().map(|s| s.parse::<u64>().unwrap());
        let (src, dst) = (ids.next().unwrap(), ids.next().unwrap());
        links.entry(src).or_default().insert(dst);
    }
    let mut ranks: BTreeMap<u64, f64> = links.keys().map(|v| (*v, 1.0)).collect();
    for _ in 0..iterations {
        let mut received: BTreeMap<u64, f64> = BTreeMap::new();
        for (v, targets) in &links {
            if let Some(rank) = ranks.get(v) {
                for t in targets {
                    *received.entry(*t).or_default() += rank / targets.len() as f64;
                }
            }
        }
        ranks = received.into_iter().map(|(v, r)| (v, 0.15 + 0.85 * r)).collect();
    }
    ranks
}

/// `vertex<TAB>rank` lines as a map, checked against `want` to a relative 1e-9 (sums in
/// another order round differently).
pub fn assert_ranks_close(lines: &[String], want: &std::collections::BTreeMap<u64, f64>) {
    let got: std::collections::BTreeMap<u64, f64> = lines
        .iter()
        .map(|l| {
            let (v, r) = l.split_once('\t').unwrap();
            (v.parse().unwrap(), r.parse().unwrap())
        })
        .collect();
    assert_eq!(got.len(), want.len(), "vertices ranked");
    for (v, w) in want {
        let g = got[v];
        assert!(
            (g - w).abs() <= 1e-9 * w.abs().max(1.0),
            "vertex {v}: rank {g}, want {w}"
        );
    }
}

/// k-means of the points in the text files under `dir` (one point per line, numbers
/// separated by spaces), sequentially: the first `k` points (in file order) start as the
/// centroids; each round assigns every point to its nearest centroid (the first of equally
/// near ones) and moves each centroid to its points' mean (one without points stays); it
/// stops when no point changes cluster, or after `iterations`. Returns the centroids and the
/// points moved in each round.
pub fn kmeans(dir: &Path, k: usize, iterations: u32) -> (Vec<Vec<f64>>, Vec<u64>) {
    let mut files = input_files(dir);
    files.sort();
    let points: Vec<Vec<f64>> = files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| l.split_whitespace().map(|x| x.parse().unwrap()).collect())
                .collect::<Vec<Vec<f64>>>()
        })
        .collect();
    let mut centroids: Vec<Vec<f64>> = points[..k].to_vec();
    let mut cluster = vec![u32::MAX; points.len()];
    let mut moved_per_round = Vec::new();
    for _ in 0..iterations {
        let mut moved = 0;
        for (p, c) in points.iter().zip(cluster.iter_mut()) {
            let d = |c: &Vec<f64>| c.iter().zip(p).map(|(a, b)| (a - b) * (a - b)).sum::<f64>();
            let mut best = (0u32, f64::INFINITY);
            for (i, centroid) in centroids.iter().enumerate() {
                if d(centroid) < best.1 {
                    best = (i as u32, d(centroid));
                }
            }
            if best.0 != *c {
                moved += 1;
                *c = best.0;
            }
        }
        let dims = points[0].len();
        let mut sums = vec![(vec![0.0; dims], 0u64); k];
        for (p, c) in points.iter().zip(&cluster) {
            let (sum, n) = &mut sums[*c as usize];
            for (s, x) in sum.iter_mut().zip(p) {
                *s += x;
            }
            *n += 1;
        }
        for (centroid, (sum, n)) in centroids.iter_mut().zip(sums) {
            if n > 0 {
                *centroid = sum.iter().map(|s| s / n as f64).collect();
            }
        }
        moved_per_round.push(moved);
        if moved == 0 {
            break;
        }
    }
    (centroids, moved_per_round)
}
