//! Segment's HTTP Tracking API wire format, mapped onto trackd's row.
//!
//! A Segment message (`identify`, `track`, `page`, `screen`, `group`, `alias`)
//! becomes one [`Event`]:
//!
//! - `event`: the `track` event name; for the other calls, the message type.
//! - `user`: `userId`, else `anonymousId` (`null` and `""` count as absent).
//! - `location`: a page's `properties.url` or `properties.path`, a screen's
//!   `name`, else `context.page.url` or `context.page.path` (the browser
//!   library sets them on every call); the empty string when none is present.
//! - `event_time`: the client's `timestamp` corrected for its clock's skew,
//!   `received_at − (sentAt − timestamp)`, as Segment does; the `timestamp`
//!   itself without a `sentAt`; `received_at` without a `timestamp`.
//! - `extra`: every other key of the message, values byte for byte, in the
//!   order sent, with the batch's `context`/`integrations` merged in. Only the
//!   `event` of a `track`, the id that became `user`, and `writeKey` (a
//!   credential) are left out. `messageId` stays here.

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDateTime, Utc};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::event::{
    self, push_json_string, unstorable_json, Event, Reason, Rejection, RequestMeta,
};

/// The six Segment calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// Who the user is (`traits`).
    Identify,
    /// Something the user did (`event`, `properties`).
    Track,
    /// A web page view.
    Page,
    /// A mobile screen view.
    Screen,
    /// The user joined a group or account (`groupId`).
    Group,
    /// Two ids are the same user (`previousId`).
    Alias,
}

impl MessageType {
    /// Every type, for lookups.
    pub const ALL: [MessageType; 6] = [
        MessageType::Identify,
        MessageType::Track,
        MessageType::Page,
        MessageType::Screen,
        MessageType::Group,
        MessageType::Alias,
    ];

    /// The word Segment uses for it in `type` (and in the route).
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Identify => "identify",
            MessageType::Track => "track",
            MessageType::Page => "page",
            MessageType::Screen => "screen",
            MessageType::Group => "group",
            MessageType::Alias => "alias",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        MessageType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// How many times its own size a batch may grow to once its top-level
/// `context` and `integrations` are copied into each message (or up to the
/// batch limit, whichever is more): this bounds the memory one request can
/// make trackd allocate before the queue's limits can refuse it.
pub const EXPANSION_LIMIT: usize = 4;

/// What a batch request gives every one of its messages.
#[derive(Debug, Default)]
struct Shared<'a> {
    context: Option<&'a RawValue>,
    integrations: Option<&'a RawValue>,
    sent_at: Option<DateTime<Utc>>,
}

/// Parses one message sent to the route for `route` (e.g. `/v1/track`).
pub fn parse_message(
    body: &[u8],
    route: MessageType,
    meta: &RequestMeta,
) -> Result<Event, Rejection> {
    let text = utf8(body)?;
    if first_byte(body) != Some(b'{') {
        return Err(invalid_json(
            "body must be a JSON object (send arrays of messages to /v1/batch as {\"batch\": [...]})",
        ));
    }
    let object: RawObject = serde_json::from_str(text).map_err(|e| json_error(&e))?;
    message(object.0, Some(route), &Shared::default(), meta)
}

