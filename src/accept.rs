//! The accept loop: one HTTP/1.1 connection task per client, with a timeout
//! on reading request headers and a graceful close on shutdown.
//!
//! `axum::serve` sets no header timeout, so a client trickling headers
//! could hold a connection (and a file descriptor) forever.
//!
//! A connection the server ends while the client is still sending (the rest
//! of an oversized body, say) is not closed outright: closing a socket with
//! unread data makes the kernel answer with a reset, which can destroy the
//! response before the client reads it. The socket lingers instead, reading
//! and dropping what still arrives, for at most `LINGER` (2 s) and
//! `LINGER_BYTES` (16 MiB), so the client can read the 413 that explains why.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tower::ServiceExt;

/// Pause after an accept error such as EMFILE, so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);
/// Least time between two warnings that the connection limit is reached.
const FULL_WARNING_EVERY: Duration = Duration::from_secs(10);
/// Longest a closed connection goes on reading what the client still sends.
const LINGER: Duration = Duration::from_secs(2);
/// Most bytes a closed connection reads and drops before it gives up.
const LINGER_BYTES: usize = 16 << 20;

/// The connection slots of one listener: past its limit, new connections
/// wait in the kernel's listen backlog until one closes.
#[derive(Debug)]
pub struct ConnectionSlots {
    semaphore: Arc<Semaphore>,
    limit: usize,
}

impl ConnectionSlots {
    /// Room for `limit` connections at once.
    pub fn new(limit: usize) -> Self {
        ConnectionSlots {
            semaphore: Arc::new(Semaphore::new(limit)),
            limit,
        }
    }

    /// Connections holding a slot, lingering ones included.
    pub fn in_use(&self) -> usize {
        self.limit - self.semaphore.available_permits()
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops
/// accepting, lets each connection finish its in-flight request, and returns
/// once every connection has closed. Each connection takes one of `slots`
/// while it is open. `request_timeout`
/// bounds reading a request's headers (and so a keep-alive connection's
/// idle time) and each write of an answer.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    request_timeout: Duration,
    slots: Arc<ConnectionSlots>,
    shutdown: impl Future<Output = ()>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(request_timeout)
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    let mut warned_at: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        if slots.in_use() == slots.limit
            && warned_at.is_none_or(|at| at.elapsed() >= FULL_WARNING_EVERY)
        {
            tracing::warn!(
                max_connections = slots.limit,
                "connection limit reached; new connections wait in the listen backlog"
            );
            warned_at = Some(Instant::now());
        }
        // Wait for a free slot without taking it yet, so that the slots in
        // use are the open connections; only this loop takes slots, so it is
        // still free once a connection is accepted.
        tokio::select! {
            free = slots.semaphore.acquire() => drop(free.expect("the semaphore is never closed")),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(connection) => connection,
                Err(error) => {
                    if !is_per_connection(&error) {
                        tracing::warn!(%error, "accept failed; pausing");
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let slot = slots
            .semaphore
            .clone()
            .try_acquire_owned()
            .expect("only the accept loop takes slots");
        let _ = stream.set_nodelay(true);
        let service = app
            .clone()
            .map_request(move |mut request: hyper::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            });
        let connection = http.serve_connection(
            TokioIo::new(ClientSocket {
                inner: Some((stream, slot)),
                write_timeout: request_timeout,
                stalled: None,
            }),
            TowerToHyperService::new(service),
        );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Errors that concern one connection only, after which accepting goes on at once.
fn is_per_connection(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// A client connection's socket, which lingers when hyper is done with it
/// (see the module's documentation) unless the client has already closed its side.
/// It holds its connection slot until it is closed, lingering included.
/// A write that waits longer than `write_timeout` for the client to read
/// fails, ending the connection: a client that never reads its answers
/// must not hold a slot, and kernel memory, forever.
struct ClientSocket {
    /// The socket and its connection slot; taken when dropped.
    inner: Option<(TcpStream, OwnedSemaphorePermit)>,
    /// Longest a write may wait for the client to read.
    write_timeout: Duration,
    /// Running while a write waits.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl ClientSocket {
    fn stream(&mut self) -> Pin<&mut TcpStream> {
        Pin::new(
            &mut self
                .inner
                .as_mut()
                .expect("the stream is only taken on drop")
                .0,
        )
    }

    /// `write` as it is, unless it has been waiting for `write_timeout`.
    fn deadline<T>(
        &mut self,
        cx: &mut Context<'_>,
        write: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if write.is_ready() {
            self.stalled = None;
            return write;
        }
        let timeout = self.write_timeout;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        ready!(stalled.as_mut().poll(cx));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client stopped reading its answers",
        )))
    }
}

impl Drop for ClientSocket {
    fn drop(&mut self) {
        let Some((stream, slot)) = self.inner.take() else {
            return;
        };
        let may_still_send = match stream.try_read(&mut [0; 1]) {
            // The usual end: the client closed its side first.
            Ok(0) => false,
            Ok(_) => true,
            Err(error) => error.kind() == io::ErrorKind::WouldBlock,
        };
        if !may_still_send {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                linger(stream).await;
                drop(slot);
            });
        }
    }
}

/// Closes the write side (hyper does not when a timeout ended the
/// connection), then reads and drops what the client still sends until it
/// closes its side, or [`LINGER`] or [`LINGER_BYTES`] runs out; then the
/// socket closes.
async fn linger(mut stream: TcpStream) {
    let _ = stream.shutdown().await;
    let mut buf = [0; 4096];
    let mut left = LINGER_BYTES;
    let drain = async {
        while let Ok(n @ 1..) = stream.read(&mut buf).await {
            left = left.saturating_sub(n);
            if left == 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

impl AsyncRead for ClientSocket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.get_mut().stream().poll_read(cx, buf)
    }
}

impl AsyncWrite for ClientSocket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let write = this.stream().poll_write(cx, buf);
        this.deadline(cx, write)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let write = this.stream().poll_write_vectored(cx, bufs);
        this.deadline(cx, write)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|(s, _)| s.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().stream().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().stream().poll_shutdown(cx)
    }
}
