//! The tokio shell around [`Session`](super::session::Session): accepts TCP connections,
//! RTMP and RTMPS (TLS) alike, enforces the connection limit and timeouts, asks a
//! [`PublishHandler`] whether a publish may go ahead and forwards its media through a
//! bounded channel, or relays the connection to another RTMP server (the ingest gateway).
//!
//! Logs name the peer and the application, never the stream key (only its fingerprint).

mod config;
mod connection;
mod handler;
mod metrics;
mod relay;
mod tls;

pub use config::ListenerConfig;
pub use handler::{
    EndReason, MAX_CHANNEL_CAPACITY, MediaMessage, Publish, PublishHandler, PublishRequest, PublishSink,
};
pub use metrics::IngestMetrics;
pub use tls::{TlsError, TlsFiles, TlsIdentity, check_pem};

pub use crate::ingest::session::{Rejection, StreamKey};

use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::ingest::admission::Admission;
use connection::ConnectionContext;

/// Pause after a failed accept (for example when out of file descriptors).
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// A socket that publishers connect to, and whether they speak TLS on it.
pub struct Endpoint {
    listener: TcpListener,
    tls: Option<Arc<TlsIdentity>>,
}

impl Endpoint {
    /// Plain RTMP.
    pub fn plain(listener: TcpListener) -> Self {
        Self { listener, tls: None }
    }

    /// RTMPS: RTMP inside TLS with `identity`'s certificate.
    pub fn tls(listener: TcpListener, identity: Arc<TlsIdentity>) -> Self {
        Self { listener, tls: Some(identity) }
    }
}

/// Serves RTMP publishers on every endpoint until `shutdown` becomes true (or its sender
/// is dropped); then stops accepting, lets every connection end and returns. The
/// endpoints share one connection limit and one budget of unauthenticated connections.
pub async fn run(
    endpoints: Vec<Endpoint>,
    config: ListenerConfig,
    handler: Arc<dyn PublishHandler>,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(config.max_connections.min(Semaphore::MAX_PERMITS)));
    let admission = Admission::new(config.max_unauthenticated, config.max_unauthenticated_per_address);
    let context = Arc::new(ConnectionContext { config, handler });
    let mut connections = JoinSet::new();
    for endpoint in &endpoints {
        if let Ok(address) = endpoint.listener.local_addr() {
            let scheme = if endpoint.tls.is_some() { "rtmps" } else { "rtmp" };
            tracing::info!(%address, scheme, "RTMP listener started");
        }
    }
    loop {
        tokio::select! {
            () = wait_for_shutdown(&mut shutdown) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            (endpoint, accepted) = accept_any(&endpoints) => match accepted {
                Ok((stream, peer)) => match (Arc::clone(&slots).try_acquire_owned(), admission.admit(peer.ip())) {
                    (Ok(slot), Ok(unauthenticated)) => {
                        let context = Arc::clone(&context);
                        let shutdown = shutdown.clone();
                        let tls = endpoint.tls.clone();
                        connections.spawn(async move {
                            connection::serve(stream, peer, tls, context, unauthenticated, shutdown).await;
                            drop(slot);
                        });
                    }
                    (Err(_), _) => {
                        context.config.metrics.record_refused();
                        tracing::warn!(%peer, limit = context.config.max_connections, "connection limit reached; refusing");
                        drop(stream);
                    }
                    (_, Err(full)) => {
                        context.config.metrics.record_refused();
                        tracing::warn!(%peer, limit = full.limit, "too many connections that have not published; refusing");
                        drop(stream);
                    }
                },
                Err(error) => {
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                }
            },
        }
    }
    drop(endpoints);
    tracing::info!(open = connections.len(), "RTMP listener stopping");
    while connections.join_next().await.is_some() {}
}

/// The next connection on any of `endpoints`, and the endpoint it came in on.
async fn accept_any(endpoints: &[Endpoint]) -> (&Endpoint, std::io::Result<(TcpStream, SocketAddr)>) {
    std::future::poll_fn(|cx| {
        for endpoint in endpoints {
            if let Poll::Ready(accepted) = endpoint.listener.poll_accept(cx) {
                return Poll::Ready((endpoint, accepted));
            }
        }
        Poll::Pending
    })
    .await
}

/// Resolves once `shutdown` is true or its sender is gone.
pub(crate) async fn wait_for_shutdown(shutdown: &mut watch::Receiver<bool>) {
    // An error means the sender was dropped, which also means shut down.
    let _ = shutdown.wait_for(|stop| *stop).await;
}
