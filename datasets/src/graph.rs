//! A directed graph as text, one edge `SRC DST` per line (vertex ids in `0..vertices`), drawn
//! by R-MAT (Chakrabarti, Zhan and Faloutsos, 2004) with Graph500's quadrant probabilities
//! (0.57, 0.19, 0.19, 0.05): a power-law degree distribution, a few hubs with many edges
//! and most vertices with few, as web and social graphs have. Self-loops are drawn again.

use std::io::Write;
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::write::{prepare_dir, progress, write_files};
use crate::{Error, Result, file_rows};

/// Graph500's R-MAT quadrant probabilities: top-left, top-right, bottom-left (the rest is
/// bottom-right).
const QUADRANTS: [f64; 3] = [0.57, 0.19, 0.19];

/// One R-MAT edge among `vertices` vertices (`scale` bits cover them).
fn edge(rng: &mut Xoshiro256PlusPlus, scale: u32, vertices: u64) -> (u64, u64) {
    loop {
        let (mut src, mut dst) = (0u64, 0u64);
        for _ in 0..scale {
            let r: f64 = rng.r#gen();
            let (down, right) = if r < QUADRANTS[0] {
                (0, 0)
            } else if r < QUADRANTS[0] + QUADRANTS[1] {
                (0, 1)
            } else if r < QUADRANTS[0] + QUADRANTS[1] + QUADRANTS[2] {
                (1, 0)
            } else {
                (1, 1)
            };
            src = (src << 1) | down;
            dst = (dst << 1) | right;
        }
        let (src, dst) = (src % vertices, dst % vertices);
        if src != dst {
            return (src, dst);
        }
    }
}

/// Writes `edges` edges among `vertices` vertices into `files` files `graph-NNNNN.txt`
/// under `dir`.
pub fn generate(dir: &Path, vertices: u64, edges: u64, files: u64, seed: u64, overwrite: bool) -> Result<Vec<PathBuf>> {
    if files == 0 || vertices < 2 {
        return Err(Error::Invalid(
            "--files must be at least 1 and --vertices at least 2".into(),
        ));
    }
    prepare_dir(dir, overwrite)?;
    let scale = 64 - (vertices - 1).leading_zeros();
    // About 14 bytes a line.
    let bar = progress(edges * 14, "gen graph");
    write_files(
        dir,
        files,
        |i| format!("graph-{i:05}.txt"),
        &bar,
        |i, out| {
            let (start, end) = file_rows(edges, files, i);
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let path = dir.join(format!("graph-{i:05}.txt"));
            for _ in start..end {
                let (src, dst) = edge(&mut rng, scale, vertices);
                writeln!(out, "{src} {dst}").map_err(|e| Error::io(&path, e))?;
            }
            bar.inc((end - start) * 14);
            Ok(())
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges_stay_in_range_without_self_loops_and_follow_a_power_law() {
        let dir = tempfile::tempdir().expect("dir");
        let files = generate(dir.path(), 1000, 20_000, 3, 7, false).expect("generate");
        let mut degree = vec![0u64; 1000];
        let mut lines = 0;
        for file in &files {
            for line in std::fs::read_to_string(file).expect("read").lines() {
                let (src, dst) = line.split_once(' ').expect("two fields");
                let (src, dst): (u64, u64) = (src.parse().expect("src"), dst.parse().expect("dst"));
                assert!(src < 1000 && dst < 1000 && src != dst, "{line}");
                degree[src as usize] += 1;
                lines += 1;
            }
        }
        assert_eq!(lines, 20_000);
        degree.sort_unstable();
        // The top 1% of vertices hold far more than 1% of the out-edges.
        let top: u64 = degree[990..].iter().sum();
        assert!(top > 2_000, "the top 10 vertices have {top} of 20000 edges");
        // The same seed, the same graph.
        let again = tempfile::tempdir().expect("dir");
        let files2 = generate(again.path(), 1000, 20_000, 3, 7, false).expect("generate");
        for (a, b) in files.iter().zip(&files2) {
            assert_eq!(std::fs::read(a).expect("a"), std::fs::read(b).expect("b"));
        }
    }
}
