//! `ringleader chaos`: a random history of dataset operations from several clients at once
//! (`put`, `put --overwrite`, `get`, `rm`, and word-count jobs writing `ringleader://NAME`),
//! on a local cluster of 3 drivers and 3 workers, while a nemesis kills the leader, kills
//! and restarts workers (some with an emptied data directory) and pauses nodes. Every
//! operation's invocation and reply is recorded, and the history is checked:
//!
//! - every read returned one value whole, as some write stored it (no partial or mixed read);
//! - the history is linearizable per name ([`checker`]): every acknowledged write is read
//!   back until an acknowledged overwrite or removal, nothing acknowledged is lost;
//! - once the faults stop, every dataset is back to R live replicas within a bounded time.
//!
//! It prints its seed, and on a failure the shortest history that shows it.
//!
//! - [`values`]: what each write stores, and which write a read returned.
//! - [`history`]: the recorded operations.
//! - [`checker`]: the linearizability check.
//! - [`nemesis`]: the faults.
//! - [`hosts`]: the same on separate hosts (network namespaces), where links are also cut.

pub mod checker;
pub mod history;
pub mod hosts;
pub mod nemesis;
pub mod values;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use ringleader::transfer::{GetRequest, PutRequest};
use ringleader_core::io::store::DatasetFormat;
use ringleader_core::net::driver_group::DriverGroup;
use ringleader_core::proto;

use history::{History, Kind, Record, Reply};
use nemesis::{Fault, Nodes};
use values::{Decoded, Values};

/// Copies of each partition the clients ask for.
const REPLICAS: u32 = 2;
/// The longest one operation may take before its outcome counts as unknown.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(60);

/// `ringleader chaos`.
#[derive(Debug, Args)]
pub struct ChaosArgs {
    /// The seed of every random choice (clients' operations, faults and their timing).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Operations in all, shared among the clients.
    #[arg(long, default_value_t = 200)]
    pub ops: u32,
    /// Clients running operations at once.
    #[arg(long, default_value_t = 4)]
    pub clients: u32,
    /// Dataset names the clients share (fewer names: more contention).
    #[arg(long, default_value_t = 3)]
    pub names: u32,
    /// Seconds between one fault healed and the next (about; random within 1x-2x).
    #[arg(long, default_value_t = 2.0)]
    pub fault_every: f64,
    /// No faults (to see the history checked without them).
    #[arg(long)]
    pub no_faults: bool,
    /// Seconds the cluster has after the faults stop to be back to R live replicas.
    #[arg(long, default_value_t = 90)]
    pub recovery_seconds: u64,
    /// Where the cluster, the inputs and the recorded history go (default: a new directory
    /// under $TMPDIR, removed unless the check fails).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Directory of the built examples (the jobs are the word-count example; default:
    /// `examples/` beside this executable, built if missing).
    #[arg(long)]
    pub examples: Option<PathBuf>,
    /// Only check a recorded history (a `history.jsonl` an earlier run wrote), with no cluster.
    #[arg(long, value_name = "HISTORY")]
    pub check: Option<PathBuf>,
    /// Run the cluster on separate hosts (network namespaces with links on a bridge; needs
    /// root), and also cut hosts' links.
    #[arg(long)]
    pub hosts: bool,
    /// Internal (`--hosts`): run only the clients, on a client host, against these drivers.
    #[arg(long, hide = true, value_name = "MASTERS")]
    pub attach: Option<String>,
}

/// What the clients share.
struct Shared {
    group: DriverGroup,
    history: History,
    values: Values,
    next_value: AtomicU64,
    work: PathBuf,
    wordcount: PathBuf,
    token_file: PathBuf,
    masters: String,
}

