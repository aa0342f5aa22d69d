//! The db-benchmark's join questions q1–q5 on its `J1_<rows>` tables: `x` joined with
//! `small`, `medium` and `big` on an integer key or a string one, inner or left outer. The
//! tables are loaded once and cached; each question is then answered, printing its time and
//! a checksum of its answer: the answer's rows and the sums of its `v1` and `v2` columns.
//!
//! ```text
//! cargo run --release -p ringleader-cli -- gen join --rows 1e7 --out target/join
//! cargo run --release --example join -- --input target/join
//! ```
//!
//! `--input` is the directory `gen join` wrote (its CSV files; with `--parquet` and
//! `--features parquet`, its Parquet files).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use clap::Parser;
use ringleader::{Context, Data, Dataset, SmolStr, StorageLevel};
use serde::{Deserialize, Serialize};

/// Answer the db-benchmark's join questions.
#[derive(Parser)]
struct Args {
    /// The directory of J1_<rows>_{x,small,medium,big} tables (`ringleader gen join`).
    #[arg(long)]
    input: PathBuf,
    /// Questions to answer (default: all five), e.g. `1,3`.
    #[arg(long, value_delimiter = ',', default_values_t = 1..=5)]
    questions: Vec<u32>,
    /// Read the Parquet files instead of the CSV ones (needs --features parquet).
    #[arg(long)]
    parquet: bool,
    /// Read the files for every question instead of caching them first.
    #[arg(long)]
    no_cache: bool,
}

/// A row of x.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct X {
    id1: i64,
    id2: i64,
    id3: i64,
    id4: SmolStr,
    id5: SmolStr,
    id6: SmolStr,
    v1: f64,
}

/// A row of small.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Small {
    id1: i64,
    id4: SmolStr,
    v2: f64,
}

/// A row of medium.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Medium {
    id1: i64,
    id2: i64,
    id4: SmolStr,
    id5: SmolStr,
    v2: f64,
}

/// A row of big.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Big {
    id1: i64,
    id2: i64,
    id3: i64,
    id4: SmolStr,
    id5: SmolStr,
    id6: SmolStr,
    v2: f64,
}

/// The columns each question reads: `select` decodes only these from the cached tables.
macro_rules! columns {
    ($($name:ident { $($field:ident: $t:ty),* })*) => {$(
        /// The columns one side of a question reads.
        #[derive(Debug, Clone, Serialize, Deserialize)]
        struct $name { $($field: $t),* }
    )*};
}

columns! {
    Key1V1 { id1: i64, v1: f64 }
    Key2V1 { id2: i64, v1: f64 }
    Key3V1 { id3: i64, v1: f64 }
    Key5V1 { id5: SmolStr, v1: f64 }
    Key1V2 { id1: i64, v2: f64 }
    Key2V2 { id2: i64, v2: f64 }
    Key3V2 { id3: i64, v2: f64 }
    Key5V2 { id5: SmolStr, v2: f64 }
}

/// The table whose name ends with `_<table>` under `dir`.
fn table<T: Data>(ctx: &Context, dir: &Path, table: &str, parquet: bool) -> anyhow::Result<Dataset<T>> {
    let extension = if parquet { "parquet" } else { "csv" };
    let suffix = format!("_{table}.{extension}");
    let path = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().ends_with(&suffix)))
        .with_context(|| format!("no J1_*{suffix} in {} (made by `ringleader gen join`)", dir.display()))?;
    Ok(if parquet {
        ctx.parquet_files::<T>(&path)?
    } else {
        ctx.csv_files::<T>(&path)?
    })
}

/// A table, loaded and cached unless `no_cache`.
fn load<T: Data>(source: Dataset<T>, name: &str, no_cache: bool) -> anyhow::Result<Dataset<T>> {
    if no_cache {
        return Ok(source);
    }
    let started = Instant::now();
    let cached = source.persist(StorageLevel::MemoryAndDisk);
    let rows = cached.count()?;
    println!("load {name}: {rows} rows in {:.3} s", started.elapsed().as_secs_f64());
    Ok(cached)
}

/// An answer's checksum: its rows, the sum of its v1 and of its v2 (a missing v2, of a
/// left join's unmatched row, adds nothing).
fn checksum<K: Data>(answer: Dataset<(K, (f64, Option<f64>))>) -> anyhow::Result<Vec<f64>> {
    let sums = answer
        .map(|(_, (v1, v2))| (1.0, v1, v2.unwrap_or(0.0)))
        .fold((0.0, 0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2))?;
    Ok(vec![sums.0, sums.1, sums.2])
}

fn main() -> ExitCode {
    ringleader::run(|ctx| {
        let args = Args::parse();
        let x = load(table::<X>(ctx, &args.input, "x", args.parquet)?, "x", args.no_cache)?;
        let small = load(
            table::<Small>(ctx, &args.input, "small", args.parquet)?,
            "small",
            args.no_cache,
        )?;
        let medium = load(
            table::<Medium>(ctx, &args.input, "medium", args.parquet)?,
            "medium",
            args.no_cache,
        )?;
        let big = load(
            table::<Big>(ctx, &args.input, "big", args.parquet)?,
            "big",
            args.no_cache,
        )?;
        let mut total = 0.0;
        for q in &args.questions {
            let started = Instant::now();
            let inner = |joined: Dataset<(i64, (f64, f64))>| joined.map(|(k, (v1, v2))| (k, (v1, Some(v2))));
            let (title, sums) = match q {
                1 => (
                    "small inner on int",
                    checksum(inner(
                        x.select::<Key1V1>()
                            .map(|r| (r.id1, r.v1))
                            .join(&small.select::<Key1V2>().map(|r| (r.id1, r.v2))),
                    ))?,
                ),
                2 => (
                    "medium inner on int",
                    checksum(inner(
                        x.select::<Key2V1>()
                            .map(|r| (r.id2, r.v1))
                            .join(&medium.select::<Key2V2>().map(|r| (r.id2, r.v2))),
                    ))?,
                ),
                3 => (
                    "medium outer on int",
                    checksum(
                        x.select::<Key2V1>()
                            .map(|r| (r.id2, r.v1))
                            .left_outer_join(&medium.select::<Key2V2>().map(|r| (r.id2, r.v2))),
                    )?,
                ),
                4 => (
                    "medium inner on factor",
                    checksum(
                        x.select::<Key5V1>()
                            .map(|r| (r.id5, r.v1))
                            .join(&medium.select::<Key5V2>().map(|r| (r.id5, r.v2)))
                            .map(|(k, (v1, v2))| (k, (v1, Some(v2)))),
                    )?,
                ),
                5 => (
                    "big inner on int",
                    checksum(inner(
                        x.select::<Key3V1>()
                            .map(|r| (r.id3, r.v1))
                            .join(&big.select::<Key3V2>().map(|r| (r.id3, r.v2))),
                    ))?,
                ),
                other => anyhow::bail!("there is no question {other}: the join questions are 1 to 5"),
            };
            let seconds = started.elapsed().as_secs_f64();
            total += seconds;
            let shown: Vec<String> = sums.iter().map(|s| format!("{s}")).collect();
            println!("q{q}: {title}: {seconds:.3} s, checksum {}", shown.join(" "));
        }
        println!("total: {total:.3} s for {} questions", args.questions.len());
        Ok(())
    })
}
