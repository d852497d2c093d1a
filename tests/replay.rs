//! Replay: the SQL trackd prints, fed to a real PostgreSQL (and SQLite) after
//! the DDL trackd prints, stores every value exactly as it was sent.
//!
//! These tests need `psql` pointed at a running server and `sqlite3`;
//! `scripts/test` provides both. A bare `cargo test` skips them as ignored.

mod common;

use std::time::Instant;

use common::{
    fixed_clock, json_string, replay_postgres, replay_sqlite, require_postgres, schema, Sent,
    StoredRow, TrackdProcess,
};
use proptest::prelude::*;
use reqwest::StatusCode;
use trackd::event::{parse_event, Reason, RequestMeta};
use trackd::sql::{Dialect, InsertBuilder, TableName};

// ---------------------------------------------------------------------------
// Property: arbitrary Unicode strings and JSON values.

/// Any Unicode character, with the ones that break SQL and shells made common.
fn character() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => any::<char>(),
        1 => prop::sample::select(vec!['\'', '\\', '\r', '\n', '"', '$', ';', ':', '-', '.', '\u{2028}']),
    ]
}

/// Any Unicode text, control characters and U+0000 included.
fn text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(character(), 0..max).prop_map(String::from_iter)
}

fn nonempty_text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(character(), 1..max).prop_map(String::from_iter)
}

/// The raw text of a JSON integer of any length.
fn integer() -> impl Strategy<Value = String> {
    "-?(0|[1-9][0-9]{0,40})"
}

/// The raw text of an arbitrary JSON value, compact or spaced.
fn json_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("false".to_owned()),
        integer(),
        "-?(0|[1-9][0-9]{0,3})\\.[0-9]{1,20}([eE][+-]?[0-9]{1,3})?",
        text(20).prop_map(|s| json_string(&s)),
    ];
    leaf.prop_recursive(6, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(|v| format!("[{}]", v.join(", "))),
            prop::collection::vec((text(10), inner), 0..6).prop_map(|kv| {
                let pairs: Vec<String> = kv
                    .iter()
                    .map(|(k, v)| format!("{}:{v}", json_string(k)))
                    .collect();
                format!("{{{}}}", pairs.join(","))
            }),
        ]
    })
}

fn sent() -> impl Strategy<Value = Sent> {
    let user = prop_oneof![nonempty_text(40).prop_map(|s| json_string(&s)), integer()];
    let key = text(12).prop_filter("required names are not extra", |k| {
        !matches!(k.as_str(), "event" | "user" | "location")
    });
    (
        nonempty_text(40),
        user,
        nonempty_text(60),
        prop::collection::vec((key, json_value()), 0..6),
        0usize..6,
    )
        .prop_map(|(event, user, location, extra, extra_before)| Sent {
            event: json_string(&event),
            user,
            location: json_string(&location),
            extra,
            extra_before,
        })
}

/// Parses each body as trackd does and builds one statement of the valid ones;
/// bodies holding U+0000 must be refused as unstorable.
fn statement_for(events: &[Sent], dialect: Dialect, table: &str) -> (String, Vec<(String, Sent)>) {
    let (clock, _) = fixed_clock();
    let meta = RequestMeta {
        ip: "192.0.2.7".parse().expect("ip"),
        user_agent: Some("agent 'x' \\ \"y\"".into()),
        received_at: clock.now(),
        accepted_at: Instant::now(),
    };
    let table: TableName = table.parse().expect("table name");
    let mut builder = InsertBuilder::new(dialect, &table);
    let mut kept = Vec::new();
    for sent in events {
        match parse_event(sent.body().as_bytes(), &meta) {
            Ok(event) => {
                assert!(!sent.has_nul(), "U+0000 must be refused: {}", sent.body());
                kept.push((event.id.to_string(), sent.clone()));
                builder.push(&event);
            }
            Err(rejection) => {
                assert!(sent.has_nul(), "refused {}: {rejection}", sent.body());
                assert_eq!(rejection.reason, Reason::UnstorableValue);
            }
        }
    }
    let sql = if builder.is_empty() {
        String::new()
    } else {
        String::from_utf8(builder.finish().to_vec()).expect("UTF-8 SQL")
    };
    (sql, kept)
}

