//! Configuration: every option is a flag and a `TRACKD_*` environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::sql::{Dialect, TableName};
use crate::writer::WriterConfig;

/// trackd: a self-hosted user-behaviour tracking API.
///
/// Clients POST events to /track (one JSON object) or /batch (an array). Each
/// valid event is acknowledged with its id, queued, and written in batches as
/// multi-row SQL INSERT statements: to standard output by default (blue on a
/// terminal, plain when piped, so `trackd | psql` works), or appended to a
/// file with --output. Logs go to standard error.
///
/// Create the table first with `trackd schema | psql`.
#[derive(Debug, Parser)]
#[command(name = "trackd", version, about, long_about, max_term_width = 100)]
pub struct Cli {
    /// What to do; without one, trackd serves.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Server options.
    #[command(flatten)]
    pub config: Config,
}

/// Subcommands besides serving.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the CREATE TABLE IF NOT EXISTS statement for --table in --dialect, then exit.
    Schema,
}

/// Everything the server needs to know, with defaults that run well on a laptop.
#[derive(Debug, Clone, Parser)]
pub struct Config {
    /// Address and port to listen on.
    #[arg(long, env = "TRACKD_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,

    /// Serve GET /metrics on this address instead of on --listen (e.g. to keep
    /// it off a public port), with /healthz and /readyz, which probes reach here even
    /// when --listen is at --max-connections. Unset: /metrics is on --listen.
    #[arg(long, env = "TRACKD_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,

    /// Most events waiting to be written; when full, requests get 503 with Retry-After.
    #[arg(long, env = "TRACKD_QUEUE_CAPACITY", default_value_t = 50_000,
          value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub queue_capacity: u64,

    /// Most memory the waiting events may hold, in bytes (their text plus a fixed
    /// overhead each); when full, requests get 503 with Retry-After.
    #[arg(long, env = "TRACKD_QUEUE_MAX_BYTES", default_value_t = 128 << 20,
          value_parser = clap::value_parser!(u64).range(4096..=1 << 40))]
    pub queue_max_bytes: u64,

    /// Most rows in one INSERT statement.
    #[arg(long, env = "TRACKD_BATCH_MAX_ROWS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub batch_max_rows: u64,

    /// Most bytes in one INSERT statement (a single larger row is written alone).
    #[arg(long, env = "TRACKD_BATCH_MAX_BYTES", default_value_t = 1 << 20,
          value_parser = clap::value_parser!(u64).range(1024..=1 << 30))]
    pub batch_max_bytes: u64,

    /// Longest a batch waits for more events after its first, in milliseconds.
    #[arg(long, env = "TRACKD_LINGER_MS", default_value_t = 100)]
    pub linger_ms: u64,

    /// Largest request body accepted, in bytes, as sent on the wire; enforced while reading.
    #[arg(long, env = "TRACKD_MAX_BODY_BYTES", default_value_t = 1 << 20,
          value_parser = clap::value_parser!(u64).range(1..=1 << 30))]
    pub max_body_bytes: u64,

    /// Largest body accepted after gzip decompression, in bytes.
    #[arg(long, env = "TRACKD_MAX_DECOMPRESSED_BYTES", default_value_t = 4 << 20,
          value_parser = clap::value_parser!(u64).range(1..=1 << 30))]
    pub max_decompressed_bytes: u64,

    /// Largest Segment message accepted, in bytes: the body of /v1/track and the other
    /// single-message routes (on the wire and after gzip), and each message of a /v1/batch.
    #[arg(long, env = "TRACKD_MAX_MESSAGE_BYTES", default_value_t = 32 << 10,
          value_parser = clap::value_parser!(u64).range(1..=1 << 30))]
    pub max_message_bytes: u64,

    /// Largest /v1/batch (and /v1/import) body accepted, in bytes, on the wire and after gzip.
    #[arg(long, env = "TRACKD_MAX_BATCH_BYTES", default_value_t = 500 << 10,
          value_parser = clap::value_parser!(u64).range(1..=1 << 30))]
    pub max_batch_bytes: u64,

    /// A write key that /v1/* requests must present, as the HTTP Basic username (as
    /// Segment's libraries send it) or as ?writeKey= (for beacons). Repeat the flag
    /// for several keys; the environment variable takes them comma-separated. Without
    /// any, /v1/* is open. /track and /batch never ask for one.
    #[arg(
        long = "write-key",
        env = "TRACKD_WRITE_KEYS",
        value_name = "KEY",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub write_keys: Vec<String>,

    /// Longest time to receive a request's headers (else the connection is closed; this is
    /// also the keep-alive idle timeout), then its body (else 408), and longest a write of
    /// the answer waits for the client to read (else the connection is closed), in milliseconds.
    #[arg(long, env = "TRACKD_REQUEST_TIMEOUT_MS", default_value_t = 10_000)]
    pub request_timeout_ms: u64,

    /// Most client connections open at once on each listener; past it, new connections
    /// wait in the kernel's listen backlog until one closes.
    #[arg(long, env = "TRACKD_MAX_CONNECTIONS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,

    /// On SIGTERM/SIGINT, keep serving this long with /readyz answering 503, so a load
    /// balancer sees the instance leave before connections are refused, in milliseconds.
    #[arg(long, env = "TRACKD_SHUTDOWN_DELAY_MS", default_value_t = 0)]
    pub shutdown_delay_ms: u64,

    /// On SIGTERM/SIGINT, longest wait for in-flight requests before draining anyway, in milliseconds.
    #[arg(long, env = "TRACKD_SHUTDOWN_TIMEOUT_MS", default_value_t = 30_000)]
    pub shutdown_timeout_ms: u64,

    /// After that, while the writer writes what is queued, longest the output may take no
    /// statement, in milliseconds (a slow output that keeps taking them is waited for); then
    /// trackd reports how many acknowledged events it could not write and exits 1.
    #[arg(long, env = "TRACKD_DRAIN_TIMEOUT_MS", default_value_t = 30_000)]
    pub drain_timeout_ms: u64,

    /// Table the statements insert into (letters, digits, `_`; optionally schema.table).
    #[arg(long, env = "TRACKD_TABLE", default_value = "events", global = true)]
    pub table: TableName,

    /// SQL dialect of the statements and of `trackd schema`.
    #[arg(long, env = "TRACKD_DIALECT", value_enum, default_value_t = Dialect::Postgres, global = true)]
    pub dialect: Dialect,

    /// Colour the SQL on standard output: auto means on a terminal, unless NO_COLOR is set.
    #[arg(long, env = "TRACKD_COLOR", value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    /// Append statements to this file instead of standard output.
    #[arg(long, env = "TRACKD_OUTPUT", value_name = "PATH")]
    pub output: Option<PathBuf>,

    /// Take the client address from the last X-Forwarded-For entry (the one your
    /// proxy added). Only set this behind a proxy you run: clients can forge the header.
    #[arg(long, env = "TRACKD_TRUST_FORWARDED_FOR")]
    pub trust_forwarded_for: bool,

    /// Log filter for standard error, e.g. `info` or `trackd=debug,tower_http=warn`.
    #[arg(long, env = "TRACKD_LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Log line format on standard error.
    #[arg(long, env = "TRACKD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// When to colour standard output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless NO_COLOR is set.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

