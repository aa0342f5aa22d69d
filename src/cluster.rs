//! Cluster mode, client side: with `RINGLEADER_MASTER` set, a job's actions are planned
//! here as in embedded mode, then submitted to the driver together with (once) this very
//! executable, whose executors run the tasks. Progress streams back: a line per stage event
//! off a terminal, a bar per stage on one.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use ringleader_core::binary::hash_file;
use ringleader_core::plan::{JobPlan, TaskValue};
use ringleader_core::proto::{self, driver_client::DriverClient, job_event::Event};
use ringleader_core::{Error, Result};
use tonic::transport::{Channel, Endpoint};

/// A connection to a cluster's driver.
pub(crate) struct Cluster {
    masters: Vec<String>,
    runtime: tokio::runtime::Runtime,
    /// This executable's content hash, once computed.
    binary: std::sync::OnceLock<String>,
    progress: bool,
}

/// Connects to the first reachable address of `masters`, each tried for at most 3 s.
pub(crate) async fn connect_driver(masters: &[String]) -> Result<DriverClient<Channel>> {
    let mut reasons = Vec::new();
    for m in masters {
        let endpoint = match Endpoint::from_shared(format!("http://{m}")) {
            Ok(e) => e.connect_timeout(Duration::from_secs(3)),
            Err(e) => {
                reasons.push(format!("{m}: not an address ({e})"));
                continue;
            }
        };
        match tokio::time::timeout(Duration::from_secs(3), endpoint.connect()).await {
            Ok(Ok(channel)) => {
                return Ok(DriverClient::new(channel));
            }
            Ok(Err(e)) => reasons.push(format!("{m}: {}", source_chain(&e))),
            Err(_) => reasons.push(format!("{m}: no answer within 3 s")),
        }
    }
    Err(Error::Cluster(format!(
        "cannot reach the driver ({}); is the cluster up? (`ringleader cluster status`)",
        reasons.join("; ")
    )))
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// Parses `host:port[,host:port…]`.
pub(crate) fn parse_masters(value: &str) -> Result<Vec<String>> {
    let masters: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if masters.is_empty() {
        return Err(Error::Config(format!(
            "RINGLEADER_MASTER={value:?} names no address (expected host:port[,host:port…])"
        )));
    }
    Ok(masters)
}

impl Cluster {
    /// A client of the driver(s) at `masters`.
    pub(crate) fn new(masters: Vec<String>, progress: bool) -> Result<Cluster> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Error::Config(format!("cannot start the client runtime: {e}")))?;
        Ok(Cluster {
            masters,
            runtime,
            binary: std::sync::OnceLock::new(),
            progress,
        })
    }

    fn binary_hash(&self) -> Result<String> {
        if let Some(h) = self.binary.get() {
            return Ok(h.clone());
        }
        let exe = std::env::current_exe().map_err(|e| Error::io("current executable", e))?;
        let hash = hash_file(&exe)?;
        Ok(self.binary.get_or_init(|| hash).clone())
    }

    /// Where the partitions of the stored dataset `name` are.
    pub(crate) fn dataset(&self, name: &str) -> Result<proto::DatasetInfo> {
        self.runtime.block_on(async {
            let mut driver = connect_driver(&self.masters).await?;
            let reply = driver.get_dataset(proto::DatasetName { name: name.to_string() }).await;
            Ok(reply.map_err(|e| Error::Cluster(e.message().to_string()))?.into_inner())
        })
    }

    /// Runs `plan` on the cluster and returns its final stage's values.
    pub(crate) fn execute(&self, plan: &JobPlan) -> Result<Vec<TaskValue>> {
        let hash = self.binary_hash()?;
        self.runtime.block_on(async {
            let mut driver = connect_driver(&self.masters).await?;
            let present = driver
                .has_binary(proto::BinaryId { hash: hash.clone() })
                .await
                .map_err(|e| Error::Cluster(format!("driver: {}", e.message())))?
                .into_inner()
                .present;
            if !present {
                upload(&mut driver, &hash).await?;
            }
            let exe = std::env::current_exe().map_err(|e| Error::io("current executable", e))?;
            let request = proto::SubmitJobRequest {
                binary_hash: hash,
                plan: postcard::to_stdvec(plan)?,
                args: std::env::args().skip(1).collect(),
                env: std::env::vars().collect(),
                working_dir: std::env::current_dir()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default(),
                name: exe
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            };
            let mut events = driver
                .submit_job(request)
                .await
                .map_err(|e| Error::Cluster(format!("the driver refused the job: {}", e.message())))?
                .into_inner();
            let mut progress = Progress::new(self.progress);
            let mut results: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
            while let Some(event) = events
                .message()
                .await
                .map_err(|e| Error::Cluster(format!("lost the driver: {}", e.message())))?
            {
                match event.event {
                    Some(Event::Accepted(a)) => progress.accepted(&a),
                    Some(Event::Stage(s)) => progress.stage(&s),
                    Some(Event::Result(chunk)) => results.entry(chunk.task).or_default().extend_from_slice(&chunk.data),
                    Some(Event::Finished(f)) => {
                        progress.finish();
                        if results.len() != f.tasks as usize {
                            return Err(Error::Cluster(format!(
                                "expected {} task results, received {}",
                                f.tasks,
                                results.len()
                            )));
                        }
                        return results
                            .values()
                            .map(|v| postcard::from_bytes(v).map_err(Error::from))
                            .collect();
                    }
                    Some(Event::Failed(f)) => {
                        progress.finish();
                        return Err(Error::Cluster(format!("job failed: {}", f.message)));
                    }
                    None => {}
                }
            }
            Err(Error::Cluster(
                "the driver closed the job's stream before it finished".into(),
            ))
        })
    }
}

async fn upload(driver: &mut DriverClient<Channel>, hash: &str) -> Result<()> {
    use futures::StreamExt;
    let exe = std::env::current_exe().map_err(|e| Error::io("current executable", e))?;
    // A read error ends the stream early; the driver then refuses the truncated binary.
    let chunks = ringleader_core::binary::file_chunks(exe, hash.to_string()).filter_map(|c| async move { c.ok() });
    driver
        .upload_binary(chunks)
        .await
        .map_err(|e| Error::Cluster(format!("uploading the job binary: {}", e.message())))?;
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
        }
    }

    fn accepted(&mut self, a: &proto::JobAccepted) {
        self.job = a.job_id.clone();
        if self.enabled && !self.terminal {
            eprintln!("{}: accepted, {} stages", a.job_id, a.stages);
        }
    }

    fn stage(&mut self, s: &proto::StageProgress) {
        if !self.enabled {
            return;
        }
        let elapsed = self.started.elapsed().as_secs_f64();
        if !self.terminal {
            eprintln!(
                "{} stage {}: {}/{} tasks, {} rows, {} bytes, {elapsed:.1} s",
                self.job, s.stage, s.done, s.total, s.rows, s.bytes
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
        bar.set_message(format!("{} rows, {} MB", s.rows, s.bytes / 1_000_000));
        if s.done == s.total {
            bar.finish();
        }
    }

    fn finish(&mut self) {
        for bar in self.bars.values() {
            bar.finish();
        }
    }
}
