//! Running a benchmark's commands: wall time and peak resident memory (from `wait4`, so
//! each run's own), medians, alternating two commands, and how figures are written.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

pub(super) fn with(mut c: Command, f: impl Fn(&mut Command)) -> Command {
    f(&mut c);
    c
}

/// One measured run.
pub(super) struct Measured {
    pub(super) elapsed: Duration,
    pub(super) peak_bytes: u64,
    pub(super) stdout: String,
}

/// The flags of an example reading `input` and writing `output` (replacing it): the sort's
/// and the word count's.
pub(super) fn io_flags<'a>(input: &'a Path, output: &'a Path) -> impl Fn(&mut Command) + Copy + 'a {
    move |c: &mut Command| {
        c.arg("--input")
            .arg(input)
            .arg("--output")
            .arg(output)
            .arg("--overwrite");
    }
}

/// Runs `command` to completion; its wall time and peak resident memory.
pub(super) fn measure(command: &mut Command) -> anyhow::Result<Measured> {
    let started = Instant::now();
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("RINGLEADER_PROGRESS", "0")
        .spawn()
        .with_context(|| format!("starting {command:?}"))?;
    // Both pipes are drained at once: a child that fills one while this reads the other
    // to its end would wait forever.
    let stderr = child.stderr.take().map(|mut err| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            text
        })
    });
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_string(&mut stdout)?;
    }
    let stderr = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
    let (status, peak_bytes) = wait_with_peak(child.id() as i32)?;
    let elapsed = started.elapsed();
    if status != 0 {
        bail!("{command:?} failed (status {status}): {}", stderr.trim());
    }
    Ok(Measured {
        elapsed,
        peak_bytes,
        stdout,
    })
}

/// Reaps `pid`, returning its exit status and its peak resident set (`ru_maxrss`).
fn wait_with_peak(pid: i32) -> anyhow::Result<(i32, u64)> {
    let mut status = 0;
    // SAFETY: rusage is plain data, zero-initialised; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is a child of this process that has not been reaped yet.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if r < 0 {
        bail!("wait4: {}", std::io::Error::last_os_error());
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    Ok((code, usage.ru_maxrss as u64 * 1024))
}

pub(super) fn median(mut runs: Vec<Measured>) -> Measured {
    runs.sort_by_key(|m| m.elapsed);
    let mid = runs.len() / 2;
    runs.swap_remove(mid)
}

pub(super) fn gb(bytes: u64) -> String {
    format!("{:.2} GB", bytes as f64 / 1e9)
}

pub(super) fn rate(bytes: u64, d: Duration) -> String {
    format!("{:.0} MB/s", bytes as f64 / 1e6 / d.as_secs_f64())
}

pub(super) fn alternate(
    runs: usize,
    what: &str,
    mut ringleader: impl FnMut() -> anyhow::Result<Measured>,
    mut baseline: impl FnMut() -> anyhow::Result<Measured>,
) -> anyhow::Result<(Measured, Measured)> {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for i in 0..runs {
        eprintln!("{what}: run {}/{runs}", i + 1);
        a.push(ringleader().with_context(|| format!("ringleader {what}"))?);
        b.push(baseline().with_context(|| format!("baseline {what}"))?);
    }
    Ok((median(a), median(b)))
}

/// The last line of a job's output that states its result: the line an example prints
/// after it about spilling past its memory budget (`RINGLEADER_MEMORY` set low) is not one,
/// and a baseline never prints it.
pub(super) fn last_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .rfind(|line| !line.starts_with("spilled "))
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_result_line_is_the_last_one_not_about_spilling() {
        assert_eq!(
            last_line("1884 distinct words, written to out (8 part files)\n"),
            "1884 distinct words, written to out (8 part files)"
        );
        assert_eq!(
            last_line("sorted 3 records into 2 files in out\nspilled 1234 bytes past the memory budget\n"),
            "sorted 3 records into 2 files in out"
        );
        assert_eq!(last_line(""), "");
    }

    #[test]
    fn a_child_that_fills_its_stderr_pipe_is_measured_not_deadlocked() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // 1 MB on stderr before anything on stdout: far past a pipe's 64 KiB.
            let mut command = Command::new("sh");
            command.args(["-c", "head -c 1000000 /dev/zero >&2; echo done"]);
            let _ = tx.send(measure(&mut command).map(|m| m.stdout));
        });
        let stdout = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("measure returned within a minute")
            .expect("the command succeeded");
        assert_eq!(stdout.trim(), "done");
    }

    #[test]
    fn a_failing_child_is_an_error_with_its_stderr() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo broken >&2; exit 3"]);
        let err = measure(&mut command).err().expect("a failure").to_string();
        assert!(err.contains("status 3") && err.contains("broken"), "{err}");
    }
}
