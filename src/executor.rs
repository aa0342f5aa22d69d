//! Executor mode: when a worker starts the job's binary with `RINGLEADER_EXECUTOR` set,
//! [`crate::run`] never calls the job's code; it streams tasks from its worker, runs them
//! with the same task code the embedded engine uses (only the shuffle transport differs),
//! and reports each result.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use ringleader_core::exec::{TaskUnit, run};
use ringleader_core::fault_injection;
use ringleader_core::ids::{Attempt, AttemptKey, JobId, ShuffleId, StageId, TaskId};
use ringleader_core::plan::{Ran, StageOutput, TaskPlan, TaskValue, Volume};
use ringleader_core::proto::{self, executor_client::ExecutorClient, executor_order::Order, task_report::Outcome};
use ringleader_core::shuffle::cluster::{BlockSource, ClusterShuffle, ShuffleFiles};
use ringleader_core::sync::lock;
use ringleader_core::task_failure::TaskFailure;

use crate::config::Config;

/// What the executor keeps of an attempt received and not yet reported: its stop flag,
/// and where its map outputs are as the driver last said.
struct Running {
    stop: Arc<AtomicBool>,
    told: tokio::sync::watch::Sender<Inputs>,
}

/// Where each map task's output of each shuffle a task reads is (an empty address: not
/// done yet).
type Inputs = HashMap<ShuffleId, Vec<BlockSource>>;

