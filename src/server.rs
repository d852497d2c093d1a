//! Wiring: queue, writer thread and HTTP server, from start to drained shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::clock::Clock;
use crate::config::{to_usize, Config};
use crate::http::{self, AppState};
use crate::queue::Queue;
use crate::sink::Sink;
use crate::writer::{self, WriterError, WriterReport};

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The HTTP server or writer thread could not run.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The writer could not write everything that was accepted.
    #[error(transparent)]
    Writer(#[from] WriterError),
    /// The writer thread panicked.
    #[error("the writer thread panicked")]
    WriterPanicked,
}

/// Serves on `listener` until `shutdown` resolves, then stops accepting,
/// finishes in-flight requests (up to the shutdown timeout), drains the queue
/// into `sink` and returns what was written.
pub async fn run(
    listener: TcpListener,
    config: Config,
    sink: Box<dyn Sink>,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<WriterReport, RunError> {
    let queue = Arc::new(Queue::new(to_usize(config.queue_capacity)));
    let writer = writer::spawn(queue.clone(), sink, config.writer())?;
    let state = Arc::new(AppState::new(&config, queue.clone(), clock));
    let draining = state.draining.clone();
    let app = http::app(state).into_make_service_with_connect_info::<SocketAddr>();

    let (started_tx, mut started_rx) = tokio::sync::watch::channel(false);
    let graceful = async move {
        shutdown.await;
        draining.store(true, Ordering::Relaxed);
        tracing::info!("shutdown requested: finishing in-flight requests");
        let _ = started_tx.send(true);
    };
    let serve = axum::serve(listener, app).with_graceful_shutdown(graceful);
    let timeout = Duration::from_millis(config.shutdown_timeout_ms);
    tokio::select! {
        result = serve => result?,
        () = async {
            let _ = started_rx.wait_for(|started| *started).await;
            tokio::time::sleep(timeout).await;
        } => tracing::warn!(?timeout, "in-flight requests still running; draining anyway"),
    }

    queue.close();
    tracing::info!(queued = queue.depth(), "draining the queue");
    let report = tokio::task::spawn_blocking(move || writer.join())
        .await
        .map_err(|_| RunError::WriterPanicked)?
        .map_err(|_| RunError::WriterPanicked)??;
    tracing::info!(
        events_written = report.events_written,
        batches_written = report.batches_written,
        "drained; every accepted event is written"
    );
    Ok(report)
}

/// The async runtime trackd serves on (also used by the baseline server, so
/// both are measured with the same settings).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}
