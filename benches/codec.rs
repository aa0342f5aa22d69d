//! Micro-benchmarks of the data path: Arrow encode/decode of rows and sorting records.

#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ringleader_core::data::record::Record;
use ringleader_core::data::{decode, encode};

#[derive(serde::Serialize, serde::Deserialize, Clone)]
struct Event {
    user: String,
    clicks: u32,
    score: f64,
}

fn arrow_codec(c: &mut Criterion) {
    let pairs: Vec<(String, u64)> = (0..65_536).map(|i| (format!("w{}", i % 5000), i)).collect();
    let events: Vec<Event> = (0..65_536)
        .map(|i| Event {
            user: format!("u{i}"),
            clicks: i % 7,
            score: i as f64,
        })
        .collect();
    let records: Vec<Record> = (0..65_536)
        .map(|i| ringleader_datasets::gensort::record(1, i, false))
        .collect();
    let mut group = c.benchmark_group("arrow");
    group.throughput(Throughput::Elements(65_536));
    group.bench_function("encode (String, u64) fast path", |b| b.iter(|| encode(&pairs).unwrap()));
    let batch = encode(&pairs).unwrap();
    group.bench_function("decode (String, u64) fast path", |b| {
        b.iter(|| decode::<(String, u64)>(&batch).unwrap())
    });
    group.bench_function("encode struct via serde_arrow", |b| b.iter(|| encode(&events).unwrap()));
    let batch = encode(&events).unwrap();
    group.bench_function("decode struct via serde_arrow", |b| {
        b.iter(|| decode::<Event>(&batch).unwrap())
    });
    group.bench_function("encode records", |b| b.iter(|| encode(&records).unwrap()));
    let batch = encode(&records).unwrap();
    group.bench_function("decode records", |b| b.iter(|| decode::<Record>(&batch).unwrap()));
    group.finish();
}

fn record_sort(c: &mut Criterion) {
    let records: Vec<Record> = (0..200_000)
        .map(|i| ringleader_datasets::gensort::record(3, i, false))
        .collect();
    let mut group = c.benchmark_group("record sort");
    group.throughput(Throughput::Bytes(records.len() as u64 * 100));
    group.sample_size(10);
    group.bench_function("sort_unstable_by_key on 200k records", |b| {
        b.iter_batched(
            || records.clone(),
            |mut r| r.sort_unstable_by_key(|x| x.key()),
            BatchSize::LargeInput,
        )
    });
    group.bench_function("ringleader sort_by_key_into(1) on 200k records", |b| {
        let ctx = ringleader::Context::new(ringleader::Config {
            progress: false,
            ..Default::default()
        })
        .unwrap();
        let ds = ctx
            .parallelize(records.clone(), 2)
            .unwrap()
            .sort_by_key_into(1, |r| r.key());
        b.iter(|| ds.count().unwrap())
    });
    group.finish();
}

criterion_group!(benches, arrow_codec, record_sort);
criterion_main!(benches);
