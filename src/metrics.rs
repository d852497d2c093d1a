//! Telemetry: every metric trackd exports, registered once, rendered for `/metrics`.
//!
//! The names are a contract with dashboards and alerts (see `docs/monitoring.md`).
//! Every counter, and every label combination a dashboard or alert reads, is
//! registered at startup so it is scraped as 0 before its first increment;
//! otherwise `rate()` has nothing to work on until something goes wrong.
//!
//! The recorder belongs to the server, not to the process-global `metrics`
//! recorder: handles are registered on it directly and cached, so the hot path
//! never looks a metric up by name, and every server — every test — has its
//! own registry.
//!
//! Cost per event stays off the request path: handlers add to a counter once
//! per request (with the number of events), and the writer thread records
//! per-batch telemetry, counting each written event's latency into its
//! bucket ([`crate::histogram`]).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::config::{to_usize, Config};
use crate::histogram::DurationHistogram;
use crate::writer::Trigger;

/// HTTP requests answered, by route template and status code.
pub const HTTP_REQUESTS: &str = "trackd_http_requests_total";
/// Time to answer a request, by route template.
pub const HTTP_REQUEST_DURATION: &str = "trackd_http_request_duration_seconds";
/// Events enqueued (acknowledged with 2xx).
pub const EVENTS_ACCEPTED: &str = "trackd_events_accepted_total";
/// Events refused, by reason.
pub const EVENTS_REJECTED: &str = "trackd_events_rejected_total";
/// Events accepted and not yet taken by the writer.
pub const QUEUE_DEPTH: &str = "trackd_queue_depth";
/// The most events the queue holds.
pub const QUEUE_CAPACITY: &str = "trackd_queue_capacity";
/// Client connections open on the main listener (lingering ones included), as of the scrape.
pub const HTTP_CONNECTIONS: &str = "trackd_http_connections";
/// `--max-connections`: the most the main listener holds open at once.
pub const HTTP_MAX_CONNECTIONS: &str = "trackd_http_max_connections";
/// Events in statements the sink accepted.
pub const EVENTS_WRITTEN: &str = "trackd_events_written_total";
/// Statements the sink accepted, by flush trigger.
pub const BATCHES_WRITTEN: &str = "trackd_batches_written_total";
/// Rows per written statement.
pub const BATCH_SIZE: &str = "trackd_batch_size_events";
/// Time the sink took to take a statement.
pub const BATCH_WRITE_DURATION: &str = "trackd_batch_write_duration_seconds";
/// Failed attempts to write a statement to the sink.
pub const SINK_ERRORS: &str = "trackd_sink_errors_total";
/// Time from a request's arrival to its event's statement being written.
pub const EVENT_LATENCY: &str = "trackd_event_latency_seconds";
/// Constant 1, labelled with the running version.
pub const BUILD_INFO: &str = "trackd_build_info";
/// Resident memory, from `/proc/self/status` (Prometheus' standard process metric).
pub const PROCESS_RESIDENT_MEMORY: &str = "process_resident_memory_bytes";
/// User plus system CPU time, from `/proc/self/stat` (standard process metric).
pub const PROCESS_CPU_SECONDS: &str = "process_cpu_seconds_total";
/// Open file descriptors, from `/proc/self/fd` (standard process metric).
pub const PROCESS_OPEN_FDS: &str = "process_open_fds";

/// Route label for requests that matched no route: never the raw path,
/// which the client chooses and would make the label unbounded.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Route templates and the statuses each can answer, registered at startup.
const HTTP_SERIES: &[(&str, &[u16])] = &[
    ("/track", &[200, 400, 405, 408, 413, 415, 503]),
    ("/batch", &[200, 400, 405, 408, 413, 415, 503]),
    ("/healthz", &[200, 405]),
    ("/readyz", &[200, 405, 503]),
    ("/metrics", &[200, 405]),
    (UNMATCHED_ROUTE, &[404]),
];

/// Every status in [`HTTP_SERIES`]: a request's counter is found by its
/// position here, without hashing.
const HTTP_STATUSES: [u16; 8] = [200, 400, 404, 405, 408, 413, 415, 503];

/// Every reason word an event can be refused with: `event::Reason::as_str`
/// and the event-refusing variants of `http::ApiError::status_and_reason`.
pub const REJECTION_REASONS: &[&str] = &[
    "invalid_json",
    "missing_field",
    "invalid_field",
    "unstorable_value",
    "message_too_large",
    "unauthorized",
    "empty_batch",
    "body_too_large",
    "unsupported_encoding",
    "invalid_gzip",
    "body_read_error",
    "timeout",
    "queue_full",
    "batch_too_large",
    "shutting_down",
];

