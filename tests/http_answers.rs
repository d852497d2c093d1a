//! The success answers of /track and /batch, which are written by hand on the
//! hot path rather than through serde_json: they must still be the JSON the
//! contract promises, with ids that match the rows written.

mod common;

use common::{output, TestServer};
use serde_json::Value;
use trackd::sink::MemorySink;

/// Runs a server with `args`, sends each `(path, body)`, shuts it down and
/// returns every answer (status, content type, JSON) and the statements written.
async fn exchange(args: &[&str], requests: &[(&str, &str)]) -> (Vec<(u16, String, Value)>, String) {
    let sink = MemorySink::new();
    let server = TestServer::start(args, Box::new(sink.clone())).await;
    let client = reqwest::Client::new();
    let mut answers = Vec::new();
    for (path, body) in requests {
        let response = client
            .post(server.url(path))
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
    server.stop().await;
    (answers, output(&sink))
}

#[tokio::test]
async fn track_answers_success_with_the_written_id() {
    let (answers, sql) = exchange(
        &[],
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
    let (answers, sql) = exchange(&[], &[("/batch", body)]).await;
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
    let event = r#"{"event":"a","user":"u","location":"/"}"#;
    let body = format!("[{event},{event},{event}]");
    let (answers, sql) = exchange(&["--queue-capacity", "2"], &[("/batch", &body)]).await;
    let (status, _, json) = &answers[0];
    assert_eq!(*status, 413);
    assert_eq!(json["reason"], "batch_too_large");
    assert!(json.get("ids").is_none());
    assert_eq!(sql, "");
}
