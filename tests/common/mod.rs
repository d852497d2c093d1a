//! Shared helpers for the integration tests: an in-process server on port 0,
//! the real `trackd` binary as a child process, and real PostgreSQL / SQLite
//! replay through `psql` and `sqlite3`.
#![allow(dead_code, missing_docs)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use clap::Parser;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use trackd::clock::{Clock, FixedClock, SystemClock};
use trackd::config::Config;
use trackd::server::RunError;
use trackd::sink::{MemorySink, Sink};
use trackd::writer::WriterReport;

/// A trackd server running inside the test process.
pub struct TestServer {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    handle: JoinHandle<Result<WriterReport, RunError>>,
}

impl TestServer {
    /// Starts a server with `args` (as on the command line) writing to `sink`.
    pub async fn start(args: &[&str], sink: Box<dyn Sink>) -> Self {
        Self::start_with_clock(args, sink, Arc::new(SystemClock)).await
    }

    pub async fn start_with_clock(
        args: &[&str],
        sink: Box<dyn Sink>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let config = Config::parse_from(std::iter::once("trackd").chain(args.iter().copied()));
        Self::start_with_config(config, sink, clock).await
    }

    /// Starts a server with `config` as it is (its `--listen` is ignored:
    /// the server gets a free port).
    pub async fn start_with_config(
        config: Config,
        sink: Box<dyn Sink>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(trackd::server::run(listener, config, sink, clock, async {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            shutdown: Some(tx),
            handle,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Sends the shutdown signal without waiting for the server to stop.
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Begins a graceful shutdown and waits for the drained writer's report.
    pub async fn stop(self) -> WriterReport {
        self.stop_result().await.expect("server drained cleanly")
    }

    /// Begins a graceful shutdown and returns how the server ended.
    pub async fn stop_result(mut self) -> Result<WriterReport, RunError> {
        self.begin_shutdown();
        tokio::time::timeout(Duration::from_secs(30), self.handle)
            .await
            .expect("server stops within 30 s")
            .expect("server task did not panic")
    }
}

/// A fixed clock for exact `received_at` comparisons.
pub fn fixed_clock() -> (Arc<dyn Clock>, String) {
    let at = DateTime::<Utc>::from_timestamp(1_765_000_000, 123_456_000).expect("valid time");
    (
        Arc::new(FixedClock(at)),
        "2025-12-06T05:46:40.123456Z".to_owned(),
    )
}

/// The memory sink's statements, concatenated.
pub fn output(sink: &MemorySink) -> String {
    sink.statements().concat()
}

/// Ids (the first value of each row) in SQL output, in order.
pub fn row_ids(sql: &str) -> Vec<String> {
    sql.match_indices("\n  ('")
        .map(|(i, m)| sql[i + m.len()..i + m.len() + 36].to_owned())
        .collect()
}

/// The real `trackd` binary, started with `args`, its stdout piped.
pub struct TrackdProcess {
    pub child: Child,
    pub addr: SocketAddr,
    stderr: Arc<std::sync::Mutex<String>>,
    /// Reads stdout as it comes, so a full pipe never stalls the writer.
    stdout: Option<std::thread::JoinHandle<String>>,
}

impl Drop for TrackdProcess {
    /// A test that fails midway must not leave trackd running.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl TrackdProcess {
    pub fn start(args: &[&str]) -> Self {
        Self::start_with_stdout(args, None)
    }

    /// Starts trackd with stdout going to `stdout`, or piped to the test.
    pub fn start_with_stdout(args: &[&str], stdout: Option<std::fs::File>) -> Self {
        let piped = stdout.is_none();
        let mut child = Command::new(env!("CARGO_BIN_EXE_trackd"))
            .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
            .args(args)
            .env_remove("NO_COLOR")
            .stdin(Stdio::null())
            .stdout(stdout.map_or_else(Stdio::piped, Stdio::from))
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn trackd");
        let stdout = piped.then(|| {
            let mut stdout = child.stdout.take().expect("stdout piped");
            std::thread::spawn(move || {
                let mut out = String::new();
                stdout.read_to_string(&mut out).expect("stdout is UTF-8");
                out
            })
        });
        let stderr = child.stderr.take().expect("stderr piped");
        let log = Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let log_copy = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    if let Some(addr) = v["fields"]["address"].as_str() {
                        let _ = tx.send(addr.to_owned());
                    }
                }
                let mut log = log_copy.lock().expect("log lock");
                log.push_str(&line);
                log.push('\n');
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("trackd logs its listening address")
            .parse()
            .expect("address parses");
        TrackdProcess {
            child,
            addr,
            stderr: log,
            stdout,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// POSTs `body` to `path` and returns the status and JSON answer.
    pub fn post(&self, path: &str, body: &str) -> (u16, serde_json::Value) {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            let response = reqwest::Client::new()
                .post(self.url(path))
                .body(body.to_owned())
                .send()
                .await
                .expect("sent");
            let status = response.status().as_u16();
            (status, response.json().await.expect("a JSON answer"))
        })
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Sends SIGTERM, waits for exit, returns (exit success, stdout).
    pub fn terminate(mut self) -> (bool, String) {
        self.signal("TERM");
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "trackd did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let out = self
            .stdout
            .take()
            .map(|reader| reader.join().expect("stdout reader thread"))
            .unwrap_or_default();
        (status.success(), out)
    }

    pub fn logs(&self) -> String {
        self.stderr.lock().expect("log lock").clone()
    }
}

/// `trackd schema` output for `args`.
pub fn schema(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_trackd"))
        .arg("schema")
        .args(args)
        .output()
        .expect("run trackd schema");
    assert!(out.status.success(), "trackd schema failed");
    String::from_utf8(out.stdout).expect("UTF-8 DDL")
}

/// One stored row, every column as text, as read back from a database.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StoredRow {
    pub id: String,
    pub ip: String,
    pub user_agent: Option<String>,
    pub event: String,
    pub user: String,
    pub location: String,
    pub received_at: String,
    pub extra: String,
    pub event_time: String,
}

/// Fails with a clear message unless scripts/test started PostgreSQL.
pub fn require_postgres() {
    assert!(
        std::env::var_os("TRACKD_TEST_POSTGRES").is_some(),
        "this test needs a real PostgreSQL: run scripts/test, which starts one"
    );
}

/// Runs SQL through `psql` (stopping at the first error) and returns stdout.
pub fn psql(input: &str) -> Result<String, String> {
    run_with_stdin(
        Command::new("psql")
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-f", "-"])
            .env("PGOPTIONS", "-c client_min_messages=warning"),
        input,
    )
}

/// Runs SQL through the `sqlite3` shell on a fresh in-memory database.
pub fn sqlite(input: &str) -> Result<String, String> {
    run_with_stdin(Command::new("sqlite3").args(["-bail", ":memory:"]), input)
}

fn run_with_stdin(cmd: &mut Command, input: &str) -> Result<String, String> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    let mut stdin = child.stdin.take().expect("stdin piped");
    let input = input.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let _ = writer.join();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    if !out.stderr.is_empty() {
        return Err(format!(
            "stderr not empty: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8(out.stdout).expect("UTF-8 output"))
}

/// Applies `ddl` and `statements` to PostgreSQL table `table` (recreated
/// first) and reads every row back, ordered by id.
///
/// Text comes back hex-encoded and is decoded here: psql's display of some
/// characters (noncharacters such as U+1FFFE) is not byte-exact.
pub fn replay_postgres(table: &str, ddl: &str, statements: &str) -> Vec<StoredRow> {
    psql(&format!("DROP TABLE IF EXISTS {table};\n{ddl}"))
        .unwrap_or_else(|e| panic!("DDL failed: {e}"));
    psql(statements).unwrap_or_else(|e| panic!("replay failed: {e}\n--- SQL ---\n{statements}"));
    let hex = |column: &str| format!("encode(convert_to({column}, 'UTF8'), 'hex')");
    let time = |column: &str| {
        format!("to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
    };
    let out = psql(&format!(
        "SELECT json_build_object('id', id::text, 'ip', host(ip), 'user_agent', {}, \
         'event', {}, 'user', {}, 'location', {}, 'received_at', {}, 'extra', {}, \
         'event_time', {}) FROM {table} ORDER BY id;",
        hex("user_agent"),
        hex("event"),
        hex("\"user\""),
        hex("location"),
        time("received_at"),
        hex("extra::text"),
        time("event_time"),
    ))
    .unwrap_or_else(|e| panic!("read back failed: {e}"));
    out.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let row: StoredRow = serde_json::from_str(l).unwrap_or_else(|e| panic!("row {l}: {e}"));
            row.decode_hex()
        })
        .collect()
}

/// The same for SQLite table `table`, in a fresh in-memory database.
pub fn replay_sqlite(table: &str, ddl: &str, statements: &str) -> Vec<StoredRow> {
    let hex = |column: &str| {
        format!("CASE WHEN {column} IS NULL THEN NULL ELSE hex({column}) END AS {column}")
    };
    let out = sqlite(&format!(
        "{ddl}\n{statements}\n.mode json\nSELECT id, ip, {}, {}, {}, {}, received_at, {}, event_time \
         FROM {table} ORDER BY id;\n",
        hex("user_agent"),
        hex("event"),
        hex("\"user\""),
        hex("location"),
        hex("extra"),
    ))
    .unwrap_or_else(|e| panic!("sqlite replay failed: {e}\n--- SQL ---\n{statements}"));
    if out.trim().is_empty() {
        return Vec::new();
    }
    let rows: Vec<StoredRow> =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("sqlite output {out}: {e}"));
    rows.into_iter().map(StoredRow::decode_hex).collect()
}

impl StoredRow {
    /// Decodes the text columns, read back as hex of their UTF-8 bytes.
    fn decode_hex(self) -> Self {
        let text = |hex: String| {
            let bytes: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digits"))
                .collect();
            String::from_utf8(bytes).expect("stored text is UTF-8")
        };
        StoredRow {
            user_agent: self.user_agent.map(text),
            event: text(self.event),
            user: text(self.user),
            location: text(self.location),
            extra: text(self.extra),
            ..self
        }
    }
}

/// An event as a client sends it, built from raw JSON texts so that the
/// expected `extra` is known to the byte.
#[derive(Debug, Clone)]
pub struct Sent {
    /// Raw JSON texts of the three required fields.
    pub event: String,
    pub user: String,
    pub location: String,
    /// Other keys with the raw JSON text of their values, in order.
    pub extra: Vec<(String, String)>,
    /// How many of `extra` come before the required fields in the body.
    pub extra_before: usize,
}

impl Sent {
    /// From plain strings, with extras given as raw JSON.
    pub fn new(event: &str, user: &str, location: &str, extra: &[(&str, &str)]) -> Self {
        Sent {
            event: json_string(event),
            user: json_string(user),
            location: json_string(location),
            extra: extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            extra_before: 0,
        }
    }

    pub fn body(&self) -> String {
        let key_value = |(k, v): &(String, String)| format!("{}:{v}", json_string(k));
        let split = self.extra_before.min(self.extra.len());
        let mut parts: Vec<String> = self.extra[..split].iter().map(key_value).collect();
        parts.push(format!("\"event\":{}", self.event));
        parts.push(format!("\"user\": {}", self.user));
        parts.push(format!("\"location\" :\t{}", self.location));
        parts.extend(self.extra[split..].iter().map(key_value));
        format!("{{ {} }}", parts.join(" , "))
    }

    pub fn expected_extra(&self) -> String {
        let pairs: Vec<String> = self
            .extra
            .iter()
            .map(|(k, v)| format!("{}:{v}", json_string(k)))
            .collect();
        format!("{{{}}}", pairs.join(","))
    }

    pub fn expected_event(&self) -> String {
        decode(&self.event)
    }

    pub fn expected_user(&self) -> String {
        if self.user.starts_with('"') {
            decode(&self.user)
        } else {
            self.user.clone()
        }
    }

    pub fn expected_location(&self) -> String {
        decode(&self.location)
    }

    /// Whether any value or key holds U+0000, which trackd must refuse.
    pub fn has_nul(&self) -> bool {
        let raw_has_nul = |raw: &str| {
            let mut chars = raw.chars();
            while let Some(c) = chars.next() {
                if c == '\\' && chars.next() == Some('u') {
                    let hex: String = chars.by_ref().take(4).collect();
                    if hex == "0000" {
                        return true;
                    }
                }
            }
            false
        };
        raw_has_nul(&self.event)
            || raw_has_nul(&self.user)
            || raw_has_nul(&self.location)
            || self
                .extra
                .iter()
                .any(|(k, v)| k.contains('\0') || raw_has_nul(v))
    }

    /// Asserts that `row` stores exactly what was sent.
    pub fn assert_stored(&self, row: &StoredRow) {
        assert_eq!(row.event, self.expected_event(), "event of {}", self.body());
        assert_eq!(row.user, self.expected_user(), "user of {}", self.body());
        assert_eq!(
            row.location,
            self.expected_location(),
            "location of {}",
            self.body()
        );
        assert_eq!(row.extra, self.expected_extra(), "extra of {}", self.body());
    }
}

pub fn json_string(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}

fn decode(raw: &str) -> String {
    serde_json::from_str(raw).expect("raw JSON string")
}
