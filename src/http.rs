//! The HTTP front end: routes, body limits, and errors as JSON.
//!
//! Handlers do the cheap, parallel work — read the body within its limits,
//! decompress within limits, parse, validate, stamp the request's metadata —
//! and enqueue without waiting. A full queue is an immediate 503.

use std::future::Future;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::clock::Clock;
use crate::config::{to_usize, Config};
use crate::event::{self, Event, Rejection, RequestMeta};
use crate::queue::{EnqueueError, Queue};

/// Seconds a client is told to wait before retrying after a 503.
const RETRY_AFTER_SECONDS: &str = "1";

/// What every handler shares.
pub struct AppState {
    /// Where accepted events go.
    pub queue: Arc<Queue>,
    /// Source of `received_at`.
    pub clock: Arc<dyn Clock>,
    /// Set once shutdown begins, so /readyz turns load balancers away.
    pub draining: Arc<AtomicBool>,
    /// Largest body on the wire.
    pub max_body_bytes: usize,
    /// Largest body after decompression.
    pub max_decompressed_bytes: usize,
    /// Longest time to receive a body.
    pub request_timeout: Duration,
    /// Whether X-Forwarded-For names the client.
    pub trust_forwarded_for: bool,
}

impl AppState {
    /// State for `queue` with the limits in `config`.
    pub fn new(config: &Config, queue: Arc<Queue>, clock: Arc<dyn Clock>) -> Self {
        AppState {
            queue,
            clock,
            draining: Arc::new(AtomicBool::new(false)),
            max_body_bytes: to_usize(config.max_body_bytes),
            max_decompressed_bytes: to_usize(config.max_decompressed_bytes),
            request_timeout: Duration::from_millis(config.request_timeout_ms),
            trust_forwarded_for: config.trust_forwarded_for,
        }
    }
}

/// The router, with every route and fallback answering JSON.
pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/track", post(track))
        .route("/batch", post(batch))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn track(State(state): State<Arc<AppState>>, request: Request) -> Result<Response, ApiError> {
    let (meta, body) = state.read(request).await?;
    let event = event::parse_event(&body, &meta)?;
    let id = event.id;
    state.queue.push(event)?;
    Ok(success(80, |out| {
        out.push_str(r#"{"message":"Success!","id":""#);
        push_id(out, id);
        out.push_str(r#""}"#);
    }))
}

async fn batch(State(state): State<Arc<AppState>>, request: Request) -> Result<Response, ApiError> {
    let (meta, body) = state.read(request).await?;
    let results = event::parse_batch(&body, &meta)?;
    if results.is_empty() {
        return Err(ApiError::EmptyBatch);
    }
    let mut events: Vec<Event> = Vec::with_capacity(results.len());
    let mut rejected = Vec::new();
    for (index, result) in results.into_iter().enumerate() {
        match result {
            Ok(event) => events.push(event),
            Err(rejection) => rejected.push(rejection_json(&rejection, Some(index))),
        }
    }
    if events.is_empty() {
        return Err(ApiError::NoValidEvent(rejected));
    }
    // Written before the events move into the queue; sent only if they fit.
    let response = success(events.len() * 39 + 64, |out| {
        out.push_str(r#"{"message":"Success!","accepted":"#);
        out.push_str(itoa::Buffer::new().format(events.len()));
        out.push_str(r#","ids":["#);
        for (i, event) in events.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push('"');
            push_id(out, event.id);
            out.push('"');
        }
        out.push_str(r#"],"rejected":"#);
        out.push_str(&serde_json::Value::Array(rejected).to_string());
        out.push('}');
    });
    state.queue.push_all(events)?;
    Ok(response)
}

/// A 200 JSON answer written straight into one buffer of about `capacity`
/// bytes: success answers are on the hot path, and building a
/// `serde_json::Value` for them costs more than the rest of the request.
fn success(capacity: usize, write: impl FnOnce(&mut String)) -> Response {
    let mut body = String::with_capacity(capacity);
    write(&mut body);
    (
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body,
    )
        .into_response()
}

fn push_id(out: &mut String, id: uuid::Uuid) {
    out.push_str(
        id.hyphenated()
            .encode_lower(&mut uuid::Uuid::encode_buffer()),
    );
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if state.draining.load(Ordering::Relaxed) {
        let body = Json(json!({"status": "draining"}));
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    } else {
        Json(json!({"status": "ready"})).into_response()
    }
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

impl AppState {
    /// Reads the body within limits and gathers what the request tells about its events.
    async fn read(&self, request: Request) -> Result<(RequestMeta, Bytes), ApiError> {
        let accepted_at = Instant::now();
        let (parts, body) = request.into_parts();
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| {
                c.0.ip().to_canonical()
            });
        let ip = if self.trust_forwarded_for {
            forwarded_for(&parts.headers).unwrap_or(peer)
        } else {
            peer
        };
        let user_agent = parts
            .headers
            .get(USER_AGENT)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into());
        let body = self.read_body(&parts.headers, body).await?;
        let meta = RequestMeta {
            ip,
            user_agent,
            received_at: self.clock.now(),
            accepted_at,
        };
        Ok((meta, body))
    }

    async fn read_body(&self, headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
        let gzip = match headers.get(CONTENT_ENCODING).map(HeaderValue::as_bytes) {
            None => false,
            Some(v) if v.eq_ignore_ascii_case(b"identity") => false,
            Some(v) if v.eq_ignore_ascii_case(b"gzip") || v.eq_ignore_ascii_case(b"x-gzip") => true,
            Some(v) => {
                return Err(ApiError::UnsupportedEncoding(
                    String::from_utf8_lossy(v).into_owned(),
                ))
            }
        };
        let limit = self.max_body_bytes;
        let declared = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(ApiError::BodyTooLarge { limit });
        }
        // A small body has usually arrived with the head: take it without
        // arming a timer (a timer costs more than the rest of the read).
        let mut read = std::pin::pin!(axum::body::to_bytes(body, limit));
        let first = std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await;
        let result = match first {
            Poll::Ready(result) => result,
            Poll::Pending => match tokio::time::timeout(self.request_timeout, read).await {
                Err(_) => return Err(ApiError::Timeout),
                Ok(result) => result,
            },
        };
        let bytes = match result {
            Err(error) if is_length_limit(&error) => return Err(ApiError::BodyTooLarge { limit }),
            Err(_) => return Err(ApiError::BodyRead),
            Ok(bytes) => bytes,
        };
        if !gzip {
            return Ok(bytes);
        }
        let limit = self.max_decompressed_bytes;
        let mut out = Vec::with_capacity(bytes.len().saturating_mul(4).min(limit));
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .take(limit as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|_| ApiError::InvalidGzip)?;
        if out.len() > limit {
            return Err(ApiError::DecompressedTooLarge { limit });
        }
        Ok(out.into())
    }
}

/// The last parsable address in the X-Forwarded-For headers: the one the
/// trusted proxy appended. Entries before it are the client's own claims.
fn forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|entry| entry.trim().parse::<IpAddr>().ok())
        .next_back()
        .map(|ip| ip.to_canonical())
}

