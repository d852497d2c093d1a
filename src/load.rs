//! The load generator behind `trackd-load`: keep-alive HTTP/1.1 connections
//! that POST one body over and over, and an HDR histogram of what it took.
//!
//! The client is deliberately lean — the request is serialised once and each
//! answer is parsed just enough (status, length, `accepted`) — so that on a
//! small machine it costs clearly less CPU per request than the server it
//! measures. A full HTTP client (hyper's, say) costs about as much per
//! request as an axum server, and then the generator, not the server, sets
//! the maximum.
//!
//! Two ways to drive them:
//! - **closed loop** (no `rate`): every connection sends its next request as
//!   soon as the previous answer arrives, so the server sets the pace. Good
//!   for "how fast can it go"; bad for latency, because a slow answer also
//!   delays the requests that would have been sent meanwhile.
//! - **open loop** (`rate` requests/s): request *i* is due at
//!   `start + i / rate` whatever happened before, and its latency is counted
//!   from that due time, not from when a free connection got round to it. A
//!   stalled server therefore shows up as the queueing delay it caused
//!   (no coordinated omission).
//!
//! Both stop at whichever bound comes first: the duration or the request count.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest latency the histogram can hold, in nanoseconds (larger values are clamped).
const MAX_LATENCY_NS: u64 = 60_000_000_000;
/// Pause before reconnecting after a connection failed, so a dead server is
/// not hammered in a tight loop.
const RECONNECT_PAUSE: Duration = Duration::from_millis(50);
/// Largest answer head or body the client reads, so a broken server cannot
/// make it buffer without end.
const MAX_ANSWER_BYTES: usize = 64 << 20;
/// Within this much of a due time, an open-loop connection stops sleeping on
/// the (millisecond-grained) timer and yields until the instant arrives.
const SPIN_WINDOW: Duration = Duration::from_millis(2);

/// What to send, where, how fast and for how long.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Server address.
    pub addr: SocketAddr,
    /// `Host` header value.
    pub host: String,
    /// Request path, e.g. `/track`.
    pub path: String,
    /// Request body, sent unchanged every time.
    pub body: Bytes,
    /// Events in `body`, counted as acknowledged when the answer is 2xx
    /// (unless the answer says how many it `accepted`).
    pub events_per_request: u64,
    /// Open keep-alive connections.
    pub connections: usize,
    /// Requests per second for an open loop; `None` for a closed loop.
    pub rate: Option<f64>,
    /// Longest the run lasts.
    pub duration: Duration,
    /// Most requests sent.
    pub max_requests: Option<u64>,
    /// Print a progress line to standard error every second.
    pub progress: bool,
}

/// Latency percentiles, in microseconds.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Percentiles {
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p99_9: f64,
    /// Largest seen.
    pub max: f64,
}

/// What a run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    /// `closed` or `open`.
    pub mode: &'static str,
    /// Target URL.
    pub url: String,
    /// Connections used.
    pub connections: usize,
    /// Events in each request body.
    pub events_per_request: u64,
    /// Requests per second asked for (open loop only).
    pub target_rate: Option<f64>,
    /// Seconds from the first send to the last answer.
    pub elapsed_s: f64,
    /// Requests that got an HTTP answer.
    pub requests: u64,
    /// Events acknowledged by 2xx answers.
    pub events_acknowledged: u64,
    /// Answered requests per second.
    pub requests_per_s: f64,
    /// Acknowledged events per second.
    pub events_per_s: f64,
    /// Answers by HTTP status code.
    pub status: BTreeMap<u16, u64>,
    /// Requests that got no answer (connection refused, reset, …).
    pub transport_errors: u64,
    /// Latency of answered requests, in microseconds.
    pub latency_us: Percentiles,
    /// CPU the load generator itself used, in percent of one core (Linux
    /// only): near 100 × its threads means the generator, not the server,
    /// set the pace.
    pub client_cpu_percent: Option<f64>,
}

impl Summary {
    /// Whether every request got a 2xx answer and at least one was sent.
    pub fn all_ok(&self) -> bool {
        self.requests > 0
            && self.transport_errors == 0
            && self.status.keys().all(|s| (200..300).contains(s))
    }

