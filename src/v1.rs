//! The Segment-compatible routes under `/v1`: point a Segment library's host
//! at trackd and its messages become rows.
//!
//! `/v1/{identify,track,page,screen,group,alias}` take one message each (and
//! `/v1/{i,t,p,s,g,a}`, the short paths Segment's browser library posts to);
//! `/v1/batch`, its legacy name `/v1/import`, and `/v1/b` (the browser
//! library's batching mode) take many. Write keys are checked by [`auth`],
//! browsers on other origins served by [`cors`]; the mapping onto the row is
//! in [`segment`].
//!
//! [`auth`]: crate::auth
//! [`cors`]: crate::cors
//! [`segment`]: crate::segment

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;

use crate::auth::{self, WriteKeys};
use crate::config::{to_usize, Config};
use crate::cors;
use crate::http::{self, ApiError, AppState};
use crate::segment::{self, MessageType};

/// Write keys and limits of the `/v1` routes.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Keys a request must present; none means open.
    pub write_keys: WriteKeys,
    /// Largest single message (body of a single-message route, or one message of a batch).
    pub max_message_bytes: usize,
    /// Largest batch body.
    pub max_batch_bytes: usize,
}

impl Settings {
    /// The settings in `config`.
    pub fn new(config: &Config) -> Self {
        Settings {
            write_keys: WriteKeys::new(&config.write_keys),
            max_message_bytes: to_usize(config.max_message_bytes),
            max_batch_bytes: to_usize(config.max_batch_bytes),
        }
    }
}

/// The `/v1` router, to be nested under `/v1`.
pub fn routes(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    let mut router = Router::new();
    for kind in MessageType::ALL {
        let handler = move |State(state): State<Arc<AppState>>, request: Request| {
            single(state, request, kind)
        };
        let short = &kind.as_str()[..1];
        router = router
            .route(&format!("/{}", kind.as_str()), post(handler))
            .route(&format!("/{short}"), post(handler));
    }
    router
        .route("/batch", post(batch))
        .route("/import", post(batch))
        .route("/b", post(batch))
        .method_not_allowed_fallback(http::method_not_allowed)
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_write_key,
        ))
        .layer(middleware::from_fn(cors::cors))
}

async fn single(
    state: Arc<AppState>,
    request: Request,
    kind: MessageType,
) -> Result<Response, ApiError> {
    let limit = state.segment.max_message_bytes;
    let (meta, body) = state
        .read_within(request, limit, limit)
        .await
        .map_err(|e| state.refused(e))?;
    let event = segment::parse_message(&body, kind, &meta).map_err(|r| state.refused(r.into()))?;
    let id = event.id;
    state.enqueue(vec![event])?;
    Ok(Json(json!({"success": true, "message": "Success!", "id": id})).into_response())
}

async fn batch(State(state): State<Arc<AppState>>, request: Request) -> Result<Response, ApiError> {
    let limit = state.segment.max_batch_bytes;
    let (meta, body) = state
        .read_within(request, limit, limit)
        .await
        .map_err(|e| state.refused(e))?;
    let results = segment::parse_batch(
        &body,
        &meta,
        state.segment.max_message_bytes,
        state.segment.max_batch_bytes,
    )
    .map_err(|r| state.refused(r.into()))?;
    let (ids, rejected) = state.enqueue_batch(results)?;
    Ok(http::batch_success(
        r#"{"success":true,"message":"Success!""#,
        &ids,
        rejected,
    ))
}
