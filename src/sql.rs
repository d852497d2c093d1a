//! Building SQL text: the table's DDL and multi-row INSERT statements.
//!
//! Every value goes through [`Dialect::push_literal`]; nothing is interpolated
//! raw. The event module has already refused what no dialect can store (U+0000).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};

use crate::event::Event;

/// The columns of a row, in order, as they appear in every statement.
pub const COLUMNS: &str =
    r#"id, ip, user_agent, event, "user", location, received_at, extra, event_time"#;

/// Which database the SQL text is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Dialect {
    /// PostgreSQL: `uuid`, `inet`, `timestamptz`, `json` columns.
    Postgres,
    /// SQLite: text columns; `extra` checked with `json_valid`.
    Sqlite,
}

impl Dialect {
    /// Appends `value` as a string literal that means exactly `value`.
    ///
    /// PostgreSQL reads backslashes literally in `'…'` only while
    /// `standard_conforming_strings` is on, so a value holding one is written
    /// as an escape string `E'…'`, which reads the same under either setting.
    ///
    /// The `sqlite3` shell drops a carriage return that ends an input line,
    /// even inside a literal, so for SQLite a CR is spliced in as `char(13)`.
    pub fn push_literal(self, out: &mut Vec<u8>, value: &str) {
        let bytes = value.as_bytes();
        let special = match self {
            Dialect::Postgres => memchr::memchr2(b'\'', b'\\', bytes),
            Dialect::Sqlite => memchr::memchr2(b'\'', b'\r', bytes),
        };
        // Most values hold nothing to escape: one vectorised scan proves it
        // and the value is copied whole.
        if special.is_none() {
            out.reserve(bytes.len() + 2);
            out.push(b'\'');
            out.extend_from_slice(bytes);
            out.push(b'\'');
            return;
        }
        match self {
            Dialect::Postgres => push_quoted(out, value, memchr::memchr(b'\\', bytes).is_some()),
            Dialect::Sqlite => {
                for (i, piece) in value.split('\r').enumerate() {
                    if i > 0 {
                        out.extend_from_slice(b" || char(13) || ");
                    }
                    push_quoted(out, piece, false);
                }
            }
        }
    }

    /// The `CREATE TABLE IF NOT EXISTS` statement for `table`.
    pub fn create_table(self, table: &TableName) -> String {
        match self {
            Dialect::Postgres => format!(
                "CREATE TABLE IF NOT EXISTS {table} (\n    \
                 id          uuid PRIMARY KEY,\n    \
                 ip          inet NOT NULL,\n    \
                 user_agent  text,\n    \
                 event       text NOT NULL,\n    \
                 \"user\"      text NOT NULL,\n    \
                 location    text NOT NULL,\n    \
                 received_at timestamptz NOT NULL,\n    \
                 extra       json NOT NULL DEFAULT '{{}}',\n    \
                 event_time  timestamptz NOT NULL\n);\n"
            ),
            Dialect::Sqlite => format!(
                "CREATE TABLE IF NOT EXISTS {table} (\n    \
                 id          TEXT PRIMARY KEY,\n    \
                 ip          TEXT NOT NULL,\n    \
                 user_agent  TEXT,\n    \
                 event       TEXT NOT NULL,\n    \
                 \"user\"      TEXT NOT NULL,\n    \
                 location    TEXT NOT NULL,\n    \
                 received_at TEXT NOT NULL,\n    \
                 extra       TEXT NOT NULL DEFAULT '{{}}' CHECK (json_valid(extra)),\n    \
                 event_time  TEXT NOT NULL\n);\n"
            ),
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Dialect::Postgres => "postgres",
            Dialect::Sqlite => "sqlite",
        })
    }
}

/// Writes `'value'` with quotes doubled, or `E'value'` with backslashes
/// doubled too when `escape_backslash` is set.
fn push_quoted(out: &mut Vec<u8>, value: &str, escape_backslash: bool) {
    let bytes = value.as_bytes();
    if escape_backslash {
        out.push(b'E');
    }
    out.push(b'\'');
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\'' || (escape_backslash && b == b'\\') {
            out.extend_from_slice(&bytes[start..=i]);
            out.push(b);
            start = i + 1;
        }
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'\'');
}

