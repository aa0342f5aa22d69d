//! Broadcast variables and accumulators on the embedded engine, against sequential
//! computations (the cluster's are in `cluster` and `chaos`).

use std::collections::HashMap;

use crate::helpers::engine;

#[test]
fn accumulators_count_every_task_once_per_succeeded_job_and_drop_a_failed_jobs_updates() {
    let ctx = engine(2, 3);
    let rows = ctx.accumulator::<u64>("rows");
    let total = ctx.accumulator::<i64>("total");
    let mean = ctx.accumulator::<f64>("halves");
    let xs: Vec<i64> = (-50..250).collect();
    let ds = ctx.parallelize(xs.clone(), 4).unwrap();
    let counted = ds.map_with((rows.clone(), total.clone(), mean.clone()), |(rows, total, mean), x| {
        rows.add(1);
        total.add(x);
        mean.add(0.5);
        x
    });
    // Through a shuffle, with the updates made on the map side.
    assert_eq!(
        counted
            .map(|x| (x.rem_euclid(5), 1u64))
            .reduce_by_key(|a, b| a + b)
            .count()
            .unwrap(),
        5
    );
    assert_eq!((rows.value(), total.value()), (300, xs.iter().sum::<i64>()));
    assert_eq!(mean.value(), 150.0);
    // A second job adds again.
    assert_eq!(counted.count().unwrap(), 300);
    assert_eq!(rows.value(), 600);
    // A job that fails after its updates were made: they are dropped.
    let failing = counted.map(|x| {
        assert!(x != 200, "refusing 200");
        x
    });
    assert!(failing.collect().is_err());
    assert_eq!(rows.value(), 600, "a failed job's updates counted");
    // The program adds to it directly too.
    rows.add(4);
    assert_eq!(rows.value(), 604);
    assert_eq!(rows.name(), "rows");
}

#[test]
fn a_broadcast_lookup_table_gives_the_sequential_join() {
    let ctx = engine(2, 3);
    let names: HashMap<u32, String> = (0..100u32).map(|i| (i, format!("name-{i}"))).collect();
    let shared = ctx.broadcast(names.clone()).unwrap();
    let ids: Vec<u32> = (0..1000u32).map(|i| (i * 37) % 150).collect();
    let got = ctx
        .parallelize(ids.clone(), 5)
        .unwrap()
        .map_with(shared, |names, id| names.value().get(&id).cloned())
        .collect()
        .unwrap();
    let want: Vec<Option<String>> = ids.iter().map(|id| names.get(id).cloned()).collect();
    assert_eq!(got, want);
}