fn check_rows(rows: &[StoredRow], kept: &mut [(String, Sent)], at: &str) {
    kept.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(rows.len(), kept.len(), "every accepted event is a row");
    for (row, (id, sent)) in rows.iter().zip(kept.iter()) {
        assert_eq!(&row.id, id);
        assert_eq!(row.ip, "192.0.2.7");
        assert_eq!(row.user_agent.as_deref(), Some("agent 'x' \\ \"y\""));
        assert_eq!(row.received_at, at);
        assert_eq!(
            row.event_time, at,
            "a seed event happened when it was received"
        );
        sent.assert_stored(row);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    #[ignore = "needs PostgreSQL: run scripts/test"]
    fn arbitrary_events_replay_exactly_into_postgres(events in prop::collection::vec(sent(), 1..8)) {
        require_postgres();
        let (sql, mut kept) = statement_for(&events, Dialect::Postgres, "replay_prop");
        let ddl = schema(&["--table", "replay_prop"]);
        let rows = replay_postgres("replay_prop", &ddl, &sql);
        check_rows(&rows, &mut kept, &fixed_clock().1);
    }

    #[test]
    #[ignore = "needs sqlite3: run scripts/test"]
    fn arbitrary_events_replay_exactly_into_sqlite(events in prop::collection::vec(sent(), 1..8)) {
        let (sql, mut kept) = statement_for(&events, Dialect::Sqlite, "events");
        let ddl = schema(&["--dialect", "sqlite"]);
        let rows = replay_sqlite("events", &ddl, &sql);
        check_rows(&rows, &mut kept, &fixed_clock().1);
    }
}

// ---------------------------------------------------------------------------
// Hostile cases, end to end: real binary, real socket, captured stdout.

fn hostile() -> Vec<(Sent, Option<&'static str>)> {
    let deep_array = format!("{}1{}", "[".repeat(64), "]".repeat(64));
    let deep_object = format!("{}null{}", r#"{"a":"#.repeat(60), "}".repeat(60));
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let cases: Vec<(Sent, Option<&'static str>)> = vec![
        (
            Sent::new("click", "x'); DROP TABLE events; --", "dashboard", &[]),
            Some("curl/8.0"),
        ),
        (
            Sent::new("'", "''", "\\", &[("q", r#""it's \\ a \"quote\"""#)]),
            Some("it's \\ \"me\""),
        ),
        (Sent::new("trailing\\", "\\'", "E'x'", &[]), None),
        (
            Sent::new(
                "line\nbreak\r\n",
                "tab\tuser",
                "\n\\! echo pwned\n\\gexec\n.shell echo pwned\n.quit\n",
                &[],
            ),
            Some("Mozilla/5.0"),
        ),
        (
            Sent::new(
                "$$; DROP TABLE events; $$",
                ":foo :'bar' :\"baz\"",
                "/* comment */ -- x",
                &[("sql", r#""'; DELETE FROM events; --""#)],
            ),
            None,
        ),
        (
            Sent::new(
                "emoji 😀👩‍👩‍👧",
                "Ǆ ﷽ \u{202e}rtl",
                "\u{2028}\u{2029}\u{feff}\u{200b}",
                &[("ключ", r#""значение""#), ("😀", "\"\\ud83d\\ude00\"")],
            ),
            None,
        ),
        (
            Sent::new(
                "numbers",
                "123",
                "l",
                &[
                    ("huge", "123456789012345678901234567890"),
                    ("negative", "-98765432109876543210987654321"),
                    ("tiny", "1e-400"),
                    ("vast", "1E+400"),
                    ("float", "0.10000000000000000000000001"),
                    ("zero", "-0"),
                ],
            ),
            None,
        ),
        (
            Sent::new(
                "nesting",
                "u",
                "l",
                &[
                    ("deep_array", leak(deep_array)),
                    ("deep_object", leak(deep_object)),
                    ("empty", "{}"),
                    ("list", "[ ]"),
                ],
            ),
            None,
        ),
        (
            Sent::new(
                "escapes",
                "u",
                "l",
                &[
                    ("esc", r#""\u00e9\/\b\f\n\r\t\"\\""#),
                    ("weird key \" \\ ' \n", "true"),
                ],
            ),
            None,
        ),
        (
            Sent::new(
                "spacing",
                "u",
                "l",
                &[("spaced", "{ \"a\" :\n [ 1 ,\t2 ] }")],
            ),
            Some(""),
        ),
        (
            Sent::new("dupes", "u", "l", &[("k", "1"), ("k", "2")]),
            None,
        ),
        (
            Sent::new(
                "nonchars \u{1fffe}\u{ffff}\u{fdd0}",
                "\u{10ffff}",
                "\u{85}\u{7f}\u{1}",
                &[("\u{1fffe}", "\"\u{ffff}\"")],
            ),
            None,
        ),
        (
            Sent {
                user: "123456789012345678901234567890".into(),
                ..Sent::new("int user", "", "l", &[])
            },
            None,
        ),
        (
            Sent {
                extra_before: 2,
                ..Sent::new(
                    "extra first",
                    "u",
                    "l",
                    &[("a", "1"), ("b", "2"), ("c", "3")],
                )
            },
            None,
        ),
    ];
    cases
}

/// An acknowledged event: its id, what was sent, and the User-Agent sent with it.
type Acked = (String, Sent, Option<&'static str>);

fn run_hostile(dialect: &str) -> (String, Vec<Acked>) {
    let table = format!("hostile_{dialect}");
    let server =
        TrackdProcess::start(&["--dialect", dialect, "--table", &table, "--linger-ms", "20"]);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mut acked = Vec::new();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        for (sent, user_agent) in hostile() {
            let mut request = client.post(server.url("/track")).body(sent.body());
            if let Some(ua) = user_agent {
                request = request.header("User-Agent", ua);
            }
            let response = request.send().await.expect("sent");
            assert_eq!(response.status(), StatusCode::OK, "{}", sent.body());
            let json: serde_json::Value = response.json().await.expect("json");
            acked.push((
                json["id"].as_str().expect("id").to_owned(),
                sent,
                user_agent,
            ));
        }
        // The same events again, in one batch request.
        let bodies: Vec<String> = hostile().iter().map(|(s, _)| s.body()).collect();
        let response = client
            .post(server.url("/batch"))
            .body(format!("[{}]", bodies.join(",")))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), StatusCode::OK);
        let json: serde_json::Value = response.json().await.expect("json");
        assert_eq!(json["rejected"].as_array().map(Vec::len), Some(0));
        for ((sent, _), id) in hostile()
            .into_iter()
            .zip(json["ids"].as_array().expect("ids"))
        {
            acked.push((id.as_str().expect("id").to_owned(), sent, None));
        }
        // And what must be refused, is.
        for bad in [
            r#"{"event":"a","user":"b\u0000","location":"c"}"#,
            r#"{"event":"a","user":"b","location":"c","x":["\ud800"]}"#,
            r#"{"event":"a","user":"b","location":"c","x":"\udfff\ud800"}"#,
            &format!(
                r#"{{"event":"a","user":"b","location":"c","x":{}{}}}"#,
                "[".repeat(65),
                "]".repeat(65)
            ),
        ] {
            let response = client
                .post(server.url("/track"))
                .body(bad.to_owned())
                .send()
                .await
                .expect("sent");
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
        }
    });
    let (ok, stdout) = server.terminate();
    assert!(ok, "trackd exits 0 after SIGTERM");
    assert!(
        !stdout.contains('\u{1b}'),
        "piped output has no colour codes"
    );
    (stdout, acked)
}

fn check_hostile(rows: &[StoredRow], mut acked: Vec<Acked>) {
    acked.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(rows.len(), acked.len(), "every acknowledged event is a row");
    for (row, (id, sent, user_agent)) in rows.iter().zip(acked) {
        assert_eq!(row.id, id);
        assert_eq!(row.ip, "127.0.0.1");
        assert_eq!(row.user_agent.as_deref(), user_agent);
        sent.assert_stored(row);
    }
}

#[test]
#[ignore = "needs PostgreSQL: run scripts/test"]
fn hostile_events_replay_exactly_into_postgres() {
    require_postgres();
    let (stdout, acked) = run_hostile("postgres");
    let ddl = schema(&["--table", "hostile_postgres"]);
    let rows = replay_postgres("hostile_postgres", &ddl, &stdout);
    check_hostile(&rows, acked);
}

#[test]
#[ignore = "needs sqlite3: run scripts/test"]
fn hostile_events_replay_exactly_into_sqlite() {
    let (stdout, acked) = run_hostile("sqlite");
    let ddl = schema(&["--dialect", "sqlite", "--table", "hostile_sqlite"]);
    let rows = replay_sqlite("hostile_sqlite", &ddl, &stdout);
    check_hostile(&rows, acked);
}
