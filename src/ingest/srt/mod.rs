//! SRT ingest: a listener on libsrt (through `livestream-srt`) beside RTMP. A caller's
//! stream ID names the application and key (`#!::r=live/KEY,m=publish`, or `live/KEY`);
//! the [`gate`] refuses a wrong key, another mode or a full budget during the handshake,
//! with a reason the encoder shows. An accepted connection's MPEG-TS becomes FLV tags
//! (`media::ts_to_flv`) for the same [`PublishHandler`] and [`PublishSink`] as RTMP.
//!
//! Threads: libsrt blocks, so the accept loop and each connection's receiving run on
//! threads of their own, handing over through bounded channels to the tokio tasks that
//! convert and forward. Logs name the peer and the key's fingerprint, never the key or
//! the stream ID.
//!
//! [`PublishSink`]: crate::ingest::listener::PublishSink

mod config;
mod connection;
mod gate;

pub use config::{DEFAULT_LATENCY, Passphrase, SrtConfig};
pub use livestream_srt::SrtError;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use livestream_srt::{Connection, Listener, ListenerOptions};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::ingest::listener::{PublishHandler, wait_for_shutdown};
use gate::{Gate, Pending};

/// How often the accept loop looks up from libsrt to see whether to stop.
const ACCEPT_POLL: Duration = Duration::from_millis(200);
/// Connections waiting between the accept thread and the listener's task.
const ACCEPTED_QUEUE: usize = 8;

/// A bound SRT listener, not yet serving.
pub struct SrtListener {
    listener: Listener,
    gate: Arc<Gate>,
}

impl SrtListener {
    /// Binds `addr` (UDP) with `config`'s latency and passphrase; `handler` decides on
    /// publishes as for RTMP.
    pub fn bind(addr: SocketAddr, config: SrtConfig, handler: Arc<dyn PublishHandler>) -> Result<Self, SrtError> {
        let options = ListenerOptions {
            latency: config.latency,
            peer_idle_timeout: config.peer_idle_timeout,
            passphrase: config.passphrase.as_ref().map(|passphrase| passphrase.expose().to_string()),
            backlog: u16::try_from(config.max_unauthenticated).unwrap_or(u16::MAX),
        };
        let gate = Arc::new(Gate::new(config, handler));
        let deciding = Arc::clone(&gate);
        let listener = Listener::bind(addr, &options, Box::new(move |caller| deciding.decide(caller)))?;
        Ok(Self { listener, gate })
    }

    /// The bound address.
    pub fn local_addr(&self) -> Result<SocketAddr, SrtError> {
        self.listener.local_addr()
    }

    /// Serves callers until `shutdown` turns true (or its sender is dropped); then stops
    /// accepting, ends every publish with [`EndReason::Shutdown`] and returns.
    ///
    /// [`EndReason::Shutdown`]: crate::ingest::listener::EndReason::Shutdown
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let address = self.listener.local_addr().ok();
        tracing::info!(
            address = ?address,
            latency_ms = self.gate.config().latency.as_millis() as u64,
            encrypted = self.gate.config().passphrase.is_some(),
            libsrt = %livestream_srt::version(),
            "SRT listener started"
        );
        let (accepted_tx, mut accepted) = mpsc::channel(ACCEPTED_QUEUE);
        let accept_thread = spawn_accept_loop(self.listener, Arc::clone(&self.gate), accepted_tx);
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                () = wait_for_shutdown(&mut shutdown) => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                next = accepted.recv() => match next {
                    Some((connection, peer, pending)) => {
                        let gate = Arc::clone(&self.gate);
                        let shutdown = shutdown.clone();
                        connections.spawn(connection::serve(connection, peer, pending, gate, shutdown));
                    }
                    None => {
                        tracing::error!("the SRT accept loop stopped; no more SRT callers are taken");
                        break;
                    }
                },
            }
        }
        // The accept thread sees the closed channel within one poll and closes the socket.
        drop(accepted);
        tracing::info!(open = connections.len(), "SRT listener stopping");
        while connections.join_next().await.is_some() {}
        if let Some(thread) = accept_thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

type Accepted = (Connection, SocketAddr, Pending);

/// Accepts connections on a thread of its own until the receiving side goes away.
fn spawn_accept_loop(
    listener: Listener,
    gate: Arc<Gate>,
    accepted: mpsc::Sender<Accepted>,
) -> Option<std::thread::JoinHandle<()>> {
    let run = move || {
        while !accepted.is_closed() {
            gate.expire();
            match listener.accept(ACCEPT_POLL) {
                Ok(None) => {}
                Ok(Some((connection, peer))) => match gate.take(connection.id()) {
                    Some(pending) => {
                        if accepted.blocking_send((connection, peer, pending)).is_err() {
                            return;
                        }
                    }
                    // Its handshake outlasted the budget's patience; the socket closes.
                    None => tracing::info!(%peer, "SRT connection accepted too late; closing it"),
                },
                Err(error) => {
                    tracing::warn!(%error, "accepting an SRT connection failed");
                    std::thread::sleep(ACCEPT_POLL);
                }
            }
        }
    };
    // A thread that cannot start drops the sender, which run() reports.
    std::thread::Builder::new()
        .name("srt-accept".into())
        .spawn(run)
        .inspect_err(|error| tracing::error!(%error, "cannot start the SRT accept thread"))
        .ok()
}
