//! Write keys: which clients may send to the Segment-compatible `/v1/*` routes.
//!
//! Segment's libraries send the key as the username of HTTP Basic auth with an
//! empty password; `navigator.sendBeacon` cannot set headers, so a beacon puts
//! it in the query string as `?writeKey=`. With no key configured, every
//! request is admitted.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::http::AppState;

/// The write keys accepted; empty means the routes are open.
#[derive(Clone, Default)]
pub struct WriteKeys(Vec<Box<[u8]>>);

impl std::fmt::Debug for WriteKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        // Keys are credentials: never in logs.
        write!(f, "WriteKeys({} configured)", self.0.len())
    }
}

impl WriteKeys {
    /// The keys given, empty ones ignored.
    pub fn new<S: AsRef<str>>(keys: &[S]) -> Self {
        WriteKeys(
            keys.iter()
                .map(|k| k.as_ref().trim())
                .filter(|k| !k.is_empty())
                .map(|k| k.as_bytes().into())
                .collect(),
        )
    }

    /// Whether any key is configured.
    pub fn is_open(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the request presents a configured key (or none is configured).
    pub fn admits(&self, headers: &HeaderMap, uri: &Uri) -> bool {
        if self.is_open() {
            return true;
        }
        let from_header = headers
            .get_all(AUTHORIZATION)
            .iter()
            .filter_map(basic_username);
        let from_query = uri.query().into_iter().flat_map(query_write_keys);
        from_header.chain(from_query).any(|key| self.contains(&key))
    }

    /// Compares against every key in time independent of where they differ.
    fn contains(&self, candidate: &[u8]) -> bool {
        self.0.iter().fold(false, |found, key| {
            let same_len = key.len() == candidate.len();
            let diff = key
                .iter()
                .zip(candidate)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            found | (same_len & (diff == 0))
        })
    }
}

/// Middleware: refuses requests without a valid write key with 401.
pub async fn require_write_key(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    if state
        .segment
        .write_keys
        .admits(request.headers(), request.uri())
    {
        return next.run(request).await;
    }
    state.metrics.events_rejected("unauthorized", 1);
    let body = json!({
        "message": "a valid write key is required: send it as the HTTP Basic auth username, or as ?writeKey=",
        "reason": "unauthorized",
    });
    let mut response = (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    response.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"trackd\""),
    );
    // The largest body a /v1 route takes: a batch.
    let limit = state.segment.max_batch_bytes;
    state.refuse_unread(request, limit, response).await
}

/// The username of `Authorization: Basic base64(user:password)`.
fn basic_username(value: &HeaderValue) -> Option<Vec<u8>> {
    let value = value.to_str().ok()?.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let mut decoded = base64_decode(encoded.trim())?;
    let end = decoded
        .iter()
        .position(|&b| b == b':')
        .unwrap_or(decoded.len());
    decoded.truncate(end);
    Some(decoded)
}

/// Every `writeKey` value in a query string, percent-decoded.
fn query_write_keys(query: &str) -> impl Iterator<Item = Vec<u8>> + '_ {
    query.split('&').filter_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        (name == "writeKey").then(|| percent_decode(value))?
    })
}

fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

/// Standard base64 with optional padding; `None` for anything else.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut buffer = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(authorization: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_str(authorization).expect("ascii"),
        );
        h
    }

    fn uri(s: &str) -> Uri {
        s.parse().expect("uri")
    }

    #[test]
    fn no_keys_admits_everyone() {
        assert!(WriteKeys::new::<&str>(&[]).admits(&HeaderMap::new(), &uri("/v1/track")));
        assert!(WriteKeys::new(&["", " "]).is_open());
    }

    #[test]
    fn basic_auth_username_is_the_key() {
        let keys = WriteKeys::new(&["k1", "second key"]);
        // "k1:" and "second key:" and "k1:ignored" in base64
        assert!(keys.admits(&headers("Basic azE6"), &uri("/v1/t")));
        assert!(keys.admits(&headers("basic c2Vjb25kIGtleTo="), &uri("/v1/t")));
        assert!(keys.admits(&headers("Basic azE6aWdub3JlZA=="), &uri("/v1/t")));
        // "k2:" and "k1" as a bearer token
        assert!(!keys.admits(&headers("Basic azI6"), &uri("/v1/t")));
        assert!(!keys.admits(&headers("Bearer k1"), &uri("/v1/t")));
        assert!(!keys.admits(&headers("Basic !!!"), &uri("/v1/t")));
        assert!(!keys.admits(&HeaderMap::new(), &uri("/v1/t")));
    }

    #[test]
    fn query_write_key_is_percent_decoded() {
        let keys = WriteKeys::new(&["a b/c"]);
        assert!(keys.admits(&HeaderMap::new(), &uri("/v1/t?x=1&writeKey=a%20b%2Fc")));
        assert!(keys.admits(&HeaderMap::new(), &uri("/v1/t?writeKey=a+b/c")));
        assert!(!keys.admits(&HeaderMap::new(), &uri("/v1/t?writeKey=a%20b")));
        assert!(!keys.admits(&HeaderMap::new(), &uri("/v1/t?writekey=a+b/c")));
    }

    #[test]
    fn a_prefix_of_a_key_is_not_the_key() {
        let keys = WriteKeys::new(&["secret"]);
        assert!(!keys.contains(b"secre"));
        assert!(!keys.contains(b"secretx"));
        assert!(keys.contains(b"secret"));
    }

    #[test]
    fn debug_does_not_print_keys() {
        assert!(!format!("{:?}", WriteKeys::new(&["hunter2"])).contains("hunter2"));
    }
}
