//! Text of Zipf-distributed words (exponent 1, as natural language roughly is), drawn from
//! a vocabulary of made-up lowercase words, about 12 words a line.

use std::io::Write;
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::write::{prepare_dir, progress, write_files};
use crate::{Error, Result};

/// The vocabulary for `seed`: `size` distinct words of 2 to 10 letters.
pub fn vocabulary(size: usize, seed: u64) -> Vec<String> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut seen = std::collections::HashSet::new();
    let mut words = Vec::with_capacity(size);
    while words.len() < size {
        let len = rng.gen_range(2..=10);
        let w: String = (0..len).map(|_| rng.gen_range(b'a'..=b'z') as char).collect();
        if seen.insert(w.clone()) {
            words.push(w);
        }
    }
    words
}

/// Writes about `bytes` bytes of text into `files` files `text-NNNNN.txt` under `dir`.
pub fn generate(
    dir: &Path,
    bytes: u64,
    files: u64,
    vocabulary_size: usize,
    seed: u64,
    overwrite: bool,
) -> Result<Vec<PathBuf>> {
    if files == 0 || vocabulary_size == 0 {
        return Err(Error::Invalid("--files and --vocabulary must be at least 1".into()));
    }
    prepare_dir(dir, overwrite)?;
    let words = vocabulary(vocabulary_size, seed);
    let zipf = Zipf::new(vocabulary_size as u64, 1.0).map_err(|e| Error::Invalid(format!("zipf: {e}")))?;
    let bar = progress(bytes, "gen text");
    write_files(
        dir,
        files,
        |i| format!("text-{i:05}.txt"),
        &bar,
        |i, out| {
            let target = crate::file_rows(bytes, files, i);
            let target = target.1 - target.0;
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut written = 0u64;
            let mut line = String::with_capacity(256);
            while written < target {
                line.clear();
                let n = rng.gen_range(6..=18);
                for k in 0..n {
                    if k > 0 {
                        line.push(' ');
                    }
                    let rank = zipf.sample(&mut rng) as usize;
                    line.push_str(&words[rank.saturating_sub(1).min(words.len() - 1)]);
                }
                line.push('\n');
                out.write_all(line.as_bytes()).map_err(|e| Error::io(dir, e))?;
                written += line.len() as u64;
                bar.inc(line.len() as u64);
            }
            Ok(())
        },
    )
}
