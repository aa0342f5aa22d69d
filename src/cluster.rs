//! Cluster mode, client side: with `RINGLEADER_MASTER` set, a job's actions, planned as in
//! embedded mode (`planner`), are submitted to the driver from here together with (once)
//! this very executable, whose executors run the tasks. Progress streams back: a line per stage event
//! off a terminal, a bar per stage on one.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use ringleader_core::net::binary::hash_file;
use ringleader_core::net::driver_group::{DriverGroup, is_failover};
use ringleader_core::plan::accumulator::Accumulated;
use ringleader_core::plan::{JobPlan, TaskValue, Volume};
use ringleader_core::proto::{self, job_event::Event};

use crate::client::{call, call_long, driver_group};
use ringleader_core::{Error, Result};

/// A connection to a cluster's driver group.
pub(crate) struct Cluster {
    group: std::sync::Arc<DriverGroup>,
    runtime: tokio::runtime::Runtime,
    /// This executable's content hash, once computed.
    binary: std::sync::OnceLock<String>,
    /// Whether every live worker sees this client's files, once asked.
    shares_files: std::sync::OnceLock<bool>,
    /// Set once the driver group was found to hold this executable: later jobs submit
    /// without asking (a driver that forgot it since says so, and it is uploaded again).
    binary_present: std::sync::atomic::AtomicBool,
    progress: bool,
}

/// How long a running job's client keeps trying to reach a new leader after losing one.
const RECONNECT_PATIENCE: Duration = Duration::from_secs(60);

/// Names the variables, besides Ringleader's own, that a job's executors get from its
/// client (comma-separated), e.g. `RINGLEADER_SHIP_ENV=AWS_REGION,MY_SETTING`.
pub const SHIP_ENV_VAR: &str = "RINGLEADER_SHIP_ENV";

/// The part of the client's environment its executors get: Ringleader's own variables
/// (`RINGLEADER_*`, except the token, which each worker gives its executors itself) and
/// those named in [`SHIP_ENV_VAR`]. Nothing else leaves the client: the environment is
/// stored in the driver group's log and seen by every worker.
pub(crate) fn shipped_env(vars: impl Iterator<Item = (String, String)>) -> std::collections::HashMap<String, String> {
    let vars: Vec<(String, String)> = vars.collect();
    let named: Vec<String> = vars
        .iter()
        .find(|(k, _)| k == SHIP_ENV_VAR)
        .map(|(_, v)| {
            v.split(',')
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty())
                .collect()
        })
        .unwrap_or_default();
    vars.into_iter()
        .filter(|(k, _)| {
            let secret =
                k == ringleader_core::security::auth::TOKEN_ENV || k == ringleader_core::security::auth::TOKEN_FILE_ENV;
            (k.starts_with("RINGLEADER_") || named.contains(k)) && !secret
        })
        .collect()
}

/// Runs of a job whose held results could not all be fetched, before giving up.
pub const HELD_RESULT_ATTEMPTS: u32 = 3;