/// Parses a `/v1/batch` body: `{"batch": [...], "context": …, "integrations": …,
/// "sentAt": …}` (a bare array of messages is accepted too).
///
/// The outer error means the whole request is unusable; each inner result is
/// one message, in the order sent. A message whose JSON text is longer than
/// `max_message_bytes` is refused on its own.
pub fn parse_batch(
    body: &[u8],
    meta: &RequestMeta,
    max_message_bytes: usize,
    max_batch_bytes: usize,
) -> Result<Vec<Result<Event, Rejection>>, Rejection> {
    let text = utf8(body)?;
    let (items, shared): (Vec<&RawValue>, Shared) = match first_byte(body) {
        Some(b'[') => (
            serde_json::from_str(text).map_err(|e| json_error(&e))?,
            Shared::default(),
        ),
        Some(b'{') => envelope(text)?,
        None => return Err(invalid_json("body is empty; expected {\"batch\": [...]}")),
        Some(_) => {
            return Err(invalid_json(
                "body must be a JSON object with a `batch` array of messages",
            ))
        }
    };
    // The batch's context and integrations are copied into every message,
    // so what counts against the limits is each message with them.
    let shared_bytes = shared.context.map_or(0, |c| c.get().len())
        + shared.integrations.map_or(0, |i| i.get().len());
    let expanded: usize = items.iter().map(|raw| raw.get().len() + shared_bytes).sum();
    let max_expanded = body
        .len()
        .saturating_mul(EXPANSION_LIMIT)
        .max(max_batch_bytes);
    if expanded > max_expanded {
        return Err(Rejection::new(
            Reason::MessageTooLarge,
            Some("context"),
            format!(
                "the batch's top-level context and integrations, copied into each of its {} \
                 messages, come to {expanded} bytes; the limit is {max_expanded}",
                items.len()
            ),
        ));
    }
    Ok(items
        .into_iter()
        .map(|raw| {
            let len = raw.get().len() + shared_bytes;
            if len > max_message_bytes {
                return Err(Rejection::new(
                    Reason::MessageTooLarge,
                    None,
                    format!(
                        "message is {len} bytes with the batch's context and integrations; \
                         the limit is {max_message_bytes}"
                    ),
                ));
            }
            if !raw.get().starts_with('{') {
                return Err(invalid_json("message must be a JSON object"));
            }
            let object: RawObject = serde_json::from_str(raw.get()).map_err(|e| json_error(&e))?;
            message(object.0, None, &shared, meta)
        })
        .collect())
}

fn envelope(text: &str) -> Result<(Vec<&RawValue>, Shared<'_>), Rejection> {
    let object: RawObject = serde_json::from_str(text).map_err(|e| json_error(&e))?;
    let mut batch = None;
    let mut shared = Shared::default();
    for (key, value) in object.0 {
        let slot = match key.as_str() {
            "batch" => &mut batch,
            "context" => &mut shared.context,
            "integrations" => &mut shared.integrations,
            "sentAt" => {
                shared.sent_at = optional_time(Some(value), "sentAt")?;
                continue;
            }
            _ => continue,
        };
        if slot.replace(value).is_some() {
            return Err(invalid_field(
                &key,
                format!("field `{key}` appears more than once"),
            ));
        }
    }
    for (name, value) in [
        ("context", shared.context),
        ("integrations", shared.integrations),
    ] {
        if let Some(value) = value {
            if !matches!(first_byte(value.get().as_bytes()), Some(b'{' | b'n')) {
                return Err(invalid_field(
                    name,
                    format!("field `{name}` must be an object"),
                ));
            }
            if let Some(problem) = unstorable_json(value.get()) {
                return Err(unstorable(name, problem));
            }
        }
    }
    let batch = batch.ok_or_else(|| {
        Rejection::new(
            Reason::MissingField,
            Some("batch"),
            "field `batch` is required: an array of messages".into(),
        )
    })?;
    let items: Vec<&RawValue> = serde_json::from_str(batch.get())
        .map_err(|_| invalid_field("batch", "field `batch` must be an array".into()))?;
    Ok((items, shared))
}

/// Keys whose values trackd reads; each may appear only once.
const READ_KEYS: [&str; 12] = [
    "type",
    "userId",
    "anonymousId",
    "event",
    "timestamp",
    "sentAt",
    "context",
    "integrations",
    "properties",
    "name",
    "groupId",
    "previousId",
];

/// The values of [`READ_KEYS`], in that order.
type ReadValues<'a> = [Option<&'a RawValue>; READ_KEYS.len()];

