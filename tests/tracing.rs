//! One span per request, carrying its route template, status and latency.

use std::io;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

use trackd::clock::SystemClock;
use trackd::config::Config;
use trackd::http::{self, AppState};
use trackd::metrics::Metrics;
use trackd::queue::Queue;

/// Log lines written by the subscriber under test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<serde_json::Value> {
        let bytes = self.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).expect("JSON log line"))
            .collect()
    }
}

async fn answer(level: tracing::Level, request: Request<Body>) -> (StatusCode, Captured) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(level)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let config = Config::default();
    let queue = Arc::new(Queue::new(16));
    let metrics = Arc::new(Metrics::new(&config));
    let state = Arc::new(AppState::new(
        &config,
        queue,
        Arc::new(SystemClock),
        metrics,
    ));
    let response = http::app(state).oneshot(request).await.unwrap();
    (response.status(), captured)
}

#[tokio::test]
async fn each_request_gets_one_span_with_route_status_and_latency() {
    let request = Request::post("/track")
        .body(Body::from(r#"{"event":"e","user":"u","location":"l"}"#))
        .unwrap();
    let (status, captured) = answer(tracing::Level::DEBUG, request).await;
    assert_eq!(status, StatusCode::OK);
    let lines = captured.lines();
    let answered: Vec<_> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "request answered")
        .collect();
    assert_eq!(answered.len(), 1, "one line per request: {lines:?}");
    let span = &answered[0]["span"];
    assert_eq!(span["name"], "request");
    assert_eq!(span["route"], "/track");
    assert_eq!(span["method"], "POST");
    assert_eq!(span["status"], 200);
    assert!(span["latency_us"].is_u64(), "latency recorded: {span}");
}

#[tokio::test]
async fn unmatched_paths_are_traced_under_a_fixed_route_word() {
    let request = Request::get("/no/such/path").body(Body::empty()).unwrap();
    let (status, captured) = answer(tracing::Level::DEBUG, request).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let lines = captured.lines();
    let span = &lines.last().expect("a line")["span"];
    assert_eq!(span["route"], "unmatched");
    assert_eq!(span["status"], 404);
    assert!(!captured
        .lines()
        .iter()
        .any(|l| l.to_string().contains("/no/such/path")));
}

#[tokio::test]
async fn at_info_level_requests_log_nothing() {
    let request = Request::post("/track")
        .body(Body::from(r#"{"event":"e","user":"u","location":"l"}"#))
        .unwrap();
    let (status, captured) = answer(tracing::Level::INFO, request).await;
    assert_eq!(status, StatusCode::OK);
    assert!(captured.lines().is_empty(), "{:?}", captured.lines());
}
