//! The HTTP contract, over a real socket: statuses, JSON bodies, and rows.

mod common;

use std::io::{self, Write};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{fixed_clock, output, row_ids, TestServer};
use reqwest::header::{ALLOW, CONTENT_ENCODING, RETRY_AFTER};
use reqwest::StatusCode;
use serde_json::Value;
use trackd::sink::{MemorySink, Sink};

const SEED_BODY: &str =
    r#"{"event": "click", "location": "dashboard", "user": "sylvia327", "otherParam": "otherVal"}"#;

async fn post(
    client: &reqwest::Client,
    url: &str,
    body: impl Into<reqwest::Body>,
) -> (StatusCode, Value) {
    let response = client
        .post(url)
        .body(body)
        .send()
        .await
        .expect("request sent");
    let status = response.status();
    let json = response.json::<Value>().await.expect("JSON body");
    (status, json)
}

#[tokio::test]
async fn seed_request_is_acknowledged_and_written_as_an_insert() {
    let sink = MemorySink::new();
    let (clock, at) = fixed_clock();
    let server = TestServer::start_with_clock(&[], Box::new(sink.clone()), clock).await;
    let client = reqwest::Client::new();
    let response = client
        .post(server.url("/track"))
        .header("Content-Type", "application/json")
        .header("User-Agent", "Custom User Agent String")
        .body(SEED_BODY)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["message"], "Success!");
    let id = body["id"].as_str().expect("id is a string").to_owned();
    assert_eq!(
        uuid::Uuid::parse_str(&id).expect("uuid").get_version_num(),
        7
    );

    server.stop().await;
    assert_eq!(
        output(&sink),
        format!(
            "INSERT INTO events (id, ip, user_agent, event, \"user\", location, received_at, extra, event_time) VALUES\n  \
             ('{id}', '127.0.0.1', 'Custom User Agent String', 'click', 'sylvia327', 'dashboard', '{at}', '{{\"otherParam\":\"otherVal\"}}', '{at}');\n"
        )
    );
}

#[tokio::test]
async fn body_is_json_whatever_the_content_type_says() {
    let sink = MemorySink::new();
    let server = TestServer::start(&[], Box::new(sink.clone())).await;
    let client = reqwest::Client::new();
    for content_type in ["text/plain", "application/x-www-form-urlencoded", ""] {
        let response = client
            .post(server.url("/track"))
            .header("Content-Type", content_type)
            .body(SEED_BODY)
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), StatusCode::OK, "{content_type}");
    }
    server.stop().await;
    assert_eq!(row_ids(&output(&sink)).len(), 3);
}

#[tokio::test]
async fn missing_user_agent_is_null() {
    let sink = MemorySink::new();
    let server = TestServer::start(&[], Box::new(sink.clone())).await;
    let (status, _) = post(&reqwest::Client::new(), &server.url("/track"), SEED_BODY).await;
    assert_eq!(status, StatusCode::OK);
    server.stop().await;
    assert!(output(&sink).contains("', '127.0.0.1', NULL, 'click'"));
}

