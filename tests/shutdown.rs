//! The real binary under concurrent load, stopped with SIGTERM: every event
//! that got a 2xx is in the output, exactly once, and trackd exits 0.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{row_ids, TrackdProcess};

const EVENT: &str = r#"{"event":"load","user":"u","location":"l","n":1}"#;

#[test]
fn sigterm_under_load_writes_every_acknowledged_event() {
    let server = TrackdProcess::start(&["--linger-ms", "5", "--queue-capacity", "5000"]);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let stop = Arc::new(AtomicBool::new(false));
    let track_url = server.url("/track");
    let batch_url = server.url("/batch");
    let batch_body = format!("[{}]", [EVENT; 10].join(","));

    let clients: Vec<_> = (0..8)
        .map(|n| {
            let (track_url, batch_url, batch_body) =
                (track_url.clone(), batch_url.clone(), batch_body.clone());
            let stop = stop.clone();
            runtime.spawn(async move {
                let client = reqwest::Client::new();
                let mut acked = Vec::new();
                let mut refused = 0u32;
                // Bounded: at most 20 000 requests per client, and the loop
                // ends soon after the server stops answering.
                for i in 0..20_000 {
                    let batch = (n + i) % 4 == 0;
                    let request = if batch {
                        client.post(&batch_url).body(batch_body.clone())
                    } else {
                        client.post(&track_url).body(EVENT)
                    };
                    match request.send().await {
                        Ok(response) if response.status().is_success() => {
                            let json: serde_json::Value =
                                response.json().await.expect("2xx has a JSON body");
                            if batch {
                                let ids = json["ids"].as_array().expect("ids");
                                assert_eq!(ids.len(), 10, "a batch is accepted whole");
                                acked
                                    .extend(ids.iter().map(|v| v.as_str().expect("id").to_owned()));
                            } else {
                                acked.push(json["id"].as_str().expect("id").to_owned());
                            }
                        }
                        Ok(response) => {
                            assert_eq!(response.status(), 503, "only overload or shutdown refuses");
                            refused += 1;
                        }
                        Err(_) => refused += 1,
                    }
                    if stop.load(Ordering::Relaxed) && refused > 0 {
                        break;
                    }
                    if refused > 50 {
                        break;
                    }
                }
                (acked, refused)
            })
        })
        .collect();

    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);
    let logs_before = server.logs();
    let (exit_ok, stdout) = server.terminate();
    let (acked, refused) = runtime.block_on(async {
        let mut all = Vec::new();
        let mut refused = 0;
        for client in clients {
            let (acked, n) = client.await.expect("client task");
            all.extend(acked);
            refused += n;
        }
        (all, refused)
    });

    assert!(
        exit_ok,
        "trackd exits 0 after draining; logs:\n{logs_before}"
    );
    assert!(
        acked.len() > 100,
        "the load generated real traffic: {}",
        acked.len()
    );
    assert!(
        refused > 0,
        "the load was still running when shutdown began"
    );
    let written = row_ids(&stdout);
    let written_set: HashSet<&String> = written.iter().collect();
    assert_eq!(
        written_set.len(),
        written.len(),
        "no event is written twice"
    );
    let missing: Vec<&String> = acked
        .iter()
        .filter(|id| !written_set.contains(id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged events missing",
        missing.len()
    );
    assert_eq!(written.len(), acked.len(), "acknowledged == written");
    eprintln!(
        "acknowledged {} events, {refused} requests refused, wrote {} rows in {} statements",
        acked.len(),
        written.len(),
        stdout.matches("INSERT INTO").count()
    );
}

#[test]
fn color_always_wraps_each_statement_in_blue_and_never_does_not() {
    for (args, colored) in [(&["--color", "always"][..], true), (&[][..], false)] {
        let server = TrackdProcess::start(args);
        assert_eq!(server.post("/track", EVENT).0, 200);
        let (ok, stdout) = server.terminate();
        assert!(ok);
        if colored {
            assert!(
                stdout.starts_with("\u{1b}[94mINSERT INTO events"),
                "{stdout:?}"
            );
            assert!(stdout.ends_with(";\u{1b}[0m\n"), "{stdout:?}");
        } else {
            assert!(stdout.starts_with("INSERT INTO events"), "{stdout:?}");
            assert!(stdout.ends_with(";\n"), "{stdout:?}");
        }
    }
}