fn is_length_limit(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = e.source();
    }
    false
}

fn rejection_json(rejection: &Rejection, index: Option<usize>) -> serde_json::Value {
    let mut body = json!({
        "message": rejection.message,
        "reason": rejection.reason.as_str(),
    });
    if let Some(field) = &rejection.field {
        body["field"] = json!(field);
    }
    if let Some(index) = index {
        body["index"] = json!(index);
    }
    body
}

/// Every way a request can fail, each with its status and JSON body.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The event (or the whole batch body) failed validation.
    #[error("{0}")]
    Rejected(#[from] Rejection),
    /// A batch with no events.
    #[error("the batch is empty")]
    EmptyBatch,
    /// A batch where every event failed validation.
    #[error("no event in the batch is valid")]
    NoValidEvent(Vec<serde_json::Value>),
    /// The body is larger than `--max-body-bytes`.
    #[error("the request body is larger than {limit} bytes")]
    BodyTooLarge {
        /// The limit in force.
        limit: usize,
    },
    /// The decompressed body is larger than `--max-decompressed-bytes`.
    #[error("the decompressed request body is larger than {limit} bytes")]
    DecompressedTooLarge {
        /// The limit in force.
        limit: usize,
    },
    /// A Content-Encoding other than gzip or identity.
    #[error("Content-Encoding `{0}` is not supported; send gzip or identity")]
    UnsupportedEncoding(String),
    /// The gzip body does not decompress.
    #[error("the request body is not valid gzip")]
    InvalidGzip,
    /// The client stopped sending the body or the connection failed.
    #[error("the request body could not be read")]
    BodyRead,
    /// The body did not arrive within the request timeout.
    #[error("the request body did not arrive in time")]
    Timeout,
    /// The queue is full right now.
    #[error("the server is overloaded; retry later")]
    QueueFull,
    /// A batch holds more events than the queue ever can.
    #[error("the batch holds more events than the queue's capacity")]
    BatchTooLarge,
    /// Shutdown has begun.
    #[error("the server is shutting down; retry against another instance")]
    ShuttingDown,
    /// No route at this path.
    #[error("no route at this path; events go to POST /track or POST /batch")]
    NotFound,
    /// The route exists but not with this method; the `Allow` header lists those it takes.
    #[error("method not allowed; see the Allow header")]
    MethodNotAllowed,
}

impl From<EnqueueError> for ApiError {
    fn from(e: EnqueueError) -> Self {
        match e {
            EnqueueError::Full => ApiError::QueueFull,
            EnqueueError::TooMany => ApiError::BatchTooLarge,
            EnqueueError::Closed => ApiError::ShuttingDown,
        }
    }
}

impl ApiError {
    /// HTTP status and the bounded reason word (also a metric label).
    pub fn status_and_reason(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Rejected(r) => (StatusCode::BAD_REQUEST, r.reason.as_str()),
            ApiError::EmptyBatch => (StatusCode::BAD_REQUEST, "empty_batch"),
            ApiError::NoValidEvent(_) => (StatusCode::BAD_REQUEST, "no_valid_event"),
            ApiError::BodyTooLarge { .. } | ApiError::DecompressedTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
            }
            ApiError::UnsupportedEncoding(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_encoding")
            }
            ApiError::InvalidGzip => (StatusCode::BAD_REQUEST, "invalid_gzip"),
            ApiError::BodyRead => (StatusCode::BAD_REQUEST, "body_read_error"),
            ApiError::Timeout => (StatusCode::REQUEST_TIMEOUT, "timeout"),
            ApiError::QueueFull => (StatusCode::SERVICE_UNAVAILABLE, "queue_full"),
            ApiError::BatchTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "batch_too_large"),
            ApiError::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, reason) = self.status_and_reason();
        let body = match &self {
            ApiError::Rejected(r) => rejection_json(r, None),
            ApiError::NoValidEvent(rejected) => json!({
                "message": self.to_string(),
                "reason": reason,
                "accepted": 0,
                "rejected": rejected,
            }),
            _ => json!({"message": self.to_string(), "reason": reason}),
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
        }
        response
    }
}
