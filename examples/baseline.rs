//! The ceiling: an axum server on the same stack, accept loop and runtime settings as
//! trackd that answers 200 to a POST to /track or /batch after reading its body, and does
//! nothing else. No event collector on this machine can beat it.
//!
//! `cargo run --release --example baseline -- 127.0.0.1:3900`

use axum::body::Bytes;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;

/// The same allocator as trackd, so the comparison is of work, not of mallocs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ANSWER: &str = r#"{"message":"Success!"}"#;

async fn accept(body: Bytes) -> impl IntoResponse {
    // Touch the body so the read cannot be optimised away.
    std::hint::black_box(body.len());
    ([(CONTENT_TYPE, "application/json")], ANSWER)
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3900".into());
    let runtime = trackd::server::runtime()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        eprintln!("baseline listening on {}", listener.local_addr()?);
        // The same routes as trackd, so routing costs the same.
        let app = Router::new()
            .route("/track", post(accept))
            .route("/batch", post(accept));
        // The same accept loop, header timeout and connection limit as trackd.
        let shutdown = trackd::shutdown::signal()?;
        let header_timeout = std::time::Duration::from_secs(10);
        let slots = std::sync::Arc::new(trackd::accept::ConnectionSlots::new(10_000));
        trackd::accept::serve(listener, app, header_timeout, slots, shutdown).await;
        Ok(())
    })
}