/// Request latency buckets: 50 µs to 10 s.
const REQUEST_SECONDS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];
/// Sink write buckets: 10 µs (a buffered write) to 10 s (a struggling database).
const WRITE_SECONDS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Accepted → written buckets: 1 ms to 1 min, around the default 100 ms linger.
const EVENT_LATENCY_SECONDS: &[f64] = &[
    0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Batch size buckets: 1, 2, 5, 10, 20, 50, … below `max_rows`, then `max_rows` itself.
pub fn batch_size_buckets(max_rows: usize) -> Vec<f64> {
    let max = max_rows.max(1) as f64;
    let mut buckets = Vec::new();
    let mut decade = 1.0;
    'outer: loop {
        for step in [1.0, 2.0, 5.0] {
            let bound = step * decade;
            if bound >= max {
                break 'outer;
            }
            buckets.push(bound);
        }
        decade *= 10.0;
    }
    buckets.push(max);
    buckets
}

/// The server's metrics: the registry, and cached handles for the hot path.
pub struct Metrics {
    /// Registers the rare series not known at startup.
    recorder: PrometheusRecorder,
    /// Renders the text format.
    handle: PrometheusHandle,
    /// The request series of each route in [`HTTP_SERIES`], in its order.
    routes: Vec<RouteMetrics>,
    /// Events enqueued.
    accepted: Counter,
    /// Events refused, by reason word.
    rejected: HashMap<&'static str, Counter>,
    /// Set from the queue at every scrape.
    queue_depth: Gauge,
    /// Main-listener connections, set at each scrape.
    connections: Gauge,
    /// What the writer thread records.
    writer: WriterMetrics,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// One route's request metrics, resolved at startup.
struct RouteMetrics {
    /// The route template.
    route: &'static str,
    /// Requests answered, by the status' position in [`HTTP_STATUSES`];
    /// `None` for statuses the route is not registered with.
    requests: [Option<Counter>; HTTP_STATUSES.len()],
    /// Request latency.
    duration: Histogram,
}

/// The handles the writer thread records into, once per batch.
#[derive(Debug, Clone)]
pub struct WriterMetrics {
    /// Events in statements the sink accepted.
    events_written: Counter,
    /// Statements written, one counter per [`Trigger`], in `Trigger` order.
    batches: [Counter; 4],
    /// Rows per statement.
    batch_size: Histogram,
    /// Time the sink took to take a statement.
    write_duration: Histogram,
    /// Failed sink writes.
    sink_errors: Counter,
    /// Arrival → written, one sample per event.
    event_latency: Arc<DurationHistogram>,
}

impl Metrics {
    /// Registers every metric for a server running with `config`.
    pub fn new(config: &Config) -> Self {
        let builder = PrometheusBuilder::new();
        let builder = [
            (HTTP_REQUEST_DURATION, REQUEST_SECONDS.to_vec()),
            (BATCH_WRITE_DURATION, WRITE_SECONDS.to_vec()),
            (
                BATCH_SIZE,
                batch_size_buckets(to_usize(config.batch_max_rows)),
            ),
        ]
        .into_iter()
        .fold(builder, |builder, (name, buckets)| {
            builder
                .set_buckets_for_metric(Matcher::Full(name.into()), &buckets)
                .expect("bucket lists are not empty")
        });
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        describe(&recorder);

        let counter = |name: &'static str, labels: Vec<Label>| {
            recorder.register_counter(&Key::from_parts(name, labels), &metadata())
        };
        let histogram = |name: &'static str, labels: Vec<Label>| {
            recorder.register_histogram(&Key::from_parts(name, labels), &metadata())
        };
        let gauge = |name: &'static str, labels: Vec<Label>| {
            recorder.register_gauge(&Key::from_parts(name, labels), &metadata())
        };

        let routes = HTTP_SERIES
            .iter()
            .map(|&(route, statuses)| {
                let mut requests: [Option<Counter>; HTTP_STATUSES.len()] = Default::default();
                for &status in statuses {
                    let slot = status_slot(status).expect("HTTP_STATUSES lists every status");
                    let labels = vec![
                        Label::new("route", route),
                        Label::new("status", status.to_string()),
                    ];
                    requests[slot] = Some(counter(HTTP_REQUESTS, labels));
                }
                let labels = vec![Label::new("route", route)];
                RouteMetrics {
                    route,
                    requests,
                    duration: histogram(HTTP_REQUEST_DURATION, labels),
                }
            })
            .collect();
        let rejected = REJECTION_REASONS
            .iter()
            .map(|&reason| {
                let labels = vec![Label::new("reason", reason)];
                (reason, counter(EVENTS_REJECTED, labels))
            })
            .collect();
        let trigger =
            |t: Trigger| counter(BATCHES_WRITTEN, vec![Label::new("trigger", t.as_str())]);
        let writer = WriterMetrics {
            events_written: counter(EVENTS_WRITTEN, vec![]),
            batches: [
                trigger(Trigger::Rows),
                trigger(Trigger::Bytes),
                trigger(Trigger::Linger),
                trigger(Trigger::Shutdown),
            ],
            batch_size: histogram(BATCH_SIZE, vec![]),
            write_duration: histogram(BATCH_WRITE_DURATION, vec![]),
            sink_errors: counter(SINK_ERRORS, vec![]),
            event_latency: Arc::new(DurationHistogram::new(
                EVENT_LATENCY,
                "Time from a request's arrival to its event's statement being written.",
                EVENT_LATENCY_SECONDS,
            )),
        };
        let version = vec![Label::new("version", env!("CARGO_PKG_VERSION"))];
        gauge(BUILD_INFO, version).set(1.0);
        gauge(QUEUE_CAPACITY, vec![]).set(config.queue_capacity as f64);
        let queue_depth = gauge(QUEUE_DEPTH, vec![]);
        queue_depth.set(0.0);
        gauge(HTTP_MAX_CONNECTIONS, vec![]).set(config.max_connections as f64);
        let connections = gauge(HTTP_CONNECTIONS, vec![]);
        connections.set(0.0);

        Metrics {
            accepted: counter(EVENTS_ACCEPTED, vec![]),
            recorder,
            handle,
            routes,
            rejected,
            queue_depth,
            connections,
            writer,
        }
    }

    /// The handles for the writer thread.
    pub fn writer(&self) -> WriterMetrics {
        self.writer.clone()
    }

    /// Counts `n` events enqueued.
    pub fn events_accepted(&self, n: usize) {
        self.accepted.increment(n as u64);
    }

    /// Counts `n` events refused for `reason` (a bounded reason word).
    pub fn events_rejected(&self, reason: &'static str, n: usize) {
        match self.rejected.get(reason) {
            Some(counter) => counter.increment(n as u64),
            // A reason added without updating REJECTION_REASONS is still counted.
            None => self
                .recorder
                .register_counter(
                    &Key::from_parts(EVENTS_REJECTED, vec![Label::new("reason", reason)]),
                    &metadata(),
                )
                .increment(n as u64),
        }
    }

    /// Counts one answered request. `route` is the matched route template,
    /// `None` when no route matched.
    pub fn http_request(&self, route: Option<&str>, status: u16, elapsed: Duration) {
        let route = route.unwrap_or(UNMATCHED_ROUTE);
        let known = self.routes.iter().find(|r| r.route == route);
        let counter = known.and_then(|r| r.requests[status_slot(status)?].as_ref());
        match counter {
            Some(counter) => counter.increment(1),
            None => self
                .recorder
                .register_counter(
                    &Key::from_parts(
                        HTTP_REQUESTS,
                        vec![
                            Label::new("route", route.to_owned()),
                            Label::new("status", status.to_string()),
                        ],
                    ),
                    &metadata(),
                )
                .increment(1),
        }
        match known {
            Some(known) => known.duration.record(elapsed.as_secs_f64()),
            None => self
                .recorder
                .register_histogram(
                    &Key::from_parts(
                        HTTP_REQUEST_DURATION,
                        vec![Label::new("route", route.to_owned())],
                    ),
                    &metadata(),
                )
                .record(elapsed.as_secs_f64()),
        }
    }

    /// The Prometheus text exposition, with the queue depth and open
    /// connections as of now, and the process' memory and CPU appended.
    pub fn render(&self, queue_depth: usize, connections: usize) -> String {
        self.queue_depth.set(queue_depth as f64);
        self.connections.set(connections as f64);
        let mut text = self.handle.render();
        self.writer.event_latency.render(&mut text);
        render_process_metrics(&mut text);
        text
    }

    /// Folds recorded histogram samples into their buckets. Run periodically:
    /// samples are otherwise kept until the next scrape, and nobody may scrape.
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }
}

