//! Parse + validate: wire JSON to events, per second.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use trackd::event::{parse_batch, parse_event};

mod common;

fn parse(c: &mut Criterion) {
    let meta = common::meta();
    let mut group = c.benchmark_group("parse");
    for (label, size) in [("small", 0), ("1KB", 1024)] {
        let body = common::body(size);
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("event", label), |b| {
            b.iter(|| parse_event(black_box(&body), &meta).expect("valid"))
        });
        let batch = trackd::load::sample_body(100, size);
        group.throughput(Throughput::Elements(100));
        group.bench_function(BenchmarkId::new("batch_100", label), |b| {
            b.iter(|| parse_batch(black_box(&batch), &meta).expect("valid"))
        });
    }
    group.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
