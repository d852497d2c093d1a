//! HTTP end to end, in process: a loopback trackd and a keep-alive client.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::sync::Arc;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::Request;
use hyper_util::rt::TokioIo;
use trackd::clock::SystemClock;
use trackd::config::Config;

mod common;

fn http(c: &mut Criterion) {
    let runtime = trackd::server::runtime().expect("runtime");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (addr, server) = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let server = tokio::spawn(trackd::server::run(
            listener,
            Config::default(),
            Box::new(common::NullSink::default()),
            Arc::new(SystemClock),
            async {
                let _ = stop_rx.await;
            },
        ));
        (addr, server)
    });
    let mut sender = runtime.block_on(async {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        sender
    });

    let mut group = c.benchmark_group("http");
    for (path, events) in [("/track", 1u64), ("/batch", 100)] {
        let body = trackd::load::sample_body(events, 0);
        group.throughput(Throughput::Elements(events));
        group.bench_function(BenchmarkId::new("keep_alive", path), |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        sender.ready().await.expect("connection ready");
                        let request = Request::post(path)
                            .header(HOST, "bench")
                            .header(CONTENT_TYPE, "application/json")
                            .body(Full::new(body.clone()))
                            .expect("request");
                        let response = sender.send_request(request).await.expect("answer");
                        assert!(
                            response.status().is_success(),
                            "{path}: {}",
                            response.status()
                        );
                        let _: Bytes = response
                            .into_body()
                            .collect()
                            .await
                            .expect("body")
                            .to_bytes();
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();
    drop(sender);
    let _ = stop_tx.send(());
    runtime
        .block_on(server)
        .expect("server task")
        .expect("server drained");
}

criterion_group!(benches, http);
criterion_main!(benches);
