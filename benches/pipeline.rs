//! The pipeline without HTTP: enqueue → writer thread → SQL → a null sink.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use trackd::queue::{EnqueueError, Queue};
use trackd::writer::{self, WriterConfig};

mod common;

fn pipeline(c: &mut Criterion) {
    let mut group = c.benchmark_group("pipeline");
    for per_push in [1usize, 100] {
        let queue = Arc::new(Queue::new(50_000));
        let sink = common::NullSink::default();
        let rows = sink.rows.clone();
        let config = WriterConfig {
            max_rows: 1000,
            max_bytes: 1 << 20,
            linger: Duration::from_millis(1),
            dialect: trackd::sql::Dialect::Postgres,
            table: "events".parse().expect("valid table"),
        };
        let handle = writer::spawn(
            queue.clone(),
            Box::new(sink),
            config,
            trackd::metrics::Metrics::new(&trackd::config::Config::default()).writer(),
        )
        .expect("writer starts");
        let template = common::event(0);
        group.throughput(Throughput::Elements(per_push as u64));
        group.bench_function(BenchmarkId::new("events_per_push", per_push), |b| {
            b.iter_custom(|iters| {
                let target = rows.load(Ordering::Acquire) + iters * per_push as u64;
                let start = Instant::now();
                for _ in 0..iters {
                    let mut events: Vec<_> = (0..per_push).map(|_| template.clone()).collect();
                    loop {
                        match queue.push_all(events) {
                            Ok(()) => break,
                            Err(EnqueueError::Full) => {
                                std::thread::yield_now();
                                events = (0..per_push).map(|_| template.clone()).collect();
                            }
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
                // Count the time until the writer has written them all.
                while rows.load(Ordering::Acquire) < target {
                    std::thread::yield_now();
                }
                start.elapsed()
            })
        });
        queue.close();
        handle
            .join()
            .expect("writer thread")
            .expect("writer drained");
    }
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
