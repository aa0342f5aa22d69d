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