impl ColorChoice {
    /// Whether to colour, given whether stdout is a terminal and NO_COLOR's value.
    pub fn enabled(self, is_terminal: bool, no_color: Option<&str>) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => is_terminal && no_color.is_none_or(str::is_empty),
        }
    }
}

/// Format of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable.
    Text,
    /// One JSON object per line.
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Config::parse_from(["trackd"])
    }
}

impl Config {
    /// Settings of the writer thread.
    pub fn writer(&self) -> WriterConfig {
        WriterConfig {
            max_rows: to_usize(self.batch_max_rows),
            max_bytes: to_usize(self.batch_max_bytes),
            linger: Duration::from_millis(self.linger_ms),
            dialect: self.dialect,
            table: self.table.clone(),
        }
    }
}

/// Converts a bounded option to `usize`, saturating on small targets.
pub(crate) fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_color_turns_auto_off_but_not_always() {
        assert!(ColorChoice::Auto.enabled(true, None));
        assert!(ColorChoice::Auto.enabled(true, Some("")));
        assert!(!ColorChoice::Auto.enabled(true, Some("1")));
        assert!(!ColorChoice::Auto.enabled(false, None));
        assert!(ColorChoice::Always.enabled(false, Some("1")));
        assert!(!ColorChoice::Never.enabled(true, None));
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn schema_subcommand_takes_dialect_after_it() {
        let cli = Cli::parse_from(["trackd", "schema", "--dialect", "sqlite", "--table", "t"]);
        assert!(matches!(cli.command, Some(Command::Schema)));
        assert_eq!(cli.config.dialect, Dialect::Sqlite);
        assert_eq!(cli.config.table.to_string(), "t");
    }
}
