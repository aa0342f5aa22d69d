//! Sort Benchmark records, laid out as gensort writes them in binary mode: a 10-byte random
//! key, `00 11`, the row number as 32 hex digits, `88 99 AA BB`, 48 filler bytes, `CC DD EE FF`.
//! Every record depends only on the seed and its row number, so any file count gives the
//! same records. `skew` draws a quarter of keys from 16 hot keys and a quarter from 1,000
//! recurring ones, for duplicates and hot partitions.

use std::io::Write;
use std::path::{Path, PathBuf};

use rand::RngCore;
use rand::SeedableRng;
use rand_xoshiro::SplitMix64;
use ringleader_core::data::record::{RECORD_LEN, Record};

use crate::write::{prepare_dir, progress, write_files};
use crate::{Error, Result, file_rows};

/// What to generate.
#[derive(Debug, Clone)]
pub struct SortSpec {
    /// Number of records.
    pub records: u64,
    /// Number of files they are spread over.
    pub files: u64,
    /// Seed of the keys.
    pub seed: u64,
    /// Hot and duplicate keys.
    pub skew: bool,
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn random_key(seed: u64, row: u64, out: &mut [u8]) {
    let mut rng = SplitMix64::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ row);
    let a = rng.next_u64().to_be_bytes();
    let b = rng.next_u64().to_be_bytes();
    out[..8].copy_from_slice(&a);
    out[8..10].copy_from_slice(&b[..2]);
}

/// Record number `row` for `seed`.
pub fn record(seed: u64, row: u64, skew: bool) -> Record {
    let mut r = [0u8; RECORD_LEN];
    random_key(seed, row, &mut r[..10]);
    if skew {
        match r[9] & 3 {
            0 => {
                // one of 16 hot keys, the first of them the hottest
                let hot = (r[0] as u64 * r[1] as u64) >> 12;
                random_key(seed ^ 0x0048_4f54, hot, &mut r[..10]);
            }
            1 => {
                let recurring = u64::from_be_bytes(r[..8].try_into().unwrap_or_default()) % 1000;
                random_key(seed ^ 0x0052_4543, recurring, &mut r[..10]);
            }
            _ => {}
        }
    }
    r[10] = 0x00;
    r[11] = 0x11;
    for (i, b) in r[12..44].iter_mut().enumerate() {
        let shift = 4 * (31 - i);
        *b = if shift < 64 {
            HEX[((row as u128 >> shift) & 0xF) as usize]
        } else {
            b'0'
        };
    }
    r[44..48].copy_from_slice(&[0x88, 0x99, 0xAA, 0xBB]);
    for (i, b) in r[48..96].iter_mut().enumerate() {
        *b = HEX[((row >> ((i / 4) % 16)) as usize + i / 4) & 0xF];
    }
    r[96..100].copy_from_slice(&[0xCC, 0xDD, 0xEE, 0xFF]);
    Record(r)
}

/// Writes `spec.records` records into `spec.files` files `gensort-NNNNN.dat` under `dir`.
pub fn generate(dir: &Path, spec: &SortSpec, overwrite: bool) -> Result<Vec<PathBuf>> {
    if spec.files == 0 {
        return Err(Error::Invalid("--files must be at least 1".into()));
    }
    prepare_dir(dir, overwrite)?;
    let bar = progress(spec.records * RECORD_LEN as u64, "gen sort");
    write_files(
        dir,
        spec.files,
        |i| format!("gensort-{i:05}.dat"),
        &bar,
        |i, out| {
            let (start, end) = file_rows(spec.records, spec.files, i);
            let mut buf: Vec<Record> = Vec::with_capacity(10_000);
            let mut row = start;
            while row < end {
                buf.clear();
                let stop = (row + 10_000).min(end);
                buf.extend((row..stop).map(|r| record(spec.seed, r, spec.skew)));
                let bytes = Record::slice_as_bytes(&buf);
                out.write_all(bytes).map_err(|e| Error::io(dir, e))?;
                bar.inc(bytes.len() as u64);
                row = stop;
            }
            Ok(())
        },
    )
}
