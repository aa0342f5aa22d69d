//! `ringleader bench dbbench`: the db-benchmark's groupby (q1–q10) and join (q1–q5)
//! questions, answered by Ringleader's examples embedded and on a local cluster, and with
//! `--peers` by DuckDB and Polars (`benches/dbbench.py`), on the same CSV files in the same
//! invocation. Every system loads the data once and then answers each question; the table
//! shows each question's time, the questions' total with the data in memory, and that
//! total with the load from CSV added. Every answer's checksum is checked against the
//! embedded engine's.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{Context as _, bail};
use clap::Args;

use super::inputs::BenchPlaces;
use super::local_cluster::BenchCluster;
use super::measure::{Measured, measure};
use super::peers::{ENGINES, Peers, Published};
use crate::generate::parse_count;

/// The peers' script, built into this executable so that it runs from anywhere.
const SCRIPT: &str = include_str!("../../../benches/dbbench.py");

/// `bench dbbench`.
#[derive(Debug, Args)]
pub struct DbbenchArgs {
    /// Rows of the groupby table and of the join's x and big (`1e7` style accepted).
    #[arg(long, default_value = "1e7", value_parser = parse_count)]
    pub rows: u64,
    /// K: the groups of the groupby table's id1, id2, id4 and id5.
    #[arg(long, default_value_t = 100)]
    pub groups: u64,
    /// Workers of the local cluster the examples also run on (0: none).
    #[arg(long, default_value_t = 2)]
    pub workers: u32,
    /// Where the benchmark keeps its data and finds the examples.
    #[command(flatten)]
    pub places: BenchPlaces,
    /// Also run DuckDB and Polars on the same files (their Python packages are installed
    /// into a virtual environment under target/py when missing).
    #[arg(long)]
    pub peers: bool,
    /// Where to write the results as JSON.
    #[arg(long, default_value = "bench-dbbench.json")]
    pub json: PathBuf,
    /// Where to write the plot of each question's rows per second (SVG).
    #[arg(long, default_value = "bench-dbbench.svg")]
    pub plot: PathBuf,
}

/// What one system printed for one task: its load time, and each question's title, time and
/// checksum.
struct Answers {
    load: f64,
    questions: Vec<(String, f64, Vec<f64>)>,
}

impl Answers {
    /// Parses the `load…: N rows in S s` and `qK: TITLE: S s, checksum …` lines.
    fn parse(stdout: &str) -> anyhow::Result<Answers> {
        let mut answers = Answers {
            load: 0.0,
            questions: Vec::new(),
        };
        for line in stdout.lines() {
            if line.starts_with("load") {
                let seconds = line.rsplit(" in ").next().and_then(|s| s.strip_suffix(" s"));
                answers.load += seconds.and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
            } else if line.starts_with('q')
                && let Some((head, checksum)) = line.split_once(" s, checksum ")
                && let Some((title, seconds)) = head.rsplit_once(": ")
            {
                let sums = checksum
                    .split(' ')
                    .map(str::parse::<f64>)
                    .collect::<Result<Vec<_>, _>>()
                    .with_context(|| format!("a checksum in {line:?}"))?;
                let title = title.split_once(": ").map_or(title, |(_, t)| t);
                answers
                    .questions
                    .push((title.to_string(), seconds.parse().context("a question's time")?, sums));
            }
        }
        if answers.questions.is_empty() {
            bail!("no answers in the output:\n{stdout}");
        }
        Ok(answers)
    }

    fn total(&self) -> f64 {
        self.questions.iter().map(|(_, s, _)| s).sum()
    }
}

/// Whether two checksums agree (sums of floats in another order round differently).
fn agree(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-6 * y.abs().max(1.0))
}

