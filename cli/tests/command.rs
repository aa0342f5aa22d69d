//! The `ringleader` command on its own: generators are deterministic, the validator catches
//! bad output, wrong flags print usage. (The tests that run jobs and clusters with it are
//! the workspace's integration tests, `tests/integration/`.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

/// Runs `ringleader ARGS` to its end; past two minutes it is killed and the test fails.
fn ringleader(args: &[&str]) -> std::process::Output {
    use std::io::Read;
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringleader"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run ringleader");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text);
            text
        })
    };
    let output = drain(Box::new(child.stdout.take().expect("stdout")));
    let errors = drain(Box::new(child.stderr.take().expect("stderr")));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ringleader {args:?} did not finish within two minutes");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    std::process::Output {
        status,
        stdout: output.join().unwrap_or_default(),
        stderr: errors.join().unwrap_or_default(),
    }
}

fn gen_sort(dir: &std::path::Path, files: &str, extra: &[&str]) {
    let mut args = vec![
        "gen",
        "sort",
        "--records",
        "5000",
        "--files",
        files,
        "--out",
        dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = ringleader(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn concat(dir: &std::path::Path) -> Vec<u8> {
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files.iter().flat_map(|f| std::fs::read(f).unwrap()).collect()
}

#[test]
fn gen_sort_is_deterministic_per_seed_whatever_the_file_count() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("c"));
    gen_sort(&a, "1", &[]);
    gen_sort(&b, "3", &[]);
    gen_sort(&c, "1", &["--seed", "7"]);
    let (a, b, c) = (concat(&a), concat(&b), concat(&c));
    assert_eq!(a.len(), 500_000);
    assert_eq!(a, b);
    assert_ne!(a, c);
    // gensort's layout: 10-byte key, 00 11, row id in hex, 88 99 AA BB, filler, CC DD EE FF.
    let r = &a[100..200];
    assert_eq!(&r[10..12], &[0x00, 0x11]);
    assert_eq!(&r[12..44], b"00000000000000000000000000000001");
    assert_eq!(&r[44..48], &[0x88, 0x99, 0xAA, 0xBB]);
    assert_eq!(&r[96..100], &[0xCC, 0xDD, 0xEE, 0xFF]);
}

#[test]
fn skewed_records_have_hot_keys() {
    let dir = tempfile::tempdir().unwrap();
    gen_sort(dir.path(), "1", &["--skew"]);
    let bytes = concat(dir.path());
    let mut keys: Vec<&[u8]> = bytes.chunks(100).map(|r| &r[..10]).collect();
    keys.sort();
    let distinct = {
        let mut k = keys.clone();
        k.dedup();
        k.len()
    };
    assert!(distinct < 4000, "skew should repeat keys: {distinct} distinct of 5000");
}

/// Writes `records` as two part files under `dir/name`; returns the directory.
fn write_parts(dir: &std::path::Path, name: &str, records: &[Vec<u8>], split: usize) -> std::path::PathBuf {
    let out = dir.join(name);
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("part-00000"), records[..split].concat()).unwrap();
    std::fs::write(out.join("part-00001"), records[split..].concat()).unwrap();
    out
}

fn validate(input: &std::path::Path, output: &std::path::Path) -> std::process::Output {
    ringleader(&[
        "validate",
        "sort",
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ])
}

#[test]
fn validate_accepts_sorted_output_and_reports_the_first_violation() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    gen_sort(&input, "2", &[]);
    let mut records: Vec<Vec<u8>> = concat(&input).chunks(100).map(<[u8]>::to_vec).collect();
    records.sort_by(|a, b| a[..10].cmp(&b[..10]));
    let out = validate(&input, &write_parts(dir.path(), "good", &records, 2000));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    records.swap(3000, 3001);
    let bad = write_parts(dir.path(), "bad", &records, 2000);
    let out = validate(&input, &bad);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("part-00001 record 1001") && stdout.contains("byte offset 100100"),
        "{stdout}"
    );
    let short = write_parts(dir.path(), "short", &records[..4999], 2000);
    assert!(String::from_utf8_lossy(&validate(&input, &short).stdout).contains("4999 records, the input 5000"));
}

#[test]
fn gen_refuses_a_non_empty_directory_without_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x"), "keep").unwrap();
    let out = ringleader(&["gen", "numbers", "--rows", "10", "--out", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--overwrite"));
    assert!(dir.path().join("x").exists());
}

#[test]
fn wrong_flags_print_usage_and_exit_2() {
    for args in [
        &["gen", "sort", "--out", "x"][..],
        &["frobnicate"],
        &["validate", "sort", "--bogus"],
    ] {
        let out = ringleader(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("Usage"), "{args:?}");
    }
}