impl Cluster {
    /// A client of the driver(s) at `masters`.
    pub(crate) fn new(masters: Vec<String>, progress: bool) -> Result<Cluster> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Error::Config(format!("cannot start the client runtime: {e}")))?;
        let group = std::sync::Arc::new(runtime.block_on(async { driver_group(masters) })?);
        Ok(Cluster {
            group,
            runtime,
            binary: std::sync::OnceLock::new(),
            shares_files: std::sync::OnceLock::new(),
            binary_present: std::sync::atomic::AtomicBool::new(false),
            progress,
        })
    }

    fn binary_hash(&self) -> Result<String> {
        if let Some(h) = self.binary.get() {
            return Ok(h.clone());
        }
        // The image this process runs, not whatever its path holds now.
        let exe = ringleader_core::net::binary::running_executable()?;
        let hash = hash_file(&exe)?;
        Ok(self.binary.get_or_init(|| hash).clone())
    }

    /// Whether every live worker runs on this client's machine (the same machine identity,
    /// see [`ringleader_core::net::machine`]), so local paths mean the same files there and
    /// nothing needs copying. Asked once per client.
    pub(crate) fn shares_files(&self) -> Result<bool> {
        if let Some(&shares) = self.shares_files.get() {
            return Ok(shares);
        }
        let me = ringleader_core::net::machine::identity();
        let shares = self.live_view()?.iter().all(|w| w.machine == me);
        Ok(*self.shares_files.get_or_init(|| shares))
    }

    /// The workers the driver knows alive; all it knows when none is (liveness is the
    /// leader's to know: a follower's reply marks none alive, and a view of no workers must
    /// not pass for "every worker shares this machine").
    fn live_view(&self) -> Result<Vec<proto::WorkerStatus>> {
        let list = self
            .runtime
            .block_on(call(&self.group, "listing workers", |mut d| async move {
                d.list_workers(proto::ListWorkersRequest {}).await
            }))?;
        let any_alive = list.workers.iter().any(|w| w.alive);
        Ok(list.workers.into_iter().filter(|w| w.alive || !any_alive).collect())
    }

    /// Tells the driver group every [`ringleader_core::io::store::SESSION_PING`] that the
    /// program `session` is alive, until this client goes: its caches and broadcasts stay
    /// while it does (and go a minute after a kill).
    pub(crate) fn keep_session(&self, session: String) {
        let group = self.group.clone();
        self.runtime.spawn(async move {
            loop {
                let request = proto::SessionId {
                    session: session.clone(),
                };
                let _ = call(&group, "keeping the session", |mut d| {
                    let request = request.clone();
                    async move { d.keep_session(request).await }
                })
                .await;
                // Well within the leader's patience (shorter when a test shortens it).
                let every =
                    ringleader_core::io::store::SESSION_PING.min(ringleader_core::io::store::session_expiry() / 3);
                tokio::time::sleep(every).await;
            }
        });
    }

    /// The addresses of the workers the driver knows alive.
    pub(crate) fn live_addresses(&self) -> Result<std::collections::HashSet<String>> {
        Ok(self.live_view()?.into_iter().map(|w| w.address).collect())
    }

    /// The live workers and their task slots (at least 1 each).
    pub(crate) fn live_workers(&self) -> Result<(u32, u32)> {
        let live = self.live_view()?;
        let slots = live.iter().map(|w| w.slots).sum::<u32>();
        Ok((live.len() as u32, slots.max(1)))
    }

    /// Asks where the partitions of a new dataset go (refused if it exists and not
    /// `overwrite`), with two spare owners per partition to fall back on.
    pub(crate) fn place(
        &self,
        name: &str,
        partitions: u32,
        replicas: u32,
        overwrite: bool,
    ) -> Result<proto::DatasetInfo> {
        let request = proto::PlaceDatasetRequest {
            name: name.to_string(),
            partitions,
            replicas,
            overwrite,
            spare: 2,
        };
        self.runtime
            .block_on(call(&self.group, "placing the output dataset", |mut d| {
                let request = request.clone();
                async move { d.place_dataset(request).await }
            }))
    }

    /// Forgets a stored dataset (its workers delete its files).
    pub(crate) fn remove_dataset(&self, name: &str) -> Result<()> {
        self.runtime.block_on(crate::client::remove_dataset(&self.group, name))
    }

    /// Stores local files as a dataset (see [`crate::transfer::put`]).
    pub(crate) fn put(&self, request: crate::transfer::PutRequest) -> Result<proto::DatasetInfo> {
        self.runtime.block_on(crate::transfer::put(&self.group, request))
    }

    /// Writes a stored dataset into a local directory (see [`crate::transfer::get`]).
    pub(crate) fn get(&self, request: crate::transfer::GetRequest) -> Result<(u64, u64)> {
        self.runtime.block_on(crate::transfer::get(&self.group, request))
    }

    /// Whether progress is shown.
    pub(crate) fn progress(&self) -> bool {
        self.progress
    }

    /// Where the partitions of the stored dataset `name` are.
    pub(crate) fn dataset(&self, name: &str) -> Result<proto::DatasetInfo> {
        let request = proto::DatasetName { name: name.to_string() };
        self.runtime.block_on(call(&self.group, "dataset", |mut d| {
            let request = request.clone();
            async move { d.get_dataset(request).await }
        }))
    }

    /// Runs `plan` on the cluster and returns its final stage's values. If the driver
    /// leader changes while the job runs, the job is watched again on the new leader.
    /// Large results stay on their workers until fetched; if a worker holding some is
    /// gone by then, the job runs again (up to [`HELD_RESULT_ATTEMPTS`] runs in all).
    pub(crate) fn execute(&self, plan: &JobPlan) -> Result<Vec<TaskValue>> {
        let mut run = 1;
        loop {
            let (values, accumulated) = self.run_job(plan)?;
            if let Some(delay) =
                ringleader_core::fault_injection::millis(ringleader_core::fault_injection::FETCH_DELAY_MS)
            {
                std::thread::sleep(delay);
            }
            let fetched: Result<Vec<TaskValue>> = values
                .into_iter()
                .map(|v| ringleader_core::io::results::fetch_if_held(v, self.runtime.handle()))
                .collect();
            match fetched {
                Err(e) if run < HELD_RESULT_ATTEMPTS => {
                    run += 1;
                    eprintln!("{e}; running the job again (run {run} of {HELD_RESULT_ATTEMPTS})");
                }
                done => {
                    // The totals of the run whose results the program gets, once.
                    if done.is_ok() {
                        crate::accumulator::record_job(&accumulated);
                    }
                    return done;
                }
            }
        }
    }

    fn run_job(&self, plan: &JobPlan) -> Result<(Vec<TaskValue>, Vec<Accumulated>)> {
        let hash = self.binary_hash()?;
        self.runtime.block_on(async {
            use std::sync::atomic::Ordering;
            if !self.binary_present.load(Ordering::Relaxed) {
                let id = proto::BinaryId { hash: hash.clone() };
                let present = call(&self.group, "driver", |mut d| {
                    let id = id.clone();
                    async move { d.has_binary(id).await }
                })
                .await?
                .present;
                if !present {
                    upload(&self.group, &hash).await?;
                }
                self.binary_present.store(true, Ordering::Relaxed);
            }
            let exe = std::env::current_exe().map_err(|e| Error::io("current executable", e))?;
            let request = proto::SubmitJobRequest {
                binary_hash: hash,
                plan: postcard::to_stdvec(plan)?,
                args: std::env::args().skip(1).collect(),
                env: shipped_env(std::env::vars()),
                working_dir: std::env::current_dir()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default(),
                name: exe
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                // Resubmitting with it after a leader change finds the same job.
                submission_id: ringleader_core::net::machine::unique_id(),
            };
            let mut progress = Progress::new(self.progress);
            let mut lost: Option<(Instant, String)> = None;
            let mut uploaded_again = false;
            loop {
                let submitted = call(&self.group, "the driver refused the job", |mut d| {
                    let request = request.clone();
                    async move { d.submit_job(request).await }
                })
                .await;
                let mut events = match submitted {
                    Ok(events) => events,
                    // Forgotten as unused since it was found there: upload it again, once.
                    Err(e) if !uploaded_again && e.to_string().contains("is not uploaded") => {
                        uploaded_again = true;
                        upload(&self.group, &request.binary_hash).await?;
                        continue;
                    }
                    Err(e) => match &lost {
                        Some((since, _)) if since.elapsed() < RECONNECT_PATIENCE => continue,
                        _ => return Err(e),
                    },
                };
                let followed = tokio::select! {
                    followed = follow(&mut events, &mut progress) => followed,
                    _ = tokio::signal::ctrl_c() => return Err(self.interrupted(&progress.job).await),
                };
                match followed {
                    Ok(values) => return Ok(values),
                    Err(Followed::Failed(e)) => return Err(e),
                    Err(Followed::Lost(status)) => {
                        let (address, _) = self.group.current();
                        self.group.fail_over(&address, &status);
                        let since = lost.map_or_else(Instant::now, |(t, _)| t);
                        if since.elapsed() > RECONNECT_PATIENCE {
                            return Err(Error::Cluster(format!(
                                "lost the driver and found no new leader within {} s: {}",
                                RECONNECT_PATIENCE.as_secs(),
                                status.message()
                            )));
                        }
                        progress.note(&format!(
                            "lost the driver at {address} ({}); reconnecting",
                            status.message()
                        ));
                        lost = Some((since, status.message().to_string()));
                    }
                }
            }
        })
    }
}

