//! The wire format of an event and its validation into an [`Event`].
//!
//! A body is parsed once, batches included: each event is validated as the
//! parser reaches it. The three required fields are decoded and checked
//! (borrowed from the body when they hold no escapes); every other top-level
//! key is copied into `extra` as the raw JSON text the client sent, so nested
//! values, key order and numbers of any size survive byte for byte. Code past
//! this module never re-checks an [`Event`].

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use uuid::{ContextV7, Timestamp, Uuid};

/// Longest accepted `event`, in bytes of UTF-8.
pub const MAX_EVENT_BYTES: usize = 1024;
/// Longest accepted `user`, in bytes of UTF-8.
pub const MAX_USER_BYTES: usize = 1024;
/// Longest accepted `location`, in bytes of UTF-8 (long enough for URLs).
pub const MAX_LOCATION_BYTES: usize = 8192;
/// Deepest nesting of arrays and objects accepted inside one `extra` value.
pub const MAX_NESTING: usize = 64;

/// One validated event: a row of the `events` table.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Server-generated UUIDv7, returned to the client.
    pub id: Uuid,
    /// Address of the client (the socket peer, or a trusted `X-Forwarded-For`).
    pub ip: IpAddr,
    /// The `User-Agent` header; `None` becomes SQL NULL.
    pub user_agent: Option<Arc<str>>,
    /// Body `event`.
    pub event: Box<str>,
    /// Body `user`; an integer is kept as its decimal text.
    pub user: Box<str>,
    /// Body `location`.
    pub location: Box<str>,
    /// When the server received the request.
    pub received_at: DateTime<Utc>,
    /// When the event happened, as best known: for Segment messages the client's
    /// `timestamp` corrected for clock skew; otherwise `received_at`.
    pub event_time: DateTime<Utc>,
    /// Every other body key, as the text of a JSON object (`{}` when none).
    pub extra: Box<str>,
    /// Monotonic time of acceptance, for accepted→written latency.
    pub accepted_at: Instant,
}

/// A UUIDv7 for a new event, increasing on each thread. `Uuid::now_v7`
/// keeps one context for the whole process behind a mutex: a lock that every
/// request on every connection would take.
pub(crate) fn new_id() -> Uuid {
    thread_local! {
        static CONTEXT: ContextV7 = const { ContextV7::new() };
    }
    CONTEXT.with(|context| Uuid::new_v7(Timestamp::now(context)))
}

impl Event {
    /// A valid event named `name`, stamped now, for unit tests.
    #[cfg(test)]
    pub(crate) fn sample(name: &str) -> Event {
        Event {
            id: Uuid::now_v7(),
            ip: IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            user_agent: None,
            event: name.into(),
            user: "u".into(),
            location: "l".into(),
            received_at: Utc::now(),
            event_time: Utc::now(),
            extra: "{}".into(),
            accepted_at: Instant::now(),
        }
    }

    /// Memory this event holds while queued: the struct and its own text
    /// (the User-Agent is shared by a request's events and not counted).
    pub fn queued_bytes(&self) -> usize {
        std::mem::size_of::<Event>()
            + self.event.len()
            + self.user.len()
            + self.location.len()
            + self.extra.len()
    }
}

/// What the request contributes to each of its events, besides the body.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    /// Client address.
    pub ip: IpAddr,
    /// `User-Agent`, shared by every event of a batch request.
    pub user_agent: Option<Arc<str>>,
    /// Server clock when the request arrived.
    pub received_at: DateTime<Utc>,
    /// Monotonic clock when the request arrived.
    pub accepted_at: Instant,
}

/// Why an event was refused. The words are stable: they are metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The body is not JSON, or not the expected JSON shape.
    InvalidJson,
    /// A required field is absent.
    MissingField,
    /// A field is present but has the wrong type, length or content.
    InvalidField,
    /// A value holds a character the database cannot store (U+0000, a lone surrogate).
    UnstorableValue,
    /// One message of a batch is larger than the per-message limit.
    MessageTooLarge,
}

