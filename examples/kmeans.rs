//! k-means (Lloyd's algorithm): the points are cached; each iteration broadcasts the
//! centroids, assigns every point to its nearest one (an accumulator counts the points that
//! changed cluster), and averages each cluster into its new centroid. It stops when no
//! point moved, or after `--iterations`.
//!
//! ```text
//! cargo run --release --example kmeans -- --points 1000000 --k 8
//! cargo run --release --example kmeans -- --input points/ --k 8
//! ```
//!
//! Input: text lines of numbers separated by spaces or commas, one point per line (all of
//! one dimension); or, without `--input`, `--points` points drawn around `--k` centres.
//! The first `--k` points are the first centroids (as a sequential run would take them).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::ensure;
use clap::Parser;

/// Cluster points around k centroids.
#[derive(Parser)]
struct Args {
    /// Text files of points, one per line; without it, points are generated.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Points to generate (without --input).
    #[arg(long, default_value_t = 100_000)]
    points: u64,
    /// Dimensions of generated points.
    #[arg(long, default_value_t = 2)]
    dimensions: usize,
    /// Clusters.
    #[arg(long, default_value_t = 4)]
    k: usize,
    /// At most this many iterations.
    #[arg(long, default_value_t = 20)]
    iterations: u32,
    /// Seed of generated points.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// A point.
type Point = Vec<f64>;

/// The point on `line`; a line that is not numbers fails the job, naming it.
fn parse(line: &str) -> Point {
    line.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<f64>()
                .unwrap_or_else(|_| panic!("not a point (numbers): {line:?}"))
        })
        .collect()
}

/// Point `i` of the generated input: near centre `i % k` (centres 10 apart on a diagonal),
/// within ±2 in every dimension, by a hash of `i` and the seed.
fn generated(i: u64, k: usize, dimensions: usize, seed: u64) -> Point {
    let centre = (i % k as u64) as f64 * 10.0;
    (0..dimensions as u64)
        .map(|d| {
            let mut z =
                (i ^ seed.rotate_left(17)).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ d.wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 31)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 29;
            centre + (z >> 11) as f64 / (1u64 << 53) as f64 * 4.0 - 2.0
        })
        .collect()
}

/// The index of the centroid nearest `p` (the first of equally near ones).
fn nearest(centroids: &[Point], p: &[f64]) -> u32 {
    let distance = |c: &Point| c.iter().zip(p).map(|(a, b)| (a - b) * (a - b)).sum::<f64>();
    let mut best = (0u32, f64::INFINITY);
    for (i, c) in centroids.iter().enumerate() {
        let d = distance(c);
        if d < best.1 {
            best = (i as u32, d);
        }
    }
    best.0
}

fn main() -> ExitCode {
    ringleader::run(|ctx| {
        let args = Args::parse();
        let started = Instant::now();
        let points = match &args.input {
            Some(input) => ctx
                .text_files(input)?
                .filter(|line| !line.trim().is_empty())
                .map(|line| parse(&line)),
            None => {
                let spec = (args.k, args.dimensions, args.seed);
                let parts = ctx.config().shuffle_partitions as usize;
                ctx.parallelize((0..args.points).collect::<Vec<u64>>(), parts)?
                    .map_with(spec, |(k, d, seed), i| generated(i, *k, *d, *seed))
            }
        }
        .cache();
        let mut centroids: Vec<Point> = points.take(args.k)?;
        ensure!(
            centroids.len() == args.k,
            "fewer points ({}) than clusters ({})",
            centroids.len(),
            args.k
        );
        // Each point with its cluster (none yet).
        let mut assigned = points.map(|p| (u32::MAX, p)).cache();
        for iteration in 1..=args.iterations {
            let round = Instant::now();
            let shared = ctx.broadcast(centroids.clone())?;
            let moved = ctx.accumulator::<u64>("moved points");
            let next = assigned
                .map_with((shared, moved.clone()), |(centroids, moved), (old, p)| {
                    let cluster = nearest(centroids.value(), &p);
                    if cluster != old {
                        moved.add(1);
                    }
                    (cluster, p)
                })
                .cache();
            let sums = next
                .map(|(cluster, p)| (cluster, (p, 1u64)))
                .reduce_by_key(|(a, n), (b, m)| (a.iter().zip(&b).map(|(x, y)| x + y).collect(), n + m))
                .collect()?;
            for (cluster, (sum, n)) in sums {
                centroids[cluster as usize] = sum.iter().map(|s| s / n as f64).collect();
            }
            assigned.unpersist()?;
            assigned = next;
            println!(
                "iteration {iteration}: {} points moved in {:.3} s",
                moved.value(),
                round.elapsed().as_secs_f64()
            );
            if moved.value() == 0 {
                break;
            }
        }
        for (i, c) in centroids.iter().enumerate() {
            let shown: Vec<String> = c.iter().map(|x| format!("{x:.6}")).collect();
            println!("centroid {i}: {}", shown.join(" "));
        }
        println!("{} clusters in {:.2} s", args.k, started.elapsed().as_secs_f64());
        Ok(())
    })
}
