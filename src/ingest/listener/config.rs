//! Settings of the RTMP listener.

use std::sync::Arc;
use std::time::Duration;

use super::IngestMetrics;
use crate::ingest::session::SessionConfig;

/// Limits and timeouts of [`run`](super::run).
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// Connections served at once; further connections are closed on accept.
    pub max_connections: usize,
    /// Time a client has to complete the handshake.
    pub handshake_timeout: Duration,
    /// A connection that sends nothing for this long is closed.
    pub idle_timeout: Duration,
    /// Bytes read from the socket at a time.
    pub read_buffer_size: usize,
    /// Protocol limits of each session.
    pub session: SessionConfig,
    /// Where the listener counts what it does.
    pub metrics: Arc<IngestMetrics>,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        Self {
            max_connections: 16,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            read_buffer_size: 64 * 1024,
            session: SessionConfig::default(),
            metrics: Arc::new(IngestMetrics::default()),
        }
    }
}
