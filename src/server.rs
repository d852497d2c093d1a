//! Wiring: queue, writer thread and HTTP server, from start to drained shutdown.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::accept;
use crate::clock::Clock;
use crate::config::{to_usize, Config};
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use crate::queue::Queue;
use crate::sink::Sink;
use crate::writer::{self, WriterError, WriterReport};

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The HTTP server or writer thread could not run.
    #[error("I/O error")]
    Io(#[from] std::io::Error),
    /// The writer could not write everything that was accepted.
    #[error(transparent)]
    Writer(#[from] WriterError),
    /// The writer thread panicked.
    #[error("the writer thread panicked")]
    WriterPanicked,
    /// The output took no events for the whole drain timeout.
    #[error(
        "the output took no events for {timeout:?}; \
         {unwritten} acknowledged events were not written ({in_flight} of them in a statement \
         being written when trackd gave up, which may be in the output whole or in part)"
    )]
    DrainTimeout {
        /// The drain timeout in force.
        timeout: Duration,
        /// Events acknowledged and not written when trackd gave up.
        unwritten: usize,
        /// Those of them in the statement being written then.
        in_flight: usize,
    },
}

/// How often the exporter's recorded histogram samples are folded into
/// buckets between scrapes. Samples wait in memory until then: one per
/// request (request duration) and per batch (batch size, write time); the
/// per-event latency is counted into its buckets at once (`histogram`).
const METRICS_UPKEEP: Duration = Duration::from_secs(1);

/// Serves on `listener` until `shutdown` resolves, then stops accepting,
/// finishes in-flight requests (up to the shutdown timeout), drains the queue
/// into `sink` and returns what was written.
///
/// With `--metrics-listen`, /metrics is served on its own listener until the
/// queue is drained, so the drain itself can be watched.
pub async fn run(
    listener: TcpListener,
    config: Config,
    sink: Box<dyn Sink>,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<WriterReport, RunError> {
    let queue = Arc::new(Queue::with_max_bytes(
        to_usize(config.queue_capacity),
        to_usize(config.queue_max_bytes),
    ));
    let metrics = Arc::new(Metrics::new(&config));
    let writer = writer::spawn(queue.clone(), sink, config.writer(), metrics.writer())?;
    let state = Arc::new(AppState::new(
        &config,
        queue.clone(),
        clock,
        metrics.clone(),
    ));
    let mut background = tokio::task::JoinSet::new();
    background.spawn(async move {
        let mut tick = tokio::time::interval(METRICS_UPKEEP);
        loop {
            tick.tick().await;
            metrics.run_upkeep();
        }
    });
    if let Some(address) = config.metrics_listen {
        let listener = TcpListener::bind(address).await?;
        tracing::info!(address = %listener.local_addr()?, "serving /metrics");
        let app = http::metrics_app(state.clone());
        let header_timeout = Duration::from_millis(config.request_timeout_ms);
        let slots = Arc::new(accept::ConnectionSlots::new(to_usize(
            config.max_connections,
        )));
        background.spawn(accept::serve(
            listener,
            app,
            header_timeout,
            slots,
            std::future::pending(),
        ));
    }
    let draining = state.draining.clone();
    let slots = state.connections.clone();
    let app = http::app(state);

    let (started_tx, mut started_rx) = tokio::sync::watch::channel(false);
    let delay = Duration::from_millis(config.shutdown_delay_ms);
    let graceful = async move {
        shutdown.await;
        draining.store(true, Ordering::Relaxed);
        if !delay.is_zero() {
            tracing::info!(
                ?delay,
                "shutdown requested: /readyz answers 503, still serving"
            );
            tokio::time::sleep(delay).await;
        }
        tracing::info!("shutdown: no new connections; finishing in-flight requests");
        let _ = started_tx.send(true);
    };
    let header_timeout = Duration::from_millis(config.request_timeout_ms);
    let serve = accept::serve(listener, app, header_timeout, slots, graceful);
    let timeout = Duration::from_millis(config.shutdown_timeout_ms);
    tokio::select! {
        () = serve => {}
        () = async {
            let _ = started_rx.wait_for(|started| *started).await;
            tokio::time::sleep(timeout).await;
        } => tracing::warn!(?timeout, "in-flight requests still running; draining anyway"),
    }

    queue.close();
    tracing::info!(queued = queue.depth(), "draining the queue");
    // A plain thread, not spawn_blocking: if the output is stuck for good,
    // the runtime must not wait for this join when trackd gives up.
    let (joined_tx, mut joined_rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = joined_tx.send(writer.join());
    });
    let drain = Duration::from_millis(config.drain_timeout_ms);
    // A slow output that keeps taking events is waited for; one that takes
    // none for the drain timeout is given up on.
    let mut last_unwritten = queue.unwritten();
    let joined = loop {
        match tokio::time::timeout(drain, &mut joined_rx).await {
            Ok(joined) => break joined,
            Err(_) if queue.unwritten() < last_unwritten => last_unwritten = queue.unwritten(),
            Err(_) => {
                let (unwritten, in_flight) = queue.abandon();
                return Err(RunError::DrainTimeout {
                    timeout: drain,
                    unwritten,
                    in_flight,
                });
            }
        }
    };
    let report = joined
        .map_err(|_| RunError::WriterPanicked)?
        .map_err(|_| RunError::WriterPanicked)??;
    tracing::info!(
        events_written = report.events_written,
        batches_written = report.batches_written,
        "drained; every accepted event is written"
    );
    background.shutdown().await;
    Ok(report)
}

/// The async runtime trackd serves on (also used by the baseline server, so
/// both are measured with the same settings).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}
