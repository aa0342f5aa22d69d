//! valsort's checks: the output's `part-*` files, concatenated in name order, are sorted by
//! key, and hold exactly the input's records (same count, same order-independent checksum:
//! the sum of every record's CRC-32).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use ringleader_core::data::record::{KEY_LEN, RECORD_LEN};
use ringleader_core::io::source::{list_files, records::check_size};

use crate::{Error, Result};

/// Where the output first breaks the order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The output file holding the out-of-order record.
    pub file: PathBuf,
    /// Index of that record within its file.
    pub record: u64,
}

impl Violation {
    /// Byte offset of the record within its file.
    pub fn offset(&self) -> u64 {
        self.record * RECORD_LEN as u64
    }
}

/// Counts and checksum of one side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Number of records.
    pub records: u64,
    /// Wrapping sum of the records' CRC-32s.
    pub checksum: u128,
}

/// The outcome of a validation.
#[derive(Debug, Clone)]
pub struct Report {
    /// The input's records.
    pub input: Summary,
    /// The output's records.
    pub output: Summary,
    /// Output records whose key equals the previous record's.
    pub duplicates: u64,
    /// The first record smaller than its predecessor, if any.
    pub first_violation: Option<Violation>,
    /// Output files checked, in order.
    pub files: Vec<PathBuf>,
}

impl Report {
    /// Whether the output is sorted and a permutation of the input.
    pub fn ok(&self) -> bool {
        self.first_violation.is_none() && self.input == self.output
    }
}

#[derive(Default)]
struct FileScan {
    summary: Summary,
    first_key: Option<[u8; KEY_LEN]>,
    last_key: Option<[u8; KEY_LEN]>,
    duplicates: u64,
    violation: Option<u64>,
}

fn scan(path: &Path, check_order: bool) -> Result<FileScan> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut buf = vec![0u8; RECORD_LEN * 80_000];
    let mut scan = FileScan::default();
    let mut index = 0u64;
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            let n = file.read(&mut buf[filled..]).map_err(|e| Error::io(path, e))?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            break;
        }
        if filled % RECORD_LEN != 0 {
            let size = index * RECORD_LEN as u64 + filled as u64;
            check_size(path, size)?;
        }
        for record in buf[..filled].chunks_exact(RECORD_LEN) {
            scan.summary.checksum = scan.summary.checksum.wrapping_add(crc32fast::hash(record) as u128);
            if check_order {
                let key: [u8; KEY_LEN] = record[..KEY_LEN].try_into().unwrap_or_default();
                match scan.last_key {
                    Some(prev) if key < prev && scan.violation.is_none() => scan.violation = Some(index),
                    Some(prev) if key == prev => scan.duplicates += 1,
                    None => scan.first_key = Some(key),
                    _ => {}
                }
                scan.last_key = Some(key);
            }
            index += 1;
        }
        if filled < buf.len() {
            break;
        }
    }
    scan.summary.records = index;
    Ok(scan)
}

/// Summarises the records of `input` (a file or directory of record files).
pub fn summarize_input(input: &Path) -> Result<Summary> {
    let files = list_files(input, |_| true)?;
    let scans = files
        .par_iter()
        .map(|(p, _)| scan(p, false))
        .collect::<Result<Vec<_>>>()?;
    Ok(scans.iter().fold(Summary::default(), |acc, s| Summary {
        records: acc.records + s.summary.records,
        checksum: acc.checksum.wrapping_add(s.summary.checksum),
    }))
}

/// Checks `output`'s `part-*` files against `input`.
pub fn validate_sort(input: &Path, output: &Path) -> Result<Report> {
    let input_summary = summarize_input(input)?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(output)
        .map_err(|e| Error::io(output, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("part-")))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::Invalid(format!("{} holds no part-* files", output.display())));
    }
    let scans = files.par_iter().map(|p| scan(p, true)).collect::<Result<Vec<_>>>()?;
    let mut report = Report {
        input: input_summary,
        output: Summary::default(),
        duplicates: 0,
        first_violation: None,
        files: files.clone(),
    };
    let mut previous: Option<[u8; KEY_LEN]> = None;
    for (path, s) in files.iter().zip(&scans) {
        report.output.records += s.summary.records;
        report.output.checksum = report.output.checksum.wrapping_add(s.summary.checksum);
        report.duplicates += s.duplicates;
        if let (Some(prev), Some(first)) = (previous, s.first_key) {
            if first < prev && report.first_violation.is_none() {
                report.first_violation = Some(Violation {
                    file: path.clone(),
                    record: 0,
                });
            } else if first == prev {
                report.duplicates += 1;
            }
        }
        if let Some(i) = s.violation
            && report.first_violation.is_none()
        {
            report.first_violation = Some(Violation {
                file: path.clone(),
                record: i,
            });
        }
        if s.last_key.is_some() {
            previous = s.last_key;
        }
    }
    Ok(report)
}
