//! Settings of the RTMP listener.

use std::sync::Arc;
use std::time::Duration;

use super::IngestMetrics;
use crate::ingest::session::SessionConfig;

/// Limits and timeouts of [`run`](super::run).
///
/// A connection that has not published yet is unauthenticated: it may be anyone. Such
/// connections have a budget of their own, per client address and in all, and a few
/// seconds to publish, so that sockets that never handshake, or drip a byte now and then,
/// cannot keep publishers out. A publishing connection must keep sending media.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// Connections served at once; further connections are closed on accept.
    pub max_connections: usize,
    /// Connections served at once that have not published yet.
    pub max_unauthenticated: usize,
    /// Connections from one client address that have not published yet.
    pub max_unauthenticated_per_address: usize,
    /// Time a client has to complete the handshake.
    pub handshake_timeout: Duration,
    /// Time a client has from connecting to an accepted publish.
    pub publish_timeout: Duration,
    /// A publishing connection that sends no media message for this long is closed.
    pub media_timeout: Duration,
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
            max_unauthenticated: 8,
            max_unauthenticated_per_address: 2,
            // Encoders handshake in milliseconds and publish within a second, also over
            // long-distance links; these leave room for a slow start and nothing more.
            handshake_timeout: Duration::from_secs(3),
            publish_timeout: Duration::from_secs(6),
            media_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            read_buffer_size: 64 * 1024,
            session: SessionConfig::default(),
            metrics: Arc::new(IngestMetrics::default()),
        }
    }
}
