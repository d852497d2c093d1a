//! The writer: a dedicated thread that turns queued events into statements.
//!
//! It blocks for a batch's first event, then keeps taking events until one of
//! the flush triggers fires — max rows, max statement bytes, linger time since
//! the first event, or shutdown — and hands one multi-row INSERT to the sink.
//! A failed write is retried with backoff while the queue fills behind it, so
//! a slow or broken sink turns into 503s at the front door, never into loss.

use std::io;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::event::Event;
use crate::metrics::WriterMetrics;
use crate::queue::{Queue, Recv};
use crate::sink::Sink;
use crate::sql::{Dialect, InsertBuilder, TableName};

/// How long the idle writer waits at a time (the queue wakes it on shutdown).
const IDLE_WAIT: Duration = Duration::from_secs(3600);
/// First and longest wait between attempts to write a failed statement.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// Attempts per statement once shutdown has begun, before giving up.
const SHUTDOWN_ATTEMPTS: u32 = 5;

/// When a batch is flushed.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Most rows in one statement.
    pub max_rows: usize,
    /// Most bytes in one statement (a single larger row gets its own).
    pub max_bytes: usize,
    /// Longest time a batch's first event waits for company.
    pub linger: Duration,
    /// SQL flavour of the statements.
    pub dialect: Dialect,
    /// Table the statements insert into.
    pub table: TableName,
}

/// Which condition ended a batch. The words are stable metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The batch reached `max_rows`.
    Rows,
    /// The next row would have passed `max_bytes`.
    Bytes,
    /// `linger` passed since the batch's first event.
    Linger,
    /// The queue was closed and drained.
    Shutdown,
}

impl Trigger {
    /// The bounded word used in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Rows => "rows",
            Trigger::Bytes => "bytes",
            Trigger::Linger => "linger",
            Trigger::Shutdown => "shutdown",
        }
    }
}

/// What the writer did before it stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriterReport {
    /// Events in statements the sink accepted.
    pub events_written: u64,
    /// Statements the sink accepted.
    pub batches_written: u64,
}

/// The writer stopped with events it could not write.
#[derive(Debug, thiserror::Error)]
// The sink's own error is the `source`, which `{:#}` prints after this.
#[error("the sink failed during shutdown; {events_lost} accepted events were not written")]
pub struct WriterError {
    /// Accepted events that never reached the sink.
    pub events_lost: u64,
    /// What the sink said last.
    pub source: io::Error,
    /// What was written before the failure.
    pub report: WriterReport,
}

/// Starts the writer thread. It returns once the queue is closed and drained.
pub fn spawn(
    queue: Arc<Queue>,
    sink: Box<dyn Sink>,
    config: WriterConfig,
    metrics: WriterMetrics,
) -> io::Result<JoinHandle<Result<WriterReport, WriterError>>> {
    let writer = Writer {
        builder: InsertBuilder::new(config.dialect, &config.table),
        accepted_at: Vec::with_capacity(config.max_rows.min(1 << 16)),
        queue,
        sink,
        config,
        report: WriterReport::default(),
        metrics,
    };
    thread::Builder::new()
        .name("trackd-writer".into())
        .spawn(move || writer.run())
}

struct Writer {
    queue: Arc<Queue>,
    sink: Box<dyn Sink>,
    config: WriterConfig,
    builder: InsertBuilder,
    /// When each event of the batch being built arrived, for accepted→written latency.
    accepted_at: Vec<Instant>,
    report: WriterReport,
    metrics: WriterMetrics,
}

impl Writer {
    fn run(mut self) -> Result<WriterReport, WriterError> {
        loop {
            let first = match self.queue.recv_deadline(Instant::now() + IDLE_WAIT) {
                Recv::Event(event) => event,
                Recv::Timeout => continue,
                Recv::Drained => return Ok(self.report),
            };
            let mut deadline = Instant::now() + self.config.linger;
            if self.add(&first)? {
                deadline = Instant::now() + self.config.linger;
            }
            let trigger = loop {
                if self.builder.rows() >= self.config.max_rows {
                    break Trigger::Rows;
                }
                match self.queue.recv_deadline(deadline) {
                    Recv::Event(event) => {
                        if self.add(&event)? {
                            deadline = Instant::now() + self.config.linger;
                        }
                    }
                    Recv::Timeout => break Trigger::Linger,
                    Recv::Drained => {
                        self.flush(Trigger::Shutdown)?;
                        return Ok(self.report);
                    }
                }
            };
            self.flush(trigger)?;
        }
    }

