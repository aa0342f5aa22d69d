//! Closure shipping: a trampoline's offset from the anchor is the same in every process of
//! one executable, so a plan built in one process runs in another.

use std::process::Command;

use ringleader_core::plan::StepFn;
use ringleader_core::shipped::Shipped;

/// The map trampoline of the closure `f` (which captures nothing, as every shipped one).
fn map_of<F: Fn(i64) -> i64 + 'static>(_: F) -> StepFn {
    ringleader_core::ops::narrow::map::<i64, i64, F>
}

/// The filter trampoline of the closure `f`.
fn filter_of<F: Fn(&String) -> bool + 'static>(_: F) -> StepFn {
    ringleader_core::ops::narrow::filter::<String, F>
}

/// The trampolines of two closures; the same closures (types) in every call.
fn trampolines() -> [StepFn; 2] {
    [map_of(|x| x * 2), filter_of(|s| s.is_empty())]
}

fn offsets() -> Vec<i64> {
    trampolines().into_iter().map(|f| Shipped::new(f).offset()).collect()
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
    let map = trampolines()[0];
    let resolved = unsafe { Shipped::new(map).resolve() };
    assert_eq!(resolved as usize, map as usize);
}
