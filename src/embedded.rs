//! The embedded engine: runs a job's stages in order, each stage's tasks in parallel on a
//! rayon pool, shuffling through memory (spilling past the configured bound).

use std::time::Instant;

use rayon::prelude::*;
use ringleader_core::Result;
use ringleader_core::exec::run_task;
use ringleader_core::ids::Attempt;
use ringleader_core::plan::{JobPlan, StageOutput, StagePlan, TaskValue};
use ringleader_core::shuffle::LocalShuffle;

use crate::config::Config;
use crate::progress::StageProgress;

/// What a finished job measured.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct JobStats {
    /// Bytes written to disk because the memory limit was reached.
    pub(crate) spilled_bytes: u64,
    /// Of those, what operators (sorts, hash tables) wrote.
    pub(crate) operator_spilled_bytes: u64,
}

/// Runs `plan` and returns the final stage's task values, in partition order.
pub(crate) fn run_job(config: &Config, pool: &rayon::ThreadPool, plan: &JobPlan) -> Result<(Vec<TaskValue>, JobStats)> {
    let shuffle = LocalShuffle::new(config.memory_limit, config.spill_dir.as_deref())?;
    for ((id, partition), reads) in plan.shuffle_reads() {
        shuffle.expect_reads(id, partition, reads);
    }
    let started = Instant::now();
    let mut summary = crate::progress::JobSummary {
        job: "job".to_string(),
        ..Default::default()
    };
    let mut values = Vec::new();
    // Each task's accumulator updates, counted when the job succeeds.
    let mut accumulated = Vec::new();
    // Each stage's task values, for a later stage whose sink state they make.
    let mut stage_values: Vec<Vec<TaskValue>> = Vec::with_capacity(plan.stages.len());
    for (index, stage) in plan.stages.iter().enumerate() {
        let resolved;
        let stage = match stage.state_from {
            Some(from) => {
                let given = stage_values.get(from.index()).map(Vec::as_slice).unwrap_or_default();
                resolved = StagePlan {
                    output: stage.output_given(given)?,
                    ..stage.clone()
                };
                &resolved
            }
            None => stage,
        };
        let kind = match &stage.output {
            StageOutput::Shuffle { .. } => "map",
            StageOutput::Action { .. } => "result",
        };
        let progress = StageProgress::start(config.progress, stage.id, kind, stage.tasks.len());
        let started = Instant::now();
        let result: Result<Vec<(TaskValue, Vec<_>)>> = pool.install(|| {
            (0..stage.tasks.len())
                .into_par_iter()
                .with_max_len(1)
                .map(|i| {
                    let ran = run_task(stage, i, Attempt(0), &shuffle)?;
                    progress.finished(&ran);
                    Ok((ran.value, ran.accumulated))
                })
                .collect()
        });
        progress.finish(result.is_ok(), started.elapsed());
        let (ran_values, updates): (Vec<TaskValue>, Vec<_>) = result?.into_iter().unzip();
        values = ran_values;
        accumulated.extend(updates);
        let last = index + 1 == plan.stages.len();
        summary.add(
            crate::progress::written(&values),
            values.len() as u64,
            values.len() as u64,
            last,
        );
        stage_values.push(values.clone());
    }
    crate::accumulator::record_job(&ringleader_core::plan::accumulator::totals(&accumulated));
    summary.seconds = started.elapsed().as_secs_f64();
    summary.spilled = Some(shuffle.spilled_bytes());
    crate::progress::show_summary(config.progress, &summary);
    Ok((
        values,
        JobStats {
            spilled_bytes: shuffle.spilled_bytes(),
            operator_spilled_bytes: shuffle.operator_spilled_bytes(),
        },
    ))
}
