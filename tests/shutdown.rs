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
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            let response = reqwest::Client::new()
                .post(server.url("/track"))
                .body(EVENT)
                .send()
                .await
                .expect("sent");
            assert!(response.status().is_success());
        });
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
