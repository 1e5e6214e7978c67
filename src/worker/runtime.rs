//! A process that runs streams: RTMP and SRT listeners, stream manager, storage, and the HTTP
//! server with health, metrics and the routes of its mode. Shared by `livestream worker`
//! (one LiveStream) and `livestream serve` (standalone).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::backoff::Backoff;
use crate::ingest::listener::{self, Endpoint, IngestMetrics, ListenerConfig, TlsError, TlsFiles, TlsIdentity};
use crate::ingest::srt::{Passphrase, SrtConfig, SrtError, SrtListener};
use crate::origin::{LiveIndex, Origin};
use crate::storage::{AnyStore, InstrumentedStore, StorageMetrics};
use crate::telemetry::{self, Health, HealthCheck};

use super::manager::{ManagerSettings, StreamManager};
use super::metrics::WorkerMetrics;
use super::scratch::ScratchDir;

/// Errors that stop the process.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot listen for RTMP on {addr}: {source}")]
    BindRtmp { addr: SocketAddr, source: std::io::Error },
    #[error("cannot listen for RTMPS on {addr}: {source}")]
    BindRtmps { addr: SocketAddr, source: std::io::Error },
    #[error("cannot listen for SRT on {addr}: {source}")]
    BindSrt { addr: SocketAddr, source: SrtError },
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Http(#[from] telemetry::TelemetryServerError),
    #[error("cannot create the scratch directory {path}: {source}")]
    Scratch { path: std::path::PathBuf, source: std::io::Error },
}

/// Addresses of a running process, once bound.
#[derive(Clone, Copy, Debug)]
pub struct Bound {
    pub rtmp: SocketAddr,
    /// The RTMPS port, when TLS is configured.
    pub rtmps: Option<SocketAddr>,
    /// The SRT port (UDP), when SRT is on.
    pub srt: Option<SocketAddr>,
    pub http: SocketAddr,
    /// The HLS origin's own port (a worker's); `serve` has its origin on `http`.
    pub origin: Option<SocketAddr>,
}

/// The listen addresses of a process.
#[derive(Clone, Debug)]
pub struct Addresses {
    pub rtmp: SocketAddr,
    /// RTMPS: where, and the certificate to serve.
    pub rtmps: Option<(SocketAddr, TlsFiles)>,
    /// SRT: where, and how.
    pub srt: Option<SrtIngest>,
    pub http: SocketAddr,
    /// A separate port for the HLS origin.
    pub origin: Option<SocketAddr>,
}

/// The SRT listener of a process.
#[derive(Clone, Debug)]
pub struct SrtIngest {
    pub addr: SocketAddr,
    pub latency: Duration,
    /// AES encryption with a key from this passphrase.
    pub passphrase: Option<Passphrase>,
    /// The application of stream IDs that name none.
    pub default_app: String,
}

/// Who else may use the scratch directory's base.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScratchUse {
    /// Only this process (a worker's own volume): leftovers of earlier processes go.
    Sole,
    /// Other processes too (`serve` under the system's temporary directory).
    Shared,
}

/// How long streams may take to flush their last segments at shutdown.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(20);

