//! The local-filesystem backend: objects are files under a root directory, named by their
//! keys. Every write goes to a temporary file in the target's directory, is flushed to
//! disk and then renamed over the target, so a reader (the built-in HTTP origin) sees the
//! old object or the whole new one, never a part.
//!
//! Keys are checked by [`validate_key`], so they cannot name anything outside the root.
//! The root itself is trusted: symbolic links that someone else placed inside it are
//! followed like any path.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use super::error::StoreError;
use super::key::{KeyError, directory_prefix, validate_key};
use super::object::ObjectKind;
use super::store::{Expect, MAX_GET_BYTES, MAX_LIST_KEYS, Store, Version};

/// Objects as files under a root directory.
#[derive(Clone, Debug)]
pub struct LocalStore {
    root: Arc<Path>,
}

impl LocalStore {
    /// A store rooted at `root`; the directory is created on the first write.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: Arc::from(root.into()) }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file that holds `key`, or an error when the key is not acceptable.
    pub fn path_of(&self, key: &str) -> Result<PathBuf, StoreError> {
        validate_key(key).map_err(|reason| StoreError::invalid_key(key, reason))?;
        Ok(self.root.join(key))
    }

    /// The directory that holds the objects under `prefix`.
    fn dir_of(&self, prefix: &str) -> Result<PathBuf, StoreError> {
        let prefix = directory_prefix(prefix).map_err(|reason| StoreError::invalid_key(prefix, reason))?;
        Ok(self.root.join(prefix.trim_end_matches('/')))
    }
}

impl Store for LocalStore {
    async fn put(&self, key: &str, body: Bytes, _kind: ObjectKind) -> Result<(), StoreError> {
        let path = self.path_of(key)?;
        let key = key.to_string();
        blocking(move || write_atomically(&path, &body).map_err(|source| io_error("write", &key, source))).await
    }

    async fn put_if(&self, key: &str, body: Bytes, _kind: ObjectKind, expect: &Expect) -> Result<Version, StoreError> {
        let path = self.path_of(key)?;
        let key = key.to_string();
        let expect = expect.clone();
        blocking(move || {
            let dir = path.parent().ok_or_else(|| StoreError::invalid_key(&key, KeyError::Empty))?;
            fs::create_dir_all(dir).map_err(|source| io_error("write", &key, source))?;
            // The directory is locked while the object is compared and replaced, so that
            // of two processes writing over the same version only one succeeds.
            let lock = File::open(dir).and_then(|dir| dir.lock().map(|()| dir));
            let _lock = lock.map_err(|source| io_error("lock", &key, source))?;
            let current = match read_bounded(&path, MAX_GET_BYTES) {
                Ok(Some(current)) => Some(version_of(&current)),
                Ok(None) => return Err(StoreError::TooLarge { key, limit: MAX_GET_BYTES }),
                Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => None,
                Err(source) => return Err(io_error("read", &key, source)),
            };
            let matches = match (&expect, &current) {
                (Expect::Absent, None) => true,
                (Expect::Version(want), Some(have)) => want == have,
                _ => false,
            };
            if !matches {
                return Err(StoreError::Conflict { key });
            }
            write_atomically(&path, &body).map_err(|source| io_error("write", &key, source))?;
            Ok(version_of(&body))
        })
        .await
    }