/// Serves tasks for the worker at `worker` until it closes the stream.
pub(crate) fn serve(worker: String) -> ExitCode {
    match serve_inner(worker) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("executor: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Why an executor stops serving its worker before the worker closed the stream.
#[derive(Debug, thiserror::Error)]
enum ExecutorError {
    /// The worker did not set a variable of the executor's environment.
    #[error("{0} is not set (an executor is started by its worker)")]
    Unset(&'static str),
    /// Its own binary, its configuration, a thread pool or the runtime could not be had.
    #[error(transparent)]
    Setup(#[from] ringleader_core::Error),
    /// A thread pool or a thread could not start.
    #[error("cannot start threads: {0}")]
    Threads(String),
    /// The worker's address does not make an endpoint.
    #[error(transparent)]
    Address(#[from] ringleader_core::security::tls::TlsError),
    /// The worker cannot be reached, or its task stream broke.
    #[error("the worker at {worker}: {message}")]
    Worker { worker: String, message: String },
}

fn serve_inner(worker: String) -> Result<(), ExecutorError> {
    let var = |name: &'static str| std::env::var(name).map_err(|_| ExecutorError::Unset(name));
    // Before any plan offset is resolved: this process must be the binary plans name.
    let own_hash = ringleader_core::net::binary::running_executable_hash()?;
    let job = var(ringleader_core::net::executor_env::JOB)?;
    let files = ShuffleFiles::new(var(ringleader_core::net::executor_env::SHUFFLE_DIR)?);
    let config = Config::from_env()?;
    // One budget for every task of this executor; spills go with the job's shuffle files
    // (removed with them) unless a spill directory is set.
    let spill_root = match &config.spill_dir {
        Some(dir) => dir.clone(),
        None => files.job_dir(&job).join("spill"),
    };
    let memory = ringleader_core::memory::MemoryPool::new(config.memory_limit, spill_root);
    let pool = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(config.threads)
            .thread_name(|i| format!("ringleader-executor-{i}"))
            .build()
            .map_err(|e| ExecutorError::Threads(e.to_string()))?,
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| ExecutorError::Threads(e.to_string()))?;
    let handle = runtime.handle().clone();
    runtime.block_on(async move {
        let broken = |message: String| ExecutorError::Worker {
            worker: worker.clone(),
            message,
        };
        let channel = ringleader_core::security::tls::endpoint(&worker)?
            .connect()
            .await
            .map_err(|e| broken(format!("cannot reach it: {e}")))?;
        let client = ExecutorClient::new(ringleader_core::security::auth::authorized(channel));
        ringleader_core::io::store::set_commit_gate(commit_gate(client.clone(), handle.clone(), job.clone()));
        let hello = proto::ExecutorHello {
            job_id: job.clone(),
            pid: std::process::id(),
        };
        let mut tasks = client
            .clone()
            .next_tasks(hello)
            .await
            .map_err(|e| broken(e.message().to_string()))?
            .into_inner();
        let running: Arc<Mutex<HashMap<AttemptKey, Running>>> = Arc::default();
        while let Some(order) = tasks.message().await.map_err(|e| broken(e.message().to_string()))? {
            let assignment = match order.order {
                Some(Order::Run(assignment)) => assignment,
                Some(Order::Stop(attempt)) => {
                    if let Some(attempt) = lock(&running).get(&AttemptKey::of_running(&attempt)) {
                        attempt.stop.store(true, Ordering::Relaxed);
                    }
                    continue;
                }
                Some(Order::Inputs(update)) => {
                    if let Some(key) = update.attempt.as_ref().map(AttemptKey::of_running)
                        && let Some(attempt) = lock(&running).get(&key)
                    {
                        attempt.told.send_replace(block_sources(&update.inputs));
                    }
                    continue;
                }
                None => continue,
            };
            let key = AttemptKey::of_assignment(&assignment);
            let stop = Arc::new(AtomicBool::new(false));
            let (told, updates) = tokio::sync::watch::channel(block_sources(&assignment.inputs));
            lock(&running).insert(
                key.clone(),
                Running {
                    stop: stop.clone(),
                    told,
                },
            );
            let memory = memory.clone();
            let (client, handle, files, worker, pool2, own_hash, running) = (
                client.clone(),
                handle.clone(),
                files.clone(),
                worker.clone(),
                pool.clone(),
                own_hash.clone(),
                running.clone(),
            );
            // A reducer started before its map stage was done waits for map outputs: on a
            // thread of its own, not one of the pool's (where it would keep the map tasks
            // it waits for from running).
            let waits = ringleader_core::shuffle::cluster::waits_for_map_outputs(&assignment.inputs);
            let task = move || {
                let report = if assignment.binary_hash == own_hash {
                    run_assignment(assignment, files, &worker, handle.clone(), &stop, memory, updates)
                } else {
                    refuse(assignment, &own_hash)
                };
                lock(&running).remove(&key);
                // A stopped attempt's worker has already let it go: nobody waits for it.
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let parts = ringleader_core::net::binary::report_chunks(report);
                let mut client = client.clone();
                let sent = async move { client.task_finished(futures::stream::iter(parts)).await };
                if let Some(after) = fault_injection::millis(fault_injection::EXIT_AFTER_REPORT_MS) {
                    // A test's fault: this process dies while its report is on its way.
                    handle.spawn(sent);
                    std::thread::sleep(after);
                    std::process::exit(0);
                }
                let _ = handle.block_on(sent);
            };
            if waits {
                let named = std::thread::Builder::new().name("ringleader-early-reducer".into());
                if let Err(e) = named.spawn(task) {
                    return Err(ExecutorError::Threads(format!("for a task: {e}")));
                }
            } else {
                pool2.spawn(task);
            }
        }
        Ok(())
    })
}

/// Asks the worker (and through it the driver) whether an attempt may place its stored
/// partition: the fence its copies carry, or [`ringleader_core::Error::Superseded`].
fn commit_gate(
    client: ExecutorClient<ringleader_core::security::auth::AuthChannel>,
    handle: tokio::runtime::Handle,
    job: String,
) -> ringleader_core::io::store::CommitGate {
    Box::new(move |stage, task, attempt| {
        let request = proto::RunningTask {
            job_id: job.clone(),
            stage: stage.0,
            task,
            attempt: attempt.0,
        };
        let grant = handle
            .block_on(client.clone().authorize_commit(request))
            .map_err(|e| ringleader_core::Error::Unreachable {
                what: "asking the driver to commit a stored partition".into(),
                message: e.message().to_string(),
            })?
            .into_inner();
        if grant.granted {
            Ok(ringleader_core::io::store::Fence {
                term: grant.term,
                grant: grant.grant,
            })
        } else {
            Err(ringleader_core::Error::Superseded(format!(
                "the driver refused attempt {attempt} the commit of partition {task}: {}",
                grant.reason
            )))
        }
    })
}

fn run_assignment(
    a: proto::TaskAssignment,
    files: ShuffleFiles,
    worker: &str,
    handle: tokio::runtime::Handle,
    stop: &Arc<AtomicBool>,
    memory: Arc<ringleader_core::memory::MemoryPool>,
    updates: tokio::sync::watch::Receiver<Inputs>,
) -> proto::TaskReport {
    let decoded = postcard::from_bytes::<TaskPlan>(&a.task_plan)
        .and_then(|task| Ok((task, postcard::from_bytes::<StageOutput>(&a.stage_output)?)));
    let mut read = Volume::default();
    let mut shuffled = 0;
    let mut accumulated = Vec::new();
    let pool = memory.clone();
    let outcome = match decoded {
        Err(e) => Outcome::Error(TaskFailure::Fatal(format!("malformed task plan: {e}")).to_proto()),
        Ok((task, output)) => {
            let inputs = block_sources(&a.inputs);
            let id = ringleader_core::net::ticket::ResultId {
                job: JobId::from(a.job_id.as_str()),
                stage: StageId(a.stage_index),
                task: TaskId(a.task),
                attempt: Attempt(a.attempt),
            };
            let result_files = files.clone();
            let shuffle = ClusterShuffle::new(files, id.job.clone(), id.attempt, worker.to_string(), inputs, handle)
                .with_memory(memory)
                .with_updates(updates);
            let unit = TaskUnit {
                stage: id.stage,
                partition: id.task,
                task: &task,
                output: &output,
                stop: Some(stop),
            };
            let held = |ran: Ran| {
                read = ran.read;
                accumulated = ran.accumulated;
                if let TaskValue::Shuffled { bytes, .. } = ran.value {
                    shuffled = bytes;
                }
                ringleader_core::io::results::hold_if_large(ran.value, &id, &result_files, worker)
            };
            match run(&unit, id.attempt, &shuffle).and_then(held) {
                Ok(value) => match postcard::to_stdvec(&value) {
                    Ok(bytes) => Outcome::Value(bytes),
                    Err(e) => Outcome::Error(TaskFailure::Fatal(e.to_string()).to_proto()),
                },
                Err(e) => Outcome::Error(TaskFailure::of(&e).to_proto()),
            }
        }
    };
    let spilled = pool.spilled();
    proto::TaskReport {
        job_id: a.job_id,
        stage: a.stage_index,
        task: a.task,
        attempt: a.attempt,
        worker_id: String::new(),
        outcome: Some(outcome),
        read_rows: read.rows,
        read_bytes: read.bytes,
        spilled_bytes: spilled,
        shuffled_bytes: shuffled,
        accumulators: accumulated.iter().map(|a| a.to_proto()).collect(),
    }
}

/// Where each map output is, as an assignment (or an update of one) says.
fn block_sources(inputs: &[proto::ShuffleInput]) -> Inputs {
    inputs
        .iter()
        .map(|i| (ShuffleId(i.shuffle), i.outputs.iter().map(BlockSource::from).collect()))
        .collect()
}

/// The report for a task whose plan was built for another binary: none of its offsets is
/// resolved, and the job fails (another attempt would meet the same binary).
fn refuse(a: proto::TaskAssignment, own_hash: &str) -> proto::TaskReport {
    TaskFailure::Fatal(format!(
        "this executor is binary {own_hash}, but the plan was built for {}: refusing to run it",
        a.binary_hash
    ))
    .report_for(&a)
}