fn message(
    pairs: Vec<(String, &RawValue)>,
    route: Option<MessageType>,
    shared: &Shared,
    meta: &RequestMeta,
) -> Result<Event, Rejection> {
    let mut read: ReadValues = [None; READ_KEYS.len()];
    for (key, value) in &pairs {
        if let Some(i) = READ_KEYS.iter().position(|k| k == key) {
            if read[i].replace(value).is_some() {
                return Err(invalid_field(
                    key,
                    format!("field `{key}` appears more than once"),
                ));
            }
        }
    }
    let get = |name: &str| {
        let i = READ_KEYS.iter().position(|k| *k == name);
        i.and_then(|i| read[i])
    };

    let kind = message_type(get("type"), route)?;
    let (user, user_key) = match (
        id(get("userId"), "userId")?,
        id(get("anonymousId"), "anonymousId")?,
    ) {
        (Some(user), _) => (user, "userId"),
        (None, Some(anonymous)) => (anonymous, "anonymousId"),
        (None, None) => {
            return Err(Rejection::new(
                Reason::MissingField,
                Some("userId"),
                "field `userId` or `anonymousId` is required".into(),
            ))
        }
    };
    let event = if kind == MessageType::Track {
        let event = string(get("event"), "event")?.ok_or_else(|| {
            Rejection::new(
                Reason::MissingField,
                Some("event"),
                "field `event` is required in a track message".into(),
            )
        })?;
        if event.is_empty() {
            return Err(invalid_field(
                "event",
                "field `event` must not be empty".into(),
            ));
        }
        event
    } else {
        kind.as_str().to_owned()
    };

    let required_id = match kind {
        MessageType::Group => Some("groupId"),
        MessageType::Alias => Some("previousId"),
        _ => None,
    };
    if let Some(name) = required_id {
        if id(get(name), name)?.is_none() {
            return Err(Rejection::new(
                Reason::MissingField,
                Some(name),
                format!("field `{name}` is required in a {} message", kind.as_str()),
            ));
        }
    }

    let timestamp = optional_time(get("timestamp"), "timestamp")?;
    let sent_at = optional_time(get("sentAt"), "sentAt")?.or(shared.sent_at);
    let event_time = corrected_time(meta.received_at, timestamp, sent_at)?;

    let location = location(kind, &get, shared);
    let extra = extra(&pairs, kind, user_key, shared)?;
    for (name, value) in [
        ("event", &event),
        (user_key, &user),
        ("location", &location),
    ] {
        if value.contains('\0') {
            return Err(unstorable(name, "it contains U+0000"));
        }
    }
    Ok(Event {
        id: event::new_id(),
        ip: meta.ip,
        user_agent: meta.user_agent.clone(),
        event: event.into(),
        user: user.into(),
        location: location.into(),
        received_at: meta.received_at,
        event_time,
        extra: extra.into(),
        accepted_at: meta.accepted_at,
    })
}

fn message_type(
    declared: Option<&RawValue>,
    route: Option<MessageType>,
) -> Result<MessageType, Rejection> {
    let declared = string(declared, "type")?;
    match (route, declared) {
        (Some(route), None) => Ok(route),
        (Some(route), Some(t)) if t == route.as_str() => Ok(route),
        (Some(route), Some(t)) => Err(invalid_field(
            "type",
            format!(
                "field `type` is `{t}` but this route takes `{}` messages",
                route.as_str()
            ),
        )),
        (None, Some(t)) => MessageType::parse(&t).ok_or_else(|| {
            invalid_field(
                "type",
                format!(
                    "field `type` must be one of identify, track, page, screen, group, alias; got `{t}`"
                ),
            )
        }),
        (None, None) => Err(Rejection::new(
            Reason::MissingField,
            Some("type"),
            "field `type` is required in a batch message".into(),
        )),
    }
}

/// `location` for a message of `kind`: the first non-empty string found.
fn location<'a>(
    kind: MessageType,
    get: &impl Fn(&str) -> Option<&'a RawValue>,
    shared: &Shared<'a>,
) -> String {
    let properties = get("properties");
    let own: &[(Option<&RawValue>, &[&str])] = match kind {
        MessageType::Page => &[(properties, &["url"]), (properties, &["path"])],
        MessageType::Screen => &[(get("name"), &[]), (properties, &["name"])],
        _ => &[],
    };
    let context = get("context").filter(|c| c.get() != "null");
    let page: &[(Option<&RawValue>, &[&str])] = &[
        (context, &["page", "url"]),
        (shared.context, &["page", "url"]),
        (context, &["page", "path"]),
        (shared.context, &["page", "path"]),
    ];
    own.iter()
        .chain(page)
        .find_map(|(raw, path)| string_at(*raw, path))
        .unwrap_or_default()
}

/// The non-empty string at `path` inside the JSON object `raw`.
fn string_at(raw: Option<&RawValue>, path: &[&str]) -> Option<String> {
    let raw = raw?;
    let Some((first, rest)) = path.split_first() else {
        let s: String = serde_json::from_str(raw.get()).ok()?;
        return (!s.is_empty()).then_some(s);
    };
    if !raw.get().starts_with('{') {
        return None;
    }
    let object: RawObject = serde_json::from_str(raw.get()).ok()?;
    let value = object.0.into_iter().find(|(k, _)| k == first)?.1;
    string_at(Some(value), rest)
}

