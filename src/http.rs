//! The HTTP front end: routes, body limits, and errors as JSON.
//!
//! Handlers do the cheap, parallel work — read the body within its limits,
//! decompress within limits, parse, validate, stamp the request's metadata —
//! and enqueue without waiting. A full queue is an immediate 503.
//!
//! Every request passes through [`ObserveLayer`]: one `tracing` span with its
//! route template, status and latency, and the request metrics. Handlers count
//! events accepted and refused, per event, under bounded reason words.

use std::future::Future;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{
    CONNECTION, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, EXPECT, RETRY_AFTER, USER_AGENT,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http_body_util::BodyExt;
use serde_json::json;

use crate::accept::ConnectionSlots;
use crate::clock::Clock;
use crate::config::{to_usize, Config};
use crate::event::{self, Event, Reason, Rejection, RequestMeta};
use crate::metrics::Metrics;
use crate::observe::ObserveLayer;
use crate::queue::{EnqueueError, Queue};

/// Longest `User-Agent` stored; it is repeated in every row of a batch.
pub const MAX_USER_AGENT_BYTES: usize = 1024;
/// Seconds a client is told to wait before retrying after a 503.
const RETRY_AFTER_SECONDS: &str = "1";
/// Content type of the Prometheus text exposition format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

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
    /// Counters, gauges and histograms, rendered at GET /metrics.
    pub metrics: Arc<Metrics>,
    /// Whether [`app`] serves /metrics (false when it has its own listener).
    pub metrics_on_main: bool,
    /// Write keys and limits of the Segment-compatible /v1 routes.
    pub segment: crate::v1::Settings,
    /// The main listener's connection slots, reported at GET /metrics.
    pub connections: Arc<ConnectionSlots>,
}

impl AppState {
    /// State for `queue` with the limits in `config`, counting into `metrics`.
    pub fn new(
        config: &Config,
        queue: Arc<Queue>,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
    ) -> Self {
        AppState {
            queue,
            clock,
            draining: Arc::new(AtomicBool::new(false)),
            max_body_bytes: to_usize(config.max_body_bytes),
            max_decompressed_bytes: to_usize(config.max_decompressed_bytes),
            request_timeout: Duration::from_millis(config.request_timeout_ms),
            trust_forwarded_for: config.trust_forwarded_for,
            metrics,
            metrics_on_main: config.metrics_listen.is_none(),
            segment: crate::v1::Settings::new(config),
            connections: Arc::new(ConnectionSlots::new(to_usize(config.max_connections))),
        }
    }
}

/// The router, with every route and fallback answering JSON. It serves
/// /metrics too, unless `--metrics-listen` gave that its own [`metrics_app`].
pub fn app(state: Arc<AppState>) -> Router {
    let router = Router::new()
        .route("/track", post(track))
        .route("/batch", post(batch))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .nest("/v1", crate::v1::routes(&state));
    let router = if state.metrics_on_main {
        router.route("/metrics", get(render_metrics))
    } else {
        router
    };
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(ObserveLayer::new(state.metrics.clone()))
        .with_state(state)
}

/// The router for `--metrics-listen`: /metrics, and /healthz and /readyz so
/// probes still get through when the main listener is at its connection limit.
pub fn metrics_app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/metrics", get(render_metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(ObserveLayer::new(state.metrics.clone()))
        .with_state(state)
}

