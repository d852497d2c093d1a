//! The success answers of /track and /batch, which are written by hand on the
//! hot path rather than through serde_json: they must still be the JSON the
//! contract promises, with ids that match the rows written.

use std::sync::Arc;

use serde_json::Value;
use trackd::clock::SystemClock;
use trackd::config::Config;
use trackd::sink::MemorySink;

/// Runs a server with `config`, sends each `(path, body)`, shuts it down and
/// returns every answer (status, content type, JSON) and the statements written.
async fn exchange(
    config: Config,
    requests: &[(&str, &str)],
) -> (Vec<(u16, String, Value)>, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let sink = MemorySink::new();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(trackd::server::run(
        listener,
        config,
        Box::new(sink.clone()),
        Arc::new(SystemClock),
        async {
            let _ = stopped.await;
        },
    ));
    let client = reqwest::Client::new();
    let mut answers = Vec::new();
    for (path, body) in requests {
        let response = client
            .post(format!("http://{addr}{path}"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("answer");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().expect("ascii").to_owned())
            .unwrap_or_default();
        let json = response.json().await.expect("the answer is JSON");
        answers.push((status, content_type, json));
    }
    let _ = stop.send(());
    server.await.expect("server task").expect("drained");
    (answers, sink.statements().concat())
}

#[tokio::test]
async fn track_answers_success_with_the_written_id() {
    let (answers, sql) = exchange(
        Config::default(),
        &[("/track", r#"{"event":"click","user":"u","location":"/"}"#)],
    )
    .await;
    let (status, content_type, json) = &answers[0];
    assert_eq!(*status, 200);
    assert_eq!(content_type, "application/json");
    assert_eq!(json["message"], "Success!");
    assert_eq!(json.as_object().expect("object").len(), 2);
    let id = json["id"].as_str().expect("id is a string");
    assert!(uuid::Uuid::parse_str(id).is_ok());
    assert!(sql.contains(&format!("('{id}', ")), "{sql}");
}

#[tokio::test]
async fn batch_answers_accepted_ids_in_order_and_rejections() {
    let body = r#"[{"event":"a","user":"u","location":"/"}, {"event":"a"},
                   {"event":"b","user":"u","location":"/"}]"#;
    let (answers, sql) = exchange(Config::default(), &[("/batch", body)]).await;
    let (status, content_type, json) = &answers[0];
    assert_eq!(*status, 200);
    assert_eq!(content_type, "application/json");
    assert_eq!(json["message"], "Success!");
    assert_eq!(json["accepted"], 2);
    let ids: Vec<&str> = json["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|v| v.as_str().expect("string"))
        .collect();
    assert_eq!(ids.len(), 2);
    let first = sql.find(ids[0]).expect("first id written");
    let second = sql.find(ids[1]).expect("second id written");
    assert!(first < second, "rows are written in the order sent");
    assert!(sql[first..second].contains("'a'"));
    let rejected = json["rejected"].as_array().expect("array");
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0]["index"], 1);
    assert_eq!(rejected[0]["field"], "user");
    assert_eq!(rejected[0]["reason"], "missing_field");
}

#[tokio::test]
async fn batch_that_cannot_fit_answers_the_error_and_writes_nothing() {
    let config = Config {
        queue_capacity: 2,
        ..Config::default()
    };
    let event = r#"{"event":"a","user":"u","location":"/"}"#;
    let body = format!("[{event},{event},{event}]");
    let (answers, sql) = exchange(config, &[("/batch", &body)]).await;
    let (status, _, json) = &answers[0];
    assert_eq!(*status, 413);
    assert_eq!(json["reason"], "batch_too_large");
    assert!(json.get("ids").is_none());
    assert_eq!(sql, "");
}

#[tokio::test]
async fn a_body_that_stops_arriving_gets_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = Config {
        request_timeout_ms: 200,
        ..Config::default()
    };
    let server = tokio::spawn(trackd::server::run(
        listener,
        config,
        Box::new(MemorySink::new()),
        Arc::new(SystemClock),
        async {
            let _ = stopped.await;
        },
    ));
    let mut socket = tokio::net::TcpStream::connect(addr).await.expect("connect");
    socket
        .write_all(b"POST /track HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"event\":")
        .await
        .expect("send part of the body");
    let mut answer = vec![0u8; 1024];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), socket.read(&mut answer))
        .await
        .expect("answered before the test gives up")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    drop(socket);
    let _ = stop.send(());
    server.await.expect("server task").expect("drained");
}
