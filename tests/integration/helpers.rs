//! Shared helpers: engines with small settings, temp inputs, paths of built binaries.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ringleader::{Config, Context};

/// An embedded engine with `threads` threads and `partitions` shuffle partitions.
pub fn engine(threads: usize, partitions: u32) -> Context {
    Context::new(Config {
        threads,
        shuffle_partitions: partitions,
        progress: false,
        ..Config::default()
    })
    .expect("engine")
}

/// Writes `text` to `dir/name`.
pub fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write fixture");
    path
}

/// The directory holding this build's executables (`target/<profile>`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let deps = exe.parent().expect("deps dir");
    deps.parent().expect("profile dir").to_path_buf()
}

/// A built example binary.
pub fn example(name: &str) -> PathBuf {
    let path = target_dir().join("examples").join(name);
    assert!(
        path.exists(),
        "{} is not built; cargo test builds examples",
        path.display()
    );
    path
}

/// The `ringleader` binary.
pub fn ringleader_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ringleader"))
}

/// Names of the `part-*` files of an output directory, sorted.
pub fn parts(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("output dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("part-")))
        .collect();
    files.sort();
    files
}

/// Every line of an output directory's `part-*` files, sorted.
pub fn sorted_lines(dir: &Path) -> Vec<String> {
    let mut lines: Vec<String> = parts(dir)
        .iter()
        .flat_map(|p| {
            std::fs::read_to_string(p)
                .expect("part file")
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    lines.sort();
    lines
}

/// Command-line arguments from anything path- or string-like.
macro_rules! args {
    ($($a:expr),* $(,)?) => { [$(std::ffi::OsString::from(AsRef::<std::ffi::OsStr>::as_ref(&$a))),*] };
}
pub(crate) use args;

/// Runs an example embedded (no cluster), without progress lines.
pub fn embedded(name: &str, args: &[OsString]) -> Output {
    Command::new(example(name))
        .args(args)
        .env_remove("RINGLEADER_MASTER")
        .env("RINGLEADER_PROGRESS", "0")
        .output()
        .unwrap()
}

/// The stdout of a successful run; a failed run fails the test with its stderr.
pub fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The concatenated part files of an output directory, in name order.
pub fn concat(dir: &Path) -> Vec<u8> {
    parts(dir).iter().flat_map(|p| std::fs::read(p).unwrap()).collect()
}

/// A text input whose every line starts with its own id (`l<file>_<line>`), for counting
/// how often each line ran.
pub fn numbered_text(dir: &Path, files: usize, lines: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for f in 0..files {
        let text: String = (0..lines)
            .map(|l| format!("l{f}_{l} alpha beta w{} gamma w{}\n", l % 7, (f * l) % 5))
            .collect();
        std::fs::write(dir.join(format!("part-{f:02}.txt")), text).unwrap();
    }
}

/// Waits for `child` at most `limit`; past it, kills it and fails the test (no test waits
/// forever on a hung job).
pub fn wait_bounded(child: &mut std::process::Child, limit: std::time::Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("a job did not finish within {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
