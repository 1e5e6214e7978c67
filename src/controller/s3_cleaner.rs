//! The [`PrefixCleaner`] of real storage: deletes a stream's prefix with the S3 store.

use futures::future::BoxFuture;

use super::cleanup::{CleanupError, PrefixCleaner, StorageTarget};
use crate::storage::{ErrorClass, S3Credentials, S3Settings, S3Store, Store};

/// Deletes prefixes on S3-compatible storage, with the stream's own credentials.
#[derive(Clone, Debug, Default)]
pub struct S3Cleaner;

impl PrefixCleaner for S3Cleaner {
    fn delete_prefix<'a>(&'a self, storage: &'a StorageTarget) -> BoxFuture<'a, Result<u64, CleanupError>> {
        Box::pin(async move {
            // Without a Secret, the operator deletes with its own identity (its ServiceAccount's
            // role, through the provider chain).
            let credentials = match &storage.credentials {
                Some(credentials) => {
                    S3Credentials::from_keys(&credentials.access_key_id, &credentials.secret_access_key)
                }
                None => S3Credentials::ProviderChain,
            };
            let mut settings = S3Settings::new(storage.bucket.clone(), storage.region.clone(), credentials);
            if let Some(endpoint) = &storage.endpoint {
                settings = settings.with_endpoint(endpoint.clone(), storage.force_path_style);
            }
            let store = S3Store::new(settings);
            store.delete_prefix(&storage.prefix).await.map_err(|e| match e.class() {
                ErrorClass::Unreachable | ErrorClass::Unavailable => CleanupError::Unreachable(e.to_string()),
                ErrorClass::AccessDenied | ErrorClass::BucketMissing => CleanupError::Refused(e.to_string()),
                _ => CleanupError::Other(e.to_string()),
            })
        })
    }
}
