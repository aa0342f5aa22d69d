//! `ringleader gen sort|numbers|text|graph|groupby|join`: write benchmark inputs.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use ringleader_datasets::{dbbench, gensort, graph, numbers, text};

/// What to generate.
#[derive(Debug, Subcommand)]
pub enum GenCommand {
    /// gensort-format binary records: 10-byte key, 90-byte payload.
    Sort(SortArgs),
    /// An int64 column `value` in Arrow IPC files (*.arrow).
    Numbers(NumbersArgs),
    /// Lines of Zipf-distributed words.
    Text(TextArgs),
    /// A directed R-MAT graph (power-law degrees), one `SRC DST` edge per line (PageRank's input).
    Graph(GraphArgs),
    /// The db-benchmark's groupby table G1_<rows>_<groups> (CSV and Parquet).
    Groupby(GroupbyArgs),
    /// The db-benchmark's join tables J1_<rows>_{x,small,medium,big} (CSV and Parquet).
    Join(JoinArgs),
}

/// Where every generator writes, and from which seed.
#[derive(Debug, Args)]
pub struct Destination {
    /// Directory to write (created; must be empty unless --overwrite).
    #[arg(long)]
    pub out: PathBuf,
    /// Seed: the same seed gives the same data.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Replace the contents of a non-empty --out.
    #[arg(long)]
    pub overwrite: bool,
}

/// Flags shared by the generators that spread their data over files.
#[derive(Debug, Args)]
pub struct Common {
    #[command(flatten)]
    to: Destination,
    /// Number of files to spread the data over.
    #[arg(long, default_value_t = 4)]
    pub files: u64,
}

/// `gen sort`.
#[derive(Debug, Args)]
pub struct SortArgs {
    /// Number of 100-byte records.
    #[arg(long)]
    pub records: u64,
    /// Many duplicate and hot keys.
    #[arg(long)]
    pub skew: bool,
    #[command(flatten)]
    common: Common,
}

/// `gen numbers`.
#[derive(Debug, Args)]
pub struct NumbersArgs {
    /// Number of int64 values.
    #[arg(long)]
    pub rows: u64,
    #[command(flatten)]
    common: Common,
}

/// `gen text`.
#[derive(Debug, Args)]
pub struct TextArgs {
    /// Approximate size in bytes (suffixes K, M, G accepted).
    #[arg(long, value_parser = parse_size)]
    pub bytes: u64,
    /// Number of distinct words to draw from.
    #[arg(long, default_value_t = 100_000)]
    pub vocabulary: usize,
    #[command(flatten)]
    common: Common,
}

/// `gen graph`.
#[derive(Debug, Args)]
pub struct GraphArgs {
    /// Number of vertices (ids 0..N).
    #[arg(long)]
    pub vertices: u64,
    /// Number of edges.
    #[arg(long)]
    pub edges: u64,
    #[command(flatten)]
    common: Common,
}

/// `gen groupby`.
#[derive(Debug, Args)]
pub struct GroupbyArgs {
    /// Rows (`1e7` and `10M` style accepted).
    #[arg(long, value_parser = parse_count)]
    pub rows: u64,
    /// K: the groups of id1, id2, id4 and id5 (id3 and id6 have rows/K).
    #[arg(long, default_value_t = 100)]
    pub groups: u64,
    #[command(flatten)]
    to: Destination,
}

/// `gen join`.
#[derive(Debug, Args)]
pub struct JoinArgs {
    /// Rows of x and of big (`1e7` and `10M` style accepted).
    #[arg(long, value_parser = parse_count)]
    pub rows: u64,
    #[command(flatten)]
    to: Destination,
}

/// Parses a count: `10000000`, `1e7` or `10M`.
pub fn parse_count(s: &str) -> Result<u64, String> {
    let bad = || format!("{s:?} is not a count (examples: 100000, 1e7, 10M)");
    if let Some((mantissa, exponent)) = s.split_once(['e', 'E']) {
        let m: u64 = mantissa.parse().map_err(|_| bad())?;
        let e: u32 = exponent.parse().map_err(|_| bad())?;
        return 10u64.checked_pow(e).and_then(|p| p.checked_mul(m)).ok_or_else(bad);
    }
    let upper = s.to_ascii_uppercase();
    let (digits, scale) = match upper.strip_suffix('M').or(upper.strip_suffix("MILLION")) {
        Some(d) => (d.to_string(), 1_000_000),
        None => match upper.strip_suffix('K') {
            Some(d) => (d.to_string(), 1000),
            None => (upper.clone(), 1),
        },
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(bad)
}

/// Parses `160M`-style sizes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    ringleader::config::parse_bytes(s).ok_or_else(|| format!("{s:?} is not a size (examples: 1000, 64K, 160M, 1G)"))
}

/// Runs a `gen` subcommand.
pub fn run(command: GenCommand) -> anyhow::Result<ExitCode> {
    match command {
        GenCommand::Sort(a) => {
            let spec = gensort::SortSpec {
                records: a.records,
                files: a.common.files,
                seed: a.common.to.seed,
                skew: a.skew,
            };
            let files = gensort::generate(&a.common.to.out, &spec, a.common.to.overwrite)
                .with_context(|| format!("generating records into {}", a.common.to.out.display()))?;
            println!(
                "wrote {} records ({} bytes) in {} files to {}",
                a.records,
                a.records * 100,
                files.len(),
                a.common.to.out.display()
            );
        }
        GenCommand::Numbers(a) => {
            let (files, sum) = numbers::generate(
                &a.common.to.out,
                a.rows,
                a.common.files,
                a.common.to.seed,
                a.common.to.overwrite,
            )
            .with_context(|| format!("generating numbers into {}", a.common.to.out.display()))?;
            println!(
                "wrote {} int64 values in {} files to {} (their sum: {sum})",
                a.rows,
                files.len(),
                a.common.to.out.display()
            );
        }
        GenCommand::Text(a) => {
            let files = text::generate(
                &a.common.to.out,
                a.bytes,
                a.common.files,
                a.vocabulary,
                a.common.to.seed,
                a.common.to.overwrite,
            )
            .with_context(|| format!("generating text into {}", a.common.to.out.display()))?;
            println!(
                "wrote about {} bytes of text in {} files to {}",
                a.bytes,
                files.len(),
                a.common.to.out.display()
            );
        }
        GenCommand::Groupby(a) => {
            let files = dbbench::groupby(&a.to.out, a.rows, a.groups, a.to.seed, a.to.overwrite)
                .with_context(|| format!("generating the groupby table into {}", a.to.out.display()))?;
            println!(
                "wrote {} rows in {} files to {}",
                a.rows,
                files.len(),
                a.to.out.display()
            );
        }
        GenCommand::Join(a) => {
            let files = dbbench::join(&a.to.out, a.rows, a.to.seed, a.to.overwrite)
                .with_context(|| format!("generating the join tables into {}", a.to.out.display()))?;
            println!(
                "wrote the join tables of {} rows in {} files to {}",
                a.rows,
                files.len(),
                a.to.out.display()
            );
        }
        GenCommand::Graph(a) => {
            let files = graph::generate(
                &a.common.to.out,
                a.vertices,
                a.edges,
                a.common.files,
                a.common.to.seed,
                a.common.to.overwrite,
            )
            .with_context(|| format!("generating a graph into {}", a.common.to.out.display()))?;
            println!(
                "wrote {} edges among {} vertices in {} files to {}",
                a.edges,
                a.vertices,
                files.len(),
                a.common.to.out.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