impl Cluster {
    /// Ctrl-C while a job runs: cancels it on the cluster (its tasks stop on every worker at
    /// once) and says so.
    async fn interrupted(&self, job: &str) -> Error {
        if job.is_empty() {
            return Error::Cluster(
                "interrupted before the driver accepted the job; a job nobody watches is cancelled within 15 s".into(),
            );
        }
        let request = proto::CancelJobRequest {
            job_id: job.to_string(),
            reason: "cancelled from its client (Ctrl-C)".into(),
        };
        let cancelled = self
            .group
            .call(Duration::from_secs(5), |mut d| {
                let request = request.clone();
                async move { d.cancel_job(request).await }
            })
            .await;
        match cancelled {
            Ok(_) => Error::Cluster(format!("interrupted: cancelled {job}")),
            Err(e) => Error::Cluster(format!(
                "interrupted; cancelling {job} failed ({}): run `ringleader cancel {job}`",
                e.message()
            )),
        }
    }
}

/// How following a job's event stream ended, when it did not deliver the result.
enum Followed {
    /// The job failed (or its values did not decode).
    Failed(Error),
    /// The driver went away or stopped leading: watch the job on the new leader.
    Lost(tonic::Status),
}

/// Reads a job's events until it finishes, fails, or the stream is lost.
async fn follow(
    events: &mut tonic::Streaming<proto::JobEvent>,
    progress: &mut Progress,
) -> std::result::Result<(Vec<TaskValue>, Vec<Accumulated>), Followed> {
    let mut results: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
    loop {
        let event = match events.message().await {
            Ok(Some(event)) => event,
            Ok(None) => {
                return Err(Followed::Lost(tonic::Status::unavailable(
                    "the driver closed the job's stream before it finished",
                )));
            }
            Err(status) if is_failover(&status) || status.code() == tonic::Code::Unknown => {
                return Err(Followed::Lost(status));
            }
            Err(status) => {
                return Err(Followed::Failed(Error::Cluster(format!(
                    "lost the driver: {}",
                    status.message()
                ))));
            }
        };
        match event.event {
            Some(Event::Accepted(a)) => {
                // A (re)connection replays the job from the start.
                results.clear();
                progress.accepted(&a);
            }
            Some(Event::Stage(s)) => progress.stage(&s),
            Some(Event::Result(chunk)) => results.entry(chunk.task).or_default().extend_from_slice(&chunk.data),
            Some(Event::Finished(f)) => {
                progress.finish();
                if f.results_dropped {
                    return Err(Followed::Failed(Error::ResultsGone));
                }
                if results.len() != f.tasks as usize {
                    return Err(Followed::Failed(Error::Cluster(format!(
                        "expected {} task results, received {}",
                        f.tasks,
                        results.len()
                    ))));
                }
                progress.summarize();
                let accumulated = f.accumulators.iter().filter_map(Accumulated::from_proto).collect();
                return results
                    .values()
                    .map(|v| postcard::from_bytes(v).map_err(Error::from))
                    .collect::<Result<Vec<_>>>()
                    .map(|values| (values, accumulated))
                    .map_err(Followed::Failed);
            }
            Some(Event::Failed(f)) => {
                progress.finish();
                return Err(Followed::Failed(Error::Cluster(format!("job failed: {}", f.message))));
            }
            None => {}
        }
    }
}

