//! What /metrics says, and when: names at zero before anything happens,
//! rejections counted per event under their reason, the queue depth as of the
//! scrape, and the writer's per-batch telemetry.

mod common;

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::Utc;
use clap::Parser;
use tower::ServiceExt;

use common::TestServer;

use trackd::clock::SystemClock;
use trackd::config::Config;
use trackd::event::Event;
use trackd::http::{self, AppState};
use trackd::metrics::Metrics;
use trackd::queue::Queue;
use trackd::sink::{MemorySink, Sink};
use trackd::writer;

/// Every name in DESIGN.md's metric contract, plus the issue's additions.
const CONTRACT: &[(&str, &str)] = &[
    ("trackd_http_requests_total", "counter"),
    ("trackd_http_request_duration_seconds", "histogram"),
    ("trackd_events_accepted_total", "counter"),
    ("trackd_events_rejected_total", "counter"),
    ("trackd_queue_depth", "gauge"),
    ("trackd_queue_capacity", "gauge"),
    ("trackd_http_connections", "gauge"),
    ("trackd_http_max_connections", "gauge"),
    ("trackd_events_written_total", "counter"),
    ("trackd_batches_written_total", "counter"),
    ("trackd_batch_size_events", "histogram"),
    ("trackd_batch_write_duration_seconds", "histogram"),
    ("trackd_sink_errors_total", "counter"),
    ("trackd_event_latency_seconds", "histogram"),
    ("trackd_build_info", "gauge"),
    ("process_resident_memory_bytes", "gauge"),
    ("process_cpu_seconds_total", "counter"),
];

struct TestApp {
    state: Arc<AppState>,
    queue: Arc<Queue>,
}

impl TestApp {
    fn new(args: &[&str]) -> Self {
        let config = Config::parse_from(std::iter::once("trackd").chain(args.iter().copied()));
        let queue = Arc::new(Queue::new(config.queue_capacity as usize));
        let metrics = Arc::new(Metrics::new(&config));
        let state = Arc::new(AppState::new(
            &config,
            queue.clone(),
            Arc::new(SystemClock),
            metrics,
        ));
        TestApp { state, queue }
    }

    async fn send(&self, request: Request<Body>) -> StatusCode {
        let response = http::app(self.state.clone())
            .oneshot(request)
            .await
            .expect("the router is infallible");
        response.status()
    }

    async fn post(&self, path: &str, body: &str) -> StatusCode {
        self.send(post(path, body)).await
    }

    async fn scrape(&self) -> String {
        let response = http::app(self.state.clone())
            .oneshot(get("/metrics"))
            .await
            .expect("the router is infallible");
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(content_type.starts_with("text/plain; version=0.0.4"));
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8(body.to_vec()).unwrap()
    }
}

fn post(path: &str, body: &str) -> Request<Body> {
    Request::post(path)
        .body(Body::from(body.to_owned()))
        .unwrap()
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

/// The value of one exact series (`name{labels}`), or a panic naming it.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no series `{series}` in:\n{text}"))
        .parse()
        .expect("a number")
}

fn rejected(text: &str, reason: &str) -> f64 {
    sample(
        text,
        &format!("trackd_events_rejected_total{{reason=\"{reason}\"}}"),
    )
}

const GOOD: &str = r#"{"event":"click","user":"u1","location":"/"}"#;

#[tokio::test]
async fn every_contract_name_is_exported_with_help_and_type_before_any_traffic() {
    let app = TestApp::new(&[]);
    let text = app.scrape().await;
    for (name, kind) in CONTRACT {
        assert!(
            text.contains(&format!("\n# TYPE {name} {kind}\n")),
            "missing `# TYPE {name} {kind}`"
        );
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "missing HELP for {name}"
        );
    }
}