    /// A few human-readable lines.
    pub fn to_text(&self) -> String {
        let l = &self.latency_us;
        let status: Vec<String> = self
            .status
            .iter()
            .map(|(s, n)| format!("{s}: {n}"))
            .collect();
        format!(
            "{} loop, {} connections, {} events/request{}\n\
             {:.2} s: {} requests ({:.0}/s), {} events acknowledged ({:.0}/s)\n\
             status: {{{}}}, transport errors: {}\n\
             latency µs: mean {:.1}  p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}\n\
             load generator CPU: {}\n",
            self.mode,
            self.connections,
            self.events_per_request,
            self.target_rate
                .map(|r| format!(", target {r:.0} requests/s"))
                .unwrap_or_default(),
            self.elapsed_s,
            self.requests,
            self.requests_per_s,
            self.events_acknowledged,
            self.events_per_s,
            status.join(", "),
            self.transport_errors,
            l.mean,
            l.p50,
            l.p90,
            l.p99,
            l.p99_9,
            l.max,
            self.client_cpu_percent
                .map(|p| format!("{p:.0}% of one core"))
                .unwrap_or_else(|| "unknown".into()),
        )
    }
}

/// Per-connection tallies, merged at the end so the hot loop shares nothing
/// but two counters.
struct Tally {
    latency: Histogram<u64>,
    status: BTreeMap<u16, u64>,
    events: u64,
    transport_errors: u64,
}

impl Tally {
    fn new() -> Self {
        Tally {
            latency: Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3)
                .expect("static histogram bounds are valid"),
            status: BTreeMap::new(),
            events: 0,
            transport_errors: 0,
        }
    }

    fn merge(&mut self, other: Tally) {
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
        for (s, n) in other.status {
            *self.status.entry(s).or_default() += n;
        }
        self.events += other.events;
        self.transport_errors += other.transport_errors;
    }
}

/// State shared by every connection of a run.
struct Shared {
    config: LoadConfig,
    /// The whole request, head and body, serialised once.
    request: Vec<u8>,
    start: Instant,
    end: Instant,
    /// Requests handed out so far (the next request's sequence number).
    issued: AtomicU64,
    /// Answers received, for the progress line.
    answered: AtomicU64,
    /// Events acknowledged, for the progress line.
    acknowledged: AtomicU64,
}

impl Shared {
    /// The next request's due time, or `None` once a bound is reached.
    /// In a closed loop "due" is simply now.
    fn next_due(&self) -> Option<Instant> {
        let i = self.issued.fetch_add(1, Ordering::Relaxed);
        if self.config.max_requests.is_some_and(|max| i >= max) {
            return None;
        }
        let due = match self.config.rate {
            Some(rate) => self.start + Duration::from_secs_f64(i as f64 / rate),
            None => Instant::now(),
        };
        (due < self.end).then_some(due)
    }
}

