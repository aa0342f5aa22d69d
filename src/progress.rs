//! Per-stage progress on stderr, shown only when stderr is a terminal.

use std::io::IsTerminal;
use std::time::Duration;

use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};
use ringleader_core::plan::{Ran, Volume};
use ringleader_core::sync::lock;

/// A progress bar for one stage, or nothing when progress is off.
pub(crate) struct StageProgress {
    bar: Option<ProgressBar>,
    /// Tasks finished, and what they read and wrote.
    sofar: Mutex<(u64, Volume, Volume)>,
}

impl StageProgress {
    /// Starts a bar for stage `id` of `tasks` tasks, if enabled and stderr is a terminal.
    pub(crate) fn start(enabled: bool, id: ringleader_core::ids::StageId, kind: &str, tasks: usize) -> Self {
        let sofar = Mutex::default();
        if !enabled || !std::io::stderr().is_terminal() {
            return StageProgress { bar: None, sofar };
        }
        let bar = ProgressBar::new(tasks as u64);
        let style =
            ProgressStyle::with_template("stage {prefix} [{bar:30}] {pos}/{len} tasks {msg} {elapsed} (eta {eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(format!("{id} ({kind})"));
        StageProgress { bar: Some(bar), sofar }
    }

    /// Records a finished task.
    pub(crate) fn finished(&self, ran: &Ran) {
        let (done, read, written) = {
            let mut sofar = lock(&self.sofar);
            sofar.0 += 1;
            sofar.1 = sofar.1.plus(ran.read);
            sofar.2 = sofar.2.plus(written(std::slice::from_ref(&ran.value)));
            *sofar
        };
        if let Some(bar) = &self.bar {
            bar.set_position(done);
            bar.set_message(moved(read, written));
        }
    }

    /// Closes the bar.
    pub(crate) fn finish(&self, ok: bool, _elapsed: Duration) {
        if let Some(bar) = &self.bar {
            if ok {
                bar.finish();
            } else {
                bar.abandon();
            }
        }
    }
}

/// Prints `summary` on stderr when progress is shown (enabled, and stderr a terminal).
pub(crate) fn show_summary(enabled: bool, summary: &JobSummary) {
    if enabled && std::io::stderr().is_terminal() {
        eprintln!("{summary}");
    }
}

/// The line a finished job ends with: how long it took, what it moved, what ran again.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct JobSummary {
    /// The job (`job-NNNNNN` on a cluster, `job` embedded).
    pub(crate) job: String,
    /// Wall time from submission to the last result.
    pub(crate) seconds: f64,
    /// Stages run.
    pub(crate) stages: usize,
    /// Tasks in those stages.
    pub(crate) tasks: u64,
    /// Task attempts beyond one per task (failures, lost workers, speculative copies).
    pub(crate) retried: u64,
    /// Rows and bytes written into shuffles.
    pub(crate) shuffled: (u64, u64),
    /// Rows and bytes the final stage produced (written, stored, or returned).
    pub(crate) output: (u64, u64),
    /// Bytes spilled past the memory budget, where known (embedded).
    pub(crate) spilled: Option<u64>,
}

impl JobSummary {
    /// Adds a stage of `tasks` tasks and `attempts` attempts that moved `rows` and `bytes`:
    /// into a shuffle, or, for the `last` stage, out of the job.
    pub(crate) fn add(&mut self, Volume { rows, bytes }: Volume, tasks: u64, attempts: u64, last: bool) {
        self.stages += 1;
        self.tasks += tasks;
        self.retried += attempts.saturating_sub(tasks);
        if last {
            self.output = (rows, bytes);
        } else {
            self.shuffled.0 += rows;
            self.shuffled.1 += bytes;
        }
    }
}

/// The rows and bytes a stage's task values say they moved (a partial sum or a sample:
/// its bytes; a row count: its rows).
pub(crate) fn written(values: &[ringleader_core::plan::TaskValue]) -> Volume {
    values.iter().fold(Volume::default(), |sum, v| {
        let (rows, bytes) = v.volume();
        sum.plus(Volume {
            rows: rows.unwrap_or(0),
            bytes: bytes.unwrap_or(0),
        })
    })
}

/// A stage's progress message: what its finished tasks read and what they wrote.
pub(crate) fn moved(read: Volume, written: Volume) -> String {
    format!(
        "read {} rows, {}; out {} rows, {}",
        read.rows,
        human_bytes(read.bytes),
        written.rows,
        human_bytes(written.bytes)
    )
}

impl std::fmt::Display for JobSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} done in {:.2} s: {} stage{}, {} task{}",
            self.job,
            self.seconds,
            self.stages,
            if self.stages == 1 { "" } else { "s" },
            self.tasks,
            if self.tasks == 1 { "" } else { "s" },
        )?;
        if self.retried > 0 {
            write!(f, " ({} retried)", self.retried)?;
        }
        write!(
            f,
            "; {} rows, {} shuffled; {} rows, {} out",
            self.shuffled.0,
            human_bytes(self.shuffled.1),
            self.output.0,
            human_bytes(self.output.1)
        )?;
        if let Some(spilled) = self.spilled {
            write!(f, "; {} spilled", human_bytes(spilled))?;
        }
        Ok(())
    }
}

/// `bytes` in B, KB, MB or GB (powers of 1000, as the stage lines).
fn human_bytes(bytes: u64) -> String {
    match bytes {
        b if b >= 1_000_000_000 => format!("{:.2} GB", b as f64 / 1e9),
        b if b >= 1_000_000 => format!("{:.1} MB", b as f64 / 1e6),
        b if b >= 1_000 => format!("{:.1} KB", b as f64 / 1e3),
        b => format!("{b} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringleader_core::plan::TaskValue;

    #[test]
    fn a_summary_counts_shuffled_and_output_rows_and_retries() {
        let mut s = JobSummary {
            job: "job-000007".into(),
            seconds: 1.5,
            ..Default::default()
        };
        let map = [
            TaskValue::Shuffled { rows: 10, bytes: 2_000 },
            TaskValue::Shuffled { rows: 5, bytes: 1_000 },
        ];
        s.add(written(&map), 2, 3, false);
        s.add(written(&[TaskValue::Written { rows: 7, bytes: 70 }]), 1, 1, true);
        assert_eq!((s.stages, s.tasks, s.retried), (2, 3, 1));
        assert_eq!(
            s.to_string(),
            "job-000007 done in 1.50 s: 2 stages, 3 tasks (1 retried); 15 rows, 3.0 KB shuffled; 7 rows, 70 B out"
        );
        s.spilled = Some(2_500_000);
        assert!(s.to_string().ends_with("; 2.5 MB spilled"));
    }
}
