//! Prometheus metrics of an ingest listener: RTMP's (`rtmp_` names) and SRT's (`srt_`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::ingest::session::Rejection;

/// Label set for refused publishes.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectionLabels {
    reason: &'static str,
}

/// Label set for relayed publishes.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RelayLabels {
    result: &'static str,
}

/// The results of a relayed publish.
pub const RELAY_RESULTS: [&str; 3] = ["started", "refused", "unreachable"];

/// Counters and gauges of a listener, shared by all its connections.
#[derive(Debug, Default)]
pub struct IngestMetrics {
    connections_accepted: Counter,
    connections_refused: Counter,
    publishes_rejected: Family<RejectionLabels, Counter>,
    protocol_errors: Counter,
    tls_failures: Counter,
    bytes_received: Counter,
    active_connections: Gauge,
    relays: Family<RelayLabels, Counter>,
}

impl IngestMetrics {
    /// Registers every metric of the RTMP listener in `registry` under the `rtmp_` prefix.
    pub fn register(&self, registry: &mut Registry) {
        self.register_as(registry, "rtmp", "RTMP");
        registry.register(
            "rtmp_tls_handshake_failures",
            "RTMPS connections closed because their TLS handshake failed or timed out",
            self.tls_failures.clone(),
        );
    }

    /// Registers the relays of the ingest gateway, each result from 0.
    pub fn register_relays(&self, registry: &mut Registry) {
        for result in RELAY_RESULTS {
            self.relays.get_or_create(&RelayLabels { result }).inc_by(0);
        }
        registry.register(
            "rtmp_relays",
            "Publishes relayed to a worker, by result: started, refused (by the worker), unreachable",
            self.relays.clone(),
        );
    }

    /// Counts a relayed publish with `result`.
    pub fn record_relay(&self, result: &'static str) {
        self.relays.get_or_create(&RelayLabels { result }).inc();
    }

    /// Relayed publishes with `result` so far.
    pub fn relays(&self, result: &'static str) -> u64 {
        self.relays.get_or_create(&RelayLabels { result }).get()
    }

    /// Registers every metric of the SRT listener in `registry` under the `srt_` prefix.
    pub fn register_srt(&self, registry: &mut Registry) {
        self.register_as(registry, "srt", "SRT");
    }

    fn register_as(&self, registry: &mut Registry, prefix: &str, protocol: &str) {
        // Every reason from 0, so that the first refusal is an increase.
        for rejection in [Rejection::BadKey, Rejection::AlreadyLive, Rejection::Other(String::new())] {
            self.publishes_rejected.get_or_create(&RejectionLabels { reason: rejection.label() }).inc_by(0);
        }
        registry.register(
            format!("{prefix}_connections_accepted"),
            format!("{protocol} connections accepted"),
            self.connections_accepted.clone(),
        );
        registry.register(
            format!("{prefix}_connections_refused"),
            format!("{protocol} connections refused because a connection limit was reached"),
            self.connections_refused.clone(),
        );
        registry.register(
            format!("{prefix}_publishes_rejected"),
            format!("{protocol} publish requests refused, by reason"),
            self.publishes_rejected.clone(),
        );
        registry.register(
            format!("{prefix}_protocol_errors"),
            format!("{protocol} connections closed because of a protocol or media format error"),
            self.protocol_errors.clone(),
        );
        registry.register(
            format!("{prefix}_received_bytes"),
            format!("Bytes received from {protocol} clients"),
            self.bytes_received.clone(),
        );
        registry.register(
            format!("{prefix}_active_connections"),
            format!("Open {protocol} connections"),
            self.active_connections.clone(),
        );
    }

    /// Connections accepted so far.
    pub fn connections_accepted(&self) -> u64 {
        self.connections_accepted.get()
    }

    /// Connections refused at the connection limit so far.
    pub fn connections_refused(&self) -> u64 {
        self.connections_refused.get()
    }

    /// Publishes refused for `rejection`'s reason so far.
    pub fn publishes_rejected(&self, rejection: &Rejection) -> u64 {
        self.publishes_rejected.get_or_create(&RejectionLabels { reason: rejection.label() }).get()
    }

    /// Connections closed for a protocol error so far.
    pub fn protocol_errors(&self) -> u64 {
        self.protocol_errors.get()
    }

    /// RTMPS connections whose TLS handshake failed or timed out so far.
    pub fn tls_failures(&self) -> u64 {
        self.tls_failures.get()
    }

    /// Bytes received so far.
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received.get()
    }

    /// Connections open now.
    pub fn active_connections(&self) -> i64 {
        self.active_connections.get()
    }

    pub(crate) fn record_accepted(&self) -> ActiveConnection<'_> {
        self.connections_accepted.inc();
        self.active_connections.inc();
        ActiveConnection { metrics: self }
    }

    pub(crate) fn record_refused(&self) {
        self.connections_refused.inc();
    }

    pub(crate) fn record_rejected(&self, rejection: &Rejection) {
        self.publishes_rejected.get_or_create(&RejectionLabels { reason: rejection.label() }).inc();
    }

    pub(crate) fn record_protocol_error(&self) {
        self.protocol_errors.inc();
    }

    pub(super) fn record_tls_failure(&self) {
        self.tls_failures.inc();
    }

    pub(crate) fn record_bytes(&self, count: usize) {
        self.bytes_received.inc_by(count as u64);
    }
}

/// Keeps the active-connections gauge raised while alive.
#[derive(Debug)]
pub(crate) struct ActiveConnection<'a> {
    metrics: &'a IngestMetrics,
}

impl Drop for ActiveConnection<'_> {
    fn drop(&mut self) {
        self.metrics.active_connections.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_metrics_are_exposed() {
        let metrics = IngestMetrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let active = metrics.record_accepted();
        metrics.record_rejected(&Rejection::BadKey);
        metrics.record_bytes(42);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("rtmp_connections_accepted_total 1"), "{text}");
        assert!(text.contains("rtmp_publishes_rejected_total{reason=\"bad_key\"} 1"), "{text}");
        assert!(text.contains("rtmp_received_bytes_total 42"), "{text}");
        assert!(text.contains("rtmp_active_connections 1"), "{text}");
        drop(active);
        assert_eq!(metrics.active_connections(), 0);
        let srt = IngestMetrics::default();
        let mut registry = Registry::default();
        srt.register_srt(&mut registry);
        srt.record_rejected(&Rejection::BadKey);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("srt_publishes_rejected_total{reason=\"bad_key\"} 1"), "{text}");
        assert!(!text.contains("rtmp_") && !text.contains("tls"), "{text}");
        assert_eq!(metrics.publishes_rejected(&Rejection::BadKey), 1);
        assert_eq!(metrics.publishes_rejected(&Rejection::AlreadyLive), 0);
    }
}
