//! Executor processes: one process of the job's own binary per job on this worker, started
//! with the job's arguments and environment plus `RINGLEADER_EXECUTOR`, which makes
//! `ringleader::run` serve tasks instead of running the job. Tasks wait in a queue the
//! executor streams from. If the process dies, every task it held fails with its exit
//! status and the tail of its stderr, and the next task starts a new process. Each process
//! starts inside the job's sandbox ([`crate::sandbox`]), its `TMPDIR` a directory of the job.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use ringleader_core::ids::{AttemptKey, JobId};
use ringleader_core::net::executor_env;
use ringleader_core::proto;
use ringleader_core::sync::lock;
use tokio::sync::{mpsc, oneshot};

use crate::sandbox;

/// The worker's own variables every executor gets: those of the machine it runs on.
const MACHINE_VARS: [&str; 7] = ["PATH", "HOME", "USER", "TMPDIR", "LANG", "LC_ALL", "TZ"];

/// One job's executor on this worker.
struct JobExecutor {
    queue: mpsc::UnboundedSender<proto::ExecutorOrder>,
    /// Taken by the executor process when it connects.
    receiver: Option<mpsc::UnboundedReceiver<proto::ExecutorOrder>>,
    in_flight: HashMap<AttemptKey, proto::TaskAssignment>,
    /// The attempts that were reducers started before their map stage was done.
    started_early: std::collections::HashSet<AttemptKey>,
    /// Tells the process's watcher to kill it.
    stop: Option<oneshot::Sender<()>>,
    /// The process (0: unknown).
    pid: u32,
    /// Whether this worker ended the process (its tasks are not to blame).
    ended_here: bool,
    /// When it started: a heartbeat reply computed earlier knows nothing of its job.
    started: std::time::Instant,
}

/// A failure to report for a task whose executor died.
pub struct LostTask {
    /// The task.
    pub assignment: proto::TaskAssignment,
    /// Why it failed.
    pub message: String,
    /// Whether this worker ended the executor (to stop a stuck attempt beside it).
    pub ended_here: bool,
}

impl LostTask {
    /// Whether it cannot be what ended its executor: this worker ended it, or it was still
    /// waiting for map outputs (a reducer started before its map stage was done, not told
    /// of them all).
    pub fn blameless(&self) -> bool {
        self.ended_here || ringleader_core::shuffle::cluster::waits_for_map_outputs(&self.assignment.inputs)
    }
}

/// All executors of this worker.
#[derive(Clone)]
pub struct Executors {
    jobs: Arc<Mutex<HashMap<JobId, JobExecutor>>>,
    logs: PathBuf,
    /// The most memory (bytes) one executor may budget for.
    memory: u64,
    /// Paths no executor may reach beyond its own job's places (the worker's data directory
    /// among them); `None`: executors are not sandboxed.
    private: Option<Arc<Vec<PathBuf>>>,
    /// Where each executor's watcher runs (it reaps the process, and reports what a crash
    /// lost): a stopping worker waits for them, so no executor outlives it.
    watchers: tokio_util::task::TaskTracker,
}

/// The memory budget an executor gets on a worker of `memory` bytes holding `cached` bytes
/// of programs' cached partitions: the caches count against it, as an embedded program's
/// do against its jobs', down to a quarter of it (past that, cached partitions are read
/// from disk as the page cache allows).
pub fn budget_beside_caches(memory: u64, cached: u64) -> u64 {
    memory.saturating_sub(cached).max(memory / 4)
}

/// What to start an executor with.
pub struct Launch<'a> {
    /// The cached job binary.
    pub binary: &'a Path,
    /// This worker's address (the executor connects back to it).
    pub worker_address: &'a str,
    /// This worker's id.
    pub worker_id: &'a str,
    /// Where shuffle files go.
    pub shuffle_dir: &'a Path,
    /// Where stored dataset partitions are.
    pub dataset_dir: &'a Path,
}

impl Executors {
    /// Executors writing their stderr under `logs`, each budgeting at most `memory` bytes,
    /// none reaching beneath `private` but its own job's places, each watched on `watchers`.
    pub fn new(
        logs: PathBuf,
        memory: u64,
        private: Option<Vec<PathBuf>>,
        watchers: tokio_util::task::TaskTracker,
    ) -> Self {
        Executors {
            jobs: Arc::new(Mutex::new(HashMap::new())),
            logs,
            memory,
            private: private.map(Arc::new),
            watchers,
        }
    }

