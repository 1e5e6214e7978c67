//! Upload metrics: counts, failures by error class, latency and bytes, by object kind;
//! and [`InstrumentedStore`], a store that records them on every put.

use std::time::Instant;

use bytes::Bytes;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::error::StoreError;
use super::object::ObjectKind;
use super::store::{AnyStore, Expect, Store, Version};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    kind: &'static str,
    class: &'static str,
}

fn latency_histogram() -> Histogram {
    // 5 ms to about 20 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 13))
}

/// Upload metrics. Clones share the same series.
#[derive(Clone, Debug)]
pub struct StorageMetrics {
    uploads: Family<KindLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
    latency: Family<KindLabels, Histogram, fn() -> Histogram>,
    bytes: Family<KindLabels, Counter>,
}

impl Default for StorageMetrics {
    fn default() -> Self {
        Self {
            uploads: Family::default(),
            failures: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            bytes: Family::default(),
        }
    }
}

impl StorageMetrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the series:
    /// `livestream_storage_uploads_total{kind}`,
    /// `livestream_storage_upload_failures_total{kind,class}`,
    /// `livestream_storage_upload_duration_seconds{kind}` and
    /// `livestream_storage_uploaded_bytes_total{kind}`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register("livestream_storage_uploads", "Objects uploaded", self.uploads.clone());
        registry.register(
            "livestream_storage_upload_failures",
            "Failed upload attempts, by error class",
            self.failures.clone(),
        );
        registry.register(
            "livestream_storage_upload_duration_seconds",
            "Duration of upload attempts, successful or not",
            self.latency.clone(),
        );
        registry.register("livestream_storage_uploaded_bytes", "Bytes of uploaded objects", self.bytes.clone());
    }

    /// Records one upload attempt of `bytes` that took `seconds`.
    pub fn record_put(&self, kind: ObjectKind, bytes: usize, seconds: f64, failure: Option<&StoreError>) {
        let labels = KindLabels { kind: kind.label() };
        self.latency.get_or_create(&labels).observe(seconds);
        match failure {
            None => {
                self.uploads.get_or_create(&labels).inc();
                self.bytes.get_or_create(&labels).inc_by(bytes as u64);
            }
            Some(error) => {
                self.failures.get_or_create(&FailureLabels { kind: kind.label(), class: error.class().as_str() }).inc();
            }
        }
    }

    /// Successful uploads of `kind` so far.
    pub fn uploads(&self, kind: ObjectKind) -> u64 {
        self.uploads.get_or_create(&KindLabels { kind: kind.label() }).get()
    }

    /// Failed upload attempts of `kind` in error class `class` so far.
    pub fn failures(&self, kind: ObjectKind, class: super::error::ErrorClass) -> u64 {
        self.failures.get_or_create(&FailureLabels { kind: kind.label(), class: class.as_str() }).get()
    }
}

/// A store whose puts are recorded in [`StorageMetrics`]; other operations pass through.
#[derive(Clone, Debug)]
pub struct InstrumentedStore<S = AnyStore> {
    inner: S,
    metrics: StorageMetrics,
}

impl<S: Store> InstrumentedStore<S> {
    pub fn new(inner: S, metrics: StorageMetrics) -> Self {
        Self { inner, metrics }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    pub fn metrics(&self) -> &StorageMetrics {
        &self.metrics
    }
}

impl<S: Store> Store for InstrumentedStore<S> {
    async fn put(&self, key: &str, body: Bytes, kind: ObjectKind) -> Result<(), StoreError> {
        let bytes = body.len();
        let started = Instant::now();
        let outcome = self.inner.put(key, body, kind).await;
        self.metrics.record_put(kind, bytes, started.elapsed().as_secs_f64(), outcome.as_ref().err());
        outcome
    }

    async fn put_if(&self, key: &str, body: Bytes, kind: ObjectKind, expect: &Expect) -> Result<Version, StoreError> {
        let bytes = body.len();
        let started = Instant::now();
        let outcome = self.inner.put_if(key, body, kind, expect).await;
        self.metrics.record_put(kind, bytes, started.elapsed().as_secs_f64(), outcome.as_ref().err());
        outcome
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        self.inner.get(key).await
    }

    async fn get_versioned(&self, key: &str) -> Result<Option<(Bytes, Version)>, StoreError> {
        self.inner.get_versioned(key).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.inner.delete(key).await
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64, StoreError> {
        self.inner.delete_prefix(prefix).await
    }

    async fn list(&self, prefix: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        self.inner.list(prefix, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::error::ErrorClass;
    use crate::storage::local::LocalStore;
    use crate::storage::object::SegmentFormat;

    const SEGMENT: ObjectKind = ObjectKind::Segment(SegmentFormat::Fmp4);

    #[tokio::test]
    async fn puts_are_counted_by_kind_and_outcome() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = StorageMetrics::new();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let store = InstrumentedStore::new(AnyStore::Local(LocalStore::new(dir.path())), metrics.clone());

        store.put("s/seg_1.m4s", Bytes::from_static(b"12345"), SEGMENT).await.unwrap();
        store.put("s/index.m3u8", Bytes::from_static(b"#EXTM3U\n"), ObjectKind::MediaPlaylist).await.unwrap();
        store.put("../escape.m4s", Bytes::from_static(b"x"), SEGMENT).await.unwrap_err();

        assert_eq!(metrics.uploads(SEGMENT), 1);
        assert_eq!(metrics.uploads(ObjectKind::MediaPlaylist), 1);
        assert_eq!(metrics.failures(SEGMENT, ErrorClass::InvalidKey), 1);

        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            r#"livestream_storage_uploads_total{kind="segment_fmp4"} 1"#,
            r#"livestream_storage_upload_failures_total{kind="segment_fmp4",class="invalid_key"} 1"#,
            r#"livestream_storage_uploaded_bytes_total{kind="segment_fmp4"} 5"#,
            r#"livestream_storage_uploaded_bytes_total{kind="media_playlist"} 8"#,
            r#"livestream_storage_upload_duration_seconds_count{kind="segment_fmp4"} 2"#,
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }
}