/// Runs the load described by `config` and summarises it.
///
/// Fails only if not a single connection could be opened.
pub async fn run(config: LoadConfig) -> std::io::Result<Summary> {
    // Prove the server is there before the clock starts.
    let probe = Connection::open(config.addr).await?;
    drop(probe);
    let mut request = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: trackd-load\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        config.path,
        config.host,
        config.body.len()
    )
    .into_bytes();
    request.extend_from_slice(&config.body);
    let cpu_before = process_cpu_seconds();
    let start = Instant::now();
    let shared = Arc::new(Shared {
        request,
        end: start + config.duration,
        start,
        issued: AtomicU64::new(0),
        answered: AtomicU64::new(0),
        acknowledged: AtomicU64::new(0),
        config,
    });
    let done = Arc::new(AtomicBool::new(false));
    let progress = shared
        .config
        .progress
        .then(|| tokio::spawn(print_progress(shared.clone(), done.clone())));
    let workers: Vec<_> = (0..shared.config.connections.max(1))
        .map(|_| tokio::spawn(connection(shared.clone())))
        .collect();
    let mut total = Tally::new();
    for worker in workers {
        if let Ok(tally) = worker.await {
            total.merge(tally);
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let client_cpu_percent = cpu_before
        .zip(process_cpu_seconds())
        .map(|(before, after)| (after - before) / elapsed * 100.0);
    done.store(true, Ordering::Relaxed);
    if let Some(progress) = progress {
        let _ = progress.await;
    }
    let config = &shared.config;
    let requests: u64 = total.status.values().sum();
    let h = &total.latency;
    let us = |ns: u64| ns as f64 / 1000.0;
    Ok(Summary {
        mode: if config.rate.is_some() {
            "open"
        } else {
            "closed"
        },
        url: format!("http://{}{}", config.host, config.path),
        connections: config.connections,
        events_per_request: config.events_per_request,
        target_rate: config.rate,
        elapsed_s: elapsed,
        requests,
        events_acknowledged: total.events,
        requests_per_s: requests as f64 / elapsed,
        events_per_s: total.events as f64 / elapsed,
        status: total.status,
        transport_errors: total.transport_errors,
        latency_us: Percentiles {
            mean: h.mean() / 1000.0,
            p50: us(h.value_at_quantile(0.50)),
            p90: us(h.value_at_quantile(0.90)),
            p99: us(h.value_at_quantile(0.99)),
            p99_9: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
        },
        client_cpu_percent,
    })
}

/// User + system CPU time of this process so far, from `/proc/self/stat`.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields overall, in USER_HZ (100 per second on Linux).
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ').skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// One keep-alive connection sending requests until a bound is reached.
async fn connection(shared: Arc<Shared>) -> Tally {
    let config = &shared.config;
    let mut tally = Tally::new();
    let mut conn: Option<Connection> = None;
    while let Some(due) = shared.next_due() {
        wait_until(due).await;
        let sent_at = if config.rate.is_some() {
            due
        } else {
            Instant::now()
        };
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match Connection::open(config.addr).await {
                Ok(c) => conn.insert(c),
                Err(_) => {
                    // This request is lost; the bounds still end the run.
                    tally.transport_errors += 1;
                    tokio::time::sleep(RECONNECT_PAUSE).await;
                    continue;
                }
            },
        };
        match c
            .exchange(&shared.request, config.events_per_request > 1)
            .await
        {
            Ok(answer) => {
                let ns = u64::try_from(sent_at.elapsed().as_nanos()).unwrap_or(u64::MAX);
                tally.latency.saturating_record(ns.clamp(1, MAX_LATENCY_NS));
                *tally.status.entry(answer.status).or_default() += 1;
                shared.answered.fetch_add(1, Ordering::Relaxed);
                if (200..300).contains(&answer.status) {
                    let events = answer.accepted.unwrap_or(config.events_per_request);
                    tally.events += events;
                    shared.acknowledged.fetch_add(events, Ordering::Relaxed);
                }
                if !answer.keep_alive {
                    conn = None;
                }
            }
            Err(_) => {
                tally.transport_errors += 1;
                conn = None;
            }
        }
    }
    tally
}

/// What the client needs from an answer.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    status: u16,
    /// `"accepted":N` from the body, when asked for and present.
    accepted: Option<u64>,
    /// Whether the connection can carry another request.
    keep_alive: bool,
}

/// How the body of an answer ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyEnd {
    Length(usize),
    Chunked,
    Close,
}

/// A plain HTTP/1.1 client connection: one request at a time.
struct Connection {
    stream: TcpStream,
    /// Bytes read and not yet consumed.
    buf: Vec<u8>,
}

impl Connection {
    async fn open(addr: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            buf: Vec::with_capacity(16 << 10),
        })
    }

    /// Reads more bytes; fails at end of stream or past the size limit.
    async fn fill(&mut self) -> std::io::Result<()> {
        if self.buf.len() > MAX_ANSWER_BYTES {
            return Err(std::io::Error::other("answer too large"));
        }
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(16 << 10);
        }
        let n = self.stream.read_buf(&mut self.buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }

    /// Sends `request` and reads the whole answer.
    async fn exchange(&mut self, request: &[u8], want_accepted: bool) -> std::io::Result<Answer> {
        self.stream.write_all(request).await?;
        let (status, head_len, end, mut keep_alive) = loop {
            if let Some(head) = parse_head(&self.buf)? {
                break head;
            }
            self.fill().await?;
        };
        let body = match end {
            BodyEnd::Length(n) => {
                while self.buf.len() < head_len + n {
                    self.fill().await?;
                }
                head_len..head_len + n
            }
            BodyEnd::Close => {
                keep_alive = false;
                while self.fill().await.is_ok() {}
                head_len..self.buf.len()
            }
            BodyEnd::Chunked => loop {
                match chunked_len(&self.buf[head_len..])? {
                    Some(n) => break head_len..head_len + n,
                    None => self.fill().await?,
                }
            },
        };
        let accepted = want_accepted
            .then(|| accepted_count(&self.buf[body.clone()]))
            .flatten();
        self.buf.drain(..body.end);
        Ok(Answer {
            status,
            accepted,
            keep_alive,
        })
    }
}

