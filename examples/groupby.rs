//! The db-benchmark's groupby questions q1–q10 (the benchmark DuckDB Labs runs for DuckDB,
//! Polars, DataFusion, Spark and others) on its `G1_<rows>_<K>` table. The table is loaded
//! once and cached; each question then reads only its columns (`select`) and is answered,
//! printing its time and a checksum of its answer: the answer's rows and the sum of each of
//! its value columns (as db-benchmark checks answers across systems).
//!
//! ```text
//! cargo run --release -p ringleader-cli -- gen groupby --rows 1e7 --groups 100 --out target/groupby
//! cargo run --release --example groupby -- --input target/groupby/G1_10000000_100.csv
//! ```
//!
//! `--input` may be the CSV file or, with `--features parquet`, the Parquet file.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use ringleader::{Dataset, SmolStr, StorageLevel};
use serde::{Deserialize, Serialize};

/// Answer the db-benchmark's groupby questions.
#[derive(Parser)]
struct Args {
    /// The G1 table: a .csv file (or .parquet, built with --features parquet).
    #[arg(long)]
    input: PathBuf,
    /// Questions to answer (default: all ten), e.g. `1,2,10`.
    #[arg(long, value_delimiter = ',', default_values_t = 1..=10)]
    questions: Vec<u32>,
    /// Read the file for every question instead of caching it first.
    #[arg(long)]
    no_cache: bool,
}

/// A row of the G1 table. The ids are `SmolStr`s: short text, decoded, hashed and grouped
/// without a heap allocation per field (as `String`s they cost q10 a quarter more).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Row {
    id1: SmolStr,
    id2: SmolStr,
    id3: SmolStr,
    id4: i64,
    id5: i64,
    id6: i64,
    v1: i64,
    v2: i64,
    v3: f64,
}

/// The columns each question reads: `select` decodes only these from the cached table.
macro_rules! columns {
    ($($name:ident { $($field:ident: $t:ty),* })*) => {$(
        /// The columns one question reads.
        #[derive(Debug, Clone, Serialize, Deserialize)]
        struct $name { $($field: $t),* }
    )*};
}

columns! {
    Id1V1 { id1: SmolStr, v1: i64 }
    Id1Id2V1 { id1: SmolStr, id2: SmolStr, v1: i64 }
    Id3V1V3 { id3: SmolStr, v1: i64, v3: f64 }
    Id4Values { id4: i64, v1: i64, v2: i64, v3: f64 }
    Id6Values { id6: i64, v1: i64, v2: i64, v3: f64 }
    Id4Id5V3 { id4: i64, id5: i64, v3: f64 }
    Id3V1V2 { id3: SmolStr, v1: i64, v2: i64 }
    Id6V3 { id6: i64, v3: f64 }
    Id2Id4V1V2 { id2: SmolStr, id4: i64, v1: i64, v2: i64 }
}

/// An answer's checksum: its rows, and the sum of each value column (skipping the values
/// that are not numbers, as SQL's `sum` skips nulls: the sd of a group of one, say).
fn checksum<K: ringleader::Data>(answer: Dataset<(K, Vec<f64>)>) -> anyhow::Result<Vec<f64>> {
    let sums = answer
        .map(|(_, values)| {
            std::iter::once(1.0)
                .chain(values.into_iter().map(|v| if v.is_nan() { 0.0 } else { v }))
                .collect::<Vec<f64>>()
        })
        .reduce(|a, b| a.iter().zip(&b).map(|(x, y)| x + y).collect())?;
    Ok(sums.unwrap_or_default())
}

/// Sums of `f64`s, elementwise.
fn plus(a: Vec<f64>, b: Vec<f64>) -> Vec<f64> {
    a.iter().zip(&b).map(|(x, y)| x + y).collect()
}