async fn track(State(state): State<Arc<AppState>>, request: Request) -> Result<Response, ApiError> {
    let (meta, body) = state.read(request).await.map_err(|e| state.refused(e))?;
    let event = event::parse_event(&body, &meta).map_err(|r| state.refused(r.into()))?;
    let id = event.id;
    state.enqueue(vec![event])?;
    Ok(success(80, |out| {
        out.push_str(r#"{"message":"Success!","id":""#);
        push_id(out, id);
        out.push_str(r#""}"#);
    }))
}

async fn batch(State(state): State<Arc<AppState>>, request: Request) -> Result<Response, ApiError> {
    let (meta, body) = state.read(request).await.map_err(|e| state.refused(e))?;
    let results = event::parse_batch(&body, &meta).map_err(|r| state.refused(r.into()))?;
    let (ids, rejected) = state.enqueue_batch(results)?;
    Ok(batch_success(r#"{"message":"Success!""#, &ids, rejected))
}

/// The 200 answer to a batch: `prefix` (an open JSON object with its first
/// members), then how many were accepted, their ids, and the rejections.
pub(crate) fn batch_success(
    prefix: &str,
    ids: &[uuid::Uuid],
    rejected: Vec<serde_json::Value>,
) -> Response {
    success(ids.len() * 39 + 64 + prefix.len(), |out| {
        out.push_str(prefix);
        out.push_str(r#","accepted":"#);
        out.push_str(itoa::Buffer::new().format(ids.len()));
        out.push_str(r#","ids":["#);
        for (i, id) in ids.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push('"');
            push_id(out, *id);
            out.push('"');
        }
        out.push_str(r#"],"rejected":"#);
        out.push_str(&serde_json::Value::Array(rejected).to_string());
        out.push('}');
    })
}

/// A 200 JSON answer written straight into one buffer of about `capacity`
/// bytes: success answers are on the hot path, and building a
/// `serde_json::Value` for them costs more than the rest of the request.
/// The response is built directly: `(headers, String).into_response()`
/// would first insert a `text/plain` Content-Type only to replace it.
fn success(capacity: usize, write: impl FnOnce(&mut String)) -> Response {
    let mut body = String::with_capacity(capacity);
    write(&mut body);
    let mut response = Response::new(Body::from(body));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn push_id(out: &mut String, id: uuid::Uuid) {
    out.push_str(
        id.hyphenated()
            .encode_lower(&mut uuid::Uuid::encode_buffer()),
    );
}

impl AppState {
    /// Counts a request refused before it could be split into events, once.
    pub(crate) fn refused(&self, error: ApiError) -> ApiError {
        self.metrics.events_rejected(error.status_and_reason().1, 1);
        error
    }

    /// Enqueues every event or none, counting each as accepted or refused.
    pub(crate) fn enqueue(&self, events: Vec<Event>) -> Result<(), ApiError> {
        let n = events.len();
        match self.queue.push_all(events) {
            Ok(()) => {
                self.metrics.events_accepted(n);
                Ok(())
            }
            Err(error) => {
                let error = ApiError::from(error);
                self.metrics.events_rejected(error.status_and_reason().1, n);
                Err(error)
            }
        }
    }

    /// Enqueues the valid events of a batch whole, or none of them. Returns
    /// their ids, in order, and a JSON report for each invalid one; every
    /// event is counted under its own outcome.
    pub(crate) fn enqueue_batch(
        &self,
        results: Vec<Result<Event, Rejection>>,
    ) -> Result<(Vec<uuid::Uuid>, Vec<serde_json::Value>), ApiError> {
        if results.is_empty() {
            return Err(self.refused(ApiError::EmptyBatch));
        }
        let mut events: Vec<Event> = Vec::with_capacity(results.len());
        let mut rejected = Vec::new();
        for (index, result) in results.into_iter().enumerate() {
            match result {
                Ok(event) => events.push(event),
                Err(rejection) => {
                    self.metrics.events_rejected(rejection.reason.as_str(), 1);
                    rejected.push(rejection_json(&rejection, Some(index)));
                }
            }
        }
        if events.is_empty() {
            return Err(ApiError::NoValidEvent(rejected));
        }
        let ids = events.iter().map(|e| e.id).collect();
        self.enqueue(events)?;
        Ok((ids, rejected))
    }
}

async fn render_metrics(State(state): State<Arc<AppState>>) -> Response {
    let text = state
        .metrics
        .render(state.queue.depth(), state.connections.in_use());
    ([(CONTENT_TYPE, PROMETHEUS_TEXT)], text).into_response()
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

async fn not_found(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let limit = state.max_body_bytes;
    state
        .refuse_unread(request, limit, ApiError::NotFound)
        .await
}

pub(crate) async fn method_not_allowed(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Response {
    state
        .refuse_unread(request, state.max_body_bytes, ApiError::MethodNotAllowed)
        .await
}

/// Makes `response` the last on its connection, and says so.
fn close_connection(response: &mut Response) {
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
}

impl AppState {
    /// Reads the body within limits and gathers what the request tells about its events.
    async fn read(&self, request: Request) -> Result<(RequestMeta, Bytes), ApiError> {
        self.read_within(request, self.max_body_bytes, self.max_decompressed_bytes)
            .await
    }

    /// [`AppState::read`] with the body limits of the route.
    pub(crate) async fn read_within(
        &self,
        request: Request,
        max_body_bytes: usize,
        max_decompressed_bytes: usize,
    ) -> Result<(RequestMeta, Bytes), ApiError> {
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
        // The body is read before any header is judged: a refusal that
        // leaves it unread would make hyper close the connection under a
        // client that may already be sending its next request on it.
        let body = self
            .read_body(&parts.headers, body, max_body_bytes, max_decompressed_bytes)
            .await?;
        let user_agent = match parts.headers.get(USER_AGENT) {
            Some(v) if v.len() > MAX_USER_AGENT_BYTES => {
                return Err(ApiError::Rejected(Rejection {
                    reason: Reason::InvalidField,
                    field: Some("User-Agent".into()),
                    message: format!(
                        "header `User-Agent` is {} bytes long; the limit is {MAX_USER_AGENT_BYTES}",
                        v.len()
                    ),
                }))
            }
            // Header bytes outside UTF-8 (obs-text) are stored as U+FFFD.
            Some(v) => Some(String::from_utf8_lossy(v.as_bytes()).into()),
            None => None,
        };
        let meta = RequestMeta {
            ip,
            user_agent,
            received_at: self.clock.now(),
            accepted_at,
        };
        Ok((meta, body))
    }

    /// Runs `read`, a read of a body of at most `limit` bytes, for at most
    /// the request timeout; a declared length over `limit` is refused at once.
    async fn read_within_limits<T>(
        &self,
        headers: &HeaderMap,
        limit: usize,
        read: impl Future<Output = Result<T, ApiError>>,
    ) -> Result<T, ApiError> {
        let declared = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(ApiError::BodyTooLarge { limit });
        }
        // A small body has usually arrived with the head: take it without
        // arming a timer (a timer costs more than the rest of the read).
        let mut read = std::pin::pin!(read);
        match std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await {
            Poll::Ready(result) => result,
            Poll::Pending => tokio::time::timeout(self.request_timeout, read)
                .await
                .unwrap_or(Err(ApiError::Timeout)),
        }
    }

    /// Answers a request refused without looking at its body, after reading
    /// and dropping that body (within `limit` and the request timeout).
    /// hyper closes a connection whose request body was left unread, without
    /// a word to the client, whose next request on it then fails; when the
    /// body cannot be drained — or the client waits for `100 Continue`
    /// before sending it, which a refusal must not invite — the answer says
    /// `Connection: close` instead.
    pub(crate) async fn refuse_unread(
        &self,
        request: Request,
        limit: usize,
        refusal: impl IntoResponse,
    ) -> Response {
        let (parts, body) = request.into_parts();
        let expects_continue = parts
            .headers
            .get(EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        let drained = !expects_continue
            && self
                .read_within_limits(&parts.headers, limit, drain(body, limit))
                .await
                .is_ok();
        let mut response = refusal.into_response();
        if !drained {
            close_connection(&mut response);
        }
        response
    }

    async fn read_body(
        &self,
        headers: &HeaderMap,
        body: Body,
        max_body_bytes: usize,
        max_decompressed_bytes: usize,
    ) -> Result<Bytes, ApiError> {
        let bytes = self
            .read_within_limits(headers, max_body_bytes, gather(body, max_body_bytes))
            .await?;
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
        if !gzip {
            return Ok(bytes);
        }
        let limit = max_decompressed_bytes;
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

/// The last entry of the X-Forwarded-For headers: the one the trusted proxy
/// appended. Entries before it are the client's own claims, so when the last
/// one does not parse there is no fallback to them: the caller uses the peer.
fn forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    let last = headers.get_all("x-forwarded-for").iter().next_back()?;
    let entry = last.to_str().ok()?.rsplit(',').next()?.trim();
    let ip = entry.parse::<IpAddr>().ok().or_else(|| {
        // `1.2.3.4:5678`, `[2001:db8::1]:5678` or `[2001:db8::1]`.
        entry
            .parse::<SocketAddr>()
            .map(|a| a.ip())
            .ok()
            .or_else(|| entry.strip_prefix('[')?.strip_suffix(']')?.parse().ok())
    })?;
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunked(chunks: &[&'static str]) -> Body {
        let chunks: Vec<Result<&str, std::io::Error>> = chunks.iter().map(|c| Ok(*c)).collect();
        Body::from_stream(tokio_stream::iter(chunks))
    }

    #[tokio::test]
    async fn a_body_in_many_frames_is_gathered_whole_within_its_limit() {
        let body = chunked(&["{\"a\"", ":", "1", "}"]);
        assert_eq!(
            gather(body, 7).await.unwrap(),
            Bytes::from_static(b"{\"a\":1}")
        );
        let body = chunked(&["{\"a\"", ":", "1", "}"]);
        assert!(matches!(
            gather(body, 6).await,
            Err(ApiError::BodyTooLarge { limit: 6 })
        ));
        assert_eq!(gather(chunked(&["one"]), 3).await.unwrap(), "one");
        assert_eq!(gather(chunked(&[]), 3).await.unwrap(), "");
        assert!(drain(chunked(&["ab", "cd"]), 4).await.is_ok());
        assert!(drain(chunked(&["ab", "cde"]), 4).await.is_err());
    }

    fn xff(values: &[&str]) -> Option<IpAddr> {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("x-forwarded-for", HeaderValue::from_str(v).expect("ascii"));
        }
        forwarded_for(&headers)
    }

    #[test]
    fn forwarded_for_takes_the_last_entry_only() {
        let ip = |s: &str| s.parse::<IpAddr>().ok();
        assert_eq!(xff(&["6.6.6.6, 1.2.3.4"]), ip("1.2.3.4"));
        assert_eq!(xff(&["6.6.6.6", "1.2.3.4:5678"]), ip("1.2.3.4"));
        assert_eq!(xff(&["6.6.6.6, [2001:db8::1]:80"]), ip("2001:db8::1"));
        assert_eq!(xff(&["6.6.6.6, [2001:db8::1]"]), ip("2001:db8::1"));
        assert_eq!(xff(&["::ffff:1.2.3.4"]), ip("1.2.3.4"));
        assert_eq!(
            xff(&["6.6.6.6, unknown"]),
            None,
            "no fallback to client claims"
        );
        assert_eq!(xff(&["6.6.6.6,"]), None);
        assert_eq!(xff(&[]), None);
    }
}

/// The whole body, when it is at most `limit` bytes. A body that arrives in
/// one frame is kept as it is; once a second frame comes, the frames are
/// copied into one buffer and dropped. A frame holds on to hyper's whole
/// read buffer (8 KiB or more), so keeping the frames of a body that
/// trickles in a byte at a time would cost thousands of times its size.
async fn gather(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let mut single = Bytes::new();
    let mut joined: Option<Vec<u8>> = None;
    for_each_frame(body, limit, |data| match &mut joined {
        Some(joined) => joined.extend_from_slice(&data),
        None if single.is_empty() => single = data,
        None => {
            let mut both = Vec::with_capacity((single.len() + data.len()) * 2);
            both.extend_from_slice(&single);
            both.extend_from_slice(&data);
            single = Bytes::new();
            joined = Some(both);
        }
    })
    .await?;
    Ok(joined.map_or(single, Bytes::from))
}

/// Reads a body of at most `limit` bytes and drops it as it comes.
async fn drain(body: Body, limit: usize) -> Result<(), ApiError> {
    for_each_frame(body, limit, drop).await
}

/// Hands each data frame of `body` to `take`, as long as they add up to at
/// most `limit` bytes.
async fn for_each_frame(
    mut body: Body,
    limit: usize,
    mut take: impl FnMut(Bytes),
) -> Result<(), ApiError> {
    let mut len = 0;
    while let Some(frame) = body.frame().await {
        // Anything but data is a trailer, which trackd does not use.
        if let Ok(data) = frame.map_err(|_| ApiError::BodyRead)?.into_data() {
            len += data.len();
            if len > limit {
                return Err(ApiError::BodyTooLarge { limit });
            }
            take(data);
        }
    }
    Ok(())
}

pub(crate) fn rejection_json(rejection: &Rejection, index: Option<usize>) -> serde_json::Value {
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
        // The rest of the body is still unread (or unreadable): hyper will
        // close the connection, and the client must know not to reuse it.
        if matches!(
            self,
            ApiError::BodyTooLarge { .. } | ApiError::Timeout | ApiError::BodyRead
        ) {
            close_connection(&mut response);
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
        }
        response
    }
}