    /// What the executor of the job of `first` may reach (see [`crate::sandbox`]), and its
    /// `TMPDIR`.
    fn policy(
        &self,
        first: &proto::TaskAssignment,
        launch: &Launch<'_>,
    ) -> std::io::Result<(sandbox::Policy, PathBuf)> {
        let job_dir = launch.shuffle_dir.join(&first.job_id);
        let temp = job_dir.join("tmp");
        let mut read_write = vec![
            job_dir,
            temp.clone(),
            launch.shuffle_dir.join(".results").join(&first.job_id),
        ];
        if !first.stored_output.is_empty() {
            let valid = first
                .stored_output
                .split_once('/')
                .is_some_and(|(dataset, generation)| {
                    ringleader_core::ids::valid_dataset_name(dataset)
                        && !generation.is_empty()
                        && generation
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                });
            if !valid {
                return Err(std::io::Error::other(format!(
                    "{:?} is not a stored output (DATASET/GENERATION)",
                    first.stored_output
                )));
            }
            read_write.push(launch.dataset_dir.join(&first.stored_output));
        }
        // The job's own places exist before it starts (its TMPDIR among them), sandbox or not.
        for dir in &read_write {
            std::fs::create_dir_all(dir)?;
        }
        // The job's map outputs on the other workers of this machine, read straight from disk
        // (made here if their workers have written none yet: a rule needs a directory).
        let mut read = vec![launch.dataset_dir.to_path_buf()];
        if ringleader_core::ids::valid_job_id(&first.job_id) {
            for dir in &first.host_shuffle_dirs {
                let theirs = Path::new(dir).join(&first.job_id);
                if Path::new(dir).is_dir() && std::fs::create_dir_all(&theirs).is_ok() {
                    read.push(theirs);
                }
            }
        }
        let policy = sandbox::Policy {
            private: self.private.as_deref().cloned().unwrap_or_default(),
            read_write,
            read,
            execute: vec![launch.binary.to_path_buf()],
        };
        Ok((policy, temp))
    }

    /// Number of tasks handed to executors and not yet finished.
    pub fn running(&self) -> u32 {
        lock(&self.jobs).values().map(|j| j.in_flight.len() as u32).sum()
    }

    /// The task attempts handed to executors and not yet finished.
    pub fn in_flight(&self) -> Vec<proto::RunningTask> {
        lock(&self.jobs)
            .values()
            .flat_map(|e| e.in_flight.keys().map(AttemptKey::to_running))
            .collect()
    }

    /// Queues a task, starting the job's executor if it has none. `on_exit` receives the
    /// tasks lost if the process dies.
    pub fn submit(
        &self,
        assignment: proto::TaskAssignment,
        launch: Launch<'_>,
        on_exit: impl FnOnce(Vec<LostTask>) + Send + 'static,
    ) -> std::io::Result<()> {
        let job = JobId::from(assignment.job_id.as_str());
        let key = AttemptKey::of_assignment(&assignment);
        let mut jobs = lock(&self.jobs);
        if !jobs.contains_key(&job) {
            let executor = self.spawn(&assignment, &launch, on_exit)?;
            jobs.insert(job.clone(), executor);
        }
        let executor = jobs
            .get_mut(&job)
            .ok_or_else(|| std::io::Error::other("executor vanished"))?;
        if ringleader_core::shuffle::cluster::waits_for_map_outputs(&assignment.inputs) {
            executor.started_early.insert(key.clone());
        }
        executor.in_flight.insert(key, assignment.clone());
        executor
            .queue
            .send(order(proto::executor_order::Order::Run(assignment)))
            .map_err(|_| std::io::Error::other("executor queue closed"))
    }

