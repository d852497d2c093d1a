//! `trackd-load`: load-test a trackd deployment (or anything that takes POSTs)
//! over keep-alive HTTP/1.1 connections. See BENCHMARKS.md.

use std::io::{IsTerminal, Write};
use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use axum::body::Bytes;
use clap::Parser;

use trackd::load::{self, LoadConfig};

/// Sends POST requests to a trackd server (or any HTTP/1.1 server) over
/// keep-alive connections and reports events/s, requests/s, status counts and
/// latency percentiles.
///
/// Without --rate it runs a closed loop: each connection sends as soon as its
/// previous answer arrives. With --rate it runs an open loop at that many
/// requests per second, measuring each latency from the moment the request was
/// due, so a stalled server cannot hide its stalls (no coordinated omission).
/// The run ends after --duration-s or --requests, whichever comes first.
#[derive(Debug, Parser)]
#[command(name = "trackd-load", version, about, long_about, max_term_width = 100)]
struct Args {
    /// Target: `http://host:port/path`. The path defaults to /track, or /batch
    /// when --batch is more than 1. Only plain http is supported.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    url: String,

    /// Keep-alive connections to open.
    #[arg(short, long, default_value_t = 32,
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    connections: u64,

    /// Open loop at this many requests per second (omit for a closed loop).
    #[arg(long)]
    rate: Option<f64>,

    /// Longest the run lasts, in seconds.
    #[arg(short, long, default_value_t = 10.0)]
    duration_s: f64,

    /// Most requests to send.
    #[arg(short = 'n', long)]
    requests: Option<u64>,

    /// Events per request: 1 sends a JSON object, more send a JSON array.
    #[arg(short, long, default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    batch: u64,

    /// Approximate size of each generated event in bytes (padded with an extra key).
    #[arg(long, default_value_t = 0)]
    event_bytes: usize,

    /// Send this file as the body instead of generated events (set --batch to
    /// the number of events it holds, for the events/s figure).
    #[arg(long, value_name = "PATH")]
    body_file: Option<PathBuf>,

    /// Print the summary as one JSON object on standard output.
    #[arg(long)]
    json: bool,

    /// Worker threads of the client (1 keeps the whole generator on one core).
    #[arg(long, default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..=256))]
    threads: u64,
}

fn main() -> ExitCode {
    match real_main() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("trackd-load: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn real_main() -> anyhow::Result<bool> {
    let args = Args::parse();
    if !(args.duration_s > 0.0 && args.duration_s <= 3600.0) {
        bail!("--duration-s must be more than 0 and at most 3600");
    }
    if let Some(rate) = args.rate {
        if !(rate > 0.0 && rate.is_finite()) {
            bail!("--rate must be a positive number of requests per second");
        }
    }
    let (host, path) = split_url(&args.url)?;
    let path = path.unwrap_or_else(|| if args.batch > 1 { "/batch" } else { "/track" }.into());
    let addr = host
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {host}"))?
        .next()
        .with_context(|| format!("{host} has no address"))?;
    let body = match &args.body_file {
        Some(file) => Bytes::from(
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?,
        ),
        None => load::sample_body(args.batch, args.event_bytes),
    };
    let config = LoadConfig {
        addr,
        host,
        path,
        body,
        events_per_request: args.batch,
        connections: usize::try_from(args.connections)?,
        rate: args.rate,
        duration: Duration::from_secs_f64(args.duration_s),
        max_requests: args.requests,
        progress: std::io::stderr().is_terminal(),
    };
    let runtime = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(usize::try_from(args.threads)?)
            .enable_all()
            .build()?
    };
    let summary = runtime
        .block_on(load::run(config))
        .with_context(|| format!("cannot connect to {}", args.url))?;
    let text = if args.json {
        serde_json::to_string(&summary)? + "\n"
    } else {
        summary.to_text()
    };
    // A closed pipe (`| head`) is not worth a panic.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    Ok(summary.all_ok())
}

/// Splits `http://host:port/path` into `host:port` and the path, if any.
fn split_url(url: &str) -> anyhow::Result<(String, Option<String>)> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("`{url}`: only http:// URLs are supported"))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(rest[i..].to_owned())),
        None => (rest, None),
    };
    if host.is_empty() {
        bail!("`{url}` has no host");
    }
    let host = if host.contains(':') && !host.ends_with(']') {
        host.to_owned()
    } else {
        format!("{host}:80")
    };
    Ok((host, path.filter(|p| p != "/")))
}
