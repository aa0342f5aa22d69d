//! PageRank, as Spark's own example computes it: every vertex starts at rank 1; each
//! iteration, a vertex sends `rank / out-degree` along each of its out-links, and its new rank
//! is `0.15 + 0.85 × (what it received)` (a vertex no link points to drops out). The links
//! are grouped once and cached; every iteration joins them with the ranks and reduces by
//! key, and caches its ranks for the next.
//!
//! ```text
//! cargo run --release -p ringleader-cli -- gen graph --vertices 100000 --edges 1000000 --out target/graph
//! cargo run --release --example pagerank -- --input target/graph --output target/pagerank --overwrite
//! ```
//!
//! Input: text lines `SRC DST` (vertex ids; blank lines and `#` comments skipped). Output:
//! `part-*` files of `vertex<TAB>rank` lines.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use ringleader::{Output, StorageLevel};

/// Rank the vertices of a directed graph.
#[derive(Parser)]
struct Args {
    /// Edge lists: a text file or a directory of them (`ringleader gen graph`).
    #[arg(long)]
    input: PathBuf,
    /// The output directory (refused if it exists, unless --overwrite).
    #[arg(long)]
    output: PathBuf,
    /// Replace an existing output directory once the new output is complete.
    #[arg(long)]
    overwrite: bool,
    /// Iterations.
    #[arg(long, default_value_t = 10)]
    iterations: u32,
}

/// The edge on `line`; a line that is not two vertex ids fails the job, naming it.
fn edge(line: &str) -> (u64, u64) {
    let mut ids = line.split_whitespace().map(str::parse::<u64>);
    match (ids.next(), ids.next(), ids.next()) {
        (Some(Ok(src)), Some(Ok(dst)), None) => (src, dst),
        _ => panic!("not an edge (two vertex ids): {line:?}"),
    }
}

fn main() -> ExitCode {
    ringleader::run(|ctx| {
        let args = Args::parse();
        let started = Instant::now();
        let links = ctx
            .text_files(&args.input)?
            .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
            .map(|line| edge(&line))
            .distinct()
            .group_by_key()
            .persist(StorageLevel::MemoryAndDisk);
        let mut ranks = links.map(|(vertex, _)| (vertex, 1.0f64)).cache();
        println!("{} vertices with out-links (their links cached)", ranks.count()?);
        for iteration in 1..=args.iterations {
            let round = Instant::now();
            let links_cached = links.is_cached();
            let contributions = links.join(&ranks).flat_map(|(_, (targets, rank))| {
                let share = rank / targets.len() as f64;
                targets.into_iter().map(move |t| (t, share)).collect::<Vec<_>>()
            });
            let next = contributions
                .reduce_by_key(|a, b| a + b)
                .map(|(vertex, received)| (vertex, 0.15 + 0.85 * received))
                .cache();
            let ranked = next.count()?;
            ranks.unpersist()?;
            ranks = next;
            println!(
                "iteration {iteration}: {ranked} ranks in {:.3} s (links {})",
                round.elapsed().as_secs_f64(),
                if links_cached {
                    "read from the cache"
                } else {
                    "computed and cached"
                }
            );
        }
        let top = ranks.top(3, |(_, rank)| ordered(*rank))?;
        let saved = ranks
            .map(|(vertex, rank)| format!("{vertex}\t{rank}"))
            .save_text(Output::new(&args.output).overwrite(args.overwrite))?;
        println!(
            "{} ranks in {} in {:.2} s; highest: {}",
            saved.rows,
            args.output.display(),
            started.elapsed().as_secs_f64(),
            top.iter()
                .map(|(v, r)| format!("{v} ({r:.3})"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(())
    })
}

/// A rank as a key that orders like it (ranks are positive and finite).
fn ordered(rank: f64) -> u64 {
    rank.to_bits()
}