#[tokio::test]
async fn counters_and_dashboard_label_sets_exist_at_zero_on_startup() {
    let app = TestApp::new(&["--queue-capacity", "7"]);
    let text = app.scrape().await;
    assert_eq!(sample(&text, "trackd_events_accepted_total"), 0.0);
    assert_eq!(sample(&text, "trackd_events_written_total"), 0.0);
    assert_eq!(sample(&text, "trackd_sink_errors_total"), 0.0);
    for reason in [
        "invalid_json",
        "missing_field",
        "invalid_field",
        "unstorable_value",
        "body_too_large",
        "unsupported_encoding",
        "queue_full",
        "shutting_down",
        "batch_too_large",
        "timeout",
    ] {
        assert_eq!(rejected(&text, reason), 0.0, "reason {reason}");
    }
    for trigger in ["rows", "bytes", "linger", "shutdown"] {
        let series = format!("trackd_batches_written_total{{trigger=\"{trigger}\"}}");
        assert_eq!(sample(&text, &series), 0.0);
    }
    for (route, status) in [("/track", 200), ("/batch", 503), ("unmatched", 404)] {
        let series = format!("trackd_http_requests_total{{route=\"{route}\",status=\"{status}\"}}");
        assert_eq!(sample(&text, &series), 0.0);
    }
    assert_eq!(sample(&text, "trackd_event_latency_seconds_count"), 0.0);
    assert_eq!(sample(&text, "trackd_batch_size_events_count"), 0.0);
    assert_eq!(sample(&text, "trackd_queue_depth"), 0.0);
    assert_eq!(sample(&text, "trackd_queue_capacity"), 7.0);
    let version = env!("CARGO_PKG_VERSION");
    let build_info = format!("trackd_build_info{{version=\"{version}\"}}");
    assert_eq!(sample(&text, &build_info), 1.0);
}

#[tokio::test]
async fn rejected_batch_counts_each_bad_event_under_its_reason() {
    let app = TestApp::new(&[]);
    let body = format!(
        r#"[{GOOD}, {{"event":"a"}}, {{"user":"u"}}, {{"location":"l"}}, {{"event":1,"user":"u","location":"l"}}, {GOOD}]"#
    );
    assert_eq!(app.post("/batch", &body).await, StatusCode::OK);
    let text = app.scrape().await;
    assert_eq!(rejected(&text, "missing_field"), 3.0);
    assert_eq!(rejected(&text, "invalid_field"), 1.0);
    assert_eq!(sample(&text, "trackd_events_accepted_total"), 2.0);
}

#[tokio::test]
async fn batch_with_no_valid_event_counts_each_event_once() {
    let app = TestApp::new(&[]);
    let body = r#"[{"event":"a"}, {"event":"b"}]"#;
    assert_eq!(app.post("/batch", body).await, StatusCode::BAD_REQUEST);
    let text = app.scrape().await;
    assert_eq!(rejected(&text, "missing_field"), 2.0);
    assert!(!text.contains("no_valid_event"), "not a second count");
    assert_eq!(sample(&text, "trackd_events_accepted_total"), 0.0);
}