    async fn get_versioned(&self, key: &str) -> Result<Option<(Bytes, Version)>, StoreError> {
        let body = self.get(key).await?;
        Ok(body.map(|body| {
            let version = version_of(&body);
            (body, version)
        }))
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        let path = self.path_of(key)?;
        let key = key.to_string();
        blocking(move || match read_bounded(&path, MAX_GET_BYTES) {
            Ok(Some(body)) => Ok(Some(Bytes::from(body))),
            Ok(None) => Err(StoreError::TooLarge { key, limit: MAX_GET_BYTES }),
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => Ok(None),
            Err(source) => Err(io_error("read", &key, source)),
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path_of(key)?;
        let key = key.to_string();
        blocking(move || match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => Ok(()),
            Err(source) => Err(io_error("delete", &key, source)),
        })
        .await
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64, StoreError> {
        let dir = self.dir_of(prefix)?;
        let prefix = prefix.to_string();
        blocking(move || remove_tree(&dir).map_err(|source| io_error("delete", &prefix, source))).await
    }

    async fn list(&self, prefix: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        let dir = self.dir_of(prefix)?;
        let root = self.root.clone();
        let prefix = prefix.to_string();
        let limit = limit.min(MAX_LIST_KEYS);
        blocking(move || list_tree(&root, &dir, limit).map_err(|source| io_error("list", &prefix, source))).await
    }
}

/// The version of an object on disk: a hash of its content.
fn version_of(body: &[u8]) -> Version {
    use sha2::{Digest, Sha256};
    Version(Sha256::digest(body).iter().take(16).map(|b| format!("{b:02x}")).collect())
}

/// Runs filesystem work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StoreError::Other { detail: format!("local storage task failed: {e}") })?
}

fn io_error(action: &'static str, key: &str, source: io::Error) -> StoreError {
    match source.kind() {
        ErrorKind::PermissionDenied => StoreError::AccessDenied { detail: format!("{action} {key}: {source}") },
        _ => StoreError::Io { action, key: key.to_string(), source },
    }
}

/// Temporary files are hidden, and end in `.tmp`; listings skip them.
fn is_temporary(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

/// Writes `body` to a temporary file beside `path`, flushes it to disk, renames it over
/// `path` and flushes the directory, so that the new object is whole and durable.
fn write_atomically(path: &Path, body: &[u8]) -> io::Result<()> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io::Error::new(ErrorKind::InvalidInput, "not a file path"));
    };
    fs::create_dir_all(dir)?;
    let temporary = dir.join(format!(".{}.{:016x}.tmp", name.to_string_lossy(), rand::random::<u64>()));
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).open(&temporary)?;
        file.write_all(body)?;
        file.sync_data()?;
        drop(file);
        fs::rename(&temporary, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        // Already renamed, or never created: either way nothing is left behind.
        let _ = fs::remove_file(&temporary);
    }
    result
}

/// The contents of `path`, or `None` when it is larger than `limit` bytes.
fn read_bounded(path: &Path, limit: u64) -> io::Result<Option<Vec<u8>>> {
    let file = File::open(path)?;
    if file.metadata()?.len() > limit {
        return Ok(None);
    }
    let mut body = Vec::new();
    file.take(limit.saturating_add(1)).read_to_end(&mut body)?;
    Ok((body.len() as u64 <= limit).then_some(body))
}

/// Every directory under `dir` (itself included), parents before children, and the files
/// in them; a missing `dir` has none.
fn walk(dir: &Path, mut on_file: impl FnMut(&Path, &str) -> io::Result<()>) -> io::Result<Vec<PathBuf>> {
    let mut pending = vec![dir.to_path_buf()];
    let mut dirs = Vec::new();
    while let Some(current) = pending.pop() {
        let entries = match fs::read_dir(&current) {
            Ok(entries) => entries,
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => continue,
            Err(e) => return Err(e),
        };
        dirs.push(current);
        for entry in entries {
            let entry = entry?;
            // The entry's own type: a symbolic link is a file here, never followed.
            if entry.file_type()?.is_dir() {
                pending.push(entry.path());
            } else if let Some(name) = entry.file_name().to_str() {
                on_file(&entry.path(), name)?;
            }
        }
    }
    Ok(dirs)
}

