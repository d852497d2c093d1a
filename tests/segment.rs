//! The Segment-compatible /v1 routes over a real socket: write keys, limits,
//! gzip, CORS and per-message results, and what lands in the output.

mod common;

use std::io::Write;

use common::{output, row_ids, TestServer};
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::StatusCode;
use serde_json::{json, Value};
use trackd::sink::MemorySink;

const KEY: &str = "wk_test_1";

fn track(user: &str) -> Value {
    json!({"type": "track", "userId": user, "event": "Clicked", "properties": {"n": 1}})
}

async fn send(request: reqwest::RequestBuilder) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let response = request.send().await.expect("request sent");
    let status = response.status();
    let headers = response.headers().clone();
    let json = response.json::<Value>().await.expect("JSON body");
    (status, headers, json)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).expect("compress");
    enc.finish().expect("compress")
}

#[tokio::test]
async fn wrong_or_missing_write_key_is_401_and_nothing_is_written() {
    let sink = MemorySink::new();
    let server = TestServer::start(&["--write-key", KEY], Box::new(sink.clone())).await;
    let client = reqwest::Client::new();
    let url = server.url("/v1/track");
    let body = track("u1").to_string();

    for request in [
        client.post(&url).body(body.clone()),
        client
            .post(&url)
            .basic_auth("wk_wrong", Some(""))
            .body(body.clone()),
        client.post(&url).bearer_auth(KEY).body(body.clone()),
        client
            .post(format!("{url}?writeKey=wk_wrong"))
            .body(body.clone()),
    ] {
        let (status, headers, json) = send(request).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(json["reason"], "unauthorized");
        assert!(json["message"]
            .as_str()
            .is_some_and(|m| m.contains("write key")));
        assert!(headers.contains_key(WWW_AUTHENTICATE));
    }
    let (status, _, json) = send(client.post(server.url("/v1/batch")).body("{}")).await;
    assert_eq!(
        (status, &json["reason"]),
        (StatusCode::UNAUTHORIZED, &json!("unauthorized"))
    );

    server.stop().await;
    assert_eq!(output(&sink), "");
}

