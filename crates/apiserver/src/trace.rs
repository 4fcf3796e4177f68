//! A tracing span per request: method and path on the span, status and latency when done.

use std::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// Middleware: run the request inside a `request` span and log its outcome at debug level.
pub async fn trace_request(request: Request, next: Next) -> Response {
    let span = tracing::debug_span!(
        "request",
        http.method = %request.method(),
        http.path = %request.uri().path(),
    );
    let started = Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    span.in_scope(|| {
        tracing::debug!(
            http.status = response.status().as_u16(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "served"
        );
    });
    response
}