impl Reason {
    /// The bounded word used in JSON bodies and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidJson => "invalid_json",
            Reason::MissingField => "missing_field",
            Reason::InvalidField => "invalid_field",
            Reason::UnstorableValue => "unstorable_value",
            Reason::MessageTooLarge => "message_too_large",
        }
    }
}

/// An event that failed validation, with a message for the person who sent it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Rejection {
    /// Bounded category.
    pub reason: Reason,
    /// The offending top-level key, when there is one.
    pub field: Option<String>,
    /// Human-readable explanation.
    pub message: String,
}

impl Rejection {
    pub(crate) fn new(reason: Reason, field: Option<&str>, message: String) -> Self {
        Rejection {
            reason,
            field: field.map(str::to_owned),
            message,
        }
    }

    fn invalid_json(err: &serde_json::Error) -> Self {
        Rejection::new(
            Reason::InvalidJson,
            None,
            format!("body is not valid JSON: {err}"),
        )
    }
}

/// Parses and validates one event from a JSON object body.
pub fn parse_event(body: &[u8], meta: &RequestMeta) -> Result<Event, Rejection> {
    match first_byte(body) {
        Some(b'{') => {}
        Some(b'[') => {
            return Err(Rejection::new(
                Reason::InvalidJson,
                None,
                "body must be a JSON object, not an array (send arrays to /batch)".into(),
            ))
        }
        None => {
            return Err(Rejection::new(
                Reason::InvalidJson,
                None,
                "body is empty; expected a JSON object".into(),
            ))
        }
        Some(_) => {}
    }
    let text = std::str::from_utf8(body).map_err(|e| {
        Rejection::new(
            Reason::InvalidJson,
            None,
            format!("body is not valid UTF-8: {e}"),
        )
    })?;
    // `extra` is at most as long as the body, so it is built without regrowing.
    let mut scratch = String::with_capacity(text.len());
    let wire =
        from_str_seed(text, WireSeed(&mut scratch)).map_err(|e| Rejection::invalid_json(&e))?;
    wire.validate(meta)
}

/// `serde_json::from_str`, for a seed.
fn from_str_seed<'de, S: DeserializeSeed<'de>>(
    text: &'de str,
    seed: S,
) -> serde_json::Result<S::Value> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = seed.deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// Parses a batch body (a JSON array of events, or `{"batch": [...]}`).
///
/// The outer error means the whole request is unusable; each inner result is
/// one event, in the order sent.
pub fn parse_batch(
    body: &[u8],
    meta: &RequestMeta,
) -> Result<Vec<Result<Event, Rejection>>, Rejection> {
    let text = std::str::from_utf8(body).map_err(|e| {
        Rejection::new(
            Reason::InvalidJson,
            None,
            format!("body is not valid UTF-8: {e}"),
        )
    })?;
    match first_byte(body) {
        Some(b'[') => from_str_seed(text, BatchSeed(meta)).map_err(|e| Rejection::invalid_json(&e)),
        Some(b'{') => from_str_seed(text, EnvelopeSeed(meta))
            .map_err(|e| Rejection::invalid_json(&e))?
            .ok_or_else(|| {
                Rejection::new(
                    Reason::MissingField,
                    Some("batch"),
                    "field `batch` is required: send a JSON array, or an object with a `batch` array".into(),
                )
            }),
        None => Err(Rejection::new(
            Reason::InvalidJson,
            None,
            "body is empty; expected a JSON array of events".into(),
        )),
        Some(_) => Err(Rejection::new(
            Reason::InvalidJson,
            None,
            "body must be a JSON array of events, or an object with a `batch` array".into(),
        )),
    }
}

/// Rejection of a batch item that is not a JSON object.
fn not_an_object() -> Rejection {
    Rejection::new(
        Reason::InvalidJson,
        None,
        "event must be a JSON object".into(),
    )
}

/// A batch array: each item parsed and validated in the same pass.
struct BatchSeed<'m>(&'m RequestMeta);