/// Words PostgreSQL or SQLite will not take as an unquoted table name.
const RESERVED: &[&str] = &[
    "abort",
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "between",
    "binary",
    "both",
    "by",
    "case",
    "cast",
    "check",
    "collate",
    "collation",
    "column",
    "commit",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "default",
    "deferrable",
    "delete",
    "desc",
    "distinct",
    "do",
    "drop",
    "else",
    "end",
    "escape",
    "except",
    "exists",
    "false",
    "fetch",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "grant",
    "group",
    "having",
    "ilike",
    "in",
    "index",
    "initially",
    "inner",
    "insert",
    "intersect",
    "into",
    "is",
    "isnull",
    "join",
    "lateral",
    "leading",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "natural",
    "not",
    "nothing",
    "notnull",
    "null",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "outer",
    "overlaps",
    "placing",
    "primary",
    "references",
    "returning",
    "right",
    "select",
    "session_user",
    "set",
    "similar",
    "some",
    "symmetric",
    "table",
    "tablesample",
    "then",
    "to",
    "trailing",
    "transaction",
    "true",
    "union",
    "unique",
    "update",
    "user",
    "using",
    "values",
    "variadic",
    "verbose",
    "when",
    "where",
    "window",
    "with",
];

/// A table name checked to be a plain (optionally schema-qualified) identifier,
/// so it can be written into statements without quoting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName(String);

impl FromStr for TableName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split('.').collect();
        let ok = parts.len() <= 2
            && parts.iter().all(|p| {
                let mut chars = p.chars();
                matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
                    && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && p.len() <= 63
            });
        if let Some(word) = parts
            .iter()
            .find(|p| RESERVED.contains(&p.to_ascii_lowercase().as_str()))
        {
            return Err(format!(
                "`{word}` is a reserved word in SQL; choose another table name"
            ));
        }
        if ok {
            Ok(TableName(s.to_owned()))
        } else {
            Err(format!(
                "`{s}` is not a plain table name: use letters, digits and `_`, \
                 optionally as schema.table, at most 63 characters each"
            ))
        }
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Builds one multi-row INSERT from rows appended one at a time.
///
/// The statement text grows as rows arrive, so the writer always knows its
/// exact size and can flush before it passes the byte limit.
#[derive(Debug)]
pub struct InsertBuilder {
    dialect: Dialect,
    /// `INSERT INTO t (…) VALUES`, written at the start of each statement.
    head: Vec<u8>,
    /// The statement so far; empty when no row is pending.
    stmt: Vec<u8>,
    /// Scratch space for the row being formatted.
    row: Vec<u8>,
    rows: usize,
    /// The last `ip` formatted and its text: events of one request share it.
    last_ip: Option<(IpAddr, Vec<u8>)>,
    /// The text of recent `received_at` values.
    times: TimeCache,
    /// The last `user_agent` literal, likewise (compared by pointer: the
    /// events of one request share one `Arc`).
    last_user_agent: Option<(Arc<str>, Vec<u8>)>,
}

impl InsertBuilder {
    /// A builder for statements into `table`.
    pub fn new(dialect: Dialect, table: &TableName) -> Self {
        InsertBuilder {
            dialect,
            head: format!("INSERT INTO {table} ({COLUMNS}) VALUES").into_bytes(),
            stmt: Vec::new(),
            row: Vec::new(),
            rows: 0,
            last_ip: None,
            times: TimeCache::default(),
            last_user_agent: None,
        }
    }

