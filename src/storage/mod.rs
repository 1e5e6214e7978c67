//! Storage of the HLS objects: the [`Store`] operations, with an S3 backend (AWS and
//! S3-compatible services) and a local-directory backend; the content type and cache
//! lifetime of each kind of object; retries with backoff; upload metrics.
//!
//! Keys are full keys (the stream's prefix already applied), checked by
//! [`key::validate_key`] on every backend.

pub mod error;
pub mod key;
pub mod local;
pub mod metrics;
pub mod object;
pub mod retry;
pub mod s3;
mod s3_error;
mod store;
mod web_identity;

pub use error::{ErrorClass, StoreError};
pub use local::LocalStore;
pub use metrics::{InstrumentedStore, StorageMetrics};
pub use object::{ObjectKind, SegmentFormat};
pub use retry::{RetryError, RetryLimit, RetryPolicy, retry};
pub use s3::{S3Credentials, S3Settings, S3Store, bucket_url};
pub use store::{AnyStore, Expect, MAX_GET_BYTES, MAX_LIST_KEYS, Store, Version};