    fn spawn(
        &self,
        first: &proto::TaskAssignment,
        launch: &Launch<'_>,
        on_exit: impl FnOnce(Vec<LostTask>) + Send + 'static,
    ) -> std::io::Result<JobExecutor> {
        std::fs::create_dir_all(&self.logs)?;
        let log_path = self.logs.join(format!("{}.stderr", first.job_id));
        let log = std::fs::File::create(&log_path)?;
        let dir = Path::new(&first.working_dir);
        let (policy, temp) = self.policy(first, launch)?;
        let sandbox = match self.private {
            Some(_) => sandbox::Sandbox::prepare(&policy).map_err(std::io::Error::other)?,
            None => None,
        };
        let mut command = tokio::process::Command::new(launch.binary);
        command
            .args(&first.args)
            .env_clear()
            // This machine's own basics (a client's PATH or HOME mean nothing here), then
            // what the job shipped: Ringleader's variables and those it named.
            .envs(MACHINE_VARS.iter().filter_map(|k| std::env::var_os(k).map(|v| (k, v))))
            .envs(&first.env)
            .env_remove("RINGLEADER_MASTER")
            .env_remove(ringleader_core::security::auth::TOKEN_FILE_ENV)
            .env(
                ringleader_core::security::tls::CA_ENV,
                ringleader_core::security::tls::ca_path().unwrap_or_default(),
            )
            // Never the cluster token: a credential that acts for this job only.
            .env(
                ringleader_core::security::auth::TOKEN_ENV,
                ringleader_core::security::auth::job_credential(&first.job_id)
                    .ok()
                    .flatten()
                    .unwrap_or_default(),
            )
            .env(
                executor_env::WORKER_MEMORY,
                budget_beside_caches(self.memory, crate::datasets_dir::cached_bytes(launch.dataset_dir)).to_string(),
            )
            .env(executor_env::EXECUTOR, launch.worker_address)
            .env(executor_env::JOB, &first.job_id)
            // `binary` was checked against this hash before the launch.
            .env(executor_env::VERIFIED_HASH, &first.binary_hash)
            .env(executor_env::WORKER_ID, launch.worker_id)
            .env(executor_env::SHUFFLE_DIR, launch.shuffle_dir)
            .env(executor_env::DATASET_DIR, launch.dataset_dir)
            .env("TMPDIR", &temp)
            .env(
                executor_env::STORE_GRANT,
                match ringleader_core::security::auth::token() {
                    Ok(Some(token)) if !first.stored_output.is_empty() => {
                        ringleader_core::security::auth::store_grant_for(token, &first.job_id, &first.stored_output)
                    }
                    _ => String::new(),
                },
            )
            .current_dir(if dir.is_dir() { dir } else { launch.shuffle_dir })
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        if let Some(sandbox) = &sandbox {
            let fd = sandbox.raw_fd();
            // SAFETY: the hook only makes the two system calls of `apply_in_child`, on a
            // descriptor `sandbox` keeps open until after the spawn.
            unsafe {
                command.pre_exec(move || sandbox::apply_in_child(fd));
            }
        }
        let mut child = command.spawn()?;
        drop(sandbox);
        tracing::debug!("{}: executor process started", first.job_id);
        let pid = child.id().unwrap_or(0);
        let (queue, receiver) = mpsc::unbounded_channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let jobs = self.jobs.clone();
        let job = JobId::from(first.job_id.as_str());
        self.watchers.spawn(async move {
            let status = tokio::select! {
                status = child.wait() => status,
                _ = stopped => {
                    let _ = child.kill().await;
                    return;
                }
            };
            let removed = lock(&jobs).remove(&job);
            let Some(executor) = removed else { return };
            if executor.in_flight.is_empty() {
                return;
            }
            let status = match status {
                Ok(s) => s.to_string(),
                Err(e) => format!("unknown status ({e})"),
            };
            let tail = stderr_tail(&log_path);
            let ended_here = executor.ended_here;
            let lost = executor
                .in_flight
                .into_values()
                .map(|assignment| LostTask {
                    assignment,
                    message: if ended_here {
                        format!(
                            "the worker ended the executor process (pid {pid}) to stop a stuck attempt beside this one"
                        )
                    } else {
                        format!("the executor process (pid {pid}) exited with {status}; its stderr ended with:\n{tail}")
                    },
                    ended_here,
                })
                .collect();
            on_exit(lost);
        });
        Ok(JobExecutor {
            queue,
            receiver: Some(receiver),
            in_flight: HashMap::new(),
            started_early: Default::default(),
            stop: Some(stop),
            pid,
            ended_here: false,
            started: std::time::Instant::now(),
        })
    }

