//! The operations every storage backend offers, and [`AnyStore`], the backend chosen by
//! configuration, so that callers need neither generics nor boxed futures.

use std::future::Future;

use bytes::Bytes;

use super::error::StoreError;
use super::local::LocalStore;
use super::object::ObjectKind;
use super::s3::S3Store;

/// The largest object [`Store::get`] loads into memory. Reads are for playlists, which
/// are a few kilobytes; the limit only guards against a wrong key.
pub const MAX_GET_BYTES: u64 = 64 * 1024 * 1024;

/// The most keys [`Store::list`] returns, whatever the caller asks for.
pub const MAX_LIST_KEYS: usize = 100_000;

/// The version of an object as its store tells it (an S3 ETag, a content hash on disk):
/// it changes whenever the object's content does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version(pub String);

/// What a conditional write expects to find under its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// No object.
    Absent,
    /// The object of this version.
    Version(Version),
}

/// An object store. Keys are full keys (any stream prefix already applied) and follow
/// [`crate::storage::key::validate_key`].
pub trait Store: Send + Sync {
    /// Writes `body` under `key` like [`Store::put`], but only when the object there is
    /// what `expect` says; else [`StoreError::Conflict`]. Returns the new version. Two
    /// writers that each write only over their own last version cannot both succeed.
    fn put_if(
        &self,
        key: &str,
        body: Bytes,
        kind: ObjectKind,
        expect: &Expect,
    ) -> impl Future<Output = Result<Version, StoreError>> + Send;

    /// Reads the object under `key` with its version, or `None` when there is none.
    fn get_versioned(&self, key: &str) -> impl Future<Output = Result<Option<(Bytes, Version)>, StoreError>> + Send;

    /// Writes `body` under `key` with the headers of `kind`, replacing any object there.
    /// Readers see either the old object or the whole new one, never a part.
    fn put(&self, key: &str, body: Bytes, kind: ObjectKind) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Reads the object under `key`, or `None` when there is none. Objects larger than
    /// [`MAX_GET_BYTES`] are refused.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Bytes>, StoreError>> + Send;

    /// Deletes the object under `key`; deleting a missing object succeeds.
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes every object under the directory `prefix` (`live/demo` covers
    /// `live/demo/...` only) and returns how many were deleted.
    fn delete_prefix(&self, prefix: &str) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// The keys under the directory `prefix`, in ascending order, at most `limit` of them
    /// (and at most [`MAX_LIST_KEYS`]).
    fn list(&self, prefix: &str, limit: usize) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
}

/// One of the storage backends.
#[derive(Clone, Debug)]
pub enum AnyStore {
    Local(LocalStore),
    S3(S3Store),
}

impl AnyStore {
    /// Where objects go, for logs: `s3://BUCKET` or the local directory. Never holds
    /// credentials.
    pub fn describe(&self) -> String {
        match self {
            Self::Local(local) => local.root().display().to_string(),
            Self::S3(s3) => format!("s3://{}", s3.bucket()),
        }
    }
}

impl From<LocalStore> for AnyStore {
    fn from(store: LocalStore) -> Self {
        Self::Local(store)
    }
}

impl From<S3Store> for AnyStore {
    fn from(store: S3Store) -> Self {
        Self::S3(store)
    }
}

impl Store for AnyStore {
    async fn put_if(&self, key: &str, body: Bytes, kind: ObjectKind, expect: &Expect) -> Result<Version, StoreError> {
        match self {
            Self::Local(store) => store.put_if(key, body, kind, expect).await,
            Self::S3(store) => store.put_if(key, body, kind, expect).await,
        }
    }

    async fn get_versioned(&self, key: &str) -> Result<Option<(Bytes, Version)>, StoreError> {
        match self {
            Self::Local(store) => store.get_versioned(key).await,
            Self::S3(store) => store.get_versioned(key).await,
        }
    }

    async fn put(&self, key: &str, body: Bytes, kind: ObjectKind) -> Result<(), StoreError> {
        match self {
            Self::Local(store) => store.put(key, body, kind).await,
            Self::S3(store) => store.put(key, body, kind).await,
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        match self {
            Self::Local(store) => store.get(key).await,
            Self::S3(store) => store.get(key).await,
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self {
            Self::Local(store) => store.delete(key).await,
            Self::S3(store) => store.delete(key).await,
        }
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64, StoreError> {
        match self {
            Self::Local(store) => store.delete_prefix(prefix).await,
            Self::S3(store) => store.delete_prefix(prefix).await,
        }
    }

    async fn list(&self, prefix: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        match self {
            Self::Local(store) => store.list(prefix, limit).await,
            Self::S3(store) => store.list(prefix, limit).await,
        }
    }
}