/// The text of `extra`: the message's keys in order, less the ones stored in
/// columns and the write key, with the batch's context and integrations merged.
fn extra(
    pairs: &[(String, &RawValue)],
    kind: MessageType,
    user_key: &str,
    shared: &Shared,
) -> Result<String, Rejection> {
    let mut out = String::with_capacity(256);
    let push = |out: &mut String, key: &str, value: &str| -> Result<(), Rejection> {
        if key.contains('\0') {
            return Err(unstorable(key, "its name contains U+0000"));
        }
        if let Some(problem) = unstorable_json(value) {
            return Err(unstorable(key, problem));
        }
        out.push(if out.is_empty() { '{' } else { ',' });
        push_json_string(out, key);
        out.push(':');
        out.push_str(value);
        Ok(())
    };
    let mut seen_context = false;
    let mut seen_integrations = false;
    for (key, value) in pairs {
        match key.as_str() {
            "writeKey" => continue,
            "event" if kind == MessageType::Track => continue,
            k if k == user_key => continue,
            "context" => {
                seen_context = true;
                push(&mut out, key, &merged(value, shared.context)?)?;
            }
            "integrations" => {
                seen_integrations = true;
                push(&mut out, key, &merged(value, shared.integrations)?)?;
            }
            _ => push(&mut out, key, value.get())?,
        }
    }
    for (seen, name, value) in [
        (seen_context, "context", shared.context),
        (seen_integrations, "integrations", shared.integrations),
    ] {
        if let (false, Some(value)) = (seen, value) {
            push(&mut out, name, value.get())?;
        }
    }
    if out.is_empty() {
        out.push('{');
    }
    out.push('}');
    Ok(out)
}

/// A message's object with the batch's keys it lacks added after its own.
fn merged(own: &RawValue, shared: Option<&RawValue>) -> Result<String, Rejection> {
    let Some(shared) = shared.filter(|s| s.get() != "null") else {
        return Ok(own.get().to_owned());
    };
    if own.get() == "null" {
        return Ok(shared.get().to_owned());
    }
    if !own.get().starts_with('{') {
        return Ok(own.get().to_owned());
    }
    let own_pairs: RawObject = serde_json::from_str(own.get()).map_err(|e| json_error(&e))?;
    let shared_pairs: RawObject = serde_json::from_str(shared.get()).map_err(|e| json_error(&e))?;
    let mut out = String::with_capacity(own.get().len() + shared.get().len());
    let all = own_pairs.0.iter().chain(
        shared_pairs
            .0
            .iter()
            .filter(|(k, _)| !own_pairs.0.iter().any(|(o, _)| o == k)),
    );
    for (key, value) in all {
        out.push(if out.is_empty() { '{' } else { ',' });
        push_json_string(&mut out, key);
        out.push(':');
        out.push_str(value.get());
    }
    if out.is_empty() {
        out.push('{');
    }
    out.push('}');
    Ok(out)
}

/// `userId` or `anonymousId`: a string or an integer; `null` and `""` are absent.
fn id(raw: Option<&RawValue>, name: &str) -> Result<Option<String>, Rejection> {
    let Some(raw) = raw else { return Ok(None) };
    let text = raw.get();
    if text == "null" {
        return Ok(None);
    }
    if text.starts_with('"') {
        let value = decode_string(raw, name)?;
        return Ok((!value.is_empty()).then_some(value));
    }
    let digits = text.strip_prefix('-').unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(Some(text.to_owned()));
    }
    Err(invalid_field(
        name,
        format!("field `{name}` must be a string or an integer"),
    ))
}

/// A string field; `null` is absent.
fn string(raw: Option<&RawValue>, name: &str) -> Result<Option<String>, Rejection> {
    match raw {
        None => Ok(None),
        Some(raw) if raw.get() == "null" => Ok(None),
        Some(raw) if raw.get().starts_with('"') => decode_string(raw, name).map(Some),
        Some(_) => Err(invalid_field(
            name,
            format!("field `{name}` must be a string"),
        )),
    }
}

fn decode_string(raw: &RawValue, name: &str) -> Result<String, Rejection> {
    if let Some(problem) = unstorable_json(raw.get()) {
        return Err(unstorable(name, problem));
    }
    serde_json::from_str(raw.get())
        .map_err(|e| invalid_field(name, format!("field `{name}` is not a valid string: {e}")))
}