/// Runs `bench dbbench`.
pub(super) fn dbbench(args: DbbenchArgs) -> anyhow::Result<ExitCode> {
    let data = args.places.dir().join(format!("dbbench-{}-{}", args.rows, args.groups));
    let (groupby, join) = (data.join("groupby"), data.join("join"));
    let g1 = groupby.join(format!("G1_{}_{}.csv", args.rows, args.groups));
    if !g1.exists() {
        eprintln!(
            "generating the groupby table ({} rows) into {}",
            args.rows,
            groupby.display()
        );
        ringleader_datasets::dbbench::groupby(&groupby, args.rows, args.groups, 42, true)?;
    }
    if !join.join(format!("J1_{}_x.csv", args.rows)).exists() {
        eprintln!(
            "generating the join tables ({} rows) into {}",
            args.rows,
            join.display()
        );
        ringleader_datasets::dbbench::join(&join, args.rows, 42, true)?;
    }
    let examples = args.places.examples()?;
    let cluster = match args.workers {
        0 => None,
        n => Some(BenchCluster::up(data.join("cluster"), n)?),
    };
    let peers = if args.peers { Some(Peers::prepare(&data)?) } else { None };
    let script = data.join("dbbench.py");
    std::fs::write(&script, SCRIPT).with_context(|| format!("writing {}", script.display()))?;
    let mut published = Vec::new();
    let mut disagreements = Vec::new();
    for (task, input) in [("groupby", &g1), ("join", &join)] {
        let mut systems: Vec<(String, Measured)> = Vec::new();
        let example = || {
            let mut c = Command::new(examples.join(task));
            c.arg("--input").arg(input).env_remove("RINGLEADER_MASTER");
            c
        };
        eprintln!("{task}: Ringleader embedded");
        systems.push(("ringleader".into(), measure(&mut example())?));
        if let Some(cluster) = &cluster {
            eprintln!("{task}: Ringleader on a local cluster of {} workers", args.workers);
            let mut c = example();
            systems.push(("ringleader cluster".into(), measure(cluster.client(&mut c))?));
        }
        if let Some(peers) = &peers {
            for engine in ENGINES {
                eprintln!("{task}: {engine}");
                let mut c = Command::new(peers.python());
                c.arg(&script).args([engine, task]).arg(input);
                systems.push((engine.into(), measure(&mut c)?));
            }
        }
        let answers: Vec<(String, Answers)> = systems
            .iter()
            .map(|(name, m)| Ok((name.clone(), Answers::parse(&m.stdout).with_context(|| name.clone())?)))
            .collect::<anyhow::Result<_>>()?;
        let reference = &answers[0].1;
        for (name, a) in &answers[1..] {
            for (i, ((_, _, sums), (_, _, want))) in a.questions.iter().zip(&reference.questions).enumerate() {
                if !agree(sums, want) {
                    disagreements.push(format!("{task} q{}: {name} {sums:?}, ringleader {want:?}", i + 1));
                }
            }
        }
        print_table(task, &answers);
        let bytes = std::fs::metadata(input).map(|m| m.len()).unwrap_or(0);
        for (q, (title, _, _)) in reference.questions.iter().enumerate() {
            let runs: Vec<(String, Measured)> = answers
                .iter()
                .filter_map(|(name, a)| {
                    let (_, seconds, _) = a.questions.get(q)?;
                    Some((
                        name.clone(),
                        Measured {
                            elapsed: std::time::Duration::from_secs_f64(*seconds),
                            peak_bytes: 0,
                            stdout: String::new(),
                        },
                    ))
                })
                .collect();
            published.push(Published::of(
                &format!("{task} q{} {title}", q + 1),
                bytes,
                runs.iter().map(|(n, m)| (n.as_str(), m)),
            ));
        }
    }
    super::peers::write_json(&args.json, 1, &published)?;
    let title = format!("db-benchmark questions, {} rows: input MB/s per question", args.rows);
    std::fs::write(&args.plot, super::peers::plot(&title, &published))
        .with_context(|| format!("writing {}", args.plot.display()))?;
    println!("results: {} and {}", args.json.display(), args.plot.display());
    if !disagreements.is_empty() {
        bail!(
            "answers that differ from Ringleader's:\n  {}",
            disagreements.join("\n  ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// One table per task: each question's seconds per system, the total of the questions (the
/// data in memory) and with the load from CSV, and Ringleader's time over DuckDB's.
fn print_table(task: &str, answers: &[(String, Answers)]) {
    let duckdb = answers.iter().position(|(n, _)| n == "duckdb");
    print!("\n{task:<34}");
    for (name, _) in answers {
        print!(" {name:>18}");
    }
    if duckdb.is_some() {
        print!(" {:>12}", "ringleader/duckdb");
    }
    println!();
    let row = |label: &str, seconds: Vec<f64>| {
        print!("{label:<34}");
        for s in &seconds {
            print!(" {:>16.3} s", s);
        }
        if let Some(d) = duckdb {
            print!(" {:>16.2}x", seconds[0] / seconds[d].max(1e-9));
        }
        println!();
    };
    for (q, (title, _, _)) in answers[0].1.questions.iter().enumerate() {
        let seconds = answers
            .iter()
            .map(|(_, a)| a.questions.get(q).map_or(f64::NAN, |(_, s, _)| *s))
            .collect();
        row(&format!("q{} {title}", q + 1), seconds);
    }
    row(
        "questions (data in memory)",
        answers.iter().map(|(_, a)| a.total()).collect(),
    );
    row(
        "load from CSV + questions",
        answers.iter().map(|(_, a)| a.load + a.total()).collect(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_from_the_examples_and_the_scripts_lines() {
        let stdout = "load x: 10 rows in 0.5 s\nload small: 1 rows in 0.25 s\n\
                      q1: small inner on int: 0.125 s, checksum 9 1.5 2\nq2: x: y: 1 s, checksum 3\ntotal: 1 s\n";
        let a = Answers::parse(stdout).expect("parsed");
        assert_eq!(a.load, 0.75);
        assert_eq!(a.questions.len(), 2);
        assert_eq!(
            a.questions[0],
            ("small inner on int".to_string(), 0.125, vec![9.0, 1.5, 2.0])
        );
        assert_eq!(a.questions[1].0, "x: y");
        assert!(agree(&[1.0, 2.0], &[1.0, 2.0 + 1e-9]) && !agree(&[1.0], &[1.1]) && !agree(&[1.0], &[1.0, 2.0]));
        assert!(Answers::parse("nothing\n").is_err());
    }
}
