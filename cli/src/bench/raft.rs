//! `ringleader bench raft`: what the Raft-replicated driver group costs and how fast it
//! recovers, measured in one invocation:
//!
//! 1. metadata commits per second on groups of 1 and 3 drivers (real drivers on loopback,
//!    in this process, with their redb logs on disk), one writer vs many (batched);
//! 2. time from `kill -9` of the leader to the new leader, and to the first re-issued task,
//!    over several kills while a job runs (real processes from `cluster up --drivers 3`);
//! 3. a sort on a 3-driver cluster vs a 1-driver cluster, alternating runs.

use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use ringleader_core::proto::{self, driver_client::DriverClient};
use ringleader_driver::raft::group::Peers;
use ringleader_driver::state::Command as StateCommand;

use super::inputs::{ensure_sort_input, warm};
use super::local_cluster::BenchCluster;
use super::measure::{alternate, gb, io_flags, measure, rate, with};
use crate::cluster::fetch_status as status;

/// `bench raft`.
#[derive(Debug, Args)]
pub struct RaftArgs {
    /// Records to sort on 3 drivers vs 1 (100 bytes each).
    #[arg(long, default_value_t = 10_000_000)]
    pub records: u64,
    /// Sort runs per group size; the table shows the median.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Leader kills to time.
    #[arg(long, default_value_t = 10)]
    pub kills: usize,
    /// Seconds each commit-rate measurement runs.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Concurrent writers in the batched commit-rate measurement.
    #[arg(long, default_value_t = 64)]
    pub writers: usize,
    /// Where the benchmark keeps its data and finds the examples.
    #[command(flatten)]
    pub places: super::inputs::BenchPlaces,
}