/// An ISO 8601 time: RFC 3339, or without an offset (read as UTC), years 1 to 9999.
fn optional_time(raw: Option<&RawValue>, name: &str) -> Result<Option<DateTime<Utc>>, Rejection> {
    let Some(text) = string(raw, name)? else {
        return Ok(None);
    };
    let parsed = DateTime::parse_from_rfc3339(&text)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| {
            NaiveDateTime::parse_from_str(&text, "%Y-%m-%dT%H:%M:%S%.f").map(|t| t.and_utc())
        })
        .map_err(|_| {
            invalid_field(
                name,
                format!("field `{name}` must be an ISO 8601 time like 2025-01-31T12:00:00.000Z"),
            )
        })?;
    if !(1..=9999).contains(&parsed.year()) {
        return Err(invalid_field(
            name,
            format!("field `{name}` must be between the years 1 and 9999"),
        ));
    }
    Ok(Some(parsed))
}

/// `received − (sent − timestamp)`: the client's clock skew taken out.
fn corrected_time(
    received: DateTime<Utc>,
    timestamp: Option<DateTime<Utc>>,
    sent: Option<DateTime<Utc>>,
) -> Result<DateTime<Utc>, Rejection> {
    let Some(timestamp) = timestamp else {
        return Ok(received);
    };
    let Some(sent) = sent else {
        return Ok(timestamp);
    };
    received
        .checked_sub_signed(sent.signed_duration_since(timestamp))
        .filter(|t| (1..=9999).contains(&t.year()))
        .ok_or_else(|| {
            invalid_field(
                "timestamp",
                "`timestamp` and `sentAt` are too far apart to correct the time".into(),
            )
        })
}

fn utf8(body: &[u8]) -> Result<&str, Rejection> {
    std::str::from_utf8(body)
        .map_err(|e| invalid_json_owned(format!("body is not valid UTF-8: {e}")))
}

fn first_byte(body: &[u8]) -> Option<u8> {
    body.iter().copied().find(|b| !b.is_ascii_whitespace())
}

fn invalid_json(message: &str) -> Rejection {
    invalid_json_owned(message.to_owned())
}

fn invalid_json_owned(message: String) -> Rejection {
    Rejection::new(Reason::InvalidJson, None, message)
}

fn json_error(e: &serde_json::Error) -> Rejection {
    invalid_json_owned(format!("body is not valid JSON: {e}"))
}

fn invalid_field(name: &str, message: String) -> Rejection {
    Rejection::new(Reason::InvalidField, Some(name), message)
}

fn unstorable(name: &str, problem: &str) -> Rejection {
    Rejection::new(
        Reason::UnstorableValue,
        Some(name),
        format!("field `{name}`: {problem}, which PostgreSQL cannot store"),
    )
}

