//! The stream's poster: ffmpeg writes a JPEG of the top rendition's picture every few
//! seconds into its run folder (atomically: a temporary file renamed over the last one);
//! the watcher here reads each new one and reports it.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tokio::time::sleep;

use super::supervisor::TranscodeEvent;

/// The poster's file name, in the run folder and in storage.
pub const POSTER_FILE: &str = "poster.jpg";
/// How often ffmpeg writes a poster.
pub const POSTER_INTERVAL: Duration = Duration::from_secs(4);
/// How often the run folder is checked for a new poster.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// The largest poster taken: a JPEG of a 4K picture at the quality asked for fits well.
const MAX_POSTER_BYTES: u64 = 4 * 1024 * 1024;

/// Whether `bytes` is a whole JPEG: the start-of-image and end-of-image markers.
pub fn is_complete_jpeg(bytes: &[u8]) -> bool {
    bytes.len() > 4 && bytes.starts_with(&[0xFF, 0xD8, 0xFF]) && bytes.ends_with(&[0xFF, 0xD9])
}

/// Reports each new poster of run `run` in `dir` until `stop` turns true.
pub(super) async fn watch_poster(
    run: u32,
    dir: PathBuf,
    events: mpsc::Sender<TranscodeEvent>,
    mut stop: watch::Receiver<bool>,
) {
    let path = dir.join(POSTER_FILE);
    let mut last: Option<SystemTime> = None;
    loop {
        let stopping = tokio::select! {
            () = sleep(CHECK_INTERVAL) => false,
            _ = stop.wait_for(|stop| *stop) => true,
        };
        if let Some(bytes) = read_if_new(&path, &mut last).await
            && events.send(TranscodeEvent::Poster { run, jpeg: bytes }).await.is_err()
        {
            return;
        }
        if stopping {
            return;
        }
    }
}

/// The poster at `path` when it changed since `last` and is a whole JPEG.
async fn read_if_new(path: &Path, last: &mut Option<SystemTime>) -> Option<Bytes> {
    let metadata = tokio::fs::metadata(path).await.ok()?;
    let modified = metadata.modified().ok()?;
    if *last == Some(modified) || metadata.len() > MAX_POSTER_BYTES {
        return None;
    }
    let bytes = tokio::fs::read(path).await.ok()?;
    *last = Some(modified);
    is_complete_jpeg(&bytes).then(|| Bytes::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_jpegs_are_taken() {
        assert!(is_complete_jpeg(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0xFF, 0xD9]));
        assert!(!is_complete_jpeg(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0]), "cut short");
        assert!(!is_complete_jpeg(b"\x89PNG\r\n\x1a\n"), "not a JPEG");
        assert!(!is_complete_jpeg(&[]));
    }

    #[tokio::test]
    async fn a_new_poster_is_reported_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (events, mut received) = mpsc::channel(4);
        let (stop, stopped) = watch::channel(false);
        let jpeg = [0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3, 0xFF, 0xD9];
        std::fs::write(dir.path().join(POSTER_FILE), jpeg).expect("write");
        let task = tokio::spawn(watch_poster(7, dir.path().to_path_buf(), events, stopped));
        match tokio::time::timeout(Duration::from_secs(5), received.recv()).await {
            Ok(Some(TranscodeEvent::Poster { run: 7, jpeg: got })) => assert_eq!(&got[..], &jpeg[..]),
            other => panic!("no poster reported: {other:?}"),
        }
        stop.send(true).expect("stop");
        tokio::time::timeout(Duration::from_secs(5), task).await.expect("the watcher stops").expect("join");
        assert!(received.try_recv().is_err(), "the same poster is not reported twice");
    }
}