    /// The task queue of `job`, for its executor process (once).
    pub fn take_queue(&self, job: &str) -> Option<mpsc::UnboundedReceiver<proto::ExecutorOrder>> {
        lock(&self.jobs).get_mut(job).and_then(|e| e.receiver.take())
    }

    /// Marks a task finished.
    pub fn finished(&self, key: &AttemptKey) {
        if let Some(e) = lock(&self.jobs).get_mut(key.job.as_str()) {
            e.in_flight.remove(key);
        }
    }

    /// Stops the executors of jobs not in `active`, a list the driver made after `asked`
    /// (executors started later belong to jobs it may not have known yet).
    pub fn retain_jobs(&self, active: &[String], asked: std::time::Instant) {
        let stale: Vec<JobExecutor> = {
            let mut jobs = lock(&self.jobs);
            let ids: Vec<JobId> = jobs
                .iter()
                .filter(|(j, e)| !active.iter().any(|a| *j == a.as_str()) && e.started < asked)
                .map(|(j, _)| j.clone())
                .collect();
            ids.iter().filter_map(|id| jobs.remove(id)).collect()
        };
        for mut e in stale {
            e.kill();
        }
    }

    /// Stops one attempt: its slot is free at once. An executor running nothing else of its
    /// job ends (which also ends user code stuck inside a closure), as does one running
    /// besides only reducers started before their map stage was done (they are reported
    /// lost, not to blame, and run again: a stuck closure beside them would otherwise run
    /// on as long as they do); otherwise it is told to stop the attempt before its next
    /// chunk.
    pub fn stop_attempt(&self, key: &AttemptKey) {
        let job = key.job.as_str();
        let mut jobs = lock(&self.jobs);
        let Some(executor) = jobs.get_mut(job) else { return };
        if executor.in_flight.remove(key).is_none() {
            return;
        }
        if executor.in_flight.is_empty() {
            if let Some(mut alone) = jobs.remove(job) {
                alone.kill();
            }
            return;
        }
        if !executor.started_early.contains(key)
            && executor.pid != 0
            && executor.in_flight.keys().all(|k| executor.started_early.contains(k))
        {
            // Its watcher sees it die and reports the reducers lost.
            executor.ended_here = true;
            // SAFETY: kill(2) on the pid of a child this worker has not reaped yet (its
            // watcher reaps it), so the pid names that process.
            unsafe { libc::kill(executor.pid as libc::pid_t, libc::SIGKILL) };
            return;
        }
        let _ = executor
            .queue
            .send(order(proto::executor_order::Order::Stop(key.to_running())));
    }

    /// Passes where a running attempt's map outputs are now to the executor running it;
    /// nothing if it runs no more.
    pub fn update_inputs(&self, update: proto::InputsUpdate) {
        let Some(key) = update.attempt.as_ref().map(AttemptKey::of_running) else {
            return;
        };
        let mut jobs = lock(&self.jobs);
        let Some(executor) = jobs.get_mut(key.job.as_str()) else {
            return;
        };
        if let Some(running) = executor.in_flight.get_mut(&key) {
            running.inputs = update.inputs.clone();
            let _ = executor.queue.send(order(proto::executor_order::Order::Inputs(update)));
        }
    }

    /// Stops the executor of `job`, if one runs here.
    pub fn stop_job(&self, job: &str) {
        let stopped = lock(&self.jobs).remove(job);
        if let Some(mut e) = stopped {
            e.kill();
        }
    }

    /// Stops every executor.
    pub fn stop_all(&self) {
        let all: Vec<JobExecutor> = lock(&self.jobs).drain().map(|(_, e)| e).collect();
        for mut e in all {
            e.kill();
        }
    }
}

impl JobExecutor {
    fn kill(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The last 20 lines of an executor's stderr.
fn stderr_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// An order on an executor's task stream.
fn order(order: proto::executor_order::Order) -> proto::ExecutorOrder {
    proto::ExecutorOrder { order: Some(order) }
}
