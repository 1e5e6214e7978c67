//! The telemetry HTTP endpoints: `/healthz`, `/readyz` and `/metrics`, mountable beside
//! other routes.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use super::Health;

/// Errors of the telemetry server.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("HTTP server failed: {0}")]
    Serve(std::io::Error),
}

#[derive(Clone)]
struct TelemetryState {
    registry: Arc<Registry>,
    health: Health,
}

/// Binds the HTTP listener (separately from serving, so that a bad address is reported
/// at start-up).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, TelemetryServerError> {
    TcpListener::bind(addr).await.map_err(|source| TelemetryServerError::Bind { addr, source })
}

/// The telemetry routes.
pub fn routes(registry: Arc<Registry>, health: Health) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(TelemetryState { registry, health })
}

/// Serves the telemetry routes plus `extra` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    health: Health,
    extra: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), TelemetryServerError> {
    let app = extra.merge(routes(registry, health));
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await.map_err(TelemetryServerError::Serve)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<TelemetryState>) -> Response {
    let (ready, failing) = state.health.readiness();
    if ready {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        let body: String = failing.iter().map(|(name, reason)| format!("{name}: {reason}\n")).collect();
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}

async fn metrics(State(state): State<TelemetryState>) -> Response {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &state.registry) {
        Ok(()) => ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body)
            .into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "metrics encoding failed\n").into_response(),
    }
}
