//! The layer every request passes through: one `tracing` span with its route
//! template, status and latency, and the request metrics.
//!
//! Hand-written rather than `axum::middleware::from_fn`: that boxes the
//! inner service and the middleware's future on every request, which cost
//! more than the rest of what this layer does. Here the future is a plain
//! struct around the route's own future.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::response::Response;
use tower::{Layer, Service};
use tracing::Span;

use crate::metrics::{Metrics, UNMATCHED_ROUTE};

/// Wraps every route of a router in [`Observe`].
#[derive(Debug, Clone)]
pub struct ObserveLayer {
    /// Where request counts and latencies go.
    metrics: Arc<Metrics>,
}

impl ObserveLayer {
    /// A layer counting into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        ObserveLayer { metrics }
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// One span per request, and the request metrics. The route label is the
/// matched template (`/track`), never the raw path, so it stays bounded.
/// The span and its closing line are at debug level: at the default `info`
/// there is no per-request logging on the hot path.
#[derive(Debug, Clone)]
pub struct Observe<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S> Service<Request> for Observe<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ObserveFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let started = Instant::now();
        let route = request.extensions().get::<MatchedPath>().cloned();
        let span = tracing::debug_span!(
            "request",
            method = %request.method(),
            route = route.as_ref().map_or(UNMATCHED_ROUTE, MatchedPath::as_str),
            status = tracing::field::Empty,
            latency_us = tracing::field::Empty,
        );
        let inner = span.in_scope(|| self.inner.call(request));
        ObserveFuture {
            inner,
            done: Some(Done {
                metrics: self.metrics.clone(),
                route,
                span,
                started,
            }),
        }
    }
}

/// What [`ObserveFuture`] needs once the answer is ready.
struct Done {
    metrics: Arc<Metrics>,
    route: Option<MatchedPath>,
    span: Span,
    started: Instant,
}

pin_project_lite::pin_project! {
    /// The route's future, polled inside the request's span; its answer is
    /// counted and logged before it is returned.
    pub struct ObserveFuture<F> {
        #[pin]
        inner: F,
        done: Option<Done>,
    }
}

impl<F, E> Future for ObserveFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = {
            let _entered = this.done.as_ref().map(|done| done.span.enter());
            ready!(this.inner.poll(cx))
        };
        let Some(done) = this.done.take() else {
            return Poll::Ready(result);
        };
        if let Ok(response) = &result {
            let elapsed = done.started.elapsed();
            let status = response.status().as_u16();
            let route = done.route.as_ref().map(MatchedPath::as_str);
            done.metrics.http_request(route, status, elapsed);
            done.span.record("status", status);
            done.span.record("latency_us", elapsed.as_micros() as u64);
            done.span.in_scope(|| tracing::debug!("request answered"));
        }
        Poll::Ready(result)
    }
}
