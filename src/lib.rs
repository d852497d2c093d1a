//! trackd: a self-hosted, high-throughput user-behaviour tracking API.
//!
//! Clients POST events; trackd validates them, queues them, and writes them in
//! batches as multi-row SQL INSERT statements.
//!
//! ```text
//! client ─HTTP─▶ http (limits, JSON errors) ─▶ event (wire JSON → Event)
//!                      │ try-enqueue, full → 503
//!                      ▼
//!                 queue (bounded, in events) ─▶ writer thread (rows │ bytes │ linger)
//!                                                   │ sql (dialect-aware escaping)
//!                                                   ▼
//!                                                 sink (stdout, file, memory)
//! ```
//!
//! The modules, one job each:
//! - [`config`]: every option, as flags and `TRACKD_*` environment variables.
//! - [`http`]: routes, body limits, errors as JSON.
//! - [`observe`]: the per-request span and request metrics, as a tower layer.
//! - [`event`]: the wire format and its validation into an [`event::Event`].
//! - [`segment`]: Segment's Tracking API messages and their mapping onto the row.
//! - [`v1`]: the Segment-compatible `/v1/*` routes, with [`auth`] (write keys)
//!   and [`cors`] (browsers on other origins).
//! - [`queue`]: the bounded, all-or-nothing queue between HTTP and the writer.
//! - [`writer`]: the batching thread and its flush triggers.
//! - [`metrics`]: every exported metric, registered at startup, rendered for `/metrics`;
//!   [`histogram`] counts the per-event latency into its buckets as it goes.
//! - [`sql`]: DDL and INSERT statement building, escaping per dialect.
//! - [`sink`]: where statements go.
//! - [`accept`]: the accept loop: connections, header timeout, graceful close.
//! - [`server`]: wires the parts together and runs them until a drained shutdown.
//! - [`shutdown`]: the signals that end a run.
//! - [`clock`]: the injectable wall clock.
//! - [`load`]: the load generator behind the `trackd-load` binary.

pub mod accept;
pub mod auth;
pub mod clock;
pub mod config;
pub mod cors;
pub mod event;
pub mod histogram;
pub mod http;
pub mod load;
pub mod metrics;
pub mod observe;
pub mod queue;
pub mod segment;
pub mod server;
pub mod shutdown;
pub mod sink;
pub mod sql;
pub mod v1;
pub mod writer;