impl WriterMetrics {
    /// Records a statement of `rows` rows that the sink took in `write_time`;
    /// `accepted` holds when each of its events arrived.
    pub fn batch_written(
        &self,
        trigger: Trigger,
        rows: usize,
        write_time: Duration,
        accepted: &[Instant],
    ) {
        let index = match trigger {
            Trigger::Rows => 0,
            Trigger::Bytes => 1,
            Trigger::Linger => 2,
            Trigger::Shutdown => 3,
        };
        self.batches[index].increment(1);
        self.events_written.increment(rows as u64);
        self.batch_size.record(rows as f64);
        self.write_duration.record(write_time.as_secs_f64());
        self.event_latency.record_since(accepted, Instant::now());
    }

    /// Counts one failed attempt to write a statement.
    pub fn sink_error(&self) {
        self.sink_errors.increment(1);
    }
}

/// Where `status` is in [`HTTP_STATUSES`].
fn status_slot(status: u16) -> Option<usize> {
    HTTP_STATUSES.iter().position(|&s| s == status)
}

fn metadata() -> Metadata<'static> {
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()))
}

/// HELP lines; `promtool check metrics` wants one for every metric.
fn describe(recorder: &PrometheusRecorder) {
    let counters = [
        (
            HTTP_REQUESTS,
            "HTTP requests answered, by route template and status code.",
        ),
        (
            EVENTS_ACCEPTED,
            "Events enqueued and acknowledged with a 2xx.",
        ),
        (
            EVENTS_REJECTED,
            "Events refused, by reason; a body that cannot be split into events counts once.",
        ),
        (EVENTS_WRITTEN, "Events in statements the sink accepted."),
        (
            BATCHES_WRITTEN,
            "Statements the sink accepted, by the trigger that flushed them.",
        ),
        (
            SINK_ERRORS,
            "Failed attempts to write a statement to the sink (each is retried).",
        ),
    ];
    for (name, help) in counters {
        recorder.describe_counter(name.into(), None, help.into());
    }
    let gauges = [
        (
            QUEUE_DEPTH,
            "Events accepted and not yet taken by the writer, as of the scrape.",
        ),
        (
            QUEUE_CAPACITY,
            "The most events the queue holds; beyond it requests get 503.",
        ),
        (
            HTTP_CONNECTIONS,
            "Client connections open on the main listener, lingering ones included, as of the scrape.",
        ),
        (
            HTTP_MAX_CONNECTIONS,
            "The most connections the main listener holds open; more wait in the listen backlog.",
        ),
        (
            BUILD_INFO,
            "Always 1; the version label names the running build.",
        ),
    ];
    for (name, help) in gauges {
        recorder.describe_gauge(name.into(), None, help.into());
    }
    let histograms = [
        (
            HTTP_REQUEST_DURATION,
            Unit::Seconds,
            "Time to answer a request, by route template.",
        ),
        (BATCH_SIZE, Unit::Count, "Rows per written statement."),
        (
            BATCH_WRITE_DURATION,
            Unit::Seconds,
            "Time the sink took to take one statement.",
        ),
    ];
    for (name, unit, help) in histograms {
        recorder.describe_histogram(name.into(), Some(unit), help.into());
    }
}

