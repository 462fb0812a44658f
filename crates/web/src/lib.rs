//! Tapestry's conversation with browsers and integrations: the router, the JSON
//! API under `/api/v1`, server-rendered pages, and the layers every request
//! passes through.

pub mod charts;
pub mod error;
pub mod health;
pub mod metrics;
pub mod middleware;
pub mod pages;
pub mod server;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use tapestry_domain::clock::Clock;
use tapestry_store::Store;
use tower_http::timeout::TimeoutLayer;

/// Limits that protect the server from slow or oversized requests.
#[derive(Debug, Clone)]
pub struct Limits {
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            max_body_bytes: 1024 * 1024,
        }
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<metrics::Metrics>,
    pub shutting_down: Arc<AtomicBool>,
    /// Whether the server is reached over HTTPS (directly or via a proxy).
    pub tls: bool,
    pub limits: Limits,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, tls: bool) -> Self {
        Self {
            store,
            clock,
            metrics: Arc::new(metrics::Metrics::default()),
            shutting_down: Arc::new(AtomicBool::new(false)),
            tls,
            limits: Limits::default(),
        }
    }
}

/// The whole application.
pub fn router(state: AppState) -> Router {
    let limits = state.limits.clone();
    Router::new()
        .route("/", get(pages::home))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/static/tapestry.css", get(pages::stylesheet))
        .fallback(pages::not_found_page)
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::security_headers,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::observe,
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .with_state(state)
}
