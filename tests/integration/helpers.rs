//! Shared helpers: engines with small settings, temp inputs, paths of built binaries.

use std::path::{Path, PathBuf};

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