/// Runs `chaos`; exits 1 when the history shows an anomaly.
pub fn run(args: ChaosArgs) -> anyhow::Result<ExitCode> {
    if let Some(path) = &args.check {
        let records = read_history(path)?;
        println!("history: {} operations in {}", records.len(), path.display());
        print_counts(&records);
        let clean = report(&records);
        if clean {
            println!("no anomalies: every read returned one whole value, and the history is linearizable");
        }
        return Ok(exit(clean));
    }
    let examples = crate::bench::examples_dir(args.examples.clone())?;
    let examples = examples
        .canonicalize()
        .with_context(|| format!("resolving {}", examples.display()))?;
    anyhow::ensure!(
        examples.join("wordcount").exists(),
        "no wordcount example in {} (cargo build --examples)",
        examples.display()
    );
    let (dir, keep) = match &args.dir {
        Some(dir) => (dir.clone(), true),
        None => (
            tempfile::Builder::new().prefix("ringleader-chaos-").tempdir()?.keep(),
            false,
        ),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir.canonicalize()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()?;
    if let Some(masters) = &args.attach {
        runtime.block_on(hosts::run_attached(&args, masters, &dir, &examples))?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "chaos: seed {}, {} operations by {} clients on {} names{}; in {}",
        args.seed,
        args.ops,
        args.clients,
        args.names,
        if args.hosts { ", on separate hosts" } else { "" },
        dir.display()
    );
    let clean = if args.hosts {
        runtime.block_on(hosts::run_on_hosts(&args, &dir, &examples))?
    } else {
        let cluster_dir = dir.join("cluster");
        let cluster = crate::bench::BenchCluster::up_with(cluster_dir.clone(), 3, 3, None)?;
        let nodes = Nodes::of(&cluster_dir)?;
        let outcome = runtime.block_on(run_local(&args, &dir, &cluster_dir, nodes, &examples));
        drop(cluster);
        outcome?
    };
    if clean {
        println!("no anomalies: every read returned one whole value, and the history is linearizable");
        if !keep {
            let _ = std::fs::remove_dir_all(&dir);
        }
    } else {
        println!(
            "seed {} found the anomalies above; the history is kept in {}",
            args.seed,
            dir.display()
        );
    }
    Ok(exit(clean))
}

fn exit(clean: bool) -> ExitCode {
    if clean { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// The dataset names the clients share.
fn names(args: &ChaosArgs) -> Vec<String> {
    (0..args.names.max(1)).map(|i| format!("chaos-{i}")).collect()
}

/// What the clients share, for the cluster at `masters` (its token in `token_file`).
fn workload(masters: &str, token_file: &Path, dir: &Path, examples: &Path) -> anyhow::Result<Arc<Shared>> {
    ringleader_core::security::auth::set_token(Some(ringleader_core::security::auth::read_token_file(token_file)?));
    let group = ringleader::client::driver_group(ringleader::client::parse_masters(masters)?)?;
    let work = dir.join("work");
    std::fs::create_dir_all(&work)?;
    Ok(Arc::new(Shared {
        group,
        history: History::new(),
        values: Values::default(),
        next_value: AtomicU64::new(1),
        work,
        wordcount: examples.join("wordcount"),
        token_file: token_file.to_path_buf(),
        masters: masters.to_string(),
    }))
}

/// Runs the clients' operations to their end.
async fn run_clients(shared: &Arc<Shared>, args: &ChaosArgs) -> anyhow::Result<()> {
    let clients = args.clients.max(1);
    let mut running = Vec::new();
    for c in 0..clients {
        let ops = args.ops / clients + u32::from(c < args.ops % clients);
        let rng = Xoshiro256PlusPlus::seed_from_u64(args.seed.wrapping_mul(1_000_003).wrapping_add(u64::from(c)));
        running.push(tokio::spawn(client(shared.clone(), c as usize, ops, names(args), rng)));
    }
    for c in running {
        c.await.context("a client failed")??;
    }
    Ok(())
}

/// After the faults: waits (bounded) for R live replicas of everything, then reads every
/// name a last time. Returns the seconds recovery took, or what stayed short.
async fn final_phase(shared: &Shared, args: &ChaosArgs) -> anyhow::Result<Result<f64, String>> {
    let healing = Instant::now();
    let recovered = wait_replicated(&shared.group, Duration::from_secs(args.recovery_seconds))
        .await
        .map(|()| healing.elapsed().as_secs_f64());
    let last = args.clients.max(1) as usize;
    for name in &names(args) {
        read(shared, last, name).await?;
    }
    Ok(recovered)
}

/// Prints the outcome of a run from its records; returns whether it is clean.
fn conclude(records: &[Record], history: &Path, recovered: &Result<f64, String>, args: &ChaosArgs) -> bool {
    match recovered {
        Ok(seconds) => {
            println!("every dataset back to {REPLICAS} live replicas {seconds:.1} s after the faults stopped")
        }
        Err(short) => println!(
            "ANOMALY: not back to {REPLICAS} live replicas within {} s: {short}",
            args.recovery_seconds
        ),
    }
    println!("history: {} operations in {}", records.len(), history.display());
    print_counts(records);
    report(records) && recovered.is_ok()
}

/// The seeded random source of the faults.
fn fault_rng(args: &ChaosArgs) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(args.seed ^ 0x006e_656d_6573_6973)
}

/// Runs the clients and the nemesis on a cluster on this host, then the checks. Returns
/// whether the history is clean.
async fn run_local(
    args: &ChaosArgs,
    dir: &Path,
    cluster_dir: &Path,
    mut nodes: Nodes,
    examples: &Path,
) -> anyhow::Result<bool> {
    let token = crate::cluster_dir::token_path(cluster_dir);
    let shared = workload(&nodes.masters(), &token, dir, examples)?;
    let done = Arc::new(AtomicBool::new(false));
    let faults = (!args.no_faults).then(|| {
        let rng = fault_rng(args);
        let every = Duration::from_secs_f64(args.fault_every.max(0.1));
        let shared = shared.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let settle = Settle::Group(&shared.group);
            let faults = nemesis(&mut nodes, rng, every, settle, &done).await;
            (nodes, faults)
        })
    });
    run_clients(&shared, args).await?;
    done.store(true, Ordering::SeqCst);
    let nodes_back = match faults {
        Some(f) => {
            let (nodes, faults) = f.await.context("the nemesis failed")?;
            let faults = faults?;
            println!("{} faults: {}", faults.len(), summarize(&faults));
            Some(nodes)
        }
        None => None,
    };
    let recovered = final_phase(&shared, args).await?;
    let records = shared.history.records();
    let history = dir.join("history.jsonl");
    write_history(&history, &records)?;
    let clean = conclude(&records, &history, &recovered, args);
    if let Some(nodes) = nodes_back {
        nodes.down()?;
    }
    Ok(clean)
}

