//! Tapestry's conversation with browsers and integrations: the router, the JSON
//! API under `/api/v1`, server-rendered pages, and the layers every request
//! passes through.

pub mod accounts;
pub mod auth;
pub mod charts;
pub mod clinical;
pub mod error;
pub mod forms;
pub mod health;
pub mod json;
pub mod matching;
pub mod metrics;
pub mod middleware;
pub mod pages;
pub mod portal;
pub mod records;
pub mod records_pages;
pub mod routes;
pub mod server;
pub mod sessions;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::Router;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use tapestry_domain::clock::Clock;
use tapestry_domain::identity::csrf::CsrfKey;
use tapestry_domain::identity::session::SessionPolicy;
use tapestry_domain::identity::throttle::LoginThrottle;
use tapestry_domain::instrument::InstrumentRegistry;
use tapestry_domain::knowledge::Knowledge;
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
    /// Derives CSRF tokens (secret from the key file).
    pub csrf: Arc<CsrfKey>,
    /// Idle and absolute session timeouts.
    pub sessions: SessionPolicy,
    /// Sign-in backoff policies.
    pub throttle: LoginThrottle,
    /// A TLS-terminating proxy is in front (trust its X-Forwarded-For).
    pub behind_proxy: bool,
    /// Online sessions: configuration, join-token key, live rooms.
    pub online: Arc<sessions::SessionsState>,
    /// The instruments this site offers (built-in plus licensed text packs).
    pub registry: Arc<InstrumentRegistry>,
    /// The plan engine's knowledge base (`None` only if the embedded one failed to load).
    pub knowledge: Option<Arc<Knowledge>>,
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
            csrf: Arc::new(CsrfKey::generate()),
            sessions: SessionPolicy::default(),
            throttle: LoginThrottle::default(),
            behind_proxy: false,
            online: Arc::new(sessions::SessionsState::default()),
            registry: Arc::new(InstrumentRegistry::embedded().unwrap_or_else(|e| {
                tracing::error!(error = %e, "built-in instruments failed to load");
                InstrumentRegistry::default()
            })),
            knowledge: match Knowledge::embedded() {
                Ok(k) => Some(Arc::new(k)),
                Err(e) => {
                    tracing::error!(error = %e, "knowledge base failed to load");
                    None
                }
            },
        }
    }

    /// Online-session settings (STUN/TURN, phone dial-in instructions).
    pub fn with_sessions_config(mut self, config: sessions::SessionsConfig) -> Self {
        self.online = Arc::new(sessions::SessionsState::new(config));
        self
    }

    /// Use the site's validated instruments and knowledge base (from start-up).
    pub fn with_knowledge(mut self, registry: InstrumentRegistry, knowledge: Knowledge) -> Self {
        self.registry = Arc::new(registry);
        self.knowledge = Some(Arc::new(knowledge));
        self
    }

    /// Use the CSRF secret from the key file (tokens survive restarts).
    pub fn with_csrf_secret(mut self, secret: &[u8; 32]) -> Self {
        if let Ok(key) = CsrfKey::from_bytes(secret) {
            self.csrf = Arc::new(key);
        }
        self
    }
}

/// The whole application.
pub fn router(state: AppState) -> Router {
    let limits = state.limits.clone();
    routes::register(Router::new(), &state)
        .fallback(pages::not_found_page)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            forms::stamp_forms,
        ))
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
