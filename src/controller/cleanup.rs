//! Storage cleanup on delete: the objects under a stream's prefix, removed through a
//! [`PrefixCleaner`] within a bounded time, so that a delete never hangs on storage.

use std::fmt;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::jiff::Timestamp;

use super::children::storage_prefix;
use crate::api::LiveStream;

/// Where a stream's objects are.
#[derive(Clone, PartialEq, Eq)]
pub struct StorageTarget {
    pub bucket: String,
    /// Key prefix without leading or trailing slash.
    pub prefix: String,
    pub region: String,
    pub endpoint: Option<String>,
    pub force_path_style: bool,
    /// Credentials from the stream's credentials Secret, if it has one.
    pub credentials: Option<StorageCredentials>,
}

/// An S3 access key.
#[derive(Clone, PartialEq, Eq)]
pub struct StorageCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl fmt::Debug for StorageCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StorageCredentials { .. }")
    }
}

impl fmt::Debug for StorageTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorageTarget")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("force_path_style", &self.force_path_style)
            .field("credentials", &self.credentials.as_ref().map(|_| ".."))
            .finish()
    }
}

impl StorageTarget {
    /// The storage target of `stream`, with the given credentials.
    pub fn of(stream: &LiveStream, credentials: Option<StorageCredentials>) -> Self {
        let storage = &stream.spec.storage;
        Self {
            bucket: storage.bucket.clone(),
            prefix: storage_prefix(stream),
            region: storage.region.clone(),
            endpoint: storage.endpoint.clone(),
            force_path_style: storage.force_path_style,
            credentials,
        }
    }
}

/// Why a cleanup failed. Messages never carry credentials.
#[derive(Debug, thiserror::Error)]
pub enum CleanupError {
    #[error("storage unreachable: {0}")]
    Unreachable(String),
    #[error("storage refused the request: {0}")]
    Refused(String),
    #[error("{0}")]
    Other(String),
}

/// Removes every object under a prefix. The S3 store implements it; tests use fakes.
pub trait PrefixCleaner: Send + Sync {
    /// Deletes every object whose key starts with `storage.prefix + "/"` and returns how
    /// many were deleted.
    fn delete_prefix<'a>(&'a self, storage: &'a StorageTarget) -> BoxFuture<'a, Result<u64, CleanupError>>;
}

/// What became of a cleanup.
#[derive(Debug)]
pub enum CleanupOutcome {
    /// The objects were deleted.
    Deleted(u64),
    /// This attempt failed; another may follow while time remains.
    Failed(CleanupError),
    /// The time allowed for cleanup is over: the delete proceeds without it.
    GaveUp,
}

/// The time left for cleanup of an object deleted at `deleted_at`, if any.
pub fn remaining(deleted_at: Option<Timestamp>, now: Timestamp, total: Duration) -> Option<Duration> {
    let Some(deleted_at) = deleted_at else { return Some(total) };
    let elapsed = now.duration_since(deleted_at).unsigned_abs();
    total.checked_sub(elapsed).filter(|left| !left.is_zero())
}

/// Runs one cleanup attempt within the time left.
pub async fn clean_up(
    cleaner: &dyn PrefixCleaner,
    target: &StorageTarget,
    deleted_at: Option<Timestamp>,
    total: Duration,
) -> CleanupOutcome {
    let Some(left) = remaining(deleted_at, Timestamp::now(), total) else { return CleanupOutcome::GaveUp };
    match tokio::time::timeout(left, cleaner.delete_prefix(target)).await {
        Ok(Ok(count)) => CleanupOutcome::Deleted(count),
        Ok(Err(e)) => CleanupOutcome::Failed(e),
        Err(_) => CleanupOutcome::GaveUp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::children::fixtures;

    struct Hangs;
    impl PrefixCleaner for Hangs {
        fn delete_prefix<'a>(&'a self, _: &'a StorageTarget) -> BoxFuture<'a, Result<u64, CleanupError>> {
            Box::pin(futures::future::pending())
        }
    }

    #[test]
    fn remaining_time_counts_from_the_deletion() {
        let total = Duration::from_secs(30);
        let t = |s| Timestamp::from_second(s).unwrap();
        assert_eq!(remaining(None, t(100), total), Some(total));
        assert_eq!(remaining(Some(t(100)), t(110), total), Some(Duration::from_secs(20)));
        assert_eq!(remaining(Some(t(100)), t(130), total), None);
        assert_eq!(remaining(Some(t(100)), t(500), total), None);
    }

    #[test]
    fn target_debug_hides_credentials() {
        let stream = fixtures::stream("media", "demo");
        let creds = StorageCredentials { access_key_id: "AKIAEXAMPLE".into(), secret_access_key: "hunter2".into() };
        let target = StorageTarget::of(&stream, Some(creds));
        assert_eq!(target.prefix, "media/demo");
        let text = format!("{target:?}");
        assert!(!text.contains("hunter2") && !text.contains("AKIAEXAMPLE"), "{text}");
    }

    #[tokio::test]
    async fn a_hanging_cleaner_gives_up_within_the_bound() {
        let stream = fixtures::stream("media", "demo");
        let target = StorageTarget::of(&stream, None);
        let started = std::time::Instant::now();
        let outcome = clean_up(&Hangs, &target, None, Duration::from_millis(100)).await;
        assert!(matches!(outcome, CleanupOutcome::GaveUp), "{outcome:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
