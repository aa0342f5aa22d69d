//! Closure shipping: a trampoline's offset from the anchor is the same in every process of
//! one executable, so a plan built in one process runs in another.

use std::process::Command;

use ringleader_core::plan::StepFn;
use ringleader_core::shipped::Shipped;

fn offsets() -> Vec<i64> {
    vec![
        Shipped::new(ringleader_core::ops::narrow::map::<i64, i64, fn(i64) -> i64> as StepFn).offset(),
        Shipped::new(ringleader_core::ops::narrow::filter::<String, fn(&String) -> bool> as StepFn).offset(),
    ]
}

#[test]
fn print_offsets_for_parent() {
    if std::env::var_os("RINGLEADER_TEST_PRINT_OFFSETS").is_some() {
        println!("OFFSETS {:?}", offsets());
    }
}

#[test]
fn offsets_are_equal_in_another_process_of_the_same_binary() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "shipping::print_offsets_for_parent", "--nocapture"])
        .env("RINGLEADER_TEST_PRINT_OFFSETS", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("OFFSETS"))
        .unwrap_or_else(|| panic!("no offsets in {stdout}"));
    assert_eq!(line, format!("OFFSETS {:?}", offsets()));
    // And resolving an offset gives back a callable trampoline.
    let shipped = Shipped::new(ringleader_core::ops::narrow::map::<i64, i64, fn(i64) -> i64> as StepFn);
    let resolved = unsafe { shipped.resolve() };
    assert_eq!(
        resolved as usize,
        ringleader_core::ops::narrow::map::<i64, i64, fn(i64) -> i64> as StepFn as usize
    );
}
