//! The success answers of /track and /batch, which are written by hand on the
//! hot path rather than through serde_json: they must still be the JSON the
//! contract promises, with ids that match what was queued.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;
use trackd::clock::SystemClock;
use trackd::config::Config;
use trackd::http::{app, AppState};
use trackd::queue::Queue;

async fn post(queue: &Arc<Queue>, path: &str, body: &str) -> (StatusCode, String, Value) {
    let state = Arc::new(AppState::new(
        &Config::default(),
        queue.clone(),
        Arc::new(SystemClock),
    ));
    let response = app(state)
        .oneshot(
            Request::post(path)
                .header("content-type", "application/json")
                .body(Body::from(body.to_owned()))
                .expect("request"),
        )
        .await
        .expect("infallible");
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().expect("ascii").to_owned())
        .unwrap_or_default();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let json = serde_json::from_slice(&bytes).expect("the answer is JSON");
    (status, content_type, json)
}

#[tokio::test]
async fn track_answers_success_with_the_queued_id() {
    let queue = Arc::new(Queue::new(10));
    let (status, content_type, json) = post(
        &queue,
        "/track",
        r#"{"event":"click","user":"u","location":"/"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "application/json");
    assert_eq!(json["message"], "Success!");
    let queued = queue.try_recv().expect("the event was queued");
    assert_eq!(json["id"], queued.id.to_string());
    assert_eq!(json.as_object().expect("object").len(), 2);
}

#[tokio::test]
async fn batch_answers_accepted_ids_in_order_and_rejections() {
    let queue = Arc::new(Queue::new(10));
    let body = r#"[{"event":"a","user":"u","location":"/"}, {"event":"a"},
                   {"event":"b","user":"u","location":"/"}]"#;
    let (status, content_type, json) = post(&queue, "/batch", body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "application/json");
    assert_eq!(json["message"], "Success!");
    assert_eq!(json["accepted"], 2);
    let first = queue.try_recv().expect("queued");
    let second = queue.try_recv().expect("queued");
    assert_eq!(&*first.event, "a");
    assert_eq!(
        json["ids"],
        serde_json::json!([first.id.to_string(), second.id.to_string()])
    );
    let rejected = json["rejected"].as_array().expect("array");
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0]["index"], 1);
    assert_eq!(rejected[0]["field"], "user");
    assert_eq!(rejected[0]["reason"], "missing_field");
}

#[tokio::test]
async fn batch_that_does_not_fit_queues_nothing_and_answers_503() {
    let queue = Arc::new(Queue::new(3));
    queue.push_all(vec![]).expect("an empty push is a no-op");
    let (status, _, _) = post(
        &queue,
        "/track",
        r#"{"event":"click","user":"u","location":"/"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let body = r#"[{"event":"a","user":"u","location":"/"},{"event":"a","user":"u","location":"/"},{"event":"a","user":"u","location":"/"}]"#;
    let (status, _, json) = post(&queue, "/batch", body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json["reason"], "queue_full");
    assert_eq!(queue.depth(), 1, "none of the batch was queued");
}
