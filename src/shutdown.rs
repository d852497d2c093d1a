//! The signals that start a graceful shutdown.

use std::future::Future;
use std::io;

/// Installs the SIGINT and SIGTERM handlers now, and returns a future that
/// resolves on the first of them. Call it before binding the listener: a
/// signal that arrives before its handler exists kills the process outright,
/// and with it every event already acknowledged.
///
/// Must be called inside a tokio runtime.
#[cfg(unix)]
pub fn signal() -> io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM received"),
            _ = interrupt.recv() => tracing::info!("SIGINT received"),
        }
    })
}

/// Installs the Ctrl-C handler and returns a future that resolves on it.
#[cfg(not(unix))]
pub fn signal() -> io::Result<impl Future<Output = ()> + Send + 'static> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
