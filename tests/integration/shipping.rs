//! Closure shipping: a trampoline's offset from the anchor is the same in every process of
//! one executable, so a plan built in one process runs in another.

use std::process::Command;

use ringleader_core::plan::shipped::Shipped;
use ringleader_core::plan::{SinkFn, StepFn};
use ringleader_core::ship;

use crate::helpers::Bounded;

/// The map trampoline of the closure `f` (which captures nothing, as every shipped one).
fn map_of<F: Fn(i64) -> i64 + 'static>(_: F) -> (Shipped<StepFn>, StepFn) {
    let f = ringleader_core::ops::narrow::map::<i64, i64, F> as StepFn;
    (ship!(ringleader_core::ops::narrow::map::<i64, i64, F> as StepFn), f)
}

/// The filter trampoline of the closure `f`.
fn filter_of<F: Fn(&String) -> bool + 'static>(_: F) -> (Shipped<StepFn>, StepFn) {
    let f = ringleader_core::ops::narrow::filter::<String, F> as StepFn;
    (ship!(ringleader_core::ops::narrow::filter::<String, F> as StepFn), f)
}

/// The trampolines of two closures; the same closures (types) in every call.
fn trampolines() -> [(Shipped<StepFn>, StepFn); 2] {
    [map_of(|x| x * 2), filter_of(|s| s.is_empty())]
}

fn offsets() -> Vec<i64> {
    trampolines().into_iter().map(|(s, _)| s.offset()).collect()
}

/// A `Shipped` as a plan from elsewhere would carry it: any offset at all.
fn from_plan<S: ringleader_core::plan::shipped::Signature>(offset: i64) -> Shipped<S> {
    postcard::from_bytes(&postcard::to_stdvec(&offset).unwrap()).unwrap()
}

#[test]
fn an_offset_off_the_trampoline_table_is_an_error_not_a_jump() {
    let (shipped, map) = trampolines()[0];
    // SAFETY (all below): this process built the offsets; the check is what is tested.
    let resolved = unsafe { from_plan::<StepFn>(shipped.offset()).resolve() }.unwrap();
    assert_eq!(resolved as usize, map as usize);
    let anchor = ringleader_core::plan::shipped::anchor as fn() -> u64 as usize as i64;
    let bad = [
        ("the function itself, not its entry", map as usize as i64 - anchor),
        ("inside an entry", shipped.offset() + 8),
        ("misaligned", shipped.offset() + 1),
        ("the anchor", 0),
        ("far outside the executable", 1 << 40),
        ("below address zero", -anchor - 64),
        ("i64::MAX", i64::MAX),
        ("i64::MIN", i64::MIN),
    ];
    for (what, offset) in bad {
        let refused = unsafe { from_plan::<StepFn>(offset).resolve() };
        assert!(refused.is_err(), "{what}: offset {offset:+#x} resolved");
        assert!(refused.unwrap_err().to_string().contains("trampoline table"));
    }
    // An entry of another signature is not an entry of this one.
    let sink = ship!(ringleader_core::ops::sinks::hash::<i64, i64> as SinkFn);
    assert!(unsafe { from_plan::<SinkFn>(sink.offset()).resolve() }.is_ok());
    assert!(unsafe { from_plan::<StepFn>(sink.offset()).resolve() }.is_err());
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
        .bounded();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("OFFSETS"))
        .unwrap_or_else(|| panic!("no offsets in {stdout}"));
    assert_eq!(line, format!("OFFSETS {:?}", offsets()));
    // And resolving an offset gives back a callable trampoline.
    let (shipped, map) = trampolines()[0];
    let resolved = unsafe { shipped.resolve() }.unwrap();
    assert_eq!(resolved as usize, map as usize);
}
