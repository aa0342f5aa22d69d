//! A hostile job, built against the public API only: its tasks try to reach what belongs to
//! the cluster or to other jobs on the worker they run on, and report what they reached.
//! Every probe must be refused (the worker's sandbox, `worker/src/sandbox.rs`); the test
//! (`tests/integration/tenants.rs`) runs it beside a normal job on the same workers.
//!
//! ```text
//! hostile --cluster-dir DIR [--read FILE]… [--write FILE]… [--delete FILE]… [--tasks N]
//! ```
//! prints one line per probe and task: `PROBE reached|refused: detail`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
struct Args {
    /// The `cluster up` directory (its token, the workers' data directories).
    #[arg(long)]
    cluster_dir: PathBuf,
    /// Files of others to read (another job's shuffle block, a held result).
    #[arg(long)]
    read: Vec<PathBuf>,
    /// Files of others to write to (a stored partition, a cached binary).
    #[arg(long)]
    write: Vec<PathBuf>,
    /// Files of others to delete.
    #[arg(long)]
    delete: Vec<PathBuf>,
    /// Tasks to run the probes in (spread over the workers).
    #[arg(long, default_value_t = 4)]
    tasks: usize,
}

/// Whether `result` reached what it tried, and what it saw.
fn outcome<T: std::fmt::Debug>(probe: &str, result: std::io::Result<T>) -> String {
    match result {
        Ok(v) => format!(
            "{probe} reached: {}",
            format!("{v:?}").chars().take(80).collect::<String>()
        ),
        Err(e) => format!("{probe} refused: {e}"),
    }
}

/// Every probe, run inside one task on some worker. The paths come from the job's own
/// arguments (an executor runs with them) and from what the worker tells its executors.
fn probes() -> Vec<String> {
    let args = Args::parse();
    let shuffle = PathBuf::from(std::env::var("RINGLEADER_SHUFFLE_DIR").unwrap_or_default());
    let datasets = PathBuf::from(std::env::var("RINGLEADER_DATASET_DIR").unwrap_or_default());
    let data_dir = shuffle.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut seen = Vec::new();
    // The cluster token, by the path `cluster up` wrote it to.
    seen.push(outcome(
        "read the token",
        std::fs::read_to_string(args.cluster_dir.join("token")),
    ));
    // Another job's shuffle blocks and held results on this worker (any job's, then: not
    // even the directory listing).
    seen.push(outcome(
        "list the shuffle directory",
        std::fs::read_dir(&shuffle).map(|d| d.count()),
    ));
    seen.push(outcome(
        "list held results",
        std::fs::read_dir(shuffle.join(".results")).map(|d| d.count()),
    ));
    // Files the test named: another job's blocks and results, stored partitions, binaries.
    for path in &args.read {
        seen.push(outcome(&format!("read {}", path.display()), std::fs::read(path)));
    }
    for path in &args.write {
        let opened = std::fs::OpenOptions::new().append(true).open(path);
        seen.push(outcome(&format!("write {}", path.display()), opened));
    }
    for path in &args.delete {
        seen.push(outcome(
            &format!("delete {}", path.display()),
            std::fs::remove_file(path),
        ));
    }
    // Another dataset's directory: a file planted beside its partitions.
    seen.push(outcome(
        "plant a file among the datasets",
        std::fs::write(datasets.join("planted"), b"hostile"),
    ));
    // The cached binaries: add one (a binary of a hash another job will ask for).
    let binaries = data_dir.join("binaries");
    seen.push(outcome(
        "add a cached binary",
        std::fs::write(binaries.join("0".repeat(32)), b"hostile"),
    ));
    // Another worker's data (a laptop cluster keeps them side by side), and a driver's log.
    seen.push(outcome(
        "read another node's data",
        std::fs::read_dir(&args.cluster_dir).map(|d| d.count()),
    ));
    // Its own job's shuffle directory is its to write, but not with a symbolic link (the
    // worker would follow it out when it serves a block from there) or a FIFO (the worker
    // would block opening it).
    let job = std::env::var("RINGLEADER_EXECUTOR_JOB").unwrap_or_default();
    let own = shuffle.join(&job);
    let link = own.join(format!("link-{}", std::process::id()));
    seen.push(outcome(
        "make a symbolic link where the worker serves from",
        std::os::unix::fs::symlink(args.cluster_dir.join("token"), &link),
    ));
    let fifo = std::ffi::CString::new(
        own.join(format!("fifo-{}", std::process::id()))
            .into_os_string()
            .into_encoded_bytes(),
    )
    .unwrap_or_default();
    // SAFETY: mkfifo(3) with a NUL-terminated path.
    let made = unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) };
    seen.push(outcome(
        "make a FIFO where the worker serves from",
        if made == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        },
    ));
    // The worker process itself: signal it (Landlock scopes signals to the sandbox).
    let worker = std::os::unix::process::parent_id();
    // SAFETY: kill(2) with signal 0 only checks whether a signal could be sent.
    let signalled = unsafe { libc::kill(worker as i32, 0) };
    seen.push(outcome(
        "signal the worker",
        if signalled == 0 {
            Ok(worker)
        } else {
            Err(std::io::Error::last_os_error())
        },
    ));
    seen
}

fn main() -> ExitCode {
    ringleader::run(|ctx| {
        let args = Args::parse();
        let tasks = args.tasks.max(1);
        let lines = ctx
            .parallelize((0..tasks as u64).collect(), tasks)?
            .flat_map(|_: u64| probes())
            .collect()?;
        for line in lines {
            println!("{line}");
        }
        Ok(())
    })
}
