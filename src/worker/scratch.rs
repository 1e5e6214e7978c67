//! The scratch directory of a process: where ffmpeg's runs work. It belongs to one process
//! and is removed when the process ends, so that a second run on the same machine, a
//! second server beside the first, or a restarted container never reads another
//! process's files.

use std::path::{Path, PathBuf};

/// A directory owned by this process, removed on drop.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// A fresh directory of this process inside `base`. With `sole_user` (a worker, whose
    /// scratch volume is its own), whatever earlier processes left in `base` is removed
    /// first: a restarted container finds its predecessor's files there.
    pub fn create(base: &Path, sole_user: bool) -> std::io::Result<Self> {
        if sole_user && base.exists() {
            for entry in std::fs::read_dir(base)? {
                let path = entry?.path();
                let removed = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
                if let Err(error) = removed {
                    tracing::warn!(path = %path.display(), %error, "cannot remove a left-over scratch file");
                }
            }
        }
        std::fs::create_dir_all(base)?;
        let path = base.join(format!("livestream-{}-{:08x}", std::process::id(), rand::random::<u32>()));
        std::fs::create_dir(&path)?;
        Ok(Self { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_dir_all(&self.path)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), %error, "cannot remove the scratch directory");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn belongs_to_one_process_and_goes_away() {
        let base = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(base.path().join("old/run-1")).unwrap();
        let first = ScratchDir::create(base.path(), false).unwrap();
        let second = ScratchDir::create(base.path(), false).unwrap();
        assert_ne!(first.path(), second.path());
        assert!(base.path().join("old/run-1").exists(), "a shared base keeps other processes' folders");
        let path = first.path().to_path_buf();
        drop(first);
        assert!(!path.exists());
        let sole = ScratchDir::create(base.path(), true).unwrap();
        assert!(!base.path().join("old").exists(), "a worker clears what an earlier process left");
        assert!(!second.path().exists());
        assert!(sole.path().exists());
    }
}
