//! Per-stage progress on stderr, shown only when stderr is a terminal.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar for one stage, or nothing when progress is off.
pub(crate) struct StageProgress {
    bar: Option<ProgressBar>,
}

impl StageProgress {
    /// Starts a bar for stage `id` of `tasks` tasks, if enabled and stderr is a terminal.
    pub(crate) fn start(enabled: bool, id: u32, kind: &str, tasks: usize) -> Self {
        if !enabled || !std::io::stderr().is_terminal() {
            return StageProgress { bar: None };
        }
        let bar = ProgressBar::new(tasks as u64);
        let style = ProgressStyle::with_template("stage {prefix} [{bar:30}] {pos}/{len} tasks {elapsed} (eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(format!("{id} ({kind})"));
        StageProgress { bar: Some(bar) }
    }

    /// Records `done` finished tasks.
    pub(crate) fn set(&self, done: usize) {
        if let Some(bar) = &self.bar {
            bar.set_position(done as u64);
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