async fn upload(group: &DriverGroup, hash: &str) -> Result<()> {
    use futures::StreamExt;
    let exe = std::env::current_exe().map_err(|e| Error::io("current executable", e))?;
    // An upload starts again from its first byte after a leader change, and a binary is
    // tens of MB: it gets the patience of a client reconnecting to a running job, and one
    // attempt may take all of it (on 100 Mbit/s links a debug build's upload and its copies
    // to two more drivers take about 12 s).
    call_long(group, "uploading the job binary", RECONNECT_PATIENCE, |mut d| {
        // A read error ends the stream early; the driver then refuses the truncated binary.
        let chunks = ringleader_core::net::binary::file_chunks(exe.clone(), hash.to_string())
            .filter_map(|c| async move { c.ok() });
        async move { d.upload_binary(chunks).await }
    })
    .await?;
    Ok(())
}

/// Stage progress: bars on a terminal, one plain line per stage event elsewhere.
struct Progress {
    enabled: bool,
    terminal: bool,
    started: Instant,
    bars: BTreeMap<u32, indicatif::ProgressBar>,
    multi: indicatif::MultiProgress,
    job: String,
    /// Each stage's latest progress, for the summary line.
    stages: BTreeMap<u32, proto::StageProgress>,
}

impl Progress {
    fn new(enabled: bool) -> Progress {
        Progress {
            enabled,
            terminal: std::io::stderr().is_terminal(),
            started: Instant::now(),
            bars: BTreeMap::new(),
            multi: indicatif::MultiProgress::new(),
            job: String::new(),
            stages: BTreeMap::new(),
        }
    }

