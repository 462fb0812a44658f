//! Liveness, readiness and metrics for operators.

use crate::error::ApiError;
use crate::AppState;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// The process is up.
pub async fn healthz() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

/// The process can serve: the database answers and shutdown has not begun.
pub async fn readyz(State(state): State<AppState>) -> Result<Response, ApiError> {
    if state
        .shutting_down
        .load(std::sync::atomic::Ordering::SeqCst)
    {
        return Err(ApiError::unavailable("shutting down"));
    }
    match state.store.ping().await {
        Ok(()) => Ok(
            Json(json!({"status": "ready", "database": state.store.backend().as_str()}))
                .into_response(),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            Err(ApiError::unavailable("database unavailable"))
        }
    }
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut r = (StatusCode::OK, state.metrics.render()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}