/// A 128 KiB tmpfs, unmounted on drop. Mounting needs root, as scripts/test runs.
struct TinyDisk {
    dir: tempfile::TempDir,
}

impl TinyDisk {
    fn mount() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=128k", "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mounting a tmpfs needs root: run scripts/test as root"
        );
        TinyDisk { dir }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

/// Fills the disk until fewer than `free` bytes are left; returns the filler.
fn fill(disk: &TinyDisk, free: u64) -> std::path::PathBuf {
    let filler = disk.path("filler");
    let mut file = std::fs::File::create(&filler).expect("filler");
    let block = vec![0u8; 4096];
    while std::io::Write::write_all(&mut file, &block).is_ok() {}
    drop(file);
    let full = std::fs::metadata(&filler).expect("filler").len();
    std::fs::File::options()
        .write(true)
        .open(&filler)
        .and_then(|f| f.set_len(full.saturating_sub(free)))
        .expect("shrink filler");
    filler
}

/// Posts one ~60 KB event that cannot fit on the nearly full disk, waits
/// while the writer retries, frees the disk, stops trackd, and returns the
/// acknowledged id and exit status.
fn post_while_disk_full(server: &TrackdProcess, filler: &std::path::Path) -> String {
    let pad = "x".repeat(60_000);
    let (status, json) = server.post(
        "/track",
        &format!(r#"{{"event":"big","user":"u","location":"l","pad":"{pad}"}}"#),
    );
    assert_eq!(status, 200);
    let id = json["id"].as_str().expect("id").to_owned();
    std::thread::sleep(Duration::from_millis(700));
    std::fs::remove_file(filler).expect("free the disk");
    id
}

fn assert_one_whole_statement(sql: &str, id: &str) {
    assert_eq!(
        sql.matches("INSERT INTO").count(),
        1,
        "exactly one statement"
    );
    assert!(sql.starts_with("INSERT INTO events"), "no torn prefix");
    assert!(sql.ends_with(";\n"), "ends whole");
    assert_eq!(sql.matches(id).count(), 1);
    assert!(!sql.contains('\0'), "no hole");
}

#[test]
#[ignore = "needs root to mount a tmpfs: run scripts/test"]
fn a_full_disk_never_leaves_half_a_statement_in_the_output_file() {
    let disk = TinyDisk::mount();
    let filler = fill(&disk, 20_000);
    let out = disk.path("out.sql");
    let server =
        TrackdProcess::start(&["--output", out.to_str().expect("utf-8"), "--linger-ms", "5"]);
    let id = post_while_disk_full(&server, &filler);
    let (ok, _) = server.terminate();
    assert!(ok, "trackd exits 0 once the retry succeeded");
    assert_one_whole_statement(&std::fs::read_to_string(&out).expect("output"), &id);
}

#[test]
#[ignore = "needs root to mount a tmpfs: run scripts/test"]
fn a_full_disk_never_leaves_half_a_statement_in_redirected_stdout() {
    let disk = TinyDisk::mount();
    let filler = fill(&disk, 20_000);
    let out = disk.path("out.sql");
    let file = std::fs::File::create(&out).expect("create");
    let server = TrackdProcess::start_with_stdout(&["--linger-ms", "5"], Some(file));
    let id = post_while_disk_full(&server, &filler);
    let (ok, _) = server.terminate();
    assert!(ok, "trackd exits 0 once the retry succeeded");
    assert_one_whole_statement(&std::fs::read_to_string(&out).expect("output"), &id);
}

#[test]
fn sigterm_right_after_startup_still_drains() {
    // The signal handlers must exist before the first event is acknowledged.
    for _ in 0..10 {
        let server = TrackdProcess::start(&["--linger-ms", "1000"]);
        let (status, json) = server.post("/track", EVENT);
        assert_eq!(status, 200);
        let id = json["id"].as_str().expect("id").to_owned();
        let (ok, stdout) = server.terminate();
        assert!(ok, "exit 0");
        assert_eq!(row_ids(&stdout), [id], "the acknowledged event is written");
    }
}