/// Parses an answer head: status, head length, how the body ends, keep-alive.
#[allow(clippy::type_complexity)]
fn parse_head(buf: &[u8]) -> std::io::Result<Option<(u16, usize, BodyEnd, bool)>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_ANSWER_BYTES => {
            return Err(std::io::Error::other("answer head too large"))
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(std::io::Error::other(e)),
    };
    let status = response.code.unwrap_or(0);
    let mut end = BodyEnd::Close;
    let mut keep_alive = response.version == Some(1);
    for h in response.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| std::io::Error::other("bad Content-Length"))?;
            end = BodyEnd::Length(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding")
            && h.value.eq_ignore_ascii_case(b"chunked")
        {
            end = BodyEnd::Chunked;
        } else if h.name.eq_ignore_ascii_case("connection") {
            keep_alive = !h.value.eq_ignore_ascii_case(b"close");
        }
    }
    if (100..200).contains(&status) || status == 204 || status == 304 {
        end = BodyEnd::Length(0);
    }
    Ok(Some((status, head_len, end, keep_alive)))
}

/// The length of a complete chunked body at the start of `buf` (trailers
/// included), or `None` if more bytes are needed.
fn chunked_len(buf: &[u8]) -> std::io::Result<Option<usize>> {
    let mut at = 0;
    loop {
        let Some(line_end) = buf[at..].windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&buf[at..at + line_end]).map_err(std::io::Error::other)?;
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(std::io::Error::other)?;
        at += line_end + 2;
        if size == 0 {
            // Trailer lines, then an empty line.
            loop {
                let Some(end) = buf[at..].windows(2).position(|w| w == b"\r\n") else {
                    return Ok(None);
                };
                at += end + 2;
                if end == 0 {
                    return Ok(Some(at));
                }
            }
        }
        if buf.len() < at + size + 2 {
            return Ok(None);
        }
        at += size + 2;
    }
}

/// The `"accepted":N` of a /batch answer, without parsing the whole body.
pub fn accepted_count(body: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"accepted\":";
    let at = body.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let digits = &body[at..];
    let end = digits
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(digits.len());
    std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
}

/// Waits until `due`: on the timer while it is far, then by yielding, so
/// open-loop sends are not late by the timer's millisecond grain.
async fn wait_until(due: Instant) {
    let now = Instant::now();
    if due <= now {
        return;
    }
    if due - now > SPIN_WINDOW {
        tokio::time::sleep_until((due - SPIN_WINDOW).into()).await;
    }
    while Instant::now() < due {
        tokio::task::yield_now().await;
    }
}

async fn print_progress(shared: Arc<Shared>, done: Arc<AtomicBool>) {
    let mut last = (Instant::now(), 0u64, 0u64);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    while !done.load(Ordering::Relaxed) {
        tick.tick().await;
        let now = Instant::now();
        let answered = shared.answered.load(Ordering::Relaxed);
        let events = shared.acknowledged.load(Ordering::Relaxed);
        let dt = (now - last.0).as_secs_f64();
        eprint!(
            "\r{:6.1} s  {:>9.0} requests/s  {:>10.0} events/s  {:>10} answered ",
            (now - shared.start).as_secs_f64(),
            (answered - last.1) as f64 / dt,
            (events - last.2) as f64 / dt,
            answered,
        );
        last = (now, answered, events);
    }
    eprintln!();
}