/// Runs `bench raft`.
pub fn run(args: RaftArgs) -> anyhow::Result<ExitCode> {
    let examples = args.places.examples()?;
    let base = args.places.dir();
    std::fs::create_dir_all(&base)?;
    // One token for the whole run: the in-process drivers and every cluster use it.
    let token = base.join("bench-token");
    std::fs::write(&token, format!("{}\n", ringleader_core::security::auth::generate()?))?;
    ringleader_core::security::auth::set_token(Some(ringleader_core::security::auth::read_token_file(&token)?));

    eprintln!("commit rates…");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let seconds = Duration::from_secs_f64(args.seconds.max(0.5));
    let mut rates = Vec::new();
    for drivers in [1, 3] {
        for writers in [1, args.writers.max(1)] {
            let rate = runtime.block_on(commit_rate(&base, drivers, writers, seconds))?;
            rates.push((drivers, writers, rate));
        }
    }
    drop(runtime);

    eprintln!("leader kills…");
    let kills = leader_kills(&base, &examples, args.kills.max(1), &token)?;

    eprintln!("sort on 3 drivers vs 1…");
    let sort_in = base.join(format!("sort-{}", args.records));
    ensure_sort_input(&sort_in, args.records)?;
    let sort_bytes = warm(&sort_in)?;
    let one = BenchCluster::up_with(base.join("cluster-1-driver"), 2, 1, Some(&token))?;
    let three = BenchCluster::up_with(base.join("cluster-3-drivers"), 2, 3, Some(&token))?;
    let sort_out = base.join("out-sort-raft");
    let sort = io_flags(&sort_in, &sort_out);
    let program = examples.join("sort");
    let run_on = |cluster: &BenchCluster| measure(cluster.client(&mut with(Command::new(&program), sort)));
    // Warm both (binary upload and caching).
    run_on(&one)?;
    run_on(&three)?;
    let term_before = highest_term(&three)?;
    let (s3, s1) = alternate(args.runs.max(1), "sort", || run_on(&three), || run_on(&one))?;
    // Each election raises the term: any while the sorts wrote was one nobody needed.
    let elections = highest_term(&three)?.saturating_sub(term_before);
    let report = ringleader_datasets::validate::validate_sort(&sort_in, &sort_out)?;
    if !report.ok() {
        bail!("the sort's output does not validate: {report:?}");
    }
    drop((one, three));

    println!();
    println!("Driver group on this machine (loopback, redb logs with fsync per commit)");
    println!();
    println!("| group | writers | commits/s | median commit latency |");
    println!("|---|---|---|---|");
    for (drivers, writers, r) in &rates {
        println!(
            "| {drivers} driver{} | {writers} | {:.0} | {:.2} ms |",
            if *drivers == 1 { "" } else { "s" },
            r.per_second,
            r.median_latency.as_secs_f64() * 1e3
        );
    }
    println!();
    let extra_elections = kills.extra_elections;
    let (mut elect, mut reissue): (Vec<Duration>, Vec<Duration>) = kills.times.into_iter().unzip();
    elect.sort();
    reissue.sort();
    let median = |v: &[Duration]| v[v.len() / 2].as_secs_f64() * 1e3;
    let max = |v: &[Duration]| v.last().map_or(0.0, |d| d.as_secs_f64() * 1e3);
    println!(
        "| kill -9 of the leader mid-job ({} kills) | median | max | target |",
        reissue.len()
    );
    println!("|---|---|---|---|");
    println!(
        "| to a new leader | {:.0} ms | {:.0} ms | < 2 s |",
        median(&elect),
        max(&elect)
    );
    println!(
        "| to the first re-issued task | {:.0} ms | {:.0} ms | 0.5 s |",
        median(&reissue),
        max(&reissue)
    );
    println!();
    println!(
        "Elections beyond one per kill (restarted drivers standing for election, split votes): {extra_elections} (target 0)"
    );
    println!(
        "Elections while the 3-driver group ran {} sorts of {} (its disk writing their outputs): {elections} (target 0)",
        args.runs.max(1),
        gb(sort_bytes)
    );
    println!();
    println!(
        "| sort {} records ({}) | time | throughput | ratio to 1 driver | target |",
        args.records,
        gb(sort_bytes)
    );
    println!("|---|---|---|---|---|");
    println!(
        "| 1 driver | {:.3} s | {} | 1.00x | |",
        s1.elapsed.as_secs_f64(),
        rate(sort_bytes, s1.elapsed)
    );
    println!(
        "| 3 drivers | {:.3} s | {} | {:.2}x | aim < 1.05x |",
        s3.elapsed.as_secs_f64(),
        rate(sort_bytes, s3.elapsed),
        s3.elapsed.as_secs_f64() / s1.elapsed.as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

/// The highest Raft term any driver of `cluster` reports.
fn highest_term(cluster: &BenchCluster) -> anyhow::Result<u64> {
    let file = crate::cluster_dir::ClusterFile::read(&cluster.dir)?;
    let addresses: Vec<String> = file.drivers.iter().map(|d| d.address.clone()).collect();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(highest_term_of(&addresses))
}

/// The highest Raft term any of the drivers at `addresses` reports.
async fn highest_term_of(addresses: &[String]) -> anyhow::Result<u64> {
    let mut highest = None;
    for address in addresses {
        if let Ok(s) = status(address).await
            && let Some(raft) = &s.raft
        {
            highest = highest.max(Some(raft.term));
        }
    }
    highest.context("no driver of the 3-driver cluster answered with its Raft state")
}

/// Commits per second and the median latency of one commit.
struct Rate {
    per_second: f64,
    median_latency: Duration,
}

/// Starts a group of `drivers` in this process, then `writers` tasks commit empty batches
/// through the leader for `seconds`.
async fn commit_rate(base: &Path, drivers: usize, writers: usize, seconds: Duration) -> anyhow::Result<Rate> {
    let dir = tempfile::tempdir_in(base)?;
    let ports = crate::cluster::free_ports(drivers as u32)?;
    let list: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{}=127.0.0.1:{p}", i + 1))
        .collect();
    let peers = Peers::parse(&list.join(","))?;
    let stop = Arc::new(tokio::sync::Notify::new());
    let mut inners = Vec::new();
    let mut servers = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let config = ringleader_driver::DriverConfig {
            listen: format!("127.0.0.1:{port}").parse()?,
            data_dir: dir.path().join(format!("driver-{}", i + 1)),
            worker_timeout: Duration::from_secs(3),
            no_worker_timeout: Duration::from_secs(30),
            id: i as u64 + 1,
            peers: (drivers > 1).then(|| peers.clone()),
            snapshot_every: ringleader_driver::raft::DEFAULT_SNAPSHOT_EVERY,
            placement: Default::default(),
            speculation: Default::default(),
            http: None,
        };
        let bound = ringleader_driver::bind(config).await?;
        inners.push(bound.inner());
        let stop = stop.clone();
        servers.push(tokio::spawn(bound.serve(async move { stop.notified().await })));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let leader = loop {
        if let Some(leader) = inners.iter().find(|d| d.leading().is_some()) {
            break leader.clone();
        }
        if Instant::now() > deadline {
            bail!("the in-process group of {drivers} elected no leader within 20 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let commits = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|_| {
            let (leader, commits, done) = (leader.clone(), commits.clone(), done.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while !done.load(Ordering::Relaxed) {
                    let at = Instant::now();
                    if leader.write(StateCommand::Batch(Vec::new())).await.is_err() {
                        break;
                    }
                    latencies.push(at.elapsed());
                    commits.fetch_add(1, Ordering::Relaxed);
                }
                latencies
            })
        })
        .collect();
    tokio::time::sleep(seconds).await;
    done.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await?);
    }
    let elapsed = started.elapsed();
    for _ in &servers {
        stop.notify_waiters();
    }
    stop.notify_waiters();
    for s in servers {
        let _ = tokio::time::timeout(Duration::from_secs(5), s).await;
    }
    latencies.sort();
    Ok(Rate {
        per_second: commits.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64(),
        median_latency: latencies.get(latencies.len() / 2).copied().unwrap_or_default(),
    })
}