#[tokio::test]
async fn full_queue_counts_every_refused_event_as_queue_full() {
    let app = TestApp::new(&["--queue-capacity", "3"]);
    let two = format!("[{GOOD},{GOOD}]");
    assert_eq!(app.post("/batch", &two).await, StatusCode::OK);
    assert_eq!(
        app.post("/batch", &two).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(app.post("/track", GOOD).await, StatusCode::OK);
    assert_eq!(
        app.post("/track", GOOD).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let text = app.scrape().await;
    assert_eq!(rejected(&text, "queue_full"), 3.0);
    assert_eq!(sample(&text, "trackd_events_accepted_total"), 3.0);
    let series = "trackd_http_requests_total{route=\"/batch\",status=\"503\"}";
    assert_eq!(sample(&text, series), 1.0);
}

#[tokio::test]
async fn unstorable_values_are_counted_under_their_own_reason() {
    let app = TestApp::new(&[]);
    let nul = r#"{"event":"a\u0000b","user":"u","location":"l"}"#;
    let surrogate = r#"{"event":"a","user":"u","location":"l","x":"\ud800"}"#;
    assert_eq!(app.post("/track", nul).await, StatusCode::BAD_REQUEST);
    assert_eq!(app.post("/track", surrogate).await, StatusCode::BAD_REQUEST);
    let text = app.scrape().await;
    assert_eq!(rejected(&text, "unstorable_value"), 2.0);
}

#[tokio::test]
async fn bodies_refused_before_splitting_into_events_count_once() {
    let app = TestApp::new(&["--max-body-bytes", "64"]);
    assert_eq!(app.post("/batch", "[{").await, StatusCode::BAD_REQUEST);
    assert_eq!(app.post("/track", "nope").await, StatusCode::BAD_REQUEST);
    let big = format!("[{}]", [GOOD; 4].join(","));
    assert_eq!(
        app.post("/batch", &big).await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let brotli = Request::post("/batch")
        .header("content-encoding", "br")
        .body(Body::from("[]"))
        .unwrap();
    assert_eq!(app.send(brotli).await, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(app.post("/batch", "[]").await, StatusCode::BAD_REQUEST);
    let text = app.scrape().await;
    assert_eq!(rejected(&text, "invalid_json"), 2.0);
    assert_eq!(rejected(&text, "body_too_large"), 1.0);
    assert_eq!(rejected(&text, "unsupported_encoding"), 1.0);
    assert_eq!(rejected(&text, "empty_batch"), 1.0);
}

#[tokio::test]
async fn unknown_paths_are_labelled_unmatched_never_with_the_raw_path() {
    let app = TestApp::new(&[]);
    assert_eq!(
        app.send(get("/wp-admin/secret-123")).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.send(get("/track")).await,
        StatusCode::METHOD_NOT_ALLOWED
    );
    let text = app.scrape().await;
    assert!(!text.contains("secret-123"));
    let unmatched = "trackd_http_requests_total{route=\"unmatched\",status=\"404\"}";
    assert_eq!(sample(&text, unmatched), 1.0);
    let wrong_method = "trackd_http_requests_total{route=\"/track\",status=\"405\"}";
    assert_eq!(sample(&text, wrong_method), 1.0);
    assert_eq!(
        sample(
            &text,
            "trackd_http_request_duration_seconds_count{route=\"unmatched\"}"
        ),
        1.0
    );
}

#[tokio::test]
async fn request_latency_buckets_run_from_50_microseconds_to_10_seconds() {
    let app = TestApp::new(&[]);
    assert_eq!(app.post("/track", GOOD).await, StatusCode::OK);
    let text = app.scrape().await;
    let bucket = |le: &str| {
        let series =
            format!("trackd_http_request_duration_seconds_bucket{{route=\"/track\",le=\"{le}\"}}");
        sample(&text, &series)
    };
    assert_eq!(bucket("10"), 1.0);
    assert_eq!(bucket("+Inf"), 1.0);
    assert!(bucket("0.00005") <= 1.0, "the 50 µs bucket exists");
}

#[tokio::test]
async fn queue_depth_is_read_at_every_scrape() {
    let app = TestApp::new(&[]);
    let three = format!("[{GOOD},{GOOD},{GOOD}]");
    assert_eq!(app.post("/batch", &three).await, StatusCode::OK);
    assert_eq!(sample(&app.scrape().await, "trackd_queue_depth"), 3.0);
    // The writer takes events without any request passing through HTTP.
    while app.queue.try_recv().is_some() {}
    assert_eq!(sample(&app.scrape().await, "trackd_queue_depth"), 0.0);
}

#[tokio::test]
async fn metrics_listen_moves_metrics_off_the_main_listener() {
    let app = TestApp::new(&["--metrics-listen", "127.0.0.1:9"]);
    assert_eq!(app.send(get("/metrics")).await, StatusCode::NOT_FOUND);
    for path in ["/metrics", "/healthz", "/readyz"] {
        let response = http::metrics_app(app.state.clone())
            .oneshot(get(path))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
}

fn event(accepted_at: Instant) -> Event {
    Event {
        id: uuid::Uuid::now_v7(),
        ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        user_agent: None,
        event: "e".into(),
        user: "u".into(),
        location: "l".into(),
        received_at: Utc::now(),
        event_time: Utc::now(),
        extra: "{}".into(),
        accepted_at,
    }
}

/// Runs a writer over `events` (already queued, queue closed) into `sink`,
/// and returns the rendered metrics once it has drained.
fn drain_through_writer(args: &[&str], events: Vec<Event>, sink: Box<dyn Sink>) -> String {
    let config = Config::parse_from(std::iter::once("trackd").chain(args.iter().copied()));
    let metrics = Metrics::new(&config);
    let queue = Arc::new(Queue::new(config.queue_capacity as usize));
    queue.push_all(events).expect("room");
    queue.close();
    let handle = writer::spawn(queue, sink, config.writer(), metrics.writer()).unwrap();
    handle.join().unwrap().expect("everything written");
    metrics.render(0, 0)
}

#[test]
fn writer_counts_batches_by_trigger_rows_and_latency_per_event() {
    let arrived = Instant::now() - Duration::from_millis(200);
    let events = (0..5).map(|_| event(arrived)).collect();
    let text = drain_through_writer(
        &["--batch-max-rows", "2", "--linger-ms", "50"],
        events,
        Box::new(MemorySink::new()),
    );
    let batches = |trigger: &str| {
        sample(
            &text,
            &format!("trackd_batches_written_total{{trigger=\"{trigger}\"}}"),
        )
    };
    assert_eq!(batches("rows"), 2.0);
    assert_eq!(batches("shutdown"), 1.0);
    assert_eq!(batches("linger"), 0.0);
    assert_eq!(sample(&text, "trackd_events_written_total"), 5.0);
    assert_eq!(sample(&text, "trackd_batch_size_events_count"), 3.0);
    assert_eq!(sample(&text, "trackd_batch_size_events_sum"), 5.0);
    assert_eq!(
        sample(&text, "trackd_batch_size_events_bucket{le=\"1\"}"),
        1.0
    );
    assert_eq!(
        sample(&text, "trackd_batch_size_events_bucket{le=\"2\"}"),
        3.0
    );
    assert_eq!(
        sample(&text, "trackd_batch_write_duration_seconds_count"),
        3.0
    );
    // One sample per event, each at least as old as its arrival.
    assert_eq!(sample(&text, "trackd_event_latency_seconds_count"), 5.0);
    assert_eq!(
        sample(&text, "trackd_event_latency_seconds_bucket{le=\"0.1\"}"),
        0.0
    );
    assert!(sample(&text, "trackd_event_latency_seconds_sum") >= 1.0);
}

/// Fails its first `failures` writes, then behaves like a memory sink.
struct FlakySink {
    failures: u32,
    inner: MemorySink,
}

impl Sink for FlakySink {
    fn write_statement(&mut self, statement: &[u8]) -> io::Result<()> {
        if self.failures > 0 {
            self.failures -= 1;
            return Err(io::Error::other("database is restarting"));
        }
        self.inner.write_statement(statement)
    }
}

#[test]
fn every_failed_sink_write_is_counted_and_the_batch_still_written() {
    let inner = MemorySink::new();
    let sink = FlakySink {
        failures: 2,
        inner: inner.clone(),
    };
    let text = drain_through_writer(&[], vec![event(Instant::now())], Box::new(sink));
    assert_eq!(sample(&text, "trackd_sink_errors_total"), 2.0);
    assert_eq!(sample(&text, "trackd_events_written_total"), 1.0);
    assert_eq!(inner.statements().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_server_serves_metrics_on_its_metrics_listener() {
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics_address = format!("127.0.0.1:{metrics_port}");
    let sink = MemorySink::new();
    let server = TestServer::start(
        &["--metrics-listen", &metrics_address, "--linger-ms", "5"],
        Box::new(sink.clone()),
    )
    .await;
    let main_address = server.addr;
    let client = reqwest::Client::new();
    let response = client
        .post(format!("http://{main_address}/track"))
        .body(GOOD)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let main_metrics = client
        .get(format!("http://{main_address}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(main_metrics.status(), StatusCode::NOT_FOUND);

    // The writer lingers 5 ms; poll until the event is reported written.
    let url = format!("http://{metrics_address}/metrics");
    let text = scrape_until(&client, &url, "trackd_events_written_total", 1.0).await;
    assert_eq!(sample(&text, "trackd_events_written_total"), 1.0);
    assert_eq!(sample(&text, "trackd_events_accepted_total"), 1.0);
    assert_eq!(sample(&text, "trackd_event_latency_seconds_count"), 1.0);
    let unmatched = "trackd_http_requests_total{route=\"unmatched\",status=\"404\"}";
    assert_eq!(sample(&text, unmatched), 1.0, "main listener's /metrics");

    let report = server.stop().await;
    assert_eq!(report.events_written, 1);
    assert_eq!(sink.statements().len(), 1);
}

#[test]
fn every_reason_an_event_can_be_refused_for_is_preregistered() {
    use trackd::event::{Reason, Rejection};
    use trackd::http::ApiError;
    use trackd::metrics::REJECTION_REASONS;

    let reasons = [
        Reason::InvalidJson,
        Reason::MissingField,
        Reason::InvalidField,
        Reason::UnstorableValue,
        Reason::MessageTooLarge,
    ];
    for reason in reasons {
        // Exhaustive: a new Reason must be added to the list above.
        match reason {
            Reason::InvalidJson
            | Reason::MissingField
            | Reason::InvalidField
            | Reason::UnstorableValue
            | Reason::MessageTooLarge => {}
        }
    }
    let mut errors: Vec<ApiError> = reasons
        .into_iter()
        .map(|reason| {
            ApiError::Rejected(Rejection {
                reason,
                field: None,
                message: String::new(),
            })
        })
        .collect();
    errors.extend([
        ApiError::EmptyBatch,
        ApiError::NoValidEvent(vec![]),
        ApiError::BodyTooLarge { limit: 1 },
        ApiError::DecompressedTooLarge { limit: 1 },
        ApiError::UnsupportedEncoding("br".into()),
        ApiError::InvalidGzip,
        ApiError::BodyRead,
        ApiError::Timeout,
        ApiError::QueueFull,
        ApiError::BatchTooLarge,
        ApiError::ShuttingDown,
        ApiError::NotFound,
        ApiError::MethodNotAllowed,
    ]);
    for error in &errors {
        // Exhaustive: a new ApiError must be sorted into one of these arms.
        let refuses_events = match error {
            // Not events: counted per event elsewhere, or no event at all.
            ApiError::NoValidEvent(_) | ApiError::NotFound | ApiError::MethodNotAllowed => false,
            ApiError::Rejected(_)
            | ApiError::EmptyBatch
            | ApiError::BodyTooLarge { .. }
            | ApiError::DecompressedTooLarge { .. }
            | ApiError::UnsupportedEncoding(_)
            | ApiError::InvalidGzip
            | ApiError::BodyRead
            | ApiError::Timeout
            | ApiError::QueueFull
            | ApiError::BatchTooLarge
            | ApiError::ShuttingDown => true,
        };
        let (_, word) = error.status_and_reason();
        assert_eq!(
            REJECTION_REASONS.contains(&word),
            refuses_events,
            "reason `{word}`"
        );
    }
}

#[tokio::test]
async fn open_connections_are_reported_against_the_limit() {
    let server = TestServer::start(&["--max-connections", "50"], Box::new(MemorySink::new())).await;
    let _idle = [
        tokio::net::TcpStream::connect(server.addr).await.unwrap(),
        tokio::net::TcpStream::connect(server.addr).await.unwrap(),
    ];
    // One client, so every scrape reuses one keep-alive connection: with the
    // two idle ones, three are open. The server counts a connection once it
    // has accepted it, so poll until it has taken all three.
    let client = reqwest::Client::new();
    let url = server.url("/metrics");
    let text = scrape_until(&client, &url, "trackd_http_connections", 3.0).await;
    assert_eq!(sample(&text, "trackd_http_connections"), 3.0);
    assert_eq!(sample(&text, "trackd_http_max_connections"), 50.0);
    server.stop().await;
}

/// Scrapes `url` until the sample `name` reads `value`, for at most 10 s,
/// and returns the last scrape (the caller asserts on it).
async fn scrape_until(client: &reqwest::Client, url: &str, name: &str, value: f64) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = client.get(url).send().await.unwrap().text().await.unwrap();
        if sample(&text, name) == value || Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