/// Runs until `shutdown` turns true (or SIGINT/SIGTERM when `handle_signals`).
/// `routes` adds the mode's own HTTP routes; `on_bound` is told the bound addresses.
pub async fn run(
    mut settings: ManagerSettings,
    store: AnyStore,
    addresses: Addresses,
    scratch_use: ScratchUse,
    routes: impl FnOnce(Arc<StreamManager>, Arc<LiveIndex>, Bound) -> Router,
    on_bound: impl FnOnce(Bound, &StreamManager),
    shutdown: watch::Receiver<bool>,
) -> Result<(), RuntimeError> {
    let scratch = ScratchDir::create(&settings.scratch_dir, scratch_use == ScratchUse::Sole)
        .map_err(|source| RuntimeError::Scratch { path: settings.scratch_dir.clone(), source })?;
    settings.scratch_dir = scratch.path().to_path_buf();
    let (rtmp_addr, http_addr) = (addresses.rtmp, addresses.http);

    let mut registry = Registry::default();
    let ingest_metrics = Arc::new(IngestMetrics::default());
    ingest_metrics.register(&mut registry);
    let storage_metrics = StorageMetrics::new();
    storage_metrics.register(&mut registry);
    let worker_metrics = WorkerMetrics::new();
    worker_metrics.register(&mut registry);

    let health = Health::new();
    let store = Arc::new(InstrumentedStore::new(store, storage_metrics));
    spawn_storage_check(store.clone(), health.clone(), shutdown.clone());

    let index = LiveIndex::new();
    let manager = StreamManager::new(settings, store, index.clone(), worker_metrics, shutdown.clone());

    // A certificate that does not load stops the process before it listens at all.
    let rtmps = match addresses.rtmps {
        Some((addr, files)) => Some((addr, Arc::new(TlsIdentity::load(files)?))),
        None => None,
    };
    let rtmp =
        TcpListener::bind(rtmp_addr).await.map_err(|source| RuntimeError::BindRtmp { addr: rtmp_addr, source })?;
    let rtmps = match rtmps {
        Some((addr, identity)) => {
            let socket = TcpListener::bind(addr).await.map_err(|source| RuntimeError::BindRtmps { addr, source })?;
            Some((socket, identity))
        }
        None => None,
    };
    let srt = match addresses.srt {
        Some(ingest) => {
            let metrics = Arc::new(IngestMetrics::default());
            metrics.register_srt(&mut registry);
            let config = SrtConfig {
                latency: ingest.latency,
                passphrase: ingest.passphrase,
                default_app: ingest.default_app,
                metrics,
                ..SrtConfig::default()
            };
            let listener = SrtListener::bind(ingest.addr, config, manager.clone())
                .map_err(|source| RuntimeError::BindSrt { addr: ingest.addr, source })?;
            Some(listener)
        }
        None => None,
    };
    let registry = Arc::new(registry);
    let http = telemetry::bind(http_addr).await?;
    let origin = match addresses.origin {
        Some(addr) => Some(telemetry::bind(addr).await?),
        None => None,
    };
    let bound = Bound {
        rtmp: rtmp.local_addr().unwrap_or(rtmp_addr),
        rtmps: rtmps.as_ref().and_then(|(socket, _)| socket.local_addr().ok()),
        srt: srt.as_ref().and_then(|listener| listener.local_addr().ok()),
        http: http.local_addr().unwrap_or(http_addr),
        origin: origin.as_ref().and_then(|listener| listener.local_addr().ok()),
    };
    on_bound(bound, &manager);
    let origin_task = origin.map(|listener| {
        let mut stop = shutdown.clone();
        let router = Origin::playlists(index.clone()).router();
        tokio::spawn(async move {
            let stopped = async move {
                let _ = stop.wait_for(|stop| *stop).await;
            };
            telemetry::serve_router(listener, router, telemetry::HttpLimits::default(), stopped).await;
        })
    });

    let listener_config = ListenerConfig { metrics: ingest_metrics, ..ListenerConfig::default() };
    let mut endpoints = vec![Endpoint::plain(rtmp)];
    endpoints.extend(rtmps.map(|(socket, identity)| Endpoint::tls(socket, identity)));
    let ingest = tokio::spawn(listener::run(endpoints, listener_config, manager.clone(), shutdown.clone()));
    let srt_ingest = srt.map(|listener| tokio::spawn(listener.run(shutdown.clone())));

    let extra = routes(manager.clone(), index, bound);
    let mut http_shutdown = shutdown.clone();
    let http_task = tokio::spawn(telemetry::serve(http, registry, health, extra, async move {
        let _ = http_shutdown.wait_for(|stop| *stop).await;
    }));

    let mut wait = shutdown.clone();
    let _ = wait.wait_for(|stop| *stop).await;
    tracing::info!("shutting down: finishing open streams");
    let _ = ingest.await;
    if let Some(task) = srt_ingest {
        let _ = task.await;
    }
    if !manager.join_all(SHUTDOWN_FLUSH).await {
        tracing::warn!("some streams did not finish within {SHUTDOWN_FLUSH:?}");
    }
    match http_task.await {
        Ok(result) => result?,
        Err(e) => tracing::warn!(error = %e, "HTTP server task failed"),
    }
    if let Some(task) = origin_task {
        let _ = task.await;
    }
    drop(scratch);
    Ok(())
}

/// A watch channel that turns true on SIGINT or SIGTERM.
pub fn shutdown_on_signals() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        telemetry::shutdown_signal().await;
        let _ = tx.send(true);
    });
    rx
}

/// Checks that storage is reachable with the given credentials: the process is not
/// ready until it is, and the check is retried (with backoff) so a late bucket or a
/// fixed Secret recovers without a restart.
fn spawn_storage_check(store: Arc<InstrumentedStore<AnyStore>>, health: Health, mut shutdown: watch::Receiver<bool>) {
    health.set("storage", HealthCheck::Failing("not checked yet".into()));
    tokio::spawn(async move {
        let backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let mut failures = 0;
        loop {
            let result = match store.inner() {
                AnyStore::S3(s3) => s3.check().await,
                AnyStore::Local(local) => {
                    tokio::fs::create_dir_all(local.root()).await.map_err(|source| crate::storage::StoreError::Io {
                        action: "create directory",
                        key: local.root().display().to_string(),
                        source,
                    })
                }
            };
            match result {
                Ok(()) => {
                    health.set("storage", HealthCheck::Ok);
                    tracing::info!(storage = %store.inner().describe(), "storage is reachable");
                    return;
                }
                Err(e) => {
                    tracing::warn!(storage = %store.inner().describe(), error = %e, "storage check failed; retrying");
                    health.set("storage", HealthCheck::Failing(e.to_string()));
                }
            }
            failures += 1;
            tokio::select! {
                () = tokio::time::sleep(backoff.delay(failures)) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
    });
}
