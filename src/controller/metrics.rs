//! The controller's Prometheus metrics.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::api::Phase;

type Labels = Vec<(String, String)>;

const PHASES: [Phase; 6] = [Phase::Pending, Phase::Idle, Phase::Live, Phase::Ended, Phase::Suspended, Phase::Failed];

/// Reconcile counts, errors, durations, API writes and streams by phase.
#[derive(Clone, Debug)]
pub struct Metrics {
    reconciles: Counter,
    errors: Family<Labels, Counter>,
    duration: Histogram,
    writes: Family<Labels, Counter>,
    phases: Family<Labels, Gauge>,
    total_writes: Arc<AtomicU64>,
    phase_by_stream: Arc<Mutex<HashMap<String, Phase>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            reconciles: Counter::default(),
            errors: Family::default(),
            duration: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            writes: Family::default(),
            phases: Family::default(),
            total_writes: Arc::default(),
            phase_by_stream: Arc::default(),
        }
    }
}

impl Metrics {
    /// New metrics, registered in `registry` under `livestream_controller_*`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        let sub = registry.sub_registry_with_prefix("livestream_controller");
        sub.register("reconciles", "Reconciles run", metrics.reconciles.clone());
        sub.register("reconcile_errors", "Reconciles that failed, by reason", metrics.errors.clone());
        sub.register("reconcile_duration_seconds", "Time spent in one reconcile", metrics.duration.clone());
        sub.register("api_writes", "Writes sent to the API server, by kind", metrics.writes.clone());
        sub.register("streams", "LiveStreams by phase", metrics.phases.clone());
        for phase in PHASES {
            metrics.phases.get_or_create(&phase_labels(phase)).set(0);
        }
        // Every reason from 0, so that the first error is an increase.
        for reason in super::reconcile::ReconcileError::METRIC_REASONS {
            metrics.errors.get_or_create(&vec![("reason".to_string(), reason.to_string())]).inc_by(0);
        }
        metrics
    }

    /// Records one reconcile and, if it failed, its reason.
    pub fn observe_reconcile(&self, took: Duration, error_reason: Option<&str>) {
        self.reconciles.inc();
        self.duration.observe(took.as_secs_f64());
        if let Some(reason) = error_reason {
            self.errors.get_or_create(&vec![("reason".to_string(), reason.to_string())]).inc();
        }
    }

    /// Records a write of a `kind` object.
    pub fn observe_write(&self, kind: &str) {
        self.writes.get_or_create(&vec![("kind".to_string(), kind.to_string())]).inc();
        self.total_writes.fetch_add(1, Ordering::Relaxed);
    }

    /// Records the phase of stream `key` (`None`: the stream is gone).
    pub fn set_phase(&self, key: &str, phase: Option<Phase>) {
        let mut by_stream = self.phase_by_stream.lock().unwrap_or_else(PoisonError::into_inner);
        match phase {
            Some(phase) => by_stream.insert(key.to_string(), phase),
            None => by_stream.remove(key),
        };
        for phase in PHASES {
            let count = by_stream.values().filter(|p| **p == phase).count();
            self.phases.get_or_create(&phase_labels(phase)).set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }

    /// Reconciles run so far.
    pub fn reconciles(&self) -> u64 {
        self.reconciles.get()
    }

    /// Writes sent so far (children, status, secrets; not the leader Lease).
    pub fn writes(&self) -> u64 {
        self.total_writes.load(Ordering::Relaxed)
    }

    /// Streams currently known in `phase`.
    pub fn streams_in(&self, phase: Phase) -> i64 {
        self.phases.get_or_create(&phase_labels(phase)).get()
    }
}

fn phase_labels(phase: Phase) -> Labels {
    vec![("phase".to_string(), phase.to_string())]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_encode_and_count() {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        metrics.observe_reconcile(Duration::from_millis(3), None);
        metrics.observe_reconcile(Duration::from_millis(3), Some("ApplyChild"));
        metrics.observe_write("Deployment");
        metrics.set_phase("a/b", Some(Phase::Live));
        metrics.set_phase("a/c", Some(Phase::Live));
        metrics.set_phase("a/c", None);
        assert_eq!(metrics.reconciles(), 2);
        assert_eq!(metrics.writes(), 1);
        assert_eq!(metrics.streams_in(Phase::Live), 1);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("livestream_controller_reconciles_total 2"), "{text}");
        assert!(text.contains("livestream_controller_reconcile_errors_total{reason=\"ApplyChild\"} 1"), "{text}");
        assert!(text.contains("livestream_controller_streams{phase=\"Live\"} 1"), "{text}");
        assert!(text.contains("livestream_controller_reconcile_duration_seconds_count 2"), "{text}");
    }
}