/// A JSON object's members in order, values left as raw JSON text.
struct RawObject<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for RawObject<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = RawObject<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawObject<'de>, A::Error> {
                let mut pairs = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    pairs.push((key, map.next_value()?));
                }
                Ok(RawObject(pairs))
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::Instant;

    fn meta() -> RequestMeta {
        RequestMeta {
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            user_agent: None,
            received_at: time("2025-06-01T12:00:10Z"),
            accepted_at: Instant::now(),
        }
    }

    fn time(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    fn one(route: MessageType, body: &str) -> Result<Event, Rejection> {
        parse_message(body.as_bytes(), route, &meta())
    }

    #[test]
    fn track_maps_event_name_user_and_keeps_the_rest_in_extra() {
        let e = one(
            MessageType::Track,
            r#"{"userId":"u1","anonymousId":"a1","event":"Signed Up","properties":{"plan":"pro"},"messageId":"m-1","writeKey":"secret"}"#,
        )
        .expect("valid");
        assert_eq!(&*e.event, "Signed Up");
        assert_eq!(&*e.user, "u1");
        assert_eq!(&*e.location, "");
        assert_eq!(
            &*e.extra,
            r#"{"anonymousId":"a1","properties":{"plan":"pro"},"messageId":"m-1"}"#
        );
        assert_eq!(e.event_time, e.received_at);
    }

    #[test]
    fn null_or_empty_user_id_falls_back_to_anonymous_id() {
        for user_id in ["null", r#""""#] {
            let e = one(
                MessageType::Identify,
                &format!(r#"{{"userId":{user_id},"anonymousId":"anon","traits":{{"a":1}}}}"#),
            )
            .expect("valid");
            assert_eq!(&*e.user, "anon");
            assert_eq!(&*e.event, "identify");
            assert!(e
                .extra
                .starts_with(&format!(r#"{{"userId":{user_id},"traits""#)));
        }
    }

    #[test]
    fn missing_ids_and_track_without_event_are_named() {
        let r = one(MessageType::Track, r#"{"event":"x","userId":null}"#).unwrap_err();
        assert_eq!(
            (r.reason, r.field.as_deref()),
            (Reason::MissingField, Some("userId"))
        );
        assert!(r.message.contains("anonymousId"));
        let r = one(MessageType::Track, r#"{"userId":"u"}"#).unwrap_err();
        assert_eq!(
            (r.reason, r.field.as_deref()),
            (Reason::MissingField, Some("event"))
        );
        let r = one(MessageType::Group, r#"{"userId":"u"}"#).unwrap_err();
        assert_eq!(r.field.as_deref(), Some("groupId"));
        let r = one(MessageType::Alias, r#"{"userId":"u"}"#).unwrap_err();
        assert_eq!(r.field.as_deref(), Some("previousId"));
        let r = one(MessageType::Track, r#"{"userId":{"a":1},"event":"x"}"#).unwrap_err();
        assert_eq!(
            (r.reason, r.field.as_deref()),
            (Reason::InvalidField, Some("userId"))
        );
    }

    #[test]
    fn location_is_page_url_then_path_then_screen_name_then_context_page() {
        let loc = |route, body: &str| one(route, body).expect("valid").location.to_string();
        assert_eq!(
            loc(
                MessageType::Page,
                r#"{"userId":"u","properties":{"path":"/p","url":"http://x/p"}}"#
            ),
            "http://x/p"
        );
        assert_eq!(
            loc(
                MessageType::Page,
                r#"{"userId":"u","properties":{"path":"/p"}}"#
            ),
            "/p"
        );
        assert_eq!(
            loc(MessageType::Screen, r#"{"userId":"u","name":"Home"}"#),
            "Home"
        );
        assert_eq!(
            loc(
                MessageType::Track,
                r#"{"userId":"u","event":"e","context":{"page":{"url":"http://x/q"}}}"#
            ),
            "http://x/q"
        );
        assert_eq!(
            loc(MessageType::Group, r#"{"userId":"u","groupId":"g"}"#),
            ""
        );
    }

    #[test]
    fn event_time_is_corrected_for_client_clock_skew() {
        // The client's clock is 1 hour fast: it stamped the event 5 s before sending.
        let e = one(
            MessageType::Track,
            r#"{"userId":"u","event":"e","timestamp":"2025-06-01T13:00:00Z","sentAt":"2025-06-01T13:00:05.000Z"}"#,
        )
        .expect("valid");
        assert_eq!(e.event_time, time("2025-06-01T12:00:05Z"));
        let e = one(
            MessageType::Track,
            r#"{"userId":"u","event":"e","timestamp":"2025-06-01T13:00:00+01:00"}"#,
        )
        .expect("valid");
        assert_eq!(
            e.event_time,
            time("2025-06-01T12:00:00Z"),
            "no sentAt: timestamp as is"
        );
        let r = one(
            MessageType::Track,
            r#"{"userId":"u","event":"e","timestamp":"yesterday"}"#,
        )
        .unwrap_err();
        assert_eq!(
            (r.reason, r.field.as_deref()),
            (Reason::InvalidField, Some("timestamp"))
        );
    }

    #[test]
    fn route_type_wins_and_a_contradicting_type_is_refused() {
        assert!(one(
            MessageType::Track,
            r#"{"type":"track","userId":"u","event":"e"}"#
        )
        .is_ok());
        let r = one(
            MessageType::Track,
            r#"{"type":"page","userId":"u","event":"e"}"#,
        )
        .unwrap_err();
        assert_eq!(r.field.as_deref(), Some("type"));
    }

    #[test]
    fn batch_context_and_sent_at_apply_to_every_message() {
        let body = r#"{"batch":[
            {"type":"track","userId":"u","event":"e","timestamp":"2025-06-01T12:00:00Z","context":{"ip":"1.2.3.4","library":{"name":"own"}}},
            {"type":"identify","anonymousId":"a"}
        ],"context":{"library":{"name":"shared"},"locale":"fr"},"integrations":{"All":false},
        "sentAt":"2025-06-01T12:00:02Z","writeKey":"k"}"#;
        let results = parse_batch(body.as_bytes(), &meta(), 32 << 10, 500 << 10).expect("parsable");
        let first = results[0].as_ref().expect("valid");
        assert_eq!(
            &*first.extra,
            r#"{"type":"track","timestamp":"2025-06-01T12:00:00Z","context":{"ip":"1.2.3.4","library":{"name":"own"},"locale":"fr"},"integrations":{"All":false}}"#
        );
        assert_eq!(first.event_time, time("2025-06-01T12:00:08Z"));
        let second = results[1].as_ref().expect("valid");
        assert_eq!(
            &*second.extra,
            r#"{"type":"identify","context":{"library":{"name":"shared"},"locale":"fr"},"integrations":{"All":false}}"#
        );
    }

    #[test]
    fn batch_reports_each_bad_message_and_keeps_the_good_ones() {
        let big = format!(
            r#"{{"type":"track","userId":"u","event":"e","pad":"{}"}}"#,
            "x".repeat(200)
        );
        let body = format!(
            r#"{{"batch":[{big},{{"type":"track","userId":"u"}},{{"type":"nope","userId":"u"}},7,{{"type":"page","userId":"u","x":"\u0000"}},{{"type":"page","userId":"u"}}]}}"#
        );
        let results = parse_batch(body.as_bytes(), &meta(), 100, 500 << 10).expect("parsable");
        let reasons: Vec<_> = results
            .iter()
            .map(|r| r.as_ref().err().map(|e| e.reason))
            .collect();
        assert_eq!(
            reasons,
            [
                Some(Reason::MessageTooLarge),
                Some(Reason::MissingField),
                Some(Reason::InvalidField),
                Some(Reason::InvalidJson),
                Some(Reason::UnstorableValue),
                None
            ]
        );
        assert!(parse_batch(b"{}", &meta(), 100, 500 << 10).is_err());
        assert!(parse_batch(br#"{"batch":{}}"#, &meta(), 100, 500 << 10).is_err());
        assert!(parse_batch(br#"{"batch":[],"context":[]}"#, &meta(), 100, 500 << 10).is_err());
    }

    #[test]
    fn the_shared_context_counts_against_each_message_and_the_whole_batch() {
        let context = format!(r#"{{"pad":"{}"}}"#, "x".repeat(300));
        let body =
            format!(r#"{{"context":{context},"batch":[{{"type":"identify","userId":"u"}}]}}"#);
        let results = parse_batch(body.as_bytes(), &meta(), 200, 500 << 10).expect("parsable");
        assert_eq!(
            results[0].as_ref().map_err(|r| r.reason).unwrap_err(),
            Reason::MessageTooLarge,
            "the message is small, but not with the context copied in"
        );
        // Many tiny messages sharing a big context: refused as a whole
        // before a single copy is made.
        let messages = vec![r#"{"type":"identify","userId":"u"}"#; 2000].join(",");
        let body = format!(r#"{{"context":{context},"batch":[{messages}]}}"#);
        let r = parse_batch(body.as_bytes(), &meta(), 32 << 10, 100_000).unwrap_err();
        assert_eq!(
            (r.reason, r.field.as_deref()),
            (Reason::MessageTooLarge, Some("context"))
        );
    }

    #[test]
    fn a_leap_second_timestamp_becomes_a_storable_event_time() {
        let e = parse_message(
            br#"{"userId":"u","event":"e","timestamp":"2016-12-31T23:59:60.5Z"}"#,
            MessageType::Track,
            &meta(),
        )
        .expect("valid");
        let mut out = Vec::new();
        let table = "events".parse().expect("table");
        let mut builder = crate::sql::InsertBuilder::new(crate::sql::Dialect::Postgres, &table);
        builder.push(&e);
        out.extend_from_slice(builder.finish());
        let sql = String::from_utf8(out).expect("utf-8");
        // The raw timestamp stays in `extra` as sent; the column is storable.
        assert!(
            sql.ends_with(", '2016-12-31T23:59:59.999999Z');\n"),
            "{sql}"
        );
    }
}