#[tokio::test]
async fn write_key_is_accepted_from_basic_auth_or_query_and_seed_routes_stay_open() {
    let sink = MemorySink::new();
    let server = TestServer::start(
        &["--write-key", "other", "--write-key", KEY],
        Box::new(sink.clone()),
    )
    .await;
    let client = reqwest::Client::new();
    let body = track("u1").to_string();
    let (status, _, json) = send(
        client
            .post(server.url("/v1/track"))
            .basic_auth(KEY, Some(""))
            .body(body.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["success"], true);
    // As navigator.sendBeacon sends it: text/plain, key in the query string.
    let (status, _, _) = send(
        client
            .post(server.url(&format!("/v1/t?writeKey={KEY}")))
            .header(CONTENT_TYPE, "text/plain;charset=UTF-8")
            .body(body),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = send(
        client
            .post(server.url("/track"))
            .body(r#"{"event":"e","user":"u","location":"l"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "/track needs no write key");
    server.stop().await;
    assert_eq!(row_ids(&output(&sink)).len(), 3);
}

#[tokio::test]
async fn oversized_message_and_oversized_batch_are_413() {
    let sink = MemorySink::new();
    let server = TestServer::start(&[], Box::new(sink.clone())).await;
    let client = reqwest::Client::new();
    let mut big = track("u1");
    big["properties"]["pad"] = json!("x".repeat(33 * 1024));

    let (status, _, json) = send(client.post(server.url("/v1/track")).body(big.to_string())).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(json["reason"], "body_too_large");
    assert!(json["message"].as_str().unwrap_or("").contains("32768"));

    let mut medium = track("u1");
    medium["properties"]["pad"] = json!("x".repeat(30 * 1024));
    let batch = json!({"batch": vec![medium; 17]});
    assert!(batch.to_string().len() > 500 * 1024);
    let (status, _, json) =
        send(client.post(server.url("/v1/batch")).body(batch.to_string())).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(json["reason"], "body_too_large");
    assert!(json["message"].as_str().unwrap_or("").contains("512000"));

    server.stop().await;
    assert_eq!(output(&sink), "");
}

#[tokio::test]
async fn batch_keeps_every_valid_message_and_names_each_rejected_index() {
    let sink = MemorySink::new();
    let server = TestServer::start(&[], Box::new(sink.clone())).await;
    let client = reqwest::Client::new();
    let mut oversized = track("big");
    oversized["properties"]["pad"] = json!("x".repeat(33 * 1024));
    let body = json!({
        "batch": [
            track("u1"),
            oversized,
            {"type": "track", "event": "no ids"},
            {"type": "track", "userId": "u2"},
            {"type": "page", "anonymousId": "a3", "properties": {"url": "http://example.test/p"}},
        ],
        "context": {"library": {"name": "test"}},
    });
    let (status, _, json) = send(client.post(server.url("/v1/batch")).body(body.to_string())).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["accepted"], 2);
    let rejected: Vec<(u64, &str, Option<&str>)> = json["rejected"]
        .as_array()
        .expect("rejected")
        .iter()
        .map(|r| {
            (
                r["index"].as_u64().expect("index"),
                r["reason"].as_str().expect("reason"),
                r["field"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        rejected,
        [
            (1, "message_too_large", None),
            (2, "missing_field", Some("userId")),
            (3, "missing_field", Some("event")),
        ]
    );
    let ids: Vec<String> = json["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|v| v.as_str().expect("id").to_owned())
        .collect();

    let (status, _, json) = send(
        client
            .post(server.url("/v1/import"))
            .body(r#"{"batch":[{"type":"track","event":"x"}]}"#),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json["reason"], "no_valid_event");
    assert_eq!(json["rejected"][0]["field"], "userId");
    let (status, _, json) =
        send(client.post(server.url("/v1/batch")).body(r#"{"batch":[]}"#)).await;
    assert_eq!(
        (status, &json["reason"]),
        (StatusCode::BAD_REQUEST, &json!("empty_batch"))
    );

    server.stop().await;
    let out = output(&sink);
    assert_eq!(row_ids(&out), ids);
    assert!(out.contains("'Clicked', 'u1', ''"), "{out}");
    assert!(
        out.contains("'page', 'a3', 'http://example.test/p'"),
        "{out}"
    );
    assert!(
        out.contains(r#""context":{"library":{"name":"test"}}"#),
        "{out}"
    );
}

#[tokio::test]
async fn gzip_batches_are_read_bombs_are_413_and_other_encodings_415() {
    let sink = MemorySink::new();
    let server = TestServer::start(&[], Box::new(sink.clone())).await;
    let client = reqwest::Client::new();
    let body = json!({"batch": [track("u1"), track("u2")]}).to_string();
    let (status, _, json) = send(
        client
            .post(server.url("/v1/batch"))
            .header(CONTENT_ENCODING, "gzip")
            .body(gzip(body.as_bytes())),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["accepted"], 2);

    // 10 MB of spaces, a few KB on the wire: refused once 500 KB are out.
    let bomb = gzip(&vec![b' '; 10_000_000]);
    assert!(bomb.len() < 50_000);
    for path in ["/v1/batch", "/v1/track"] {
        let (status, _, json) = send(
            client
                .post(server.url(path))
                .header(CONTENT_ENCODING, "gzip")
                .body(bomb.clone()),
        )
        .await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        assert_eq!(json["reason"], "body_too_large", "{path}");
    }
    let (status, _, json) = send(
        client
            .post(server.url("/v1/batch"))
            .header(CONTENT_ENCODING, "br")
            .body(body),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(json["reason"], "unsupported_encoding");

    server.stop().await;
    assert_eq!(row_ids(&output(&sink)).len(), 2);
}

#[tokio::test]
async fn cors_preflight_is_answered_and_responses_name_the_origin() {
    let server = TestServer::start(&["--write-key", KEY], Box::new(MemorySink::new())).await;
    let client = reqwest::Client::new();
    let origin = "http://shop.example.test:8080";
    let response = client
        .request(reqwest::Method::OPTIONS, server.url("/v1/t"))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization,content-type",
        )
        .send()
        .await
        .expect("sent");
    assert_eq!(
        response.status(),
        StatusCode::NO_CONTENT,
        "no key needed to ask"
    );
    let h = response.headers();
    assert_eq!(h["access-control-allow-origin"], origin);
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert_eq!(
        h["access-control-allow-headers"],
        "authorization,content-type"
    );
    assert!(h["access-control-allow-methods"]
        .to_str()
        .expect("ascii")
        .contains("POST"));

    for (key, expected) in [(KEY, StatusCode::OK), ("wrong", StatusCode::UNAUTHORIZED)] {
        let response = client
            .post(server.url("/v1/t"))
            .header("Origin", origin)
            .basic_auth(key, Some(""))
            .body(track("u").to_string())
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), expected);
        assert_eq!(response.headers()["access-control-allow-origin"], origin);
        assert_eq!(
            response.headers()["access-control-allow-credentials"],
            "true"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn single_message_routes_set_the_type_and_refuse_bad_messages() {
    let sink = MemorySink::new();
    let server = TestServer::start(&[], Box::new(sink.clone())).await;
    let client = reqwest::Client::new();
    for (path, body) in [
        (
            "/v1/identify",
            json!({"userId": "u", "traits": {"email": "a@b.test"}}),
        ),
        (
            "/v1/page",
            json!({"userId": "u", "name": "Home", "properties": {"path": "/"}}),
        ),
        (
            "/v1/screen",
            json!({"anonymousId": "a", "name": "Settings"}),
        ),
        ("/v1/group", json!({"userId": "u", "groupId": "g1"})),
        ("/v1/alias", json!({"userId": "u", "previousId": "a"})),
    ] {
        let (status, _, json) = send(client.post(server.url(path)).body(body.to_string())).await;
        assert_eq!(status, StatusCode::OK, "{path}: {json}");
    }
    for (body, reason, field) in [
        (json!({"event": "e"}), "missing_field", "userId"),
        (json!({"userId": "u"}), "missing_field", "event"),
        (
            json!({"userId": "u", "event": "e", "type": "page"}),
            "invalid_field",
            "type",
        ),
        (
            json!({"userId": "u", "event": "e", "timestamp": "soon"}),
            "invalid_field",
            "timestamp",
        ),
    ] {
        let (status, _, json) =
            send(client.post(server.url("/v1/track")).body(body.to_string())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(
            (json["reason"].as_str(), json["field"].as_str()),
            (Some(reason), Some(field))
        );
    }
    let response = client
        .get(server.url("/v1/track"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    server.stop().await;
    let out = output(&sink);
    assert_eq!(row_ids(&out).len(), 5);
    for row in [
        "'identify', 'u', ''",
        "'page', 'u', '/'",
        "'screen', 'a', 'Settings'",
        "'group', 'u', ''",
        "'alias', 'u', ''",
    ] {
        assert!(out.contains(row), "{row} in {out}");
    }
}
