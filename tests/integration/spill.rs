//! The memory bound: past it, shuffle blocks spill to disk, and results do not change.

use ringleader::{Config, Context};

#[test]
fn shuffles_past_the_memory_limit_spill_and_stay_correct() {
    let spill = tempfile::tempdir().unwrap();
    let tiny = Context::new(Config {
        threads: 2,
        shuffle_partitions: 4,
        memory_limit: 64 << 10,
        spill_dir: Some(spill.path().to_path_buf()),
        progress: false,
        ..Config::default()
    })
    .unwrap();
    let roomy = crate::helpers::engine(2, 4);
    let rows: Vec<(u64, u64)> = (0..200_000u64).map(|i| (i % 5000, i)).collect();
    let run = |ctx: &Context| {
        let mut v = ctx
            .parallelize(rows.clone(), 8)
            .unwrap()
            .reduce_by_key(|a, b| a + b)
            .collect()
            .unwrap();
        v.sort();
        v
    };
    assert_eq!(run(&tiny), run(&roomy));
    assert!(tiny.last_spilled_bytes() > 0, "a 64 KiB limit must spill");
    assert_eq!(roomy.last_spilled_bytes(), 0);
    // Spill files are removed once the job is done.
    assert_eq!(std::fs::read_dir(spill.path()).unwrap().count(), 0);
}