/// A body of `events` small events (a bare object when `events` is 1, an
/// array otherwise), each padded with an extra key to about `event_bytes`.
pub fn sample_body(events: u64, event_bytes: usize) -> Bytes {
    let mut body = String::new();
    if events != 1 {
        body.push('[');
    }
    for i in 0..events {
        if i > 0 {
            body.push(',');
        }
        let head = format!(
            r#"{{"event":"click","user":"user-{i}","location":"/products/{i}","referrer":"/home""#
        );
        body.push_str(&head);
        let room = event_bytes.saturating_sub(head.len() + 2);
        if room > 10 {
            body.push_str(r#","pad":""#);
            body.extend(std::iter::repeat_n('x', room - 9));
            body.push('"');
        }
        body.push('}');
    }
    if events != 1 {
        body.push(']');
    }
    Bytes::from(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cpu_time_is_readable_and_grows() {
        let Some(before) = process_cpu_seconds() else {
            return; // not Linux
        };
        let spin = Instant::now();
        while spin.elapsed() < Duration::from_millis(30) {
            std::hint::black_box(spin.elapsed());
        }
        let after = process_cpu_seconds().expect("still readable");
        assert!(after >= before);
    }

    #[test]
    fn answer_heads_say_how_the_body_ends() {
        let head =
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 5\r\n\r\nhello";
        assert_eq!(
            parse_head(head).expect("valid"),
            Some((200, head.len() - 5, BodyEnd::Length(5), true))
        );
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\ncontent-le").expect("partial"),
            None
        );
        let close = b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\n\r\n";
        assert_eq!(
            parse_head(close).expect("valid"),
            Some((503, close.len(), BodyEnd::Close, false))
        );
        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
        assert!(matches!(
            parse_head(chunked).expect("valid"),
            Some((200, _, BodyEnd::Chunked, true))
        ));
        assert!(parse_head(b"garbage\r\n\r\n").is_err());
    }

    #[test]
    fn chunked_bodies_are_measured_once_complete() {
        let body = b"5\r\nhello\r\n3;x=y\r\nabc\r\n0\r\n\r\nNEXT";
        assert_eq!(chunked_len(body).expect("valid"), Some(body.len() - 4));
        assert_eq!(chunked_len(&body[..12]).expect("partial"), None);
        assert!(chunked_len(b"zz\r\n").is_err());
    }

    #[tokio::test]
    async fn one_connection_carries_answers_of_either_framing() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let answers: [&[u8]; 2] = [
                b"HTTP/1.1 200 OK\r\ncontent-length: 14\r\n\r\n{\"accepted\":7}",
                b"HTTP/1.1 503 Busy\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
            ];
            let mut seen = Vec::new();
            let mut buf = [0u8; 1024];
            for (i, answer) in answers.iter().enumerate() {
                while seen.windows(4).filter(|w| w == b"\r\n\r\n").count() <= i {
                    let n = socket.read(&mut buf).await.expect("read");
                    assert!(n > 0, "client hung up early");
                    seen.extend_from_slice(&buf[..n]);
                }
                socket.write_all(answer).await.expect("write");
            }
        });
        let mut conn = Connection::open(addr).await.expect("connect");
        let request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n";
        let first = conn.exchange(request, true).await.expect("first answer");
        assert_eq!(
            first,
            Answer {
                status: 200,
                accepted: Some(7),
                keep_alive: true
            }
        );
        let second = conn.exchange(request, true).await.expect("second answer");
        assert_eq!((second.status, second.accepted), (503, None));
        assert!(conn.buf.is_empty(), "nothing left over");
        server.await.expect("server");
    }

    #[test]
    fn accepted_count_reads_the_batch_answer() {
        assert_eq!(
            accepted_count(br#"{"message":"Success!","accepted":100,"ids":[]}"#),
            Some(100)
        );
        assert_eq!(accepted_count(br#"{"message":"Success!"}"#), None);
    }

    #[test]
    fn sample_bodies_are_valid_events_of_the_asked_size() {
        let one: serde_json::Value =
            serde_json::from_slice(&sample_body(1, 0)).expect("JSON object");
        assert_eq!(one["event"], "click");
        let big = sample_body(1, 1024);
        assert!((1000..=1030).contains(&big.len()), "{}", big.len());
        let many: Vec<serde_json::Value> =
            serde_json::from_slice(&sample_body(100, 0)).expect("JSON array");
        assert_eq!(many.len(), 100);
    }

    #[test]
    fn open_loop_due_times_follow_the_rate_and_stop_at_the_bounds() {
        let start = Instant::now();
        let shared = Shared {
            request: Vec::new(),
            config: LoadConfig {
                addr: "127.0.0.1:9".parse().expect("addr"),
                host: "x".into(),
                path: "/".into(),
                body: Bytes::new(),
                events_per_request: 1,
                connections: 1,
                rate: Some(1000.0),
                duration: Duration::from_secs(1),
                max_requests: Some(3),
                progress: false,
            },
            start,
            end: start + Duration::from_secs(1),
            issued: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            acknowledged: AtomicU64::new(0),
        };
        assert_eq!(shared.next_due(), Some(start));
        assert_eq!(shared.next_due(), Some(start + Duration::from_millis(1)));
        assert_eq!(shared.next_due(), Some(start + Duration::from_millis(2)));
        assert_eq!(shared.next_due(), None, "request count bound");
    }
}
