//! Segment's own libraries, unchanged, pointed at the real trackd binary:
//! segment-analytics-python, @segment/analytics-node, and @segment/analytics-next
//! in headless Chromium. What they send is replayed into a real PostgreSQL and
//! every message must be a row with the documented mapping.
//!
//! `scripts/test-segment` installs the clients (into target/segment-clients)
//! and runs these; `scripts/test` runs them with everything else. A bare
//! `cargo test` lists them as ignored.

mod common;

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use common::{replay_postgres, require_postgres, schema, StoredRow, TrackdProcess};
use serde_json::Value;

const KEY: &str = "wk_clients_test";

/// Where scripts/test-segment installed the clients.
fn clients_dir() -> PathBuf {
    let dir = std::env::var_os("TRACKD_SEGMENT_CLIENTS").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/segment-clients"),
        PathBuf::from,
    );
    assert!(
        dir.join("venv/bin/python").exists() && dir.join("node/node_modules").exists(),
        "the Segment clients are not installed in {}: run scripts/test-segment (or scripts/test)",
        dir.display()
    );
    dir
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(name)
}

/// Runs a client against `trackd` (bounded to two minutes) and parses its JSON report.
fn run_client(mut cmd: Command, trackd: &TrackdProcess) -> Value {
    let mut child = cmd
        .env("TRACKD_URL", format!("http://{}", trackd.addr))
        .env("TRACKD_WRITE_KEY", KEY)
        .env("NODE_PATH", clients_dir().join("node/node_modules"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    // Read both pipes while waiting, so a chatty client never blocks on a full pipe.
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("stdout piped")));
    let stderr = drain(Box::new(child.stderr.take().expect("stderr piped")));
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish in 2 minutes");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = stdout.join().expect("stdout reader");
    let stderr = stderr.join().expect("stderr reader");
    let stderr = String::from_utf8_lossy(&stderr);
    assert!(
        status.success(),
        "{cmd:?} failed: {stderr}\ntrackd log:\n{}",
        trackd.logs()
    );
    serde_json::from_slice(&stdout)
        .unwrap_or_else(|e| panic!("client report is not JSON ({e}); stderr: {stderr}"))
}

/// Starts trackd writing into `table`, runs the client, stops trackd and
/// replays its output into PostgreSQL.
fn land(table: &str, client: impl FnOnce(&TrackdProcess) -> Value) -> (Value, Vec<StoredRow>) {
    require_postgres();
    let trackd = TrackdProcess::start(&["--write-key", KEY, "--table", table, "--linger-ms", "20"]);
    let report = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| client(&trackd))) {
        Ok(report) => report,
        Err(panic) => {
            // Leave no trackd behind when the client fails.
            let mut trackd = trackd;
            let _ = trackd.child.kill();
            let _ = trackd.child.wait();
            std::panic::resume_unwind(panic);
        }
    };
    let (clean, sql) = trackd.terminate();
    assert!(clean, "trackd exits 0");
    let rows = replay_postgres(table, &schema(&["--table", table]), &sql);
    (report, rows)
}

fn time(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("time {s}: {e}"))
        .with_timezone(&Utc)
}

fn text(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(str::to_owned)
}

/// The row holding `message`, checked against the README's mapping.
fn row_for<'a>(rows: &'a [StoredRow], message: &Value) -> (&'a StoredRow, Value) {
    let id = message["messageId"]
        .as_str()
        .expect("the library set a messageId");
    let (row, extra) = rows
        .iter()
        .map(|r| {
            (
                r,
                serde_json::from_str::<Value>(&r.extra).expect("extra is JSON"),
            )
        })
        .find(|(_, extra)| extra["messageId"] == id)
        .unwrap_or_else(|| panic!("no row for message {message}"));
    let kind = message["type"].as_str().expect("type");
    let event = if kind == "track" {
        message["event"].as_str().expect("event").to_owned()
    } else {
        kind.to_owned()
    };
    assert_eq!(row.event, event, "event of {message}");
    let user = text(&message["userId"])
        .or_else(|| text(&message["anonymousId"]))
        .expect("an id");
    assert_eq!(row.user, user, "user of {message}");
    let properties = &message["properties"];
    let page = &message["context"]["page"];
    let location = match kind {
        "page" => text(&properties["url"]).or_else(|| text(&properties["path"])),
        "screen" => text(&message["name"]).or_else(|| text(&properties["name"])),
        _ => None,
    }
    .or_else(|| text(&page["url"]))
    .or_else(|| text(&page["path"]))
    .unwrap_or_default();
    assert_eq!(row.location, location, "location of {message}");
    assert_eq!(row.ip, "127.0.0.1");
    assert!(
        extra.get("writeKey").is_none(),
        "the write key is not stored"
    );
    (row, extra)
}

