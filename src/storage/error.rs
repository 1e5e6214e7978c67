//! Storage errors, classified by what the caller can do about them.

use super::key::KeyError;

/// An error of a storage operation. Messages name keys and buckets but never credentials.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object does not exist.
    #[error("object {key} does not exist")]
    NotFound { key: String },
    /// The credentials are wrong, or they do not allow the operation.
    #[error("access denied: {detail}")]
    AccessDenied { detail: String },
    /// The bucket does not exist.
    #[error("bucket {bucket} does not exist")]
    BucketMissing { bucket: String },
    /// The storage could not be reached, or did not answer in time. Retryable.
    #[error("storage unreachable: {detail}")]
    Unreachable { detail: String },
    /// The storage answered that it cannot serve the request now (5xx, throttling, a
    /// truncated response). Retryable.
    #[error("storage unavailable: {detail}")]
    Unavailable { detail: String },
    /// The key or prefix is not acceptable.
    #[error("invalid key {key:?}: {reason}")]
    InvalidKey { key: String, reason: KeyError },
    /// A conditional write found another object than it expected: someone else wrote it.
    #[error("object {key} was changed by another writer")]
    Conflict { key: String },
    /// The object is larger than a read is allowed to load into memory.
    #[error("object {key} is larger than the limit of {limit} bytes")]
    TooLarge { key: String, limit: u64 },
    /// A local filesystem error.
    #[error("{action} {key}: {source}")]
    Io { action: &'static str, key: String, source: std::io::Error },
    /// Anything else: a misconfiguration or an unexpected answer.
    #[error("{detail}")]
    Other { detail: String },
}

/// The class of a [`StoreError`], as a metrics label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    NotFound,
    AccessDenied,
    BucketMissing,
    Unreachable,
    Unavailable,
    InvalidKey,
    Conflict,
    TooLarge,
    Io,
    Other,
}

impl ErrorClass {
    /// A short stable name for metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::AccessDenied => "access_denied",
            Self::BucketMissing => "bucket_missing",
            Self::Unreachable => "unreachable",
            Self::Unavailable => "unavailable",
            Self::InvalidKey => "invalid_key",
            Self::Conflict => "conflict",
            Self::TooLarge => "too_large",
            Self::Io => "io",
            Self::Other => "other",
        }
    }
}

impl StoreError {
    /// The class of the error.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::NotFound { .. } => ErrorClass::NotFound,
            Self::AccessDenied { .. } => ErrorClass::AccessDenied,
            Self::BucketMissing { .. } => ErrorClass::BucketMissing,
            Self::Unreachable { .. } => ErrorClass::Unreachable,
            Self::Unavailable { .. } => ErrorClass::Unavailable,
            Self::InvalidKey { .. } => ErrorClass::InvalidKey,
            Self::Conflict { .. } => ErrorClass::Conflict,
            Self::TooLarge { .. } => ErrorClass::TooLarge,
            Self::Io { .. } => ErrorClass::Io,
            Self::Other { .. } => ErrorClass::Other,
        }
    }

    /// Whether the same operation may succeed later without a change of configuration:
    /// the storage was unreachable or unavailable, or the local disk was full or busy.
    pub fn is_retryable(&self) -> bool {
        use std::io::ErrorKind;
        match self {
            Self::Unreachable { .. } | Self::Unavailable { .. } => true,
            Self::Io { source, .. } => matches!(
                source.kind(),
                ErrorKind::StorageFull
                    | ErrorKind::QuotaExceeded
                    | ErrorKind::ResourceBusy
                    | ErrorKind::TimedOut
                    | ErrorKind::Interrupted
                    | ErrorKind::WouldBlock
            ),
            _ => false,
        }
    }

    pub(crate) fn invalid_key(key: &str, reason: KeyError) -> Self {
        Self::InvalidKey { key: key.to_string(), reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_failures_are_retryable() {
        let io = |kind: std::io::ErrorKind| StoreError::Io { action: "write", key: "k".into(), source: kind.into() };
        assert!(StoreError::Unreachable { detail: "connection refused".into() }.is_retryable());
        assert!(StoreError::Unavailable { detail: "HTTP 503".into() }.is_retryable());
        assert!(io(std::io::ErrorKind::StorageFull).is_retryable());
        assert!(!io(std::io::ErrorKind::PermissionDenied).is_retryable());
        assert!(!StoreError::AccessDenied { detail: "SignatureDoesNotMatch".into() }.is_retryable());
        assert!(!StoreError::BucketMissing { bucket: "b".into() }.is_retryable());
        assert!(!StoreError::NotFound { key: "k".into() }.is_retryable());
        assert!(!StoreError::invalid_key("..", KeyError::DotSegment).is_retryable());
        assert!(!StoreError::Conflict { key: "k".into() }.is_retryable(), "another writer stays");
    }

    #[test]
    fn classes_have_distinct_labels() {
        let mut labels: Vec<_> = [
            ErrorClass::NotFound,
            ErrorClass::AccessDenied,
            ErrorClass::BucketMissing,
            ErrorClass::Unreachable,
            ErrorClass::Unavailable,
            ErrorClass::InvalidKey,
            ErrorClass::Conflict,
            ErrorClass::TooLarge,
            ErrorClass::Io,
            ErrorClass::Other,
        ]
        .iter()
        .map(|c| c.as_str())
        .collect();
        let count = labels.len();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), count);
    }
}