/// One client: `ops` random operations, one after another.
async fn client(
    shared: Arc<Shared>,
    client: usize,
    ops: u32,
    names: Vec<String>,
    mut rng: Xoshiro256PlusPlus,
) -> anyhow::Result<()> {
    for _ in 0..ops {
        let name = &names[rng.gen_range(0..names.len())];
        match rng.gen_range(0..20) {
            0..=6 => read(&shared, client, name).await?,
            7..=10 => put(&shared, client, name, false).await?,
            11..=13 => put(&shared, client, name, true).await?,
            14..=15 => remove(&shared, client, name).await?,
            _ => job(&shared, client, name, rng.gen_bool(0.5)).await?,
        };
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..50))).await;
    }
    Ok(())
}

/// A `put` of a new value.
async fn put(shared: &Shared, client: usize, name: &str, overwrite: bool) -> anyhow::Result<Record> {
    let value = shared.next_value.fetch_add(1, Ordering::SeqCst);
    let input = shared.values.put_input(&shared.work, value)?;
    let request = PutRequest {
        name: name.to_string(),
        paths: vec![input.clone()],
        format: Some(DatasetFormat::Text),
        column: None,
        splits: Vec::new(),
        partitions: 1 + (value % 4) as u32,
        replicas: REPLICAS,
        overwrite,
        progress: false,
    };
    let pending = shared
        .history
        .invoke(client, name, Kind::Put { overwrite }, Some(value));
    let reply = match tokio::time::timeout(OPERATION_TIMEOUT, ringleader::transfer::put(&shared.group, request)).await {
        Ok(Ok(_)) => Reply::Done,
        Ok(Err(e)) => Reply::of_error(e.to_string()),
        Err(_) => Reply::Unknown(format!("no reply within {} s", OPERATION_TIMEOUT.as_secs())),
    };
    let _ = std::fs::remove_dir_all(&input);
    Ok(shared.history.complete(pending, reply))
}