impl<'de> DeserializeSeed<'de> for BatchSeed<'_> {
    type Value = Vec<Result<Event, Rejection>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for BatchSeed<'_> {
    type Value = Vec<Result<Event, Rejection>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON array of events")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // One buffer for every event's `extra`, copied out at its exact size.
        let mut scratch = String::with_capacity(256);
        let mut results = Vec::with_capacity(seq.size_hint().unwrap_or(16));
        while let Some(item) = seq.next_element_seed(ItemSeed(&mut scratch))? {
            results.push(match item {
                Some(wire) => wire.validate(self.0),
                None => Err(not_an_object()),
            });
        }
        Ok(results)
    }
}

/// `{"batch": [...]}`: the array, or `None` when `batch` is absent or null.
struct EnvelopeSeed<'m>(&'m RequestMeta);

impl<'de> DeserializeSeed<'de> for EnvelopeSeed<'_> {
    type Value = Option<Vec<Result<Event, Rejection>>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EnvelopeSeed<'_> {
    type Value = Option<Vec<Result<Event, Rejection>>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object with a `batch` array")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut batch = None;
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            if key != "batch" {
                map.next_value::<IgnoredAny>()?;
            } else if batch.is_some() {
                return Err(de::Error::duplicate_field("batch"));
            } else {
                batch = Some(map.next_value_seed(OptionalBatch(self.0))?);
            }
        }
        Ok(batch.flatten())
    }
}

/// The value of `batch`: null, or a batch array.
struct OptionalBatch<'m>(&'m RequestMeta);

impl<'de> DeserializeSeed<'de> for OptionalBatch<'_> {
    type Value = Option<Vec<Result<Event, Rejection>>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for OptionalBatch<'_> {
    type Value = Option<Vec<Result<Event, Rejection>>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON array of events")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        BatchSeed(self.0).deserialize(deserializer).map(Some)
    }
}

/// One batch item: `Some` wire event for an object, `None` for any other value
/// (which is consumed and reported per event, not as a broken body).
struct ItemSeed<'s>(&'s mut String);

impl<'de> DeserializeSeed<'de> for ItemSeed<'_> {
    type Value = Option<Wire<'de>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ItemSeed<'_> {
    type Value = Option<Wire<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        WireSeed(self.0).visit_map(map).map(Some)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

fn first_byte(body: &[u8]) -> Option<u8> {
    body.iter().copied().find(|b| !b.is_ascii_whitespace())
}

/// The body as sent: the three required fields still raw, `extra` already built.
struct Wire<'a> {
    event: Option<&'a RawValue>,
    user: Option<&'a RawValue>,
    location: Option<&'a RawValue>,
    /// A required key that appeared more than once.
    duplicate: Option<&'static str>,
    /// A key or value of `extra` that cannot be stored, and which key it was.
    unstorable: Option<(String, &'static str)>,
    extra: Box<str>,
}

/// Reads a [`Wire`] event, building `extra` in the borrowed buffer first so
/// that the event keeps one allocation of exactly the right size.
struct WireSeed<'s>(&'s mut String);

impl<'de> DeserializeSeed<'de> for WireSeed<'_> {
    type Value = Wire<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for WireSeed<'_> {
    type Value = Wire<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Wire<'de>, A::Error> {
        let extra = self.0;
        extra.clear();
        let mut wire = Wire {
            event: None,
            user: None,
            location: None,
            duplicate: None,
            unstorable: None,
            extra: Box::default(),
        };
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let slot = match &*key {
                "event" => Some((&mut wire.event, "event")),
                "user" => Some((&mut wire.user, "user")),
                "location" => Some((&mut wire.location, "location")),
                _ => None,
            };
            let value: &'de RawValue = map.next_value()?;
            if let Some((slot, name)) = slot {
                if slot.replace(value).is_some() {
                    wire.duplicate.get_or_insert(name);
                }
                continue;
            }
            if wire.unstorable.is_none() {
                if key.contains('\0') {
                    wire.unstorable = Some((key.to_string(), "its name contains U+0000"));
                } else if let Some(problem) = unstorable_json(value.get()) {
                    wire.unstorable = Some((key.to_string(), problem));
                }
            }
            extra.push(if extra.is_empty() { '{' } else { ',' });
            push_json_string(extra, &key);
            extra.push(':');
            extra.push_str(value.get());
        }
        if extra.is_empty() {
            extra.push('{');
        }
        extra.push('}');
        wire.extra = Box::from(extra.as_str());
        Ok(wire)
    }
}