/// A driver of a benchmark cluster: where it listens and how to start it again.
struct DriverProcess {
    address: String,
    argv: Vec<String>,
    pid: u32,
    restarted: Option<Child>,
}

impl Drop for DriverProcess {
    fn drop(&mut self) {
        if let Some(child) = &mut self.restarted {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn kill(pid: u32) {
    // SAFETY: kill(2) on a driver this benchmark started (recorded by `cluster up`, or a child).
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
}

/// Attempts started so far for `job`, as the driver at `address` knows them.
async fn attempts(address: &str, job: &str) -> Option<(u32, u32, String)> {
    let channel = ringleader_core::net::driver_group::driver_channel(address).ok()?;
    let mut client = DriverClient::new(ringleader_core::security::auth::authorized(channel));
    let call = client.get_job(proto::JobId {
        job_id: job.to_string(),
    });
    let detail = tokio::time::timeout(Duration::from_secs(1), call)
        .await
        .ok()?
        .ok()?
        .into_inner();
    let attempts = detail.stages.iter().map(|s| s.attempts).sum();
    let running = detail.stages.iter().map(|s| s.running).sum();
    Some((attempts, running, detail.job.map(|j| j.state).unwrap_or_default()))
}

/// Kills the leader of a 3-driver cluster `kills` times while a slow job runs; for each,
/// the time to a new leader and to the first re-issued task.
fn leader_kills(base: &Path, examples: &Path, kills: usize, token: &Path) -> anyhow::Result<Kills> {
    let input = base.join("slow-text");
    if !input.exists() {
        std::fs::create_dir_all(&input)?;
        for f in 0..16 {
            let text: String = (0..100)
                .map(|l| format!("l{f}_{l} alpha beta gamma w{}\n", l % 7))
                .collect();
            std::fs::write(input.join(format!("part-{f:02}.txt")), text)?;
        }
    }
    let cluster = BenchCluster::up_with(base.join("cluster-kills"), 2, 3, Some(token))?;
    let file = crate::cluster_dir::ClusterFile::read(&cluster.dir)?;
    let mut drivers: Vec<DriverProcess> = file
        .drivers
        .iter()
        .map(|d| {
            let cmdline = std::fs::read(format!("/proc/{}/cmdline", d.pid)).unwrap_or_default();
            let argv = cmdline
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .skip(1)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            DriverProcess {
                address: d.address.clone(),
                argv,
                pid: d.pid,
                restarted: None,
            }
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let addresses: Vec<String> = drivers.iter().map(|d| d.address.clone()).collect();
    let term_before = runtime.block_on(highest_term_of(&addresses))?;
    let mut client: Option<Child> = None;
    let mut results = Vec::new();
    let out = base.join("out-slow");
    while results.len() < kills {
        // A job with running tasks: the current one, or a new one.
        let (job, leader, attempts_before) = runtime.block_on(async {
            loop {
                if client.as_mut().is_none_or(|c| c.try_wait().ok().flatten().is_some()) {
                    client = Some(
                        cluster
                            .client(&mut Command::new(examples.join("chaos")))
                            .args(["--sleep-ms", "20", "--input"])
                            .arg(&input)
                            .arg("--output")
                            .arg(&out)
                            .env("RINGLEADER_PROGRESS", "0")
                            .stdout(Stdio::null())
                            .stderr(Stdio::null())
                            .spawn()
                            .context("starting the chaos example")?,
                    );
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                let mut leader = None;
                for (i, d) in drivers.iter().enumerate() {
                    if let Some(s) = status(&d.address).await.ok()
                        && s.raft.as_ref().is_some_and(|r| r.role == "leader")
                    {
                        let job = s
                            .jobs
                            .iter()
                            .rev()
                            .find(|j| j.state == "running")
                            .map(|j| j.job_id.clone());
                        leader = Some((i, job));
                    }
                }
                if let Some((i, Some(job))) = leader
                    && let Some((attempts, running, _)) = attempts(&drivers[i].address, &job).await
                    && running > 0
                {
                    return anyhow::Ok((job, i, attempts));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })?;
        let survivor = drivers[(leader + 1) % drivers.len()].address.clone();
        let killed_at = Instant::now();
        kill(drivers[leader].pid);
        let (elected, reissued) = runtime.block_on(async {
            let (mut elected, mut reissued) = (None, None);
            while (elected.is_none() || reissued.is_none()) && killed_at.elapsed() < Duration::from_secs(30) {
                if elected.is_none()
                    && let Some(s) = status(&survivor).await.ok()
                    && s.raft
                        .as_ref()
                        .is_some_and(|r| r.leader_id != 0 && r.leader_id != leader as u64 + 1)
                {
                    elected = Some(killed_at.elapsed());
                }
                if reissued.is_none()
                    && let Some((attempts, _, state)) = attempts(&survivor, &job).await
                    && (attempts > attempts_before || state != "running")
                {
                    reissued = Some(killed_at.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            (elected, reissued)
        });
        let (Some(elected), Some(reissued)) = (elected, reissued) else {
            bail!("no new leader re-issued the job's tasks within 30 s of killing the leader");
        };
        eprintln!(
            "kill {}: new leader after {:.0} ms, first re-issued task after {:.0} ms",
            results.len() + 1,
            elected.as_secs_f64() * 1e3,
            reissued.as_secs_f64() * 1e3
        );
        results.push((elected, reissued));
        // Back to three drivers, caught up, before the next kill.
        let d = &mut drivers[leader];
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(cluster.dir.join(format!("driver-{}/log", leader + 1)))?;
        let child = Command::new(std::env::current_exe()?)
            .args(&d.argv)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        d.pid = child.id();
        if let Some(mut old) = d.restarted.replace(child) {
            let _ = old.wait();
        }
        let restarted = addresses[leader].clone();
        runtime.block_on(async {
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                let mut rafts = Vec::new();
                for a in &addresses {
                    rafts.push(status(a).await.ok().and_then(|s| s.raft));
                }
                let leader_last = rafts
                    .iter()
                    .flatten()
                    .find(|r| r.role == "leader")
                    .map(|r| r.last_log_index);
                let caught_up = status(&restarted)
                    .await
                    .ok()
                    .and_then(|s| s.raft)
                    .is_some_and(|r| r.role == "follower" && Some(r.last_log_index) == leader_last);
                if caught_up {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
    }
    if let Some(mut c) = client {
        let status = c.wait()?;
        if !status.success() {
            bail!("the job running through the kills failed ({status})");
        }
    }
    // Each kill needs one election; any more (a restarted driver standing for election, a
    // split vote) raised the term again. Read after the last restart's election timeout
    // (at most about 1.1 s with the longest heartbeat a driver chooses).
    std::thread::sleep(Duration::from_secs(2));
    let term_after = runtime.block_on(highest_term_of(&addresses))?;
    let extra = term_after
        .saturating_sub(term_before)
        .saturating_sub(results.len() as u64);
    drop(drivers);
    drop(cluster);
    Ok(Kills {
        times: results,
        extra_elections: extra,
    })
}

/// What the leader kills measured.
struct Kills {
    /// Per kill: to a new leader, and to the first re-issued task.
    times: Vec<(Duration, Duration)>,
    /// Elections beyond one per kill.
    extra_elections: u64,
}