/// `event_time` is `received_at` shifted by `offset`, give or take the time
/// between the library stamping the message and sending it.
fn assert_event_time(row: &StoredRow, offset: TimeDelta) {
    let expected = time(&row.received_at) + offset;
    let got = time(&row.event_time);
    assert!(
        (got - expected).abs() < TimeDelta::seconds(10),
        "event_time {got} should be near {expected}"
    );
}

#[test]
#[ignore = "needs the Segment clients and PostgreSQL: run scripts/test-segment or scripts/test"]
fn python_library_calls_land_as_rows() {
    let venv_python = clients_dir().join("venv/bin/python");
    let (report, rows) = land("seg_python", |trackd| {
        let mut cmd = Command::new(venv_python);
        cmd.arg(script("python_sdk.py"));
        run_client(cmd, trackd)
    });
    let messages = report["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 10, "five calls, plain and gzip");
    assert_eq!(rows.len(), 10, "every message is a row");
    for message in messages {
        let (row, extra) = row_for(&rows, message);
        assert!(row
            .user_agent
            .as_deref()
            .is_some_and(|ua| ua.starts_with("analytics-python/")));
        assert_eq!(extra["context"]["library"]["name"], "analytics-python");
        match message["type"].as_str() {
            // Stamped an hour ago: the corrected time says so.
            Some("track") => assert_event_time(row, -TimeDelta::hours(1)),
            Some("alias") => assert_eq!(extra["previousId"], message["previousId"]),
            Some("group") => assert_eq!(extra["groupId"], "py-group"),
            Some("identify") => assert_eq!(extra["traits"]["plan"], "pro"),
            _ => assert_event_time(row, TimeDelta::zero()),
        }
    }
    eprintln!(
        "segment-analytics-python {}: {} rows",
        report["version"],
        rows.len()
    );
}

#[test]
#[ignore = "needs the Segment clients and PostgreSQL: run scripts/test-segment or scripts/test"]
fn node_library_calls_and_batches_land_as_rows() {
    let (report, rows) = land("seg_node", |trackd| {
        let mut cmd = Command::new("node");
        cmd.arg(script("node_sdk.js"));
        run_client(cmd, trackd)
    });
    let messages = report["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 36);
    assert_eq!(rows.len(), 36, "every message is a row");
    let statuses = report["statuses"].as_array().expect("statuses");
    assert!(statuses.iter().all(|s| s == 200), "{statuses:?}");
    let sizes: Vec<u64> = report["requestBytes"]
        .as_array()
        .expect("sizes")
        .iter()
        .map(|v| v.as_u64().expect("size"))
        .collect();
    assert!(
        sizes.len() >= 4,
        "batches of 3, and the big ones split: {sizes:?}"
    );
    assert!(
        sizes.iter().filter(|&&n| n > 250 * 1024).count() == 2,
        "the 30 big events went as two batches of 15: {sizes:?}"
    );
    for message in messages {
        let (row, extra) = row_for(&rows, message);
        assert_eq!(
            extra["context"]["library"]["name"],
            "@segment/analytics-node"
        );
        assert_event_time(row, TimeDelta::zero());
    }
    eprintln!(
        "@segment/analytics-node {}: {} rows in {} requests",
        report["version"],
        rows.len(),
        sizes.len()
    );
}

#[test]
#[ignore = "needs the Segment clients, Chromium and PostgreSQL: run scripts/test-segment or scripts/test"]
fn browser_library_and_beacon_land_as_rows() {
    let (report, rows) = land("seg_browser", |trackd| {
        let mut cmd = Command::new("node");
        cmd.arg(script("browser.js"));
        run_client(cmd, trackd)
    });
    let origin = report["origin"].as_str().expect("origin");
    let messages = report["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 3);
    assert_eq!(rows.len(), 4, "identify, page, track and the unload beacon");
    for message in messages {
        let (row, extra) = row_for(&rows, message);
        assert!(row
            .user_agent
            .as_deref()
            .is_some_and(|ua| ua.contains("Chrome")));
        assert_eq!(extra["context"]["library"]["name"], "analytics.js");
        assert!(row.location.starts_with(origin), "{}", row.location);
        assert_event_time(row, TimeDelta::zero());
    }
    let beacon = rows
        .iter()
        .find(|r| r.event == "Page Left")
        .expect("the beacon sent on unload is a row");
    assert_eq!(beacon.user, "browser-user");
    assert_eq!(beacon.location, format!("{origin}/"));
    let off_host = report["offHost"].as_array().expect("offHost");
    assert!(
        off_host.is_empty(),
        "the page asked for other hosts: {off_host:?}"
    );
    eprintln!(
        "@segment/analytics-next {} in Chromium: {} rows",
        report["version"],
        rows.len()
    );
}
