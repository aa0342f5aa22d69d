//! `ringleader jobs`, `ringleader job ID` and `ringleader cancel ID`: the cluster's job
//! history, one job's per-stage progress, and stopping a running job. Any driver answers
//! the first two from its replica of the state, so they work while the group elects a new
//! leader; a cancellation goes to the leader.

use std::process::ExitCode;

use clap::Args;
use ringleader_core::proto;

use super::cluster_dir::resolve_master;
use super::datasets::ListArgs;

/// `ringleader job ID`.
#[derive(Debug, Args)]
pub struct JobArgs {
    /// The job's id (as `ringleader jobs` lists it, e.g. job-000001).
    pub id: String,
    /// Where the cluster is.
    #[command(flatten)]
    pub cluster: ListArgs,
}

/// `ringleader cancel ID`.
#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The running job's id (as `ringleader jobs` lists it, e.g. job-000001).
    pub id: String,
    /// Where the cluster is.
    #[command(flatten)]
    pub cluster: ListArgs,
}

/// Runs `cancel`: the job fails as cancelled, and every worker stops its tasks at once.
pub fn cancel(args: CancelArgs) -> anyhow::Result<ExitCode> {
    let request = proto::CancelJobRequest {
        job_id: args.id.clone(),
        reason: "cancelled with `ringleader cancel`".into(),
    };
    runtime()?.block_on(async {
        let group = group(&args.cluster)?;
        ringleader::client::call(&group, "cancelling the job", |mut d| {
            let request = request.clone();
            async move { d.cancel_job(request).await }
        })
        .await?;
        anyhow::Ok(())
    })?;
    println!("cancelled {}", args.id);
    Ok(ExitCode::SUCCESS)
}

fn group(args: &ListArgs) -> anyhow::Result<ringleader_core::net::driver_group::DriverGroup> {
    let master = resolve_master(args.cluster.master.clone(), &args.cluster.dir)?;
    Ok(ringleader::client::driver_group(ringleader::client::parse_masters(
        &master,
    )?)?)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

/// Runs `jobs`.
pub fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let list = runtime()?.block_on(async {
        let group = group(&args)?;
        let list = ringleader::client::call(&group, "listing jobs", |mut d| async move {
            d.list_jobs(proto::ListJobsRequest {}).await
        });
        anyhow::Ok(list.await?)
    })?;
    if list.jobs.is_empty() {
        println!("no jobs yet");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<12} {:<20} {:<10} {:>6} {:>11} {:<19}  message",
        "id", "name", "state", "stages", "tasks", "submitted (UTC)"
    );
    for j in &list.jobs {
        println!(
            "{:<12} {:<20} {:<10} {:>6} {:>11} {:<19}  {}",
            j.job_id,
            j.name,
            j.state,
            j.stages,
            format!("{}/{}", j.tasks_done, j.tasks_total),
            ringleader_core::clock::utc(j.submitted_ms),
            j.message
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `job ID`.
pub fn show(args: JobArgs) -> anyhow::Result<ExitCode> {
    let request = proto::JobId {
        job_id: args.id.clone(),
    };
    let detail = runtime()?.block_on(async {
        let group = group(&args.cluster)?;
        let detail = ringleader::client::call(&group, "job", |mut d| {
            let request = request.clone();
            async move { d.get_job(request).await }
        });
        anyhow::Ok(detail.await?)
    })?;
    let Some(job) = detail.job else {
        anyhow::bail!("the driver returned no job for {}", args.id);
    };
    println!(
        "{} {}: {}, {}/{} tasks, submitted {} UTC",
        job.job_id,
        job.name,
        job.state,
        job.tasks_done,
        job.tasks_total,
        ringleader_core::clock::utc(job.submitted_ms)
    );
    if !job.message.is_empty() {
        println!("  {}", job.message);
    }
    if detail.fetch_failures > 0 || detail.uncounted_failures > 0 {
        println!(
            "  fetch failures: {} (map output lost and computed again); attempts lost without a task to blame: {}",
            detail.fetch_failures, detail.uncounted_failures
        );
    }
    // A stage's first start and last end, in seconds after the submission.
    let since = |ms: u64| {
        if ms == 0 {
            "-".to_string()
        } else {
            format!("{:.2}", ms.saturating_sub(job.submitted_ms) as f64 / 1000.0)
        }
    };
    println!(
        "  {:>5} {:<9} {:<8} {:<8} {:>5} {:>7} {:>5} {:>8} {:>12} {:>12} {:>12} {:>12} {:>6} {:>7} {:>8} {:>8}  input",
        "stage",
        "state",
        "output",
        "after",
        "done",
        "running",
        "total",
        "attempts",
        "rows in",
        "bytes in",
        "rows out",
        "bytes out",
        "failed",
        "counted",
        "began s",
        "ended s"
    );
    for s in &detail.stages {
        let parents: Vec<String> = s.parents.iter().map(u32::to_string).collect();
        println!(
            "  {:>5} {:<9} {:<8} {:<8} {:>5} {:>7} {:>5} {:>8} {:>12} {:>12} {:>12} {:>12} {:>6} {:>7} {:>8} {:>8}  {}",
            s.stage,
            s.state,
            s.output,
            if parents.is_empty() {
                "-".to_string()
            } else {
                parents.join(",")
            },
            s.done,
            s.running,
            s.total,
            s.attempts,
            s.read_rows,
            s.read_bytes,
            s.rows,
            s.bytes,
            s.failed_attempts,
            s.counted_failures,
            since(s.first_started_ms),
            since(s.last_ended_ms),
            s.input
        );
    }
    if !detail.accumulators.is_empty() {
        println!("  accumulators (each finished task counted once):");
        for a in &detail.accumulators {
            let value = ringleader_core::plan::accumulator::Accumulated::from_proto(a).map(|a| a.amount.show());
            println!("    {}\t{}", a.name, value.unwrap_or_default());
        }
    }
    if !detail.failures.is_empty() {
        println!("  failed attempts (as this driver saw them end):");
        for f in &detail.failures {
            println!(
                "    stage {} task {} attempt {} on {}: {}",
                f.stage, f.task, f.attempt, f.worker, f.message
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