/// A word-count job writing `ringleader://NAME`.
async fn job(shared: &Shared, client: usize, name: &str, overwrite: bool) -> anyhow::Result<Record> {
    let value = shared.next_value.fetch_add(1, Ordering::SeqCst);
    let input = shared.values.job_input(&shared.work, value)?;
    let mut command = tokio::process::Command::new(&shared.wordcount);
    command
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(format!("ringleader://{name}"))
        .env("RINGLEADER_MASTER", &shared.masters)
        .env(ringleader_core::security::auth::TOKEN_FILE_ENV, &shared.token_file)
        .env("RINGLEADER_PROGRESS", "0")
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null());
    if overwrite {
        command.arg("--overwrite");
    }
    let pending = shared
        .history
        .invoke(client, name, Kind::Job { overwrite }, Some(value));
    let reply = match tokio::time::timeout(OPERATION_TIMEOUT, command.output()).await {
        Ok(Ok(out)) if out.status.success() => Reply::Done,
        // The job's error is its first line (warnings about clean-up may follow).
        Ok(Ok(out)) => Reply::of_error(
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .find(|l| l.starts_with("error:"))
                .unwrap_or("the job failed without an error line")
                .to_string(),
        ),
        Ok(Err(e)) => anyhow::bail!("could not start {}: {e}", shared.wordcount.display()),
        Err(_) => Reply::Unknown(format!(
            "the job gave no answer within {} s",
            OPERATION_TIMEOUT.as_secs()
        )),
    };
    let _ = std::fs::remove_dir_all(&input);
    Ok(shared.history.complete(pending, reply))
}

/// A `get`, decoded into the value it returned.
async fn read(shared: &Shared, client: usize, name: &str) -> anyhow::Result<Record> {
    let target = shared
        .work
        .join(format!("get-{}", shared.next_value.fetch_add(1, Ordering::SeqCst)));
    let request = GetRequest {
        name: name.to_string(),
        dir: target.clone(),
        overwrite: false,
        progress: false,
    };
    let pending = shared.history.invoke(client, name, Kind::Get, None);
    let got = tokio::time::timeout(OPERATION_TIMEOUT, ringleader::transfer::get(&shared.group, request)).await;
    let reply = match got {
        Ok(Ok(_)) => match shared.values.decode(&target)? {
            Decoded::Whole(v) => Reply::Saw(v),
            Decoded::Broken(why) => Reply::Broken(why),
        },
        Ok(Err(e)) => Reply::of_error(e.to_string()),
        Err(_) => Reply::Unknown(format!("no reply within {} s", OPERATION_TIMEOUT.as_secs())),
    };
    let record = shared.history.complete(pending, reply);
    let _ = std::fs::remove_dir_all(&target);
    Ok(record)
}

/// An `rm`.
async fn remove(shared: &Shared, client: usize, name: &str) -> anyhow::Result<Record> {
    let pending = shared.history.invoke(client, name, Kind::Rm, None);
    let call = ringleader::client::remove_dataset(&shared.group, name);
    let reply = match tokio::time::timeout(OPERATION_TIMEOUT, call).await {
        Ok(Ok(_)) => Reply::Done,
        Ok(Err(e)) => Reply::of_error(e.to_string()),
        Err(_) => Reply::Unknown(format!("no reply within {} s", OPERATION_TIMEOUT.as_secs())),
    };
    Ok(shared.history.complete(pending, reply))
}

