//! The ingest gateway: one address for the encoders of every stream. Each connection's
//! handshake, `connect` and `publish` are read with the sans-IO session (under the same
//! budgets, deadlines and TLS as a worker's listener); the stream key is looked up in the
//! route table that the operator keeps, and the connection is handed to that stream's
//! worker by the listener's relay, which replays what was read and then copies bytes
//! both ways. No media is decoded or buffered here. Wrong keys are refused here, with the
//! same constant-time comparison as the workers, and counted
//! (`rtmp_publishes_rejected_total{reason="bad_key"}`).
//!
//! Depends on `ingest` (the listener) and `telemetry`; knows the operator only through the
//! route table's format.

pub mod routes;
pub mod source;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::ingest::listener::{
    self, Endpoint, IngestMetrics, ListenerConfig, Publish, PublishHandler, PublishRequest, Rejection, TlsError,
    TlsFiles, TlsIdentity,
};
use crate::telemetry::{self, Health, HealthCheck};
use routes::RouteTable;
use source::SourceError;

/// Runs the ingest gateway.
#[derive(clap::Args, Clone, Debug, PartialEq)]
pub struct GatewayArgs {
    /// Where encoders push RTMP.
    #[arg(long, env = "LIVESTREAM_RTMP_ADDR", default_value = "0.0.0.0:1935")]
    pub rtmp_addr: SocketAddr,
    /// Where encoders push RTMPS, with --tls-cert and --tls-key.
    #[arg(long, env = "LIVESTREAM_RTMPS_ADDR", default_value = "0.0.0.0:1936")]
    pub rtmps_addr: SocketAddr,
    /// Certificate chain (PEM) of RTMPS; read again when it changes.
    #[arg(long, env = "LIVESTREAM_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of the certificate.
    #[arg(long, env = "LIVESTREAM_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, env = "LIVESTREAM_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,
    /// The Secret (`NAMESPACE/NAME`) in which the operator keeps the routes.
    #[arg(
        long,
        env = "LIVESTREAM_ROUTES_SECRET",
        conflicts_with = "routes_file",
        required_unless_present = "routes_file"
    )]
    pub routes_secret: Option<String>,
    /// A file with the routes (the JSON the operator writes), for a gateway outside
    /// Kubernetes; read again when it changes.
    #[arg(long, env = "LIVESTREAM_ROUTES_FILE")]
    pub routes_file: Option<PathBuf>,
    /// Connections served at once, publishing or not.
    #[arg(long, env = "LIVESTREAM_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,
}

/// Why the gateway stopped.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Routes(#[from] SourceError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Telemetry(#[from] telemetry::TelemetryServerError),
}

/// Routes publishes by their key.
struct Router {
    routes: watch::Receiver<Arc<RouteTable>>,
}

impl PublishHandler for Router {
    fn authorize(&self, request: &PublishRequest) -> Result<Publish, Rejection> {
        let routes = self.routes.borrow().clone();
        match routes.lookup(&request.app, &request.stream_key) {
            Some(route) => {
                tracing::info!(stream = %route.stream, peer = %request.peer, "publish routed");
                Ok(Publish::Relay(route.address))
            }
            None => {
                tracing::warn!(
                    peer = %request.peer,
                    key = %request.stream_key.fingerprint(),
                    "publish refused: no stream has this key"
                );
                Err(Rejection::BadKey)
            }
        }
    }

    fn relays(&self) -> bool {
        true
    }
}

/// `livestream gateway`: serves until SIGTERM or Ctrl-C.
pub async fn run(args: GatewayArgs) -> Result<(), GatewayError> {
    let stop = CancellationToken::new();
    tokio::spawn({
        let stop = stop.clone();
        async move {
            telemetry::shutdown_signal().await;
            tracing::info!("shutting down");
            stop.cancel();
        }
    });
    run_until(args, stop, |_| {}).await
}

/// The addresses the gateway listens on, once bound.
#[derive(Clone, Copy, Debug)]
pub struct Bound {
    pub rtmp: SocketAddr,
    pub rtmps: Option<SocketAddr>,
    pub http: SocketAddr,
}

/// Serves until `stop` is cancelled; `on_bound` is told the bound addresses.
pub async fn run_until(
    args: GatewayArgs,
    stop: CancellationToken,
    on_bound: impl FnOnce(Bound),
) -> Result<(), GatewayError> {
    let health = Health::new();
    health.set("routes", HealthCheck::Failing("the routes are not read yet".into()));
    let (ready_tx, mut ready) = watch::channel(false);
    let (routes, source) = match (&args.routes_secret, &args.routes_file) {
        (Some(secret), _) => source::from_secret(secret, stop.clone(), ready_tx).await?,
        (None, Some(file)) => {
            let read = source::from_file(file.clone(), stop.clone()).await?;
            ready_tx.send_replace(true);
            read
        }
        (None, None) => return Err(SourceError::SecretName(String::new()).into()),
    };
    tokio::spawn({
        let health = health.clone();
        async move {
            if ready.wait_for(|ready| *ready).await.is_ok() {
                health.set("routes", HealthCheck::Ok);
            }
        }
    });

    let mut registry = Registry::default();
    let metrics = Arc::new(IngestMetrics::default());
    metrics.register(&mut registry);
    metrics.register_relays(&mut registry);
    let route_count = Gauge::<i64>::default();
    registry.register("gateway_routes", "Streams the gateway routes publishes to", route_count.clone());
    tokio::spawn({
        let mut routes = routes.clone();
        async move {
            loop {
                route_count.set(routes.borrow_and_update().routes.len() as i64);
                if routes.changed().await.is_err() {
                    return;
                }
            }
        }
    });

    let bind = |addr: SocketAddr| async move {
        TcpListener::bind(addr).await.map_err(|source| GatewayError::Bind { addr, source })
    };
    let rtmp = bind(args.rtmp_addr).await?;
    let mut endpoints = Vec::new();
    let mut bound = Bound { rtmp: rtmp.local_addr().unwrap_or(args.rtmp_addr), rtmps: None, http: args.http_addr };
    endpoints.push(Endpoint::plain(rtmp));
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        let identity = Arc::new(TlsIdentity::load(TlsFiles { certificate: cert.clone(), private_key: key.clone() })?);
        let socket = bind(args.rtmps_addr).await?;
        bound.rtmps = Some(socket.local_addr().unwrap_or(args.rtmps_addr));
        endpoints.push(Endpoint::tls(socket, identity));
    }
    let http = telemetry::bind(args.http_addr).await?;
    bound.http = http.local_addr().unwrap_or(args.http_addr);
    on_bound(bound);

    // Budgets of a shared address: every stream's encoders come here, and a relayed
    // connection is authenticated once its worker took the publish.
    let defaults = ListenerConfig::default();
    let config = ListenerConfig {
        max_connections: args.max_connections,
        max_unauthenticated: (args.max_connections / 8).max(defaults.max_unauthenticated),
        max_unauthenticated_per_address: 8,
        metrics,
        ..defaults
    };
    let (shutdown_tx, shutdown) = watch::channel(false);
    let ingest = tokio::spawn(listener::run(endpoints, config, Arc::new(Router { routes }), shutdown));
    let http_task = tokio::spawn(telemetry::serve(
        http,
        Arc::new(registry),
        health,
        axum::Router::new(),
        stop.clone().cancelled_owned(),
    ));
    stop.cancelled().await;
    shutdown_tx.send_replace(true);
    let _ = ingest.await;
    let _ = source.await;
    match http_task.await {
        Ok(result) => result?,
        Err(error) => tracing::warn!(%error, "the HTTP server task failed"),
    }
    Ok(())
}
