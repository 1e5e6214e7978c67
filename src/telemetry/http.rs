//! The telemetry HTTP endpoints: `/healthz`, `/readyz` and `/metrics`, mountable beside
//! other routes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

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
    serve_router(listener, extra.merge(routes(registry, health)), HttpLimits::default(), shutdown).await;
    Ok(())
}

/// What one HTTP server admits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// Connections served at once; more wait in the listen queue.
    pub max_connections: usize,
    /// Time a client has to send a request's headers, so that connections that never
    /// finish them do not pile up.
    pub header_read_timeout: Duration,
    /// Connections still open at shutdown get this long to finish.
    pub shutdown_grace: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            header_read_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// Serves `router` over HTTP/1.1 on `listener` until `shutdown` resolves, within `limits`.
pub async fn serve_router(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let (stream, _) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accepting an HTTP connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let connection = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A client that goes away or sends garbage ends its own connection only.
            let _ = connection.await;
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown()).await.is_err() {
        tracing::debug!("HTTP connections still open at shutdown were dropped");
    }
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

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    async fn server(limits: HttpLimits) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let router = Router::new().route("/", get(|| async { "ok\n" }));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve_router(listener, router, limits, async {
            let _ = stopped.await;
        }));
        (address, stop)
    }

    /// Reads until the server closes the connection; what it sent.
    async fn until_closed(stream: &mut TcpStream) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
        out
    }

    #[tokio::test]
    async fn unfinished_headers_are_closed_after_the_deadline() {
        let limits = HttpLimits { header_read_timeout: Duration::from_millis(300), ..HttpLimits::default() };
        let (address, _stop) = server(limits).await;
        let mut unfinished = Vec::new();
        for _ in 0..50 {
            let mut stream = TcpStream::connect(address).await.unwrap();
            stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
            unfinished.push(stream);
        }
        let started = std::time::Instant::now();
        for stream in &mut unfinished {
            until_closed(stream).await;
        }
        assert!(started.elapsed() < Duration::from_secs(3), "all closed at the header deadline");
        let mut fine = TcpStream::connect(address).await.unwrap();
        fine.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        let answer = String::from_utf8(until_closed(&mut fine).await).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok\n"), "{answer}");
    }

    #[tokio::test]
    async fn connections_beyond_the_limit_wait_for_a_free_one() {
        let limits =
            HttpLimits { max_connections: 1, header_read_timeout: Duration::from_millis(400), ..HttpLimits::default() };
        let (address, _stop) = server(limits).await;
        let mut holder = TcpStream::connect(address).await.unwrap();
        holder.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let started = std::time::Instant::now();
        let mut waiting = TcpStream::connect(address).await.unwrap();
        waiting.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        let answer = String::from_utf8(until_closed(&mut waiting).await).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(started.elapsed() >= Duration::from_millis(300), "served once the first connection's time was up");
    }
}
