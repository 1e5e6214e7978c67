//! Settings of the SRT listener.

use std::sync::Arc;
use std::time::Duration;

use crate::ingest::listener::{IngestMetrics, ListenerConfig};

/// libsrt's and ffmpeg's default receiver latency. Four times the round trip of a long
/// terrestrial path; encoders on lossy or intercontinental links set more on their side,
/// and the connection takes the larger of the two.
pub const DEFAULT_LATENCY: Duration = Duration::from_millis(120);

/// An SRT passphrase: a secret that `Debug` never shows.
#[derive(Clone, PartialEq, Eq)]
pub struct Passphrase(String);

impl Passphrase {
    pub fn new(passphrase: impl Into<String>) -> Self {
        Self(passphrase.into())
    }

    /// The passphrase itself, for libsrt. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Passphrase(…)")
    }
}

/// The limits and settings of [`SrtListener`](super::SrtListener).
#[derive(Debug, Clone)]
pub struct SrtConfig {
    /// The receiver's latency: how long packets are held to recover losses.
    pub latency: Duration,
    /// AES encryption; callers must know the passphrase (10 to 79 characters).
    pub passphrase: Option<Passphrase>,
    /// The application of a stream ID that names none (`KEY` rather than `live/KEY`).
    pub default_app: String,
    /// Connections served at once, in all and from one address before they publish: the
    /// RTMP listener's limits.
    pub max_connections: usize,
    pub max_unauthenticated: usize,
    pub max_unauthenticated_per_address: usize,
    /// How long a caller the gate let through has to complete its handshake.
    pub handshake_timeout: Duration,
    /// A publisher that sends no media (only SRT keepalives) for this long is closed.
    pub media_timeout: Duration,
    /// A caller silent this long is taken as gone (a dropped connection, not an end).
    pub peer_idle_timeout: Duration,
    pub metrics: Arc<IngestMetrics>,
}

impl Default for SrtConfig {
    fn default() -> Self {
        let rtmp = ListenerConfig::default();
        Self {
            latency: DEFAULT_LATENCY,
            passphrase: None,
            default_app: "live".into(),
            max_connections: rtmp.max_connections,
            max_unauthenticated: rtmp.max_unauthenticated,
            max_unauthenticated_per_address: rtmp.max_unauthenticated_per_address,
            handshake_timeout: rtmp.handshake_timeout,
            media_timeout: rtmp.media_timeout,
            // libsrt's default.
            peer_idle_timeout: Duration::from_secs(5),
            metrics: Arc::new(IngestMetrics::default()),
        }
    }
}