/// Deletes the files under `dir`, then the directories left empty; returns how many
/// objects were deleted (temporary files are removed but not counted).
fn remove_tree(dir: &Path) -> io::Result<u64> {
    let mut count = 0;
    let dirs = walk(dir, |path, name| match fs::remove_file(path) {
        Ok(()) => {
            count += u64::from(!is_temporary(name));
            Ok(())
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    })?;
    for dir in dirs.iter().rev() {
        match fs::remove_dir(dir) {
            // A concurrent writer may have added a file since; it stays.
            Err(e) if !matches!(e.kind(), ErrorKind::NotFound | ErrorKind::DirectoryNotEmpty) => return Err(e),
            _ => {}
        }
    }
    Ok(count)
}

/// The smallest `limit` keys under `dir`, in ascending order.
fn list_tree(root: &Path, dir: &Path, limit: usize) -> io::Result<Vec<String>> {
    let mut keys = BTreeSet::new();
    walk(dir, |path, name| {
        if is_temporary(name) {
            return Ok(());
        }
        let Some(key) = path.strip_prefix(root).ok().and_then(key_of_relative_path) else {
            return Ok(());
        };
        keys.insert(key);
        if keys.len() > limit {
            keys.pop_last();
        }
        Ok(())
    })?;
    Ok(keys.into_iter().collect())
}

/// The key of a path relative to the root, if every component is valid UTF-8.
fn key_of_relative_path(relative: &Path) -> Option<String> {
    let parts: Option<Vec<&str>> = relative.components().map(|c| c.as_os_str().to_str()).collect();
    parts.map(|parts| parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::key::KeyError;
    use crate::storage::object::SegmentFormat;
    use std::sync::atomic::{AtomicBool, Ordering};

    const SEGMENT: ObjectKind = ObjectKind::Segment(SegmentFormat::Fmp4);

    fn store() -> (tempfile::TempDir, LocalStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path().join("root"));
        (dir, store)
    }

    #[tokio::test]
    async fn conditional_writes_succeed_only_over_the_expected_version() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        let key = "live/demo/720p/index.m3u8";
        let kind = ObjectKind::MediaPlaylist;
        let first = store.put_if(key, Bytes::from_static(b"#EXTM3U\n1"), kind, &Expect::Absent).await.unwrap();
        assert!(matches!(
            store.put_if(key, Bytes::from_static(b"#EXTM3U\nx"), kind, &Expect::Absent).await,
            Err(StoreError::Conflict { .. })
        ));
        let second =
            store.put_if(key, Bytes::from_static(b"#EXTM3U\n2"), kind, &Expect::Version(first.clone())).await.unwrap();
        assert_ne!(first, second);
        assert!(
            matches!(
                store.put_if(key, Bytes::from_static(b"#EXTM3U\n3"), kind, &Expect::Version(first)).await,
                Err(StoreError::Conflict { .. })
            ),
            "a writer that missed a change is refused"
        );
        let (body, version) = store.get_versioned(key).await.unwrap().unwrap();
        assert_eq!((&body[..], version), (&b"#EXTM3U\n2"[..], second));
        assert_eq!(store.get_versioned("live/demo/none.m3u8").await.unwrap(), None);
    }

    #[tokio::test]
    async fn put_get_overwrite_delete() {
        let (_dir, store) = store();
        let key = "live/demo/720p/index.m3u8";
        assert_eq!(store.get(key).await.unwrap(), None);
        store.put(key, Bytes::from_static(b"#EXTM3U\n1"), ObjectKind::MediaPlaylist).await.unwrap();
        assert_eq!(store.get(key).await.unwrap().unwrap(), "#EXTM3U\n1");
        store.put(key, Bytes::from_static(b"#EXTM3U\n22"), ObjectKind::MediaPlaylist).await.unwrap();
        assert_eq!(store.get(key).await.unwrap().unwrap(), "#EXTM3U\n22");
        assert_eq!(fs::read(store.root().join(key)).unwrap(), b"#EXTM3U\n22");
        store.delete(key).await.unwrap();
        assert_eq!(store.get(key).await.unwrap(), None);
        store.delete(key).await.unwrap();
    }

    #[tokio::test]
    async fn keys_cannot_escape_the_root() {
        let (dir, store) = store();
        for (key, reason) in [
            ("../escaped.ts", KeyError::DotSegment),
            ("live/../../escaped.ts", KeyError::DotSegment),
            ("/tmp/escaped.ts", KeyError::Absolute),
            ("live//x.ts", KeyError::EmptySegment),
            ("", KeyError::Empty),
        ] {
            let err = store.put(key, Bytes::from_static(b"x"), SEGMENT).await.unwrap_err();
            assert!(matches!(&err, StoreError::InvalidKey { reason: r, .. } if *r == reason), "{key:?} gave {err:?}");
            assert!(!err.is_retryable());
            assert!(matches!(store.get(key).await, Err(StoreError::InvalidKey { .. })));
            assert!(matches!(store.delete(key).await, Err(StoreError::InvalidKey { .. })));
        }
        assert!(matches!(store.delete_prefix("..").await, Err(StoreError::InvalidKey { .. })));
        assert!(matches!(store.delete_prefix("").await, Err(StoreError::InvalidKey { .. })));
        let outside: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(outside.is_empty(), "something was written outside the root: {outside:?}");
    }

    #[test]
    fn readers_never_see_a_partial_object() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("live/index.m3u8");
        let small = vec![b'a'; 64 * 1024];
        let large = vec![b'b'; 256 * 1024];
        write_atomically(&path, &small).unwrap();
        let done = AtomicBool::new(false);
        let reads = std::thread::scope(|scope| {
            let reader = scope.spawn(|| {
                let mut reads = 0u32;
                while !done.load(Ordering::Acquire) {
                    let body = fs::read(&path).unwrap();
                    assert!(body == small || body == large, "read a partial object of {} bytes", body.len());
                    reads += 1;
                }
                reads
            });
            for i in 0..200 {
                write_atomically(&path, if i % 2 == 0 { &large } else { &small }).unwrap();
            }
            done.store(true, Ordering::Release);
            reader.join().unwrap()
        });
        assert!(reads > 0);
        let left: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, ["index.m3u8"], "temporary files were left behind");
    }

    #[tokio::test]
    async fn delete_prefix_removes_one_directory_only() {
        let (_dir, store) = store();
        for key in ["live/demo/master.m3u8", "live/demo/720p/init.mp4", "live/demo/720p/seg_1.m4s", "live/demo2/a.ts"] {
            store.put(key, Bytes::from_static(b"x"), SEGMENT).await.unwrap();
        }
        fs::write(store.root().join("live/demo/720p/.seg_2.m4s.0123456789abcdef.tmp"), b"partial").unwrap();
        assert_eq!(store.delete_prefix("live/demo").await.unwrap(), 3);
        assert!(!store.root().join("live/demo").exists());
        assert_eq!(store.list("live", 10).await.unwrap(), ["live/demo2/a.ts"]);
        assert_eq!(store.delete_prefix("live/demo/").await.unwrap(), 0);
    }

    #[tokio::test]
    async fn list_is_sorted_bounded_and_skips_temporary_files() {
        let (_dir, store) = store();
        for key in ["s/b/2.ts", "s/a.m3u8", "s/b/1.ts", "t/x.ts"] {
            store.put(key, Bytes::from_static(b"x"), SEGMENT).await.unwrap();
        }
        fs::write(store.root().join("s/.a.m3u8.00.tmp"), b"partial").unwrap();
        assert_eq!(store.list("s", 10).await.unwrap(), ["s/a.m3u8", "s/b/1.ts", "s/b/2.ts"]);
        assert_eq!(store.list("s/", 2).await.unwrap(), ["s/a.m3u8", "s/b/1.ts"]);
        assert!(store.list("missing", 10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn oversized_objects_are_not_loaded() {
        let (_dir, store) = store();
        store.put("big.ts", Bytes::from_static(b"x"), SEGMENT).await.unwrap();
        // A sparse file: large, but costs no disk or time to make.
        File::options().write(true).open(store.root().join("big.ts")).unwrap().set_len(MAX_GET_BYTES + 1).unwrap();
        let err = store.get("big.ts").await.unwrap_err();
        assert!(matches!(err, StoreError::TooLarge { .. }), "{err:?}");
    }
}