/// Appends the standard `process_*` metrics, read from `/proc/self`. Where
/// `/proc` is missing (not Linux) they are left out rather than made up.
fn render_process_metrics(out: &mut String) {
    let mut metric = |name: &str, kind: &str, help: &str, value: f64| {
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n\n"
        );
    };
    if let Some(bytes) = resident_memory_bytes() {
        metric(
            PROCESS_RESIDENT_MEMORY,
            "gauge",
            "Resident memory size in bytes.",
            bytes as f64,
        );
    }
    if let Some(seconds) = cpu_seconds() {
        metric(
            PROCESS_CPU_SECONDS,
            "counter",
            "Total user and system CPU time spent in seconds.",
            seconds,
        );
    }
    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        metric(
            PROCESS_OPEN_FDS,
            "gauge",
            "Number of open file descriptors.",
            entries.count() as f64,
        );
    }
}

/// `VmRSS` from `/proc/self/status`, which is in kB whatever the page size.
fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `utime + stime` from `/proc/self/stat`. The kernel reports them in
/// USER_HZ, which is 100 on every architecture Linux exposes to user space
/// this way (the same constant Prometheus' own procfs library assumes).
fn cpu_seconds() -> Option<f64> {
    const USER_HZ: f64 = 100.0;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; count fields after its ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_size_buckets_run_from_one_to_max_rows() {
        assert_eq!(
            batch_size_buckets(1000),
            [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0]
        );
        assert_eq!(
            batch_size_buckets(300),
            [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 300.0]
        );
        assert_eq!(batch_size_buckets(1), [1.0]);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn process_metrics_read_proc_self() {
        let rss = resident_memory_bytes().expect("VmRSS");
        assert!(
            rss > 1024 * 1024,
            "a test binary uses more than 1 MiB: {rss}"
        );
        // Burn some CPU so the counter cannot be zero.
        let mut x = 0u64;
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(30) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(cpu_seconds().expect("utime + stime") > 0.0);
    }
}