impl Wire<'_> {
    fn validate(self, meta: &RequestMeta) -> Result<Event, Rejection> {
        if let Some(name) = self.duplicate {
            return Err(Rejection::new(
                Reason::InvalidField,
                Some(name),
                format!("field `{name}` appears more than once"),
            ));
        }
        let event = required_string(self.event, "event", MAX_EVENT_BYTES, false)?;
        let user = required_string(self.user, "user", MAX_USER_BYTES, true)?;
        let location = required_string(self.location, "location", MAX_LOCATION_BYTES, false)?;
        if let Some((key, problem)) = self.unstorable {
            return Err(Rejection::new(
                Reason::UnstorableValue,
                Some(&key),
                format!("field `{key}`: {problem}, which PostgreSQL cannot store"),
            ));
        }
        Ok(Event {
            id: new_id(),
            ip: meta.ip,
            user_agent: meta.user_agent.clone(),
            event: Box::from(&*event),
            user: Box::from(&*user),
            location: Box::from(&*location),
            received_at: meta.received_at,
            event_time: meta.received_at,
            extra: self.extra,
            accepted_at: meta.accepted_at,
        })
    }
}

fn required_string<'a>(
    raw: Option<&'a RawValue>,
    name: &str,
    max_bytes: usize,
    integer_ok: bool,
) -> Result<Cow<'a, str>, Rejection> {
    let raw = raw.ok_or_else(|| {
        Rejection::new(
            Reason::MissingField,
            Some(name),
            format!("field `{name}` is required"),
        )
    })?;
    let text = raw.get();
    let kind = if integer_ok {
        "a string or an integer"
    } else {
        "a string"
    };
    let plain = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .filter(|t| !t.contains('\\'));
    let value = if let Some(plain) = plain {
        // The parser has checked the string; without escapes it means itself.
        Cow::Borrowed(plain)
    } else if text.starts_with('"') {
        let Key(value) = serde_json::from_str(text).map_err(|e| {
            Rejection::new(
                Reason::InvalidField,
                Some(name),
                format!("field `{name}` is not a valid string: {e}"),
            )
        })?;
        Cow::Owned(value.into_owned())
    } else if integer_ok && is_json_integer(text) {
        Cow::Borrowed(text)
    } else {
        return Err(Rejection::new(
            Reason::InvalidField,
            Some(name),
            format!("field `{name}` must be {kind}, got {}", json_kind(text)),
        ));
    };
    if value.is_empty() {
        return Err(Rejection::new(
            Reason::InvalidField,
            Some(name),
            format!("field `{name}` must not be empty"),
        ));
    }
    if value.len() > max_bytes {
        return Err(Rejection::new(
            Reason::InvalidField,
            Some(name),
            format!(
                "field `{name}` is {} bytes long; the limit is {max_bytes}",
                value.len()
            ),
        ));
    }
    if value.contains('\0') {
        return Err(Rejection::new(
            Reason::UnstorableValue,
            Some(name),
            format!("field `{name}` contains U+0000, which PostgreSQL cannot store"),
        ));
    }
    Ok(value)
}