    fn accepted(&mut self, a: &proto::JobAccepted) {
        self.job = a.job_id.clone();
        if self.enabled && !self.terminal {
            eprintln!("{}: accepted, {} stages", a.job_id, a.stages);
        }
    }

    fn stage(&mut self, s: &proto::StageProgress) {
        self.stages.insert(s.stage, *s);
        if !self.enabled {
            return;
        }
        let elapsed = self.started.elapsed().as_secs_f64();
        if !self.terminal {
            eprintln!(
                "{} stage {}: {}/{} tasks, {}, {elapsed:.1} s",
                self.job,
                s.stage,
                s.done,
                s.total,
                crate::progress::moved(read(s), written(s))
            );
            return;
        }
        let multi = &self.multi;
        let bar = self.bars.entry(s.stage).or_insert_with(|| {
            let bar = multi.add(indicatif::ProgressBar::new(s.total as u64));
            let style = indicatif::ProgressStyle::with_template(
                "stage {prefix} [{bar:30}] {pos}/{len} tasks {msg} {elapsed} (eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(s.stage.to_string());
            bar
        });
        bar.set_position(s.done as u64);
        bar.set_message(crate::progress::moved(read(s), written(s)));
        if s.done == s.total {
            bar.finish();
        }
    }

    /// A line about the connection (a leader change), shown whenever progress is.
    fn note(&self, message: &str) {
        if !self.enabled {
            return;
        }
        if self.terminal {
            let _ = self.multi.println(format!("{}: {message}", self.job));
        } else {
            eprintln!("{}: {message}", self.job);
        }
    }

    fn finish(&mut self) {
        for bar in self.bars.values() {
            bar.finish();
        }
    }

    /// The job's summary line, once it succeeded.
    fn summarize(&self) {
        if !self.enabled {
            return;
        }
        let mut summary = crate::progress::JobSummary {
            job: self.job.clone(),
            seconds: self.started.elapsed().as_secs_f64(),
            ..Default::default()
        };
        let last = self.stages.keys().max().copied();
        for s in self.stages.values() {
            summary.add(
                written(s),
                u64::from(s.total),
                u64::from(s.attempts),
                Some(s.stage) == last,
            );
        }
        if self.terminal {
            let _ = self.multi.println(summary.to_string());
        } else {
            eprintln!("{summary}");
        }
    }
}

/// What a stage's finished tasks read, as its progress says.
fn read(s: &proto::StageProgress) -> Volume {
    Volume {
        rows: s.read_rows,
        bytes: s.read_bytes,
    }
}

/// What a stage's finished tasks wrote, as its progress says.
fn written(s: &proto::StageProgress) -> Volume {
    Volume {
        rows: s.rows,
        bytes: s.bytes,
    }
}

#[cfg(test)]
mod env_tests {
    use super::*;

    #[test]
    fn executors_get_ringleaders_variables_and_the_named_ones_only() {
        let vars = [
            ("RINGLEADER_THREADS", "4"),
            ("RINGLEADER_TOKEN", "secret"),
            ("RINGLEADER_TOKEN_FILE", "/x/token"),
            ("RINGLEADER_SHIP_ENV", "WANTED, ALSO, RINGLEADER_TOKEN"),
            ("WANTED", "yes"),
            ("ALSO", "too"),
            ("AWS_SECRET_ACCESS_KEY", "no"),
            ("HOME", "/root"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let shipped = shipped_env(vars);
        let mut names: Vec<&str> = shipped.keys().map(String::as_str).collect();
        names.sort();
        assert_eq!(names, ["ALSO", "RINGLEADER_SHIP_ENV", "RINGLEADER_THREADS", "WANTED"]);
    }
}