    /// Formats `event` as a row, ready for [`InsertBuilder::commit_row`].
    /// Returns the size the statement would have with it.
    pub fn format_row(&mut self, event: &Event) -> usize {
        let d = self.dialect;
        let out = &mut self.row;
        out.clear();
        out.extend_from_slice(b"\n  (");
        // Server-made values hold no quote or backslash.
        out.push(b'\'');
        out.extend_from_slice(
            event
                .id
                .as_hyphenated()
                .encode_lower(&mut uuid::Uuid::encode_buffer())
                .as_bytes(),
        );
        out.extend_from_slice(b"', '");
        let ip = match &self.last_ip {
            Some((ip, text)) if *ip == event.ip => text,
            _ => {
                let mut text = Vec::with_capacity(39);
                push_ip(&mut text, event.ip);
                &self.last_ip.insert((event.ip, text)).1
            }
        };
        out.extend_from_slice(ip);
        out.extend_from_slice(b"', ");
        match &event.user_agent {
            Some(ua) => {
                let literal = match &self.last_user_agent {
                    Some((last, text)) if Arc::ptr_eq(last, ua) => text,
                    _ => {
                        let mut text = Vec::with_capacity(ua.len() + 2);
                        d.push_literal(&mut text, ua);
                        &self.last_user_agent.insert((ua.clone(), text)).1
                    }
                };
                out.extend_from_slice(literal);
            }
            None => out.extend_from_slice(b"NULL"),
        }
        out.extend_from_slice(b", ");
        d.push_literal(out, &event.event);
        out.extend_from_slice(b", ");
        d.push_literal(out, &event.user);
        out.extend_from_slice(b", ");
        d.push_literal(out, &event.location);
        out.extend_from_slice(b", '");
        out.extend_from_slice(self.times.text(&event.received_at));
        out.extend_from_slice(b"', ");
        d.push_literal(out, &event.extra);
        out.extend_from_slice(b", '");
        out.extend_from_slice(self.times.text(&event.event_time));
        out.extend_from_slice(b"')");
        self.len_with_row()
    }

    fn len_with_row(&self) -> usize {
        let base = if self.stmt.is_empty() {
            self.head.len()
        } else {
            self.stmt.len() + 1
        };
        base + self.row.len() + 2
    }

    /// Appends the row last formatted to the statement.
    pub fn commit_row(&mut self) {
        if self.stmt.is_empty() {
            self.stmt.extend_from_slice(&self.head);
        } else {
            self.stmt.push(b',');
        }
        self.stmt.extend_from_slice(&self.row);
        self.rows += 1;
    }

    /// Formats and appends `event` in one step.
    pub fn push(&mut self, event: &Event) {
        self.format_row(event);
        self.commit_row();
    }

    /// Rows in the pending statement.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Bytes of the pending statement, terminator included.
    pub fn len(&self) -> usize {
        if self.stmt.is_empty() {
            0
        } else {
            self.stmt.len() + 2
        }
    }

    /// Whether no row is pending.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Ends the pending statement with `;\n` and returns it; the builder is
    /// empty afterwards and keeps its buffers for the next statement.
    pub fn finish(&mut self) -> &[u8] {
        self.stmt.extend_from_slice(b";\n");
        self.rows = 0;
        &self.stmt
    }

    /// Forgets the finished statement.
    pub fn clear(&mut self) {
        self.stmt.clear();
        self.rows = 0;
    }
}

/// Remembers how recent timestamps were written: the events of one request
/// share theirs exactly, and consecutive requests almost always share the
/// date, hour and minute, which are the costly part to compute.
#[derive(Debug, Default)]
struct TimeCache {
    /// The last timestamp written, whose text is `text`.
    last: Option<DateTime<Utc>>,
    text: Vec<u8>,
    /// The minute (seconds since the epoch / 60) that `prefix` spells.
    minute: Option<i64>,
    /// `YYYY-MM-DDTHH:MM:` of that minute.
    prefix: [u8; 17],
}

impl TimeCache {
    /// `time` as RFC 3339 UTC with microseconds, as [`push_timestamp`] writes it.
    fn text(&mut self, time: &DateTime<Utc>) -> &[u8] {
        if self.last != Some(*time) {
            self.text.clear();
            let secs = time.timestamp();
            let minute = secs.div_euclid(60);
            let nanos = time.nanosecond();
            if self.minute == Some(minute) && nanos < 1_000_000_000 {
                self.text.extend_from_slice(&self.prefix);
                let second = secs.rem_euclid(60) as u32;
                let micros = nanos / 1000;
                for n in [second, micros / 10_000, micros / 100 % 100, micros % 100] {
                    self.text.push(b'0' + (n / 10) as u8);
                    self.text.push(b'0' + (n % 10) as u8);
                }
                self.text.insert(19, b'.');
                self.text.push(b'Z');
            } else {
                push_timestamp(&mut self.text, time);
                // Only the plain 27-byte form (no leap second, year 0..=9999)
                // has a prefix to reuse.
                if self.text.len() == 27 && nanos < 1_000_000_000 {
                    self.prefix.copy_from_slice(&self.text[..17]);
                    self.minute = Some(minute);
                } else {
                    self.minute = None;
                }
            }
            self.last = Some(*time);
        }
        &self.text
    }
}

