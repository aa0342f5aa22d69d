//! Micro-benchmarks of placement: ring lookups and hash partitioning.

#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{Criterion, Throughput, black_box, criterion_group, criterion_main};
use ringleader_core::net::ring::Ring;
use ringleader_core::ops::sinks::reduce_partition_of;

fn ring_lookup(c: &mut Criterion) {
    let mut ring = Ring::new(256);
    for i in 0..10 {
        ring.add(format!("worker-{i}"), 1);
    }
    let keys: Vec<String> = (0..1024).map(|i| format!("dataset/{i}")).collect();
    let mut group = c.benchmark_group("ring");
    group.throughput(Throughput::Elements(keys.len() as u64));
    group.bench_function("owner of 1024 keys, 10 nodes x 256 vnodes", |b| {
        b.iter(|| {
            keys.iter()
                .filter_map(|k| ring.owner(k.as_bytes()))
                .map(String::len)
                .sum::<usize>()
        })
    });
    group.bench_function("3 owners of 1024 keys", |b| {
        b.iter(|| keys.iter().map(|k| ring.owners(k.as_bytes(), 3).len()).sum::<usize>())
    });
    group.finish();
}

fn partitioning(c: &mut Criterion) {
    let words: Vec<String> = (0..100_000).map(|i| format!("word{i}")).collect();
    let mut group = c.benchmark_group("partitioning");
    group.throughput(Throughput::Elements(words.len() as u64));
    group.bench_function("hash partition 100k strings into 64", |b| {
        b.iter(|| {
            words
                .iter()
                .map(|w| reduce_partition_of(black_box(w), 64) as u64)
                .sum::<u64>()
        })
    });
    group.finish();
}

criterion_group!(benches, ring_lookup, partitioning);
criterion_main!(benches);