fn is_json_integer(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

fn json_kind(text: &str) -> &'static str {
    match text.as_bytes().first() {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

/// Finds what a database cannot store in a raw JSON value the parser has
/// already proved well formed: a `\u0000` escape, half of a UTF-16 surrogate
/// pair without its other half, or nesting deeper than [`MAX_NESTING`]
/// (PostgreSQL's and SQLite's JSON parsers give up on deep nesting, which
/// would fail the whole batch).
pub(crate) fn unstorable_json(raw: &str) -> Option<&'static str> {
    const LONE: &str = "it contains a lone UTF-16 surrogate escape";
    let bytes = raw.as_bytes();
    let mut depth = 0usize;
    let mut in_string = false;
    // A high surrogate escape seen just before, waiting for its low half.
    let mut pending_high = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !in_string {
            match b {
                b'[' | b'{' => {
                    depth += 1;
                    if depth > MAX_NESTING {
                        return Some("it is nested more than 64 levels deep");
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                b'"' => in_string = true,
                _ => {}
            }
            i += 1;
            continue;
        }
        if b != b'\\' || bytes.get(i + 1) != Some(&b'u') {
            if pending_high {
                return Some(LONE);
            }
            if b == b'"' {
                in_string = false;
            }
            // Skip the escaped character too, so `\"` does not end the string.
            i += if b == b'\\' { 2 } else { 1 };
            continue;
        }
        let unit = raw
            .get(i + 2..i + 6)
            .and_then(|hex| u16::from_str_radix(hex, 16).ok())?;
        i += 6;
        match unit {
            0 => return Some("it contains U+0000"),
            0xD800..=0xDBFF if !pending_high => pending_high = true,
            0xDC00..=0xDFFF if pending_high => pending_high = false,
            0xD800..=0xDFFF => return Some(LONE),
            _ if pending_high => return Some(LONE),
            _ => {}
        }
    }
    pending_high.then_some(LONE)
}

/// Appends `s` as a JSON string literal, escaped as `serde_json` escapes it.
pub(crate) fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    if !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        // The usual key: nothing to escape.
        out.push_str(s);
        out.push('"');
        return;
    }
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                use fmt::Write;
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A JSON string borrowed from the body when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Key<'de>, A::Error> {
                Err(de::Error::invalid_type(de::Unexpected::Seq, &self))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_version_7_and_increase_on_each_thread() {
        let ids: Vec<Uuid> = (0..10_000).map(|_| new_id()).collect();
        assert!(ids.iter().all(|id| id.get_version_num() == 7));
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }
    use std::net::Ipv4Addr;

    fn meta() -> RequestMeta {
        RequestMeta {
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            user_agent: Some("test-agent".into()),
            received_at: DateTime::from_timestamp(1_700_000_000, 123_456_000).unwrap_or_default(),
            accepted_at: Instant::now(),
        }
    }

    fn parse(body: &str) -> Result<Event, Rejection> {
        parse_event(body.as_bytes(), &meta())
    }

    #[test]
    fn seed_event_puts_unknown_keys_in_extra() {
        let e = parse(r#"{"event": "click", "location": "dashboard", "user": "sylvia327", "otherParam": "otherVal"}"#)
            .expect("valid");
        assert_eq!(&*e.event, "click");
        assert_eq!(&*e.user, "sylvia327");
        assert_eq!(&*e.location, "dashboard");
        assert_eq!(&*e.extra, r#"{"otherParam":"otherVal"}"#);
    }

    #[test]
    fn extra_is_empty_object_when_no_other_keys() {
        let e = parse(r#"{"event":"a","user":"b","location":"c"}"#).expect("valid");
        assert_eq!(&*e.extra, "{}");
    }

    #[test]
    fn extra_keeps_key_order_nesting_and_huge_numbers_verbatim() {
        let e = parse(
            r#"{"z":1,"event":"a","big":123456789012345678901234567890,"user":"b","nested":{"b":[1,2.50,null]},"location":"c","a":true}"#,
        )
        .expect("valid");
        assert_eq!(
            &*e.extra,
            r#"{"z":1,"big":123456789012345678901234567890,"nested":{"b":[1,2.50,null]},"a":true}"#
        );
    }

    #[test]
    fn integer_user_is_kept_as_decimal_text() {
        let e = parse(r#"{"event":"a","user":123456789012345678901234567890,"location":"c"}"#)
            .expect("valid");
        assert_eq!(&*e.user, "123456789012345678901234567890");
    }

    #[test]
    fn fractional_user_is_rejected() {
        let r = parse(r#"{"event":"a","user":1.5,"location":"c"}"#).unwrap_err();
        assert_eq!(r.reason, Reason::InvalidField);
        assert_eq!(r.field.as_deref(), Some("user"));
    }

    #[test]
    fn missing_field_is_named() {
        let r = parse(r#"{"event":"a","user":"b"}"#).unwrap_err();
        assert_eq!(r.reason, Reason::MissingField);
        assert_eq!(r.field.as_deref(), Some("location"));
        assert!(r.message.contains("location"));
    }

    #[test]
    fn non_string_event_is_invalid_field() {
        let r = parse(r#"{"event":5,"user":"b","location":"c"}"#).unwrap_err();
        assert_eq!(r.reason, Reason::InvalidField);
        assert!(r.message.contains("must be a string, got a number"));
    }

    #[test]
    fn empty_and_overlong_fields_are_rejected() {
        let r = parse(r#"{"event":"","user":"b","location":"c"}"#).unwrap_err();
        assert_eq!(r.field.as_deref(), Some("event"));
        let long = "x".repeat(MAX_EVENT_BYTES + 1);
        let r = parse(&format!(
            r#"{{"event":"{long}","user":"b","location":"c"}}"#
        ))
        .unwrap_err();
        assert!(r.message.contains("limit is 1024"));
    }

    #[test]
    fn duplicate_required_key_is_rejected() {
        let r = parse(r#"{"event":"a","event":"b","user":"b","location":"c"}"#).unwrap_err();
        assert_eq!(r.field.as_deref(), Some("event"));
    }

    #[test]
    fn arrays_and_garbage_are_invalid_json() {
        assert_eq!(parse("[]").unwrap_err().reason, Reason::InvalidJson);
        assert_eq!(parse("").unwrap_err().reason, Reason::InvalidJson);
        assert_eq!(
            parse("{\"event\":").unwrap_err().reason,
            Reason::InvalidJson
        );
        assert_eq!(parse("42").unwrap_err().reason, Reason::InvalidJson);
    }

    #[test]
    fn nul_is_rejected_in_fields_keys_and_extra() {
        let r = parse(r#"{"event":"a\u0000","user":"b","location":"c"}"#).unwrap_err();
        assert_eq!(
            (r.reason, r.field.as_deref()),
            (Reason::UnstorableValue, Some("event"))
        );
        let r =
            parse(r#"{"event":"a","user":"b","location":"c","p":{"q":["\u0000"]}}"#).unwrap_err();
        assert_eq!(
            (r.reason, r.field.as_deref()),
            (Reason::UnstorableValue, Some("p"))
        );
        let r = parse(r#"{"event":"a","user":"b","location":"c","k\u0000":1}"#).unwrap_err();
        assert_eq!(r.reason, Reason::UnstorableValue);
    }

    #[test]
    fn lone_surrogates_are_rejected_and_pairs_kept() {
        for bad in [
            r#""\ud800""#,
            r#""\udc00""#,
            r#""\ud800x""#,
            r#""\ud800\n""#,
        ] {
            let r = parse(&format!(
                r#"{{"event":"a","user":"b","location":"c","p":{bad}}}"#
            ))
            .unwrap_err();
            assert_eq!(r.reason, Reason::UnstorableValue, "{bad}");
        }
        let e = parse(r#"{"event":"a","user":"b","location":"c","p":"\ud83d\ude00 \\u0000"}"#)
            .expect("a surrogate pair and an escaped backslash are fine");
        assert_eq!(&*e.extra, r#"{"p":"\ud83d\ude00 \\u0000"}"#);
    }

    #[test]
    fn nesting_is_limited_and_brackets_in_strings_do_not_count() {
        let body =
            |value: &str| format!(r#"{{"event":"a","user":"b","location":"c","p":{value}}}"#);
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(parse(&body(&deep(MAX_NESTING))).is_ok());
        let r = parse(&body(&deep(MAX_NESTING + 1))).unwrap_err();
        assert_eq!(
            (r.reason, r.field.as_deref()),
            (Reason::UnstorableValue, Some("p"))
        );
        let r = parse(&body(&deep(100_000))).unwrap_err();
        assert_eq!(r.reason, Reason::UnstorableValue);
        let brackets = format!(r#"["{}\"{}"]"#, "[".repeat(200), "{".repeat(200));
        assert!(parse(&body(&brackets)).is_ok());
        let batch = format!("[{},{}]", body("1"), body(&deep(MAX_NESTING + 1)));
        let results = parse_batch(batch.as_bytes(), &meta()).expect("parsable");
        assert!(results[0].is_ok());
        assert_eq!(
            results[1].as_ref().map_err(|r| r.reason).unwrap_err(),
            Reason::UnstorableValue,
            "the batch path checks nesting too"
        );
    }

    #[test]
    fn escaped_keys_are_rewritten_as_valid_json() {
        let e = parse(r#"{"event":"a","user":"b","location":"c","we\"ird\n":1}"#).expect("ok");
        let v: serde_json::Value = serde_json::from_str(&e.extra).expect("extra is JSON");
        assert_eq!(v["we\"ird\n"], 1);
    }

    proptest::proptest! {
        #[test]
        fn single_and_batch_parsing_agree_and_keep_values_exact(
            event in "[^\u{0}]{1,20}",
            user in "[^\u{0}]{1,20}",
            location in "[^\u{0}]{1,20}",
            key in "[a-z\"\\\n]{1,8}",
            value in "[^\u{0}]{0,20}",
        ) {
            let mut object = serde_json::Map::new();
            object.insert(key.clone(), value.clone().into());
            object.insert("event".into(), event.clone().into());
            object.insert("user".into(), user.clone().into());
            object.insert("location".into(), location.clone().into());
            let body = serde_json::Value::Object(object).to_string();
            let reserved = ["event", "user", "location"].contains(&key.as_str());
            let single = parse(&body).expect("valid");
            let batch = parse_batch(format!("[{body}]").as_bytes(), &meta()).expect("parsable");
            let from_batch = batch[0].as_ref().expect("valid");
            for e in [&single, from_batch] {
                proptest::prop_assert_eq!(&*e.event, event.as_str());
                proptest::prop_assert_eq!(&*e.user, user.as_str());
                proptest::prop_assert_eq!(&*e.location, location.as_str());
                let extra: serde_json::Value = serde_json::from_str(&e.extra).expect("extra is JSON");
                if !reserved {
                    proptest::prop_assert_eq!(&extra[&key], &serde_json::Value::from(value.clone()));
                }
            }
            proptest::prop_assert_eq!(&single.extra, &from_batch.extra);
        }
    }

    #[test]
    fn json_strings_escape_exactly_what_json_requires() {
        for (raw, quoted) in [
            ("plain key", r#""plain key""#),
            ("é\u{7f}", "\"é\u{7f}\""),
            ("q\"b\\n\nt\tc\u{1}", r#""q\"b\\n\nt\tc\u0001""#),
        ] {
            let mut out = String::new();
            push_json_string(&mut out, raw);
            assert_eq!(out, quoted);
            let back: String = serde_json::from_str(&out).expect("valid JSON string");
            assert_eq!(back, raw);
        }
    }

    #[test]
    fn raw_control_characters_in_strings_are_invalid_json() {
        let r = parse("{\"event\":\"a\u{1}b\",\"user\":\"b\",\"location\":\"c\"}").unwrap_err();
        assert_eq!(r.reason, Reason::InvalidJson);
        let body = "[{\"event\":\"a\tb\",\"user\":\"b\",\"location\":\"c\"}]";
        assert!(parse_batch(body.as_bytes(), &meta()).is_err());
    }

    #[test]
    fn escaped_required_fields_are_decoded() {
        let e = parse(r#"{"event":"a\"b\u00e9\\","user":"\n","location":"c"}"#).expect("valid");
        assert_eq!(&*e.event, "a\"b\u{e9}\\");
        assert_eq!(&*e.user, "\n");
    }

    #[test]
    fn batch_items_that_are_not_objects_are_rejected_one_by_one() {
        let body = r#"[[1,[2]], "s", null, true, -1.5e300, 123456789012345678901234567890,
                       {"event":"a","user":"b","location":"c","x":[{}]}]"#;
        let results = parse_batch(body.as_bytes(), &meta()).expect("parsable");
        assert_eq!(results.len(), 7);
        for r in &results[..6] {
            assert_eq!(
                r.as_ref().unwrap_err().message,
                "event must be a JSON object"
            );
        }
        assert_eq!(&*results[6].as_ref().expect("valid").extra, r#"{"x":[{}]}"#);
    }

    #[test]
    fn batch_items_have_their_own_extra() {
        let body = r#"[{"event":"a","user":"b","location":"c","k":1},
                       {"event":"a","user":"b","location":"c"},
                       {"event":"a","user":"b","location":"c","long key":"a much longer value than before"}]"#;
        let results = parse_batch(body.as_bytes(), &meta()).expect("parsable");
        let extras: Vec<_> = results
            .iter()
            .map(|r| r.as_ref().expect("valid").extra.to_string())
            .collect();
        assert_eq!(
            extras,
            [
                r#"{"k":1}"#,
                "{}",
                r#"{"long key":"a much longer value than before"}"#
            ]
        );
    }

    #[test]
    fn batch_envelope_edge_cases() {
        let r = parse_batch(br#"{"batch":null}"#, &meta()).unwrap_err();
        assert_eq!(
            (r.reason, r.field.as_deref()),
            (Reason::MissingField, Some("batch"))
        );
        let r = parse_batch(br#"{"batch":[],"batch":[]}"#, &meta()).unwrap_err();
        assert_eq!(r.reason, Reason::InvalidJson);
        let r = parse_batch(br#"{"batch":5}"#, &meta()).unwrap_err();
        assert_eq!(r.reason, Reason::InvalidJson);
        let ok = parse_batch(
            br#"{"other":{"batch":1},"batch":[{"event":"a","user":"b","location":"c"}]}"#,
            &meta(),
        )
        .expect("other keys are ignored");
        assert_eq!(ok.len(), 1);
        assert!(parse_batch(br#"[{"event":"a","user":"b","location":"c"}] x"#, &meta()).is_err());
        assert!(parse_batch(b"[1,]", &meta()).is_err());
    }

    #[test]
    fn keys_are_escaped_exactly_as_serde_json_escapes_them() {
        let mut all: String = (0u8..0x80).map(char::from).collect();
        all.push_str("é😀\u{2028}");
        let mut ours = String::new();
        push_json_string(&mut ours, &all);
        assert_eq!(ours, serde_json::to_string(&all).expect("serializable"));
    }

    #[test]
    fn batch_accepts_array_and_envelope_and_reports_per_event() {
        let body = r#"[{"event":"a","user":"b","location":"c"}, 7, {"event":"a"}]"#;
        let results = parse_batch(body.as_bytes(), &meta()).expect("parsable");
        assert!(results[0].is_ok());
        assert_eq!(results[1].as_ref().unwrap_err().reason, Reason::InvalidJson);
        assert_eq!(
            results[2].as_ref().unwrap_err().reason,
            Reason::MissingField
        );
        let env = r#"{"batch":[{"event":"a","user":"b","location":"c"}]}"#;
        assert_eq!(parse_batch(env.as_bytes(), &meta()).expect("ok").len(), 1);
        assert!(parse_batch(b"{}", &meta()).is_err());
        assert!(parse_batch(b"[", &meta()).is_err());
    }
}