    /// Adds `event` to the batch, first flushing the batch if the event
    /// would push it past `max_bytes`. Returns whether it flushed.
    fn add(&mut self, event: &Event) -> Result<bool, WriterError> {
        let size = self.builder.format_row(event);
        let flushed = size > self.config.max_bytes && !self.builder.is_empty();
        if flushed {
            // The formatted row waits in its own buffer while the batch goes.
            self.flush(Trigger::Bytes)?;
        }
        self.builder.commit_row();
        self.accepted_at.push(event.accepted_at);
        Ok(flushed)
    }

    fn flush(&mut self, trigger: Trigger) -> Result<(), WriterError> {
        if self.builder.is_empty() {
            return Ok(());
        }
        let rows = self.builder.rows() as u64;
        let statement = self.builder.finish();
        let mut wait = RETRY_MIN;
        let mut attempts = 0;
        let write_time = loop {
            if !self.queue.begin_write(rows as usize) {
                return Err(WriterError {
                    events_lost: self.queue.unwritten() as u64,
                    source: io::Error::other("shutdown gave up on the output"),
                    report: self.report.clone(),
                });
            }
            let started = Instant::now();
            let Err(error) = self.sink.write_statement(statement) else {
                break started.elapsed();
            };
            attempts += 1;
            self.metrics.sink_error();
            tracing::error!(%error, rows, attempts, "sink write failed; retrying");
            if self.queue.is_closed() && attempts >= SHUTDOWN_ATTEMPTS {
                return Err(WriterError {
                    events_lost: self.queue.unwritten() as u64,
                    source: error,
                    report: self.report.clone(),
                });
            }
            thread::sleep(wait);
            wait = (wait * 2).min(RETRY_MAX);
        };
        self.queue.written(rows as usize);
        self.metrics
            .batch_written(trigger, rows as usize, write_time, &self.accepted_at);
        self.accepted_at.clear();
        self.builder.clear();
        self.report.events_written += rows;
        self.report.batches_written += 1;
        tracing::debug!(rows, trigger = trigger.as_str(), "batch written");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::MemorySink;

    fn event(n: usize) -> Event {
        Event::sample(&format!("e{n}"))
    }

    fn config(max_rows: usize) -> WriterConfig {
        WriterConfig {
            max_rows,
            max_bytes: 1 << 20,
            linger: Duration::from_millis(5),
            dialect: Dialect::Postgres,
            table: "events".parse().expect("table"),
        }
    }

    fn metrics() -> WriterMetrics {
        crate::metrics::Metrics::new(&crate::config::Config::default()).writer()
    }

    /// Fails its first `failures` writes, then stores statements.
    struct FlakySink {
        failures: usize,
        inner: MemorySink,
    }

    impl Sink for FlakySink {
        fn write_statement(&mut self, statement: &[u8]) -> io::Result<()> {
            if self.failures > 0 {
                self.failures -= 1;
                return Err(io::Error::other("disk on fire"));
            }
            self.inner.write_statement(statement)
        }
    }

    #[test]
    fn failed_writes_are_retried_until_every_event_is_written_once() {
        let queue = Arc::new(Queue::new(100));
        let memory = MemorySink::new();
        let sink = FlakySink {
            failures: 2,
            inner: memory.clone(),
        };
        queue.push_all((0..10).map(event).collect()).expect("room");
        let writer = spawn(queue.clone(), Box::new(sink), config(4), metrics()).expect("spawn");
        queue.close();
        let report = writer.join().expect("no panic").expect("all written");
        assert_eq!(report.events_written, 10);
        let sql = memory.statements().concat();
        for n in 0..10 {
            assert_eq!(sql.matches(&format!("'e{n}'")).count(), 1, "e{n} once");
        }
        assert_eq!(report.batches_written, 3, "4 + 4 + 2 rows");
    }

    #[test]
    fn a_sink_that_never_recovers_during_shutdown_reports_the_loss() {
        let queue = Arc::new(Queue::new(100));
        let sink = FlakySink {
            failures: usize::MAX,
            inner: MemorySink::new(),
        };
        queue.push_all((0..3).map(event).collect()).expect("room");
        queue.close();
        let writer = spawn(queue, Box::new(sink), config(1000), metrics()).expect("spawn");
        let error = writer.join().expect("no panic").expect_err("cannot write");
        assert_eq!(error.events_lost, 3);
        assert_eq!(error.report.events_written, 0);
    }
}