/// Appends `ip` in its canonical text form (as `Display` writes it), without
/// allocating for IPv4.
fn push_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                if octet >= 100 {
                    out.push(b'0' + octet / 100);
                }
                if octet >= 10 {
                    out.push(b'0' + octet / 10 % 10);
                }
                out.push(b'0' + octet % 10);
            }
        }
        IpAddr::V6(v6) => {
            use std::io::Write;
            // Writing into a Vec cannot fail.
            let _ = write!(out, "{v6}");
        }
    }
}

/// Appends `time` as RFC 3339 UTC with microseconds, exactly as
/// `to_rfc3339_opts(SecondsFormat::Micros, true)` would, without allocating.
///
/// A leap second (`23:59:60.5`) is written as the last microsecond before
/// it, `23:59:59.999999`: PostgreSQL refuses a time of day past 24:00:00,
/// and one refused value would fail its whole batch.
fn push_timestamp(out: &mut Vec<u8>, time: &DateTime<Utc>) {
    let mut time = *time;
    if time.nanosecond() >= 1_000_000_000 {
        time = time.with_nanosecond(999_999_999).unwrap_or(time);
    }
    let year = time.year();
    let nanos = time.nanosecond();
    if !(0..=9999).contains(&year) {
        // Years past 9999: rare, leave them to chrono.
        out.extend_from_slice(time.to_rfc3339_opts(SecondsFormat::Micros, true).as_bytes());
        return;
    }
    let two = |out: &mut Vec<u8>, n: u32| {
        out.push(b'0' + (n / 10) as u8);
        out.push(b'0' + (n % 10) as u8);
    };
    let year = year as u32;
    two(out, year / 100);
    two(out, year % 100);
    out.push(b'-');
    two(out, time.month());
    out.push(b'-');
    two(out, time.day());
    out.push(b'T');
    two(out, time.hour());
    out.push(b':');
    two(out, time.minute());
    out.push(b':');
    two(out, time.second());
    out.push(b'.');
    let micros = nanos / 1000;
    two(out, micros / 10_000);
    two(out, micros / 100 % 100);
    two(out, micros % 100);
    out.push(b'Z');
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::Instant;

    fn literal(d: Dialect, v: &str) -> String {
        let mut out = Vec::new();
        d.push_literal(&mut out, v);
        String::from_utf8(out).expect("utf-8 in, utf-8 out")
    }

    proptest::proptest! {
        #[test]
        fn timestamps_match_chrono(secs in -62_167_219_200i64..253_402_300_800, nanos in 0u32..2_000_000_000) {
            let time = DateTime::from_timestamp(secs, nanos).unwrap_or_default();
            let mut out = Vec::new();
            push_timestamp(&mut out, &time);
            // A leap second is written as the microsecond before it.
            let expected = time
                .with_nanosecond(time.nanosecond().min(999_999_999))
                .unwrap_or(time);
            proptest::prop_assert_eq!(
                String::from_utf8(out).expect("ascii"),
                expected.to_rfc3339_opts(SecondsFormat::Micros, true)
            );
        }

        #[test]
        fn ips_match_display(v4 in proptest::prelude::any::<[u8; 4]>(), v6 in proptest::prelude::any::<[u16; 8]>()) {
            for ip in [IpAddr::from(v4), IpAddr::from(v6)] {
                let mut out = Vec::new();
                push_ip(&mut out, ip);
                proptest::prop_assert_eq!(String::from_utf8(out).expect("ascii"), ip.to_string());
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn cached_timestamps_match_chrono_in_any_order(
            times in proptest::collection::vec((1_699_999_900i64..1_700_000_200, 0u32..1_000_000_000), 1..40),
            far in -62_167_219_200i64..253_402_300_800,
        ) {
            let mut cache = TimeCache::default();
            let mut all: Vec<DateTime<Utc>> = times
                .into_iter()
                .map(|(s, n)| DateTime::from_timestamp(s, n).unwrap_or_default())
                .collect();
            all.insert(all.len() / 2, DateTime::from_timestamp(far, 0).unwrap_or_default());
            all.push(DateTime::from_timestamp(300_000_000_000, 0).unwrap_or_default());
            all.push(all[0]);
            for time in all {
                proptest::prop_assert_eq!(
                    std::str::from_utf8(cache.text(&time)).expect("ascii"),
                    time.to_rfc3339_opts(SecondsFormat::Micros, true)
                );
            }
        }
    }

    #[test]
    fn far_future_years_fall_back_to_chrono() {
        let time = DateTime::from_timestamp(300_000_000_000, 5_000).expect("in range");
        let mut out = Vec::new();
        push_timestamp(&mut out, &time);
        assert_eq!(
            String::from_utf8(out).expect("ascii"),
            time.to_rfc3339_opts(SecondsFormat::Micros, true)
        );
    }

    #[test]
    fn rows_sharing_ip_and_time_reuse_them_and_others_do_not() {
        let table: TableName = "events".parse().expect("valid");
        let mut b = InsertBuilder::new(Dialect::Sqlite, &table);
        let mut event = Event {
            id: uuid::Uuid::nil(),
            ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            user_agent: Some("ua".into()),
            event: "e".into(),
            user: "u".into(),
            location: "l".into(),
            received_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default(),
            event_time: DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default(),
            extra: "{}".into(),
            accepted_at: Instant::now(),
        };
        b.push(&event);
        b.push(&event);
        event.ip = IpAddr::V6(std::net::Ipv6Addr::LOCALHOST);
        event.received_at =
            DateTime::from_timestamp(1_700_000_001, 999_999_000).unwrap_or_default();
        b.push(&event);
        let sql = String::from_utf8(b.finish().to_vec()).expect("utf-8");
        assert_eq!(
            sql.matches("'10.0.0.1', 'ua', 'e', 'u', 'l', '2023-11-14T22:13:20.000000Z'")
                .count(),
            2
        );
        assert!(
            sql.contains("'::1', 'ua', 'e', 'u', 'l', '2023-11-14T22:13:21.999999Z'"),
            "{sql}"
        );
    }

    #[test]
    fn user_agent_literal_is_reused_only_for_the_same_request() {
        let table: TableName = "events".parse().expect("valid");
        let mut b = InsertBuilder::new(Dialect::Postgres, &table);
        let shared: Arc<str> = Arc::from(r"it's \ua");
        let mut event = Event {
            id: uuid::Uuid::nil(),
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            user_agent: Some(shared.clone()),
            event: "e".into(),
            user: "u".into(),
            location: "l".into(),
            received_at: DateTime::from_timestamp(0, 0).unwrap_or_default(),
            event_time: DateTime::from_timestamp(0, 0).unwrap_or_default(),
            extra: "{}".into(),
            accepted_at: Instant::now(),
        };
        b.push(&event);
        b.push(&event);
        event.user_agent = Some(Arc::from("other"));
        b.push(&event);
        event.user_agent = None;
        b.push(&event);
        let sql = String::from_utf8(b.finish().to_vec()).expect("utf-8");
        assert_eq!(sql.matches(r"E'it''s \\ua'").count(), 2, "{sql}");
        assert_eq!(sql.matches("'other'").count(), 1);
        assert_eq!(sql.matches("NULL").count(), 1);
    }

    proptest::proptest! {
        #[test]
        fn literals_round_trip_through_sql_quoting(value in "[a-z'\\\\ é]{0,12}") {
            for d in [Dialect::Postgres, Dialect::Sqlite] {
                let text = literal(d, &value);
                let escape = d == Dialect::Postgres && value.contains('\\');
                let body = text
                    .strip_prefix(if escape { "E'" } else { "'" })
                    .and_then(|t| t.strip_suffix('\''))
                    .expect("quoted");
                let mut decoded = body.replace("''", "'");
                if escape {
                    decoded = decoded.replace("\\\\", "\\");
                }
                proptest::prop_assert_eq!(&decoded, &value);
                proptest::prop_assert!(!body.replace("''", "").contains('\''));
            }
        }
    }

    #[test]
    fn quotes_are_doubled() {
        assert_eq!(
            literal(Dialect::Postgres, "x'); DROP TABLE events; --"),
            "'x''); DROP TABLE events; --'"
        );
        assert_eq!(literal(Dialect::Sqlite, "it's"), "'it''s'");
    }

    #[test]
    fn postgres_backslashes_use_escape_strings() {
        assert_eq!(literal(Dialect::Postgres, r"a\'b"), r"E'a\\''b'");
        assert_eq!(literal(Dialect::Sqlite, r"a\'b"), r"'a\''b'");
    }

    #[test]
    fn sqlite_carriage_returns_are_spliced_in() {
        assert_eq!(
            literal(Dialect::Sqlite, "a\r\nb\r"),
            "'a' || char(13) || '\nb' || char(13) || ''"
        );
        assert_eq!(literal(Dialect::Postgres, "a\r\n"), "'a\r\n'");
    }

    #[test]
    fn a_leap_second_is_written_as_a_time_postgresql_accepts() {
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 1_500_000_000))
            .expect("a valid leap second")
            .and_utc();
        let mut out = Vec::new();
        push_timestamp(&mut out, &leap);
        assert_eq!(out, b"2016-12-31T23:59:59.999999Z");
        let before = leap - chrono::TimeDelta::seconds(1);
        let mut cache = TimeCache::default();
        assert_eq!(cache.text(&before), b"2016-12-31T23:59:59.500000Z");
        assert_eq!(cache.text(&leap), b"2016-12-31T23:59:59.999999Z");
        assert_eq!(cache.text(&before), b"2016-12-31T23:59:59.500000Z");
    }

    #[test]
    fn table_names_must_be_plain_identifiers() {
        assert!("events".parse::<TableName>().is_ok());
        assert!("analytics.events_2".parse::<TableName>().is_ok());
        for bad in [
            "",
            "1x",
            "a b",
            "x;drop",
            "a.b.c",
            "\"q\"",
            "user",
            "Order",
            "public.select",
        ] {
            assert!(bad.parse::<TableName>().is_err(), "{bad}");
        }
    }

    #[test]
    fn statement_has_every_row_and_one_terminator() {
        let table: TableName = "events".parse().expect("valid");
        let mut b = InsertBuilder::new(Dialect::Postgres, &table);
        let event = Event {
            id: uuid::Uuid::nil(),
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            user_agent: None,
            event: "click".into(),
            user: "o'brien".into(),
            location: "home".into(),
            received_at: DateTime::from_timestamp(0, 1_000).unwrap_or_default(),
            event_time: DateTime::from_timestamp(0, 2_000).unwrap_or_default(),
            extra: "{}".into(),
            accepted_at: Instant::now(),
        };
        let predicted = b.format_row(&event);
        b.commit_row();
        assert_eq!(b.len(), predicted);
        b.push(&event);
        assert_eq!(b.rows(), 2);
        let expected_len = b.len();
        let sql = String::from_utf8(b.finish().to_vec()).expect("utf-8");
        assert_eq!(sql.len(), expected_len);
        assert_eq!(
            sql,
            "INSERT INTO events (id, ip, user_agent, event, \"user\", location, received_at, extra, event_time) VALUES\n  \
             ('00000000-0000-0000-0000-000000000000', '127.0.0.1', NULL, 'click', 'o''brien', 'home', '1970-01-01T00:00:00.000001Z', '{}', '1970-01-01T00:00:00.000002Z'),\n  \
             ('00000000-0000-0000-0000-000000000000', '127.0.0.1', NULL, 'click', 'o''brien', 'home', '1970-01-01T00:00:00.000001Z', '{}', '1970-01-01T00:00:00.000002Z');\n"
        );
        b.clear();
        assert!(b.is_empty());
        assert_eq!(b.len(), 0);
    }
}
