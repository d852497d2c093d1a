//! Fixtures shared by the benchmarks.
#![allow(dead_code)]

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use chrono::DateTime;
use trackd::event::{Event, RequestMeta};
use trackd::sink::Sink;

/// Discards statements, counting the rows they held.
#[derive(Clone, Default)]
pub struct NullSink {
    /// Rows seen so far (counted from the statement text).
    pub rows: Arc<AtomicU64>,
}

impl Sink for NullSink {
    fn write_statement(&mut self, statement: &[u8]) -> io::Result<()> {
        // Every row starts on its own line with "  ('" (see sql::InsertBuilder).
        let rows = statement.windows(4).filter(|w| w == b"\n  (").count();
        self.rows.fetch_add(rows as u64, Ordering::Release);
        Ok(())
    }
}

/// Request metadata as a handler would stamp it.
pub fn meta() -> RequestMeta {
    RequestMeta {
        ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 17)),
        user_agent: Some(
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0".into(),
        ),
        received_at: DateTime::from_timestamp(1_700_000_000, 123_456_000).unwrap_or_default(),
        accepted_at: Instant::now(),
    }
}

/// A small event body (about 100 bytes), or one padded to about `bytes`.
pub fn body(bytes: usize) -> Vec<u8> {
    trackd::load::sample_body(1, bytes).to_vec()
}

/// A validated event parsed from [`body`].
pub fn event(bytes: usize) -> Event {
    trackd::event::parse_event(&body(bytes), &meta()).expect("fixture is valid")
}