/// How the nemesis waits, after taking a worker away, until every partition has its R
/// copies again (two workers lost at once is more than R = 2 can survive, and not what the
/// check is about).
pub enum Settle<'a> {
    /// Asking the driver group.
    Group(&'a DriverGroup),
    /// Reading the health file the clients' process on another host keeps.
    HealthFile(&'a Path),
}

impl Settle<'_> {
    async fn wait(&self, since: std::time::SystemTime) {
        match self {
            Settle::Group(group) => {
                let _ = wait_replicated(group, Duration::from_secs(60)).await;
            }
            Settle::HealthFile(path) => {
                let deadline = Instant::now() + Duration::from_secs(60);
                while Instant::now() < deadline && !hosts::healthy_since(path, since) {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
    }
}

/// Injects faults one at a time until `done`, each followed by `settle` when it took a
/// worker away.
async fn nemesis(
    target: &mut impl nemesis::Target,
    mut rng: Xoshiro256PlusPlus,
    every: Duration,
    settle: Settle<'_>,
    done: &AtomicBool,
) -> anyhow::Result<Vec<String>> {
    let (drivers, workers) = target.sizes();
    let mut log = Vec::new();
    while !done.load(Ordering::SeqCst) {
        tokio::time::sleep(every.mul_f64(rng.gen_range(1.0..2.0))).await;
        if done.load(Ordering::SeqCst) {
            break;
        }
        let fault = Fault::pick(&mut rng, drivers, workers, target.cuts());
        let hold = Duration::from_millis(rng.gen_range(300..3_000));
        let what = target.inject(fault, hold).await?;
        eprintln!("nemesis: {what}");
        log.push(what);
        if fault.touches_workers(drivers) {
            settle.wait(std::time::SystemTime::now()).await;
        }
    }
    Ok(log)
}

/// The faults by kind, counted.
fn summarize(faults: &[String]) -> String {
    let count = |p: &str| faults.iter().filter(|f| f.starts_with(p)).count();
    let wiped = faults.iter().filter(|f| f.contains("emptied")).count();
    format!(
        "{} leader kills, {} worker kills ({wiped} with an emptied data directory), {} pauses, {} link cuts",
        count("killed leader"),
        count("killed worker"),
        count("paused"),
        count("cut")
    )
}

/// Waits until every partition of every dataset is on R live workers, as the leader's
/// repair loop audited them; else says which are short.
async fn wait_replicated(group: &DriverGroup, within: Duration) -> Result<(), String> {
    let deadline = Instant::now() + within;
    loop {
        let short = match ringleader::client::call(group, "listing datasets", |mut d| async move {
            d.list_datasets(proto::ListDatasetsRequest {}).await
        })
        .await
        {
            Ok(list) => list
                .datasets
                .iter()
                .flat_map(|d| {
                    d.partitions
                        .iter()
                        .filter(|p| p.live_replicas < d.replicas || !p.short_because.is_empty())
                        .map(move |p| {
                            format!(
                                "{} partition {}: {}/{} live {}",
                                d.name, p.partition, p.live_replicas, d.replicas, p.short_because
                            )
                        })
                })
                .collect::<Vec<_>>()
                .join("; "),
            Err(e) => e.to_string(),
        };
        if short.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(short);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Reads a history `write_history` wrote, numbered by invocation.
fn read_history(path: &Path) -> anyhow::Result<Vec<Record>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut records = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let record: Record = serde_json::from_str(line)
            .with_context(|| format!("{} line {}: not an operation of a history", path.display(), i + 1))?;
        records.push(record);
    }
    Ok(history::numbered(records))
}

fn write_history(path: &Path, records: &[Record]) -> anyhow::Result<()> {
    let mut text = String::new();
    for r in records {
        text.push_str(&serde_json::to_string(r)?);
        text.push('\n');
    }
    crate::cluster_dir::write_whole(path, text)
}

/// Prints how many operations of each kind ended each way.
fn print_counts(records: &[Record]) {
    let kinds = [
        ("put", 0),
        ("put --overwrite", 1),
        ("job", 2),
        ("job --overwrite", 3),
        ("get", 4),
        ("rm", 5),
    ];
    println!(
        "{:<16} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "operation", "count", "ok", "exists", "missing", "lost", "unknown"
    );
    for (label, k) in kinds {
        let of_kind: Vec<&Record> = records
            .iter()
            .filter(|r| {
                let i = match r.kind {
                    Kind::Put { overwrite } => usize::from(overwrite),
                    Kind::Job { overwrite } => 2 + usize::from(overwrite),
                    Kind::Get => 4,
                    Kind::Rm => 5,
                };
                i == k
            })
            .collect();
        let count = |f: fn(&Reply) -> bool| of_kind.iter().filter(|r| f(&r.reply)).count();
        println!(
            "{label:<16} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8}",
            of_kind.len(),
            count(|r| matches!(r, Reply::Done | Reply::Saw(_))),
            count(|r| matches!(r, Reply::Exists(_))),
            count(|r| matches!(r, Reply::Missing(_))),
            count(|r| matches!(r, Reply::Lost(_))),
            count(|r| matches!(r, Reply::Unknown(_))),
        );
    }
}

/// Prints every anomaly: broken reads, and each name whose history is not linearizable with
/// the shortest history that shows it. Returns whether there were none.
fn report(records: &[Record]) -> bool {
    let mut clean = true;
    for r in records.iter().filter(|r| matches!(r.reply, Reply::Broken(_))) {
        clean = false;
        println!("ANOMALY: a read returned no whole value: {}", r.describe());
    }
    for (name, ops) in history::by_name(records) {
        let checked: Vec<_> = ops.iter().filter_map(|r| r.checked()).collect();
        if let Err(violation) = checker::check(&checked, None) {
            clean = false;
            let what = match violation.verdict {
                checker::Verdict::Undecided => "could not be decided within the checker's step budget",
                _ => "is not linearizable",
            };
            println!(
                "ANOMALY: the history of {name} {what}; the shortest history that shows it ({} operations):",
                violation.ops.len()
            );
            for op in &violation.ops {
                println!("  {}", records[op.index].describe());
            }
        }
    }
    clean
}
