//! SQL building: rows per second into multi-row INSERT statements.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use trackd::sql::{Dialect, InsertBuilder};

mod common;

fn insert(c: &mut Criterion) {
    let table = "events".parse().expect("valid table");
    let mut group = c.benchmark_group("sql_insert");
    for (label, size) in [("small", 0), ("1KB", 1024)] {
        let event = common::event(size);
        for rows in [1u64, 100, 1000] {
            let mut builder = InsertBuilder::new(Dialect::Postgres, &table);
            group.throughput(Throughput::Elements(rows));
            group.bench_with_input(BenchmarkId::new(label, rows), &rows, |b, &rows| {
                b.iter(|| {
                    for _ in 0..rows {
                        builder.push(black_box(&event));
                    }
                    black_box(builder.finish().len());
                    builder.clear();
                })
            });
        }
    }
    // Rows from different requests: nothing to reuse between rows (the
    // /track case), each with its own time and User-Agent.
    let events: Vec<_> = (0..1000)
        .map(|i| {
            let mut e = common::event(0);
            e.received_at += chrono::TimeDelta::microseconds(i);
            e.user_agent = e.user_agent.as_deref().map(Into::into);
            e
        })
        .collect();
    let mut builder = InsertBuilder::new(Dialect::Postgres, &table);
    group.throughput(Throughput::Elements(1000));
    group.bench_function(BenchmarkId::new("small_distinct_requests", 1000), |b| {
        b.iter(|| {
            for event in &events {
                builder.push(black_box(event));
            }
            black_box(builder.finish().len());
            builder.clear();
        })
    });
    group.finish();
}

criterion_group!(benches, insert);
criterion_main!(benches);