/// The question `q` on `x`: its title and its answer's checksum.
fn answer(x: &Dataset<Row>, q: u32) -> anyhow::Result<(&'static str, Vec<f64>)> {
    Ok(match q {
        1 => (
            "sum v1 by id1",
            checksum(
                x.select::<Id1V1>()
                    .map(|r| (r.id1, r.v1))
                    .reduce_by_key(|a, b| a + b)
                    .map(|(k, s)| (k, vec![s as f64])),
            )?,
        ),
        2 => (
            "sum v1 by id1:id2",
            checksum(
                x.select::<Id1Id2V1>()
                    .map(|r| ((r.id1, r.id2), r.v1))
                    .reduce_by_key(|a, b| a + b)
                    .map(|(k, s)| (k, vec![s as f64])),
            )?,
        ),
        3 => (
            "sum v1 mean v3 by id3",
            checksum(
                x.select::<Id3V1V3>()
                    .map(|r| (r.id3, (r.v1, r.v3, 1u64)))
                    .reduce_by_key(|a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2))
                    .map(|(k, (s, t, n))| (k, vec![s as f64, t / n as f64])),
            )?,
        ),
        4 => (
            "mean v1:v3 by id4",
            checksum(
                x.select::<Id4Values>()
                    .map(|r| (r.id4, vec![r.v1 as f64, r.v2 as f64, r.v3, 1.0]))
                    .reduce_by_key(plus)
                    .map(|(k, s)| (k, vec![s[0] / s[3], s[1] / s[3], s[2] / s[3]])),
            )?,
        ),
        5 => (
            "sum v1:v3 by id6",
            checksum(
                x.select::<Id6Values>()
                    .map(|r| (r.id6, vec![r.v1 as f64, r.v2 as f64, r.v3]))
                    .reduce_by_key(plus),
            )?,
        ),
        6 => (
            "median v3 sd v3 by id4 id5",
            checksum(
                x.select::<Id4Id5V3>()
                    .map(|r| ((r.id4, r.id5), r.v3))
                    .group_by_key()
                    .map(|(k, mut v)| {
                        v.sort_by(f64::total_cmp);
                        let n = v.len();
                        let median = if n % 2 == 1 {
                            v[n / 2]
                        } else {
                            (v[n / 2 - 1] + v[n / 2]) / 2.0
                        };
                        let mean = v.iter().sum::<f64>() / n as f64;
                        let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n as f64 - 1.0);
                        (k, vec![median, var.sqrt()])
                    }),
            )?,
        ),
        7 => (
            "max v1 - min v2 by id3",
            checksum(
                x.select::<Id3V1V2>()
                    .map(|r| (r.id3, (r.v1, r.v2)))
                    .reduce_by_key(|a, b| (a.0.max(b.0), a.1.min(b.1)))
                    .map(|(k, (max, min))| (k, vec![(max - min) as f64])),
            )?,
        ),
        8 => (
            "largest two v3 by id6",
            checksum(
                x.select::<Id6V3>()
                    .map(|r| (r.id6, (r.v3, f64::NEG_INFINITY)))
                    .reduce_by_key(|a, b| {
                        let mut all = [a.0, a.1, b.0, b.1];
                        all.sort_by(|x, y| y.total_cmp(x));
                        (all[0], all[1])
                    })
                    .flat_map(|(k, (first, second))| {
                        std::iter::once((k, vec![first]))
                            .chain((second > f64::NEG_INFINITY).then(|| (k, vec![second])))
                            .collect::<Vec<_>>()
                    }),
            )?,
        ),
        9 => (
            "regression v1 v2 by id2 id4",
            checksum(
                x.select::<Id2Id4V1V2>()
                    .map(|r| {
                        let (a, b) = (r.v1 as f64, r.v2 as f64);
                        ((r.id2, r.id4), vec![1.0, a, b, a * a, b * b, a * b])
                    })
                    .reduce_by_key(plus)
                    .map(|(k, s)| {
                        let (n, sx, sy, sxx, syy, sxy) = (s[0], s[1], s[2], s[3], s[4], s[5]);
                        let cov = n * sxy - sx * sy;
                        (k, vec![cov * cov / ((n * sxx - sx * sx) * (n * syy - sy * sy))])
                    }),
            )?,
        ),
        10 => (
            "sum v3 count by id1:id6",
            checksum(
                x.map(|r| ((r.id1, r.id2, r.id3, r.id4, r.id5, r.id6), (r.v3, 1u64)))
                    .reduce_by_key(|a, b| (a.0 + b.0, a.1 + b.1))
                    .map(|(k, (s, n))| (k, vec![s, n as f64])),
            )?,
        ),
        other => anyhow::bail!("there is no question {other}: the groupby questions are 1 to 10"),
    })
}

fn main() -> ExitCode {
    ringleader::run(|ctx| {
        let args = Args::parse();
        let parquet = args.input.extension().is_some_and(|e| e == "parquet");
        let source = if parquet {
            ctx.parquet_files::<Row>(&args.input)?
        } else {
            ctx.csv_files::<Row>(&args.input)?
        };
        let x = if args.no_cache {
            source
        } else {
            let started = Instant::now();
            let cached = source.persist(StorageLevel::MemoryAndDisk);
            let rows = cached.count()?;
            println!("load: {rows} rows in {:.3} s", started.elapsed().as_secs_f64());
            cached
        };
        let mut total = 0.0;
        for q in &args.questions {
            let started = Instant::now();
            let (title, sums) = answer(&x, *q)?;
            let seconds = started.elapsed().as_secs_f64();
            total += seconds;
            let shown: Vec<String> = sums.iter().map(|s| format!("{s}")).collect();
            println!("q{q}: {title}: {seconds:.3} s, checksum {}", shown.join(" "));
        }
        println!("total: {total:.3} s for {} questions", args.questions.len());
        Ok(())
    })
}