#[tokio::test]
async fn invalid_requests_get_400_naming_the_problem() {
    let sink = MemorySink::new();
    let server = TestServer::start(&[], Box::new(sink.clone())).await;
    let client = reqwest::Client::new();
    let url = server.url("/track");
    let cases = [
        ("", "invalid_json", None),
        ("{not json", "invalid_json", None),
        ("[1,2]", "invalid_json", None),
        (
            r#"{"event":"a","user":"b"}"#,
            "missing_field",
            Some("location"),
        ),
        (
            r#"{"event":["a"],"user":"b","location":"c"}"#,
            "invalid_field",
            Some("event"),
        ),
        (
            r#"{"event":"a","user":true,"location":"c"}"#,
            "invalid_field",
            Some("user"),
        ),
        (
            r#"{"event":"","user":"b","location":"c"}"#,
            "invalid_field",
            Some("event"),
        ),
        (
            r#"{"event":"a\u0000","user":"b","location":"c"}"#,
            "unstorable_value",
            Some("event"),
        ),
        (
            r#"{"event":"a","user":"b","location":"c","x":"\udc00"}"#,
            "unstorable_value",
            Some("x"),
        ),
    ];
    for (body, reason, field) in cases {
        let (status, json) = post(&client, &url, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(json["reason"], reason, "{body}");
        assert!(
            json["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
        if let Some(field) = field {
            assert_eq!(json["field"], field, "{body}");
            assert!(
                json["message"].as_str().unwrap_or("").contains(field),
                "{body}"
            );
        }
    }
    server.stop().await;
    assert_eq!(output(&sink), "", "nothing invalid is written");
}

#[tokio::test]
async fn unknown_route_is_404_json() {
    let server = TestServer::start(&[], Box::new(MemorySink::new())).await;
    let response = reqwest::get(server.url("/nope")).await.expect("sent");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let json: Value = response.json().await.expect("json");
    assert_eq!(json["reason"], "not_found");
    server.stop().await;
}

#[tokio::test]
async fn wrong_method_is_405_with_allow() {
    let server = TestServer::start(&[], Box::new(MemorySink::new())).await;
    let response = reqwest::get(server.url("/track")).await.expect("sent");
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()[ALLOW], "POST");
    let json: Value = response.json().await.expect("json");
    assert_eq!(json["reason"], "method_not_allowed");
    let response = reqwest::Client::new()
        .post(server.url("/healthz"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(response.headers()[ALLOW]
        .to_str()
        .expect("ascii")
        .contains("GET"));
    server.stop().await;
}

#[tokio::test]
async fn oversized_body_is_413_whether_declared_or_streamed() {
    let sink = MemorySink::new();
    let server = TestServer::start(&["--max-body-bytes", "1000"], Box::new(sink.clone())).await;
    let client = reqwest::Client::new();
    let padding = "x".repeat(2000);
    let big = format!(r#"{{"event":"a","user":"b","location":"c","pad":"{padding}"}}"#);

    let (status, json) = post(&client, &server.url("/track"), big.clone()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(json["reason"], "body_too_large");

    // No Content-Length: the limit must hold while reading the stream.
    let chunks: Vec<Result<String, io::Error>> = big
        .as_bytes()
        .chunks(100)
        .map(|c| Ok(String::from_utf8(c.to_vec()).expect("ascii")))
        .collect();
    let stream = reqwest::Body::wrap_stream(futures_stream(chunks));
    let (status, json) = post(&client, &server.url("/track"), stream).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(json["reason"], "body_too_large");

    let (status, _) = post(&client, &server.url("/track"), SEED_BODY).await;
    assert_eq!(status, StatusCode::OK, "a small body still works");
    server.stop().await;
    assert_eq!(row_ids(&output(&sink)).len(), 1);
}

fn futures_stream(
    items: Vec<Result<String, io::Error>>,
) -> impl tokio_stream::Stream<Item = Result<String, io::Error>> + Send + Sync + 'static {
    tokio_stream::iter(items)
}

#[tokio::test]
async fn gzip_bodies_are_accepted_and_bombs_refused() {
    let sink = MemorySink::new();
    let server = TestServer::start(
        &["--max-decompressed-bytes", "100000"],
        Box::new(sink.clone()),
    )
    .await;
    let client = reqwest::Client::new();
    let gzip = |data: &[u8]| {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).expect("compress");
        enc.finish().expect("compress")
    };

    let response = client
        .post(server.url("/track"))
        .header(CONTENT_ENCODING, "gzip")
        .body(gzip(SEED_BODY.as_bytes()))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::OK);

    let bomb = gzip(&vec![b' '; 10_000_000]);
    assert!(bomb.len() < 100_000, "the bomb is small on the wire");
    let response = client
        .post(server.url("/track"))
        .header(CONTENT_ENCODING, "gzip")
        .body(bomb)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let response = client
        .post(server.url("/track"))
        .header(CONTENT_ENCODING, "gzip")
        .body("not gzip at all")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    let response = client
        .post(server.url("/track"))
        .header(CONTENT_ENCODING, "br")
        .body(SEED_BODY)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let json: Value = response.json().await.expect("json");
    assert_eq!(json["reason"], "unsupported_encoding");

    server.stop().await;
    assert_eq!(row_ids(&output(&sink)).len(), 1);
}

#[tokio::test]
async fn batch_enqueues_valid_events_and_reports_each_rejected_one() {
    let sink = MemorySink::new();
    let server = TestServer::start(&[], Box::new(sink.clone())).await;
    let client = reqwest::Client::new();
    let body = r#"[
        {"event":"a","user":"u1","location":"l"},
        {"event":"b","user":"u2"},
        42,
        {"event":"c","user":7,"location":"l","k":[1,{"x":null}]}
    ]"#;
    let (status, json) = post(&client, &server.url("/batch"), body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["accepted"], 2);
    let ids: Vec<String> = json["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|v| v.as_str().expect("str").to_owned())
        .collect();
    assert_eq!(ids.len(), 2);
    let rejected = json["rejected"].as_array().expect("rejected");
    assert_eq!(rejected.len(), 2);
    assert_eq!(rejected[0]["index"], 1);
    assert_eq!(rejected[0]["reason"], "missing_field");
    assert_eq!(rejected[0]["field"], "location");
    assert_eq!(rejected[1]["index"], 2);
    assert_eq!(rejected[1]["reason"], "invalid_json");

    let (status, json) = post(
        &client,
        &server.url("/batch"),
        r#"{"batch":[{"event":"d","user":"u","location":"l"}]}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["accepted"], 1);

    let (status, json) = post(&client, &server.url("/batch"), r#"[{"event":"x"}]"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json["accepted"], 0);
    assert_eq!(json["rejected"][0]["field"], "user");

    let (status, json) = post(&client, &server.url("/batch"), "[]").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json["reason"], "empty_batch");

    server.stop().await;
    let written = row_ids(&output(&sink));
    assert_eq!(written.len(), 3);
    assert_eq!(&written[..2], &ids[..]);
    assert!(output(&sink).contains(r#"'{"k":[1,{"x":null}]}'"#));
}

/// A server writing each event as its own statement, at once, into a
/// [`StalledSink`]; `args` are added to that.
async fn start_stalled(args: &[&str]) -> (TestServer, Stall) {
    let (sink, stall) = StalledSink::with_stall();
    let args = [&["--batch-max-rows", "1", "--linger-ms", "0"][..], args].concat();
    (TestServer::start(&args, sink).await, stall)
}

/// Posts the seed event `n` times to /track; each must be acknowledged.
async fn post_seed(server: &TestServer, n: usize) {
    let client = reqwest::Client::new();
    for _ in 0..n {
        assert_eq!(
            post(&client, &server.url("/track"), SEED_BODY).await.0,
            StatusCode::OK
        );
    }
}

/// A raw connection to `server`, for what an HTTP client would hide.
async fn connect(server: &TestServer) -> tokio::net::TcpStream {
    tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect")
}

/// A sink that reports each write and then blocks until released.
struct StalledSink {
    started: mpsc::Sender<()>,
    release: Arc<Mutex<mpsc::Receiver<()>>>,
    inner: MemorySink,
}

/// The test's side of a [`StalledSink`].
struct Stall {
    /// Receives one message each time the sink begins a write.
    started: mpsc::Receiver<()>,
    /// Each message lets one write through.
    release: mpsc::Sender<()>,
    /// What the sink wrote.
    written: MemorySink,
}

impl StalledSink {
    fn with_stall() -> (Box<dyn Sink>, Stall) {
        let (started_tx, started) = mpsc::channel();
        let (release, release_rx) = mpsc::channel();
        let written = MemorySink::new();
        let sink = StalledSink {
            started: started_tx,
            release: Arc::new(Mutex::new(release_rx)),
            inner: written.clone(),
        };
        (
            Box::new(sink),
            Stall {
                started,
                release,
                written,
            },
        )
    }
}

impl Stall {
    /// Waits until the writer is inside the sink.
    async fn wait_for_write(self) -> (mpsc::Sender<()>, MemorySink) {
        let Stall {
            started,
            release,
            written,
        } = self;
        tokio::task::spawn_blocking(move || started.recv_timeout(Duration::from_secs(10)))
            .await
            .expect("join")
            .expect("the writer called the sink");
        (release, written)
    }
}

impl Sink for StalledSink {
    fn write_statement(&mut self, statement: &[u8]) -> io::Result<()> {
        let _ = self.started.send(());
        let _ = self.release.lock().expect("lock").recv();
        self.inner.write_statement(statement)
    }
}

#[tokio::test]
async fn full_queue_answers_503_with_retry_after_and_loses_nothing() {
    let (server, stall) = start_stalled(&["--queue-capacity", "3"]).await;
    let client = reqwest::Client::new();
    let url = server.url("/track");

    // The writer takes the first event and stalls in the sink…
    assert_eq!(post(&client, &url, SEED_BODY).await.0, StatusCode::OK);
    let (release, written) = stall.wait_for_write().await;
    // …so three more fill the queue…
    let mut acked = 1;
    for _ in 0..3 {
        assert_eq!(post(&client, &url, SEED_BODY).await.0, StatusCode::OK);
        acked += 1;
    }
    // …and the next single event, and a batch that would not fit whole, get 503.
    let response = client
        .post(&url)
        .body(SEED_BODY)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()[RETRY_AFTER], "1");
    let json: Value = response.json().await.expect("json");
    assert_eq!(json["reason"], "queue_full");
    let (status, json) = post(
        &client,
        &server.url("/batch"),
        format!("[{SEED_BODY},{SEED_BODY}]"),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json["reason"], "queue_full");
    // A batch larger than the whole queue could never fit: 413, not 503.
    let (status, json) = post(
        &client,
        &server.url("/batch"),
        format!("[{SEED_BODY},{SEED_BODY},{SEED_BODY},{SEED_BODY}]"),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(json["reason"], "batch_too_large");

    for _ in 0..acked {
        release.send(()).expect("release one write");
    }
    let report = server.stop().await;
    assert_eq!(report.events_written, acked);
    assert_eq!(row_ids(&output(&written)).len() as u64, acked);
}

#[tokio::test]
async fn forwarded_for_is_used_only_when_trusted() {
    for (args, expected) in [
        (&[][..], "'127.0.0.1'"),
        (&["--trust-forwarded-for"][..], "'203.0.113.9'"),
    ] {
        let sink = MemorySink::new();
        let server = TestServer::start(args, Box::new(sink.clone())).await;
        let response = reqwest::Client::new()
            .post(server.url("/track"))
            .header("X-Forwarded-For", "10.9.9.9, not-an-ip, 203.0.113.9")
            .body(SEED_BODY)
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), StatusCode::OK);
        server.stop().await;
        assert!(
            output(&sink).contains(expected),
            "{args:?}: {}",
            output(&sink)
        );
    }
}

#[tokio::test]
async fn many_events_share_one_statement() {
    let sink = MemorySink::new();
    let server = TestServer::start(
        &["--linger-ms", "60000", "--batch-max-rows", "50"],
        Box::new(sink.clone()),
    )
    .await;
    let client = reqwest::Client::new();
    let batch = format!("[{}]", vec![SEED_BODY; 120].join(","));
    let (status, json) = post(&client, &server.url("/batch"), batch).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["accepted"], 120);
    server.stop().await;
    let statements = sink.statements();
    let sizes: Vec<usize> = statements.iter().map(|s| row_ids(s).len()).collect();
    assert_eq!(
        sizes,
        [50, 50, 20],
        "rows trigger twice, shutdown flushes the rest"
    );
}

#[tokio::test]
async fn statements_stay_under_the_byte_limit() {
    let sink = MemorySink::new();
    let server = TestServer::start(
        &["--linger-ms", "60000", "--batch-max-bytes", "4096"],
        Box::new(sink.clone()),
    )
    .await;
    let batch = format!("[{}]", vec![SEED_BODY; 100].join(","));
    let (status, _) = post(&reqwest::Client::new(), &server.url("/batch"), batch).await;
    assert_eq!(status, StatusCode::OK);
    server.stop().await;
    let statements = sink.statements();
    assert!(statements.len() > 1);
    assert!(statements.iter().all(|s| s.len() <= 4096));
    let total: usize = statements.iter().map(|s| row_ids(s).len()).sum();
    assert_eq!(total, 100);
}

#[tokio::test]
async fn health_and_readiness() {
    let server = TestServer::start(&[], Box::new(MemorySink::new())).await;
    let response = reqwest::get(server.url("/healthz")).await.expect("sent");
    assert_eq!(response.status(), StatusCode::OK);
    let response = reqwest::get(server.url("/readyz")).await.expect("sent");
    assert_eq!(response.status(), StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn slow_clients_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start(
        &["--request-timeout-ms", "300"],
        Box::new(MemorySink::new()),
    )
    .await;

    // Headers that never finish: the connection is closed.
    let mut stream = connect(&server).await;
    stream
        .write_all(b"POST /track HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the server closed the connection");

    // A body that never finishes: 408 with a JSON body.
    let mut stream = connect(&server).await;
    stream
        .write_all(b"POST /track HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"event\"")
        .await
        .expect("write");
    let mut buf = vec![0; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
        .await
        .expect("answered in time")
        .expect("read");
    let response = String::from_utf8_lossy(&buf[..n]);
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(response.contains(r#""reason":"timeout""#), "{response}");
    server.stop().await;
}

#[tokio::test]
async fn an_overlong_user_agent_is_refused_not_repeated_in_every_row() {
    let sink = MemorySink::new();
    let server = TestServer::start(&[], Box::new(sink.clone())).await;
    let response = reqwest::Client::new()
        .post(server.url("/track"))
        .header("User-Agent", "x".repeat(1025))
        .body(SEED_BODY)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let json: Value = response.json().await.expect("json");
    assert_eq!(json["field"], "User-Agent");
    assert_eq!(json["reason"], "invalid_field");
    server.stop().await;
    assert_eq!(output(&sink), "");
}

#[tokio::test]
async fn during_the_shutdown_delay_readyz_is_503_and_events_are_still_taken() {
    let sink = MemorySink::new();
    let mut server =
        TestServer::start(&["--shutdown-delay-ms", "2000"], Box::new(sink.clone())).await;
    let client = reqwest::Client::new();
    server.begin_shutdown();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let response = client
        .get(server.url("/readyz"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let json: Value = response.json().await.expect("json");
    assert_eq!(json["status"], "draining");
    let (status, _) = post(&client, &server.url("/track"), SEED_BODY).await;
    assert_eq!(status, StatusCode::OK, "still serving during the delay");
    let report = server.stop().await;
    assert_eq!(report.events_written, 1);
    assert_eq!(row_ids(&output(&sink)).len(), 1);
}

#[tokio::test]
async fn a_stuck_output_at_shutdown_is_reported_after_the_drain_timeout() {
    // `_stall` keeps the sink stalled until the test ends.
    let (server, _stall) = start_stalled(&["--drain-timeout-ms", "300"]).await;
    post_seed(&server, 3).await;
    let error = server
        .stop_result()
        .await
        .expect_err("the output never took the events");
    let message = error.to_string();
    assert!(
        message.contains("acknowledged events were not written"),
        "{message}"
    );
    assert!(
        matches!(
            error,
            // One in the statement stuck in the sink, two still queued.
            trackd::server::RunError::DrainTimeout {
                unwritten: 3,
                in_flight: 1,
                ..
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_slow_output_that_keeps_taking_events_is_waited_for() {
    let (server, stall) = start_stalled(&["--drain-timeout-ms", "1000"]).await;
    post_seed(&server, 5).await;
    // One statement every 300 ms: the drain takes longer than the drain
    // timeout, but the output never goes that long without taking one.
    let Stall {
        release, written, ..
    } = stall;
    std::thread::spawn(move || {
        while release.send(()).is_ok() {
            std::thread::sleep(Duration::from_millis(300));
        }
    });
    let report = server.stop().await;
    assert_eq!(report.events_written, 5);
    assert_eq!(row_ids(&output(&written)).len(), 5);
}

#[tokio::test]
async fn the_queue_is_bounded_in_bytes_too() {
    let (server, stall) = start_stalled(&["--queue-max-bytes", "40000"]).await;
    let client = reqwest::Client::new();
    let big = format!(
        r#"{{"event":"big","user":"u","location":"l","pad":"{}"}}"#,
        "x".repeat(10_000)
    );
    assert_eq!(
        post(&client, &server.url("/track"), big.clone()).await.0,
        StatusCode::OK
    );
    let (release, _) = stall.wait_for_write().await;
    let mut acked = 1;
    let refused = loop {
        let (status, json) = post(&client, &server.url("/track"), big.clone()).await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            break json;
        }
        assert_eq!(status, StatusCode::OK);
        acked += 1;
        assert!(acked < 10, "40 KB of queue cannot hold 9 events of 10 KB");
    };
    assert_eq!(refused["reason"], "queue_full");
    assert_eq!(
        acked, 4,
        "three 10 KB events fit in 40 KB, the fourth does not"
    );
    for _ in 0..acked {
        release.send(()).expect("release");
    }
    assert_eq!(server.stop().await.events_written, acked);
}

/// Sends `head`, then `body` a moment later (as clients that write the two
/// separately do), and returns the answer's status line and headers.
async fn request_on(stream: &mut tokio::net::TcpStream, head: &str, body: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let head = format!("{head}Host: x\r\nContent-Length: {}\r\n\r\n", body.len());
    stream.write_all(head.as_bytes()).await.expect("write head");
    tokio::time::sleep(Duration::from_millis(20)).await;
    stream.write_all(body).await.expect("write body");
    let mut answer = Vec::new();
    let mut buf = [0; 4096];
    while !answer.ends_with(b"}") {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("answered in time")
            .expect("read");
        assert!(n > 0, "connection closed mid-answer: {answer:?}");
        answer.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(answer).expect("utf-8")
}

#[tokio::test]
async fn a_refusal_leaves_the_connection_usable_for_the_next_request() {
    let sink = MemorySink::new();
    let server = TestServer::start(&["--write-key", "k"], Box::new(sink.clone())).await;
    let mut stream = connect(&server).await;
    let long_agent = format!("User-Agent: {}\r\n", "a".repeat(2000));
    let refusals = [
        (
            "POST /track HTTP/1.1\r\nContent-Encoding: br\r\n".to_string(),
            "415",
        ),
        (format!("POST /track HTTP/1.1\r\n{long_agent}"), "400"),
        ("POST /nowhere HTTP/1.1\r\n".to_string(), "404"),
        ("PUT /track HTTP/1.1\r\n".to_string(), "405"),
        ("POST /v1/track HTTP/1.1\r\n".to_string(), "401"),
    ];
    for (head, status) in refusals {
        let answer = request_on(&mut stream, &head, SEED_BODY.as_bytes()).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{answer}"
        );
        assert!(!answer.contains("connection: close"), "{answer}");
    }
    // The same connection still carries an event.
    let answer = request_on(
        &mut stream,
        "POST /track HTTP/1.1\r\n",
        SEED_BODY.as_bytes(),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    server.stop().await;
    assert_eq!(row_ids(&output(&sink)).len(), 1);
}

#[tokio::test]
async fn a_body_left_unread_closes_the_connection_and_says_so() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server =
        TestServer::start(&["--max-body-bytes", "1000"], Box::new(MemorySink::new())).await;
    let mut stream = connect(&server).await;
    stream
        .write_all(b"POST /track HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("closed in time")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    assert!(answer.contains("connection: close\r\n"), "{answer}");
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_sends_an_oversized_body_whole_still_reads_the_413() {
    let server =
        TestServer::start(&["--max-body-bytes", "1000"], Box::new(MemorySink::new())).await;
    let addr = server.addr;
    // Like most HTTP clients, send the whole body before reading the answer.
    let answer = tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        // More than loopback socket buffers hold, less than trackd drains.
        let body = vec![b'x'; 12 << 20];
        let head = format!(
            "POST /track HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).expect("write head");
        stream
            .write_all(&body)
            .expect("the server reads the rest of the body");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).expect("read the answer");
        String::from_utf8(answer).expect("utf-8")
    })
    .await
    .expect("client");
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    assert!(answer.contains(r#""reason":"body_too_large""#), "{answer}");
    server.stop().await;
}

#[tokio::test]
async fn connections_past_the_limit_wait_until_one_closes() {
    let sink = MemorySink::new();
    let server = TestServer::start(&["--max-connections", "1"], Box::new(sink.clone())).await;
    let mut first = connect(&server).await;
    let answer = request_on(&mut first, "POST /track HTTP/1.1\r\n", SEED_BODY.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");

    // The kernel completes the second handshake, but trackd does not take
    // the connection while the first is open.
    let mut second = connect(&server).await;
    let waiting = tokio::spawn(async move {
        let answer = request_on(
            &mut second,
            "POST /track HTTP/1.1\r\n",
            SEED_BODY.as_bytes(),
        )
        .await;
        (answer, second)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "answered past the connection limit");

    drop(first);
    let (answer, _second) = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("answered once the first connection closed")
        .expect("client task");
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    server.stop().await;
    assert_eq!(row_ids(&output(&sink)).len(), 2);
}

#[tokio::test]
async fn a_refusal_does_not_invite_a_body_the_client_holds_back() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start(&["--write-key", "k"], Box::new(MemorySink::new())).await;
    for path in ["/nowhere", "/v1/track"] {
        let mut stream = connect(&server).await;
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 50000\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.expect("write");
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
            .await
            .expect("answered and closed in time")
            .expect("read");
        let answer = String::from_utf8_lossy(&answer);
        assert!(!answer.starts_with("HTTP/1.1 100"), "{answer}");
        assert!(answer.contains(r#""reason":"#), "{answer}");
        assert!(answer.contains("connection: close\r\n"), "{answer}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_never_reads_its_answers_loses_its_connection() {
    use tokio::io::AsyncWriteExt;
    let server = TestServer::start(
        &["--max-connections", "1", "--request-timeout-ms", "300"],
        Box::new(MemorySink::new()),
    )
    .await;
    // Pipelined requests whose answers (far more than the socket buffers
    // hold) are never read: trackd's writes stall.
    let hog = connect(&server).await;
    let flood = tokio::spawn(async move {
        let mut hog = hog;
        let requests = b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n".repeat(200_000);
        let _ = hog.write_all(&requests).await;
        hog // kept open, never read
    });
    tokio::time::sleep(Duration::from_millis(200)).await;

    // The only connection slot comes free once the stalled write times out.
    let mut other = connect(&server).await;
    let answer = tokio::time::timeout(
        Duration::from_secs(20),
        request_on(&mut other, "POST /track HTTP/1.1\r\n", SEED_BODY.as_bytes()),
    )
    .await
    .expect("the stalled connection gave up its slot");
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    drop(flood);
    server.stop().await;
}

#[tokio::test]
async fn an_idle_connection_is_closed_at_the_request_timeout() {
    use tokio::io::AsyncReadExt;
    let server = TestServer::start(
        &["--request-timeout-ms", "200"],
        Box::new(MemorySink::new()),
    )
    .await;
    let mut stream = connect(&server).await;
    let mut rest = Vec::new();
    // Well under the 2 s a closed connection lingers: the close is announced
    // at the timeout, not at the end of the linger.
    let read = tokio::time::timeout(Duration::from_millis(1800), stream.read_to_end(&mut rest))
        .await
        .expect("the server closed its side at the idle timeout");
    assert!(read.is_ok() && rest.is_empty(), "{read:?} {rest:?}");
    server.stop().await;
}
