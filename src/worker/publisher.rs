//! Publishing one stream's segments: each segment (and its init segment) is uploaded
//! before the playlist that names it, then the media playlist, then the master playlist
//! once every rendition has a segment; objects that left the window are deleted.
//!
//! A storage outage delays the playlists (uploads are retried until they land or the
//! worker shuts down) but never publishes a playlist naming a missing object. Segments
//! wait on the scratch disk meanwhile, in a queue bounded by count: past the bound the
//! oldest waiting segment is dropped and the rendition continues after a discontinuity.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use jiff::Timestamp;
use tokio::sync::{Notify, watch};

use crate::package::names::{self, SegmentFormat};
use crate::package::{
    BandwidthFloor, BandwidthMeter, MediaTrack, TrackConfig, TrackError, UploadedSegment, Variant,
    codecs_from_init_segment, codecs_from_ts_segment, render_master_playlist,
};
use crate::storage::{self, InstrumentedStore, ObjectKind, RetryError, RetryPolicy, Store};

/// Errors that stop publishing.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("storage: {0}")]
    Storage(#[from] RetryError),
    #[error("cannot resume rendition {rendition} from its stored playlist: {source}")]
    Resume { rendition: String, source: TrackError },
    #[error("cannot read the stored playlist {key}: {source}")]
    ReadPlaylist { key: String, source: RetryError },
    #[error("packaging: {0}")]
    Track(#[from] TrackError),
    #[error("cannot read the local segment {path}: {source}")]
    ReadLocal { path: PathBuf, source: std::io::Error },
    #[error("publishing was cancelled")]
    Cancelled,
}

/// What the master playlist says of a rendition besides what is measured.
#[derive(Clone, Debug, PartialEq)]
pub struct RenditionOutput {
    pub name: String,
    pub resolution: Option<(u32, u32)>,
    pub frame_rate: Option<f64>,
    pub floor: BandwidthFloor,
}

/// A segment that ffmpeg finished, waiting on the scratch disk.
#[derive(Clone, Debug)]
pub struct ReadySegment {
    /// Index of the rendition in the publisher's list.
    pub rendition: usize,
    /// Transcoder run that produced it: a new run starts a discontinuity.
    pub run: u32,
    pub path: PathBuf,
    /// The run's init segment (fMP4).
    pub init: Option<PathBuf>,
    pub duration: Duration,
    /// When ffmpeg finished it.
    pub completed_at: Timestamp,
    /// Segments of its rendition were lost just before it.
    pub after_gap: bool,
}

/// What publishing reports to the stream's status.
pub trait PublishObserver: Send + Sync {
    /// A segment and the playlist naming it are in storage.
    fn segment_published(&self, at: Timestamp);
    /// An upload failed and is being retried (`None` clears the problem).
    fn storage_problem(&self, problem: Option<String>);
}

/// Settings of a stream's publishing.
#[derive(Clone, Debug)]
pub struct PublishSettings {
    /// Key prefix of every object, without trailing slash; may be empty.
    pub prefix: String,
    pub format: SegmentFormat,
    pub segment_duration_s: u32,
    pub window_segments: usize,
    pub recording: bool,
    pub has_passthrough: bool,
    /// Most segments waiting for upload before the oldest are dropped.
    pub max_pending: usize,
}

struct Rendition {
    output: RenditionOutput,
    track: MediaTrack,
    meter: BandwidthMeter,
    codecs: Option<String>,
    /// Segments of this rendition were dropped before upload: the next one starts a
    /// discontinuity.
    after_gap: bool,
}

/// Publishes one stream's segments and playlists.
pub struct Publisher<S: Store> {
    store: Arc<InstrumentedStore<S>>,
    settings: PublishSettings,
    renditions: Vec<Rendition>,
    master: Option<String>,
    policy: RetryPolicy,
    cancel: watch::Receiver<bool>,
    observer: Arc<dyn PublishObserver>,
}

impl<S: Store> Publisher<S> {
    /// Opens the stream's tracks: continued from the playlists in storage when they exist
    /// (a restarted worker or a new publish after the stream ended), new otherwise.
    pub async fn open(
        store: Arc<InstrumentedStore<S>>,
        settings: PublishSettings,
        outputs: Vec<RenditionOutput>,
        cancel: watch::Receiver<bool>,
        observer: Arc<dyn PublishObserver>,
    ) -> Result<Self, PublishError> {
        let mut renditions = Vec::with_capacity(outputs.len());
        let min_peak = Duration::from_secs(u64::from(settings.segment_duration_s)) / 2;
        for output in outputs {
            let config = TrackConfig {
                rendition: output.name.clone(),
                format: settings.format,
                target_duration_s: crate::package::tracker::target_duration_s(
                    settings.segment_duration_s,
                    settings.has_passthrough,
                ),
                window_segments: settings.window_segments,
                recording: settings.recording,
            };
            let live_key = join(&settings.prefix, &names::media_playlist_key(&output.name));
            let stored = read_bounded(store.inner(), &live_key).await?;
            let track = match stored {
                Some(live) => {
                    let recording = if settings.recording {
                        let key = join(&settings.prefix, &names::recording_playlist_key(&output.name));
                        read_bounded(store.inner(), &key).await?
                    } else {
                        None
                    };
                    let track = MediaTrack::resume(config, &live, recording.as_deref())
                        .map_err(|source| PublishError::Resume { rendition: output.name.clone(), source })?;
                    tracing::info!(
                        rendition = %output.name,
                        next_sequence = track.next_sequence(),
                        "continuing the stored playlist"
                    );
                    track
                }
                None => MediaTrack::new(config)?,
            };
            let meter = BandwidthMeter::new(output.floor, min_peak);
            renditions.push(Rendition { output, track, meter, codecs: None, after_gap: false });
        }
        Ok(Self { store, settings, renditions, master: None, policy: RetryPolicy::until_cancelled(), cancel, observer })
    }

    /// Marks that segments of `rendition` were lost before upload.
    pub fn mark_gap(&mut self, rendition: usize) {
        if let Some(r) = self.renditions.get_mut(rendition) {
            r.after_gap = true;
        }
    }

    /// Uploads one segment (its init segment first when the run starts one), then the
    /// rendition's playlist, then the master playlist when it changed; deletes what
    /// left the window. The local files are removed once uploaded.
    pub async fn publish(&mut self, segment: ReadySegment) -> Result<(), PublishError> {
        let result = self.publish_inner(&segment).await;
        let _ = tokio::fs::remove_file(&segment.path).await;
        result
    }

    async fn publish_inner(&mut self, segment: &ReadySegment) -> Result<(), PublishError> {
        let Some(rendition) = self.renditions.get(segment.rendition) else {
            return Ok(());
        };
        let slot = rendition.track.next_slot(segment.run, rendition.after_gap);
        let body = read_local(&segment.path).await?;
        if let Some(init) = &slot.init {
            // The init segment is read only when it is uploaded or its codecs are still
            // unknown, not once per media segment.
            let needed = init.upload || rendition.codecs.is_none();
            if let (true, Some(path)) = (needed, &segment.init) {
                let init_body = read_local(path).await?;
                let codecs = codecs_from_init_segment(&init_body).ok().map(|c| c.to_string());
                if let Some(r) = self.renditions.get_mut(segment.rendition) {
                    r.codecs = codecs.or(r.codecs.take());
                }
                if init.upload {
                    self.put(&init.key, init_body, ObjectKind::InitSegment).await?;
                }
            }
        } else if rendition.codecs.is_none() {
            let codecs = codecs_from_ts_segment(&body).ok().map(|c| c.to_string());
            if let Some(r) = self.renditions.get_mut(segment.rendition) {
                r.codecs = codecs;
            }
        }
        let bytes = body.len() as u64;
        self.put(&slot.key, body, ObjectKind::Segment(self.settings.format)).await?;

        let Some(rendition) = self.renditions.get_mut(segment.rendition) else {
            return Ok(());
        };
        let committed = rendition
            .track
            .commit(&slot, UploadedSegment { duration: segment.duration, bytes, completed_at: segment.completed_at })?;
        rendition.after_gap = false;
        rendition.meter.record(bytes, segment.duration);
        if committed.clamped {
            tracing::warn!(
                rendition = %rendition.output.name,
                sequence = slot.sequence,
                duration_s = segment.duration.as_secs_f64(),
                "segment longer than the target duration; listed at the target"
            );
        }
        let playlist = rendition.track.render_live();
        let playlist_key = names::media_playlist_key(&rendition.output.name);
        let expired = committed.expired;
        self.put(&playlist_key, Bytes::from(playlist), ObjectKind::MediaPlaylist).await?;
        self.observer.segment_published(Timestamp::now());
        self.write_master_if_changed().await?;
        for key in expired {
            let full = join(&self.settings.prefix, &key);
            if let Err(e) = self.store.delete(&full).await {
                tracing::warn!(key = %full, error = %e, "cannot delete an expired segment");
            }
        }
        Ok(())
    }

    /// Ends the stream: every live playlist gets ENDLIST; with recording on, the
    /// recording playlists and their master are written.
    pub async fn end(&mut self) -> Result<(), PublishError> {
        for index in 0..self.renditions.len() {
            let Some(rendition) = self.renditions.get_mut(index) else { continue };
            if rendition.track.window().len() == 0 {
                continue;
            }
            rendition.track.end();
            let live = rendition.track.render_live();
            let recording = self.settings.recording.then(|| rendition.track.render_recording());
            let name = rendition.output.name.clone();
            self.put(&names::media_playlist_key(&name), Bytes::from(live), ObjectKind::VodPlaylist).await?;
            if let Some(recording) = recording {
                self.put(&names::recording_playlist_key(&name), Bytes::from(recording), ObjectKind::VodPlaylist)
                    .await?;
            }
        }
        if self.settings.recording
            && let Some(master) = self.render_master(names::recording_playlist_key)
        {
            self.put(names::RECORDING_MASTER_PLAYLIST, Bytes::from(master), ObjectKind::VodPlaylist).await?;
        }
        Ok(())
    }

    /// Whether every rendition has published at least one segment.
    pub fn has_output(&self) -> bool {
        self.renditions.iter().all(|r| r.track.window().len() > 0)
    }

    async fn write_master_if_changed(&mut self) -> Result<(), PublishError> {
        let Some(master) = self.render_master(names::media_playlist_key) else {
            return Ok(());
        };
        if self.master.as_deref() == Some(master.as_str()) {
            return Ok(());
        }
        self.put(names::MASTER_PLAYLIST, Bytes::from(master.clone()), ObjectKind::MasterPlaylist).await?;
        self.master = Some(master);
        Ok(())
    }

    /// The master playlist, once every rendition has a segment (so that it never names a
    /// media playlist that does not exist yet).
    fn render_master(&self, uri: impl Fn(&str) -> String) -> Option<String> {
        if !self.has_output() {
            return None;
        }
        let variants: Vec<Variant> = self
            .renditions
            .iter()
            .map(|r| Variant {
                uri: uri(&r.output.name),
                bandwidth_bps: r.meter.peak_bps(),
                average_bandwidth_bps: r.meter.average_bps(),
                codecs: r.codecs.clone(),
                resolution: r.output.resolution,
                frame_rate: r.output.frame_rate,
            })
            .collect();
        Some(render_master_playlist(&variants))
    }

    async fn put(&self, key: &str, body: Bytes, kind: ObjectKind) -> Result<(), PublishError> {
        let full = join(&self.settings.prefix, key);
        let mut cancel = self.cancel.clone();
        let cancelled = async move {
            let _ = cancel.wait_for(|c| *c).await;
        };
        let store = &self.store;
        let observer = &self.observer;
        let result = storage::retry(&self.policy, &full, cancelled, || {
            let body = body.clone();
            let full = full.clone();
            async move {
                let outcome = store.put(&full, body, kind).await;
                if let Err(e) = &outcome {
                    observer.storage_problem(Some(format!("uploading {full}: {e}")));
                }
                outcome
            }
        })
        .await;
        match result {
            Ok(()) => {
                observer.storage_problem(None);
                Ok(())
            }
            Err(RetryError::Cancelled { .. }) => Err(PublishError::Cancelled),
            Err(e) => Err(e.into()),
        }
    }
}

/// Segments waiting for upload, bounded by count: when full, the oldest is dropped (its
/// file deleted) and its rendition is reported as having a gap.
#[derive(Clone)]
pub struct PendingSegments {
    inner: Arc<PendingInner>,
}

struct PendingInner {
    queue: Mutex<PendingState>,
    notify: Notify,
    capacity: usize,
}

struct PendingState {
    segments: VecDeque<ReadySegment>,
    gaps: Vec<usize>,
    closed: bool,
}

/// What the uploader takes next.
#[derive(Debug)]
pub enum Next {
    Segment(ReadySegment),
    /// Segments of this rendition were dropped.
    Gap(usize),
    /// No more segments will come.
    Closed,
}

impl PendingSegments {
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::new(PendingInner {
                queue: Mutex::new(PendingState { segments: VecDeque::new(), gaps: Vec::new(), closed: false }),
                notify: Notify::new(),
                capacity: capacity.max(1),
            }),
        }
    }

    /// Adds a segment; never waits. Returns the dropped segment's rendition if the queue
    /// was full.
    pub fn push(&self, segment: ReadySegment) -> Option<usize> {
        let dropped = {
            let mut state = self.inner.queue.lock().unwrap_or_else(PoisonError::into_inner);
            let dropped = if state.segments.len() >= self.inner.capacity { state.segments.pop_front() } else { None };
            let dropped_rendition = dropped.as_ref().map(|d| d.rendition);
            if let Some(rendition) = dropped_rendition {
                state.gaps.push(rendition);
            }
            state.segments.push_back(segment);
            dropped
        };
        self.inner.notify.notify_one();
        dropped.map(|d| {
            let _ = std::fs::remove_file(&d.path);
            d.rendition
        })
    }

    /// No more segments will be pushed; the uploader drains what is queued, then stops.
    pub fn close(&self) {
        self.inner.queue.lock().unwrap_or_else(PoisonError::into_inner).closed = true;
        self.inner.notify.notify_one();
    }

    pub fn len(&self) -> usize {
        self.inner.queue.lock().unwrap_or_else(PoisonError::into_inner).segments.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits for the next thing to do.
    pub async fn next(&self) -> Next {
        loop {
            let notified = self.inner.notify.notified();
            {
                let mut state = self.inner.queue.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(rendition) = state.gaps.pop() {
                    return Next::Gap(rendition);
                }
                if let Some(segment) = state.segments.pop_front() {
                    return Next::Segment(segment);
                }
                if state.closed {
                    return Next::Closed;
                }
            }
            notified.await;
        }
    }
}

/// `prefix/key`, or `key` when the prefix is empty.
pub fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() { key.to_string() } else { format!("{prefix}/{key}") }
}

async fn read_local(path: &std::path::Path) -> Result<Bytes, PublishError> {
    tokio::fs::read(path).await.map(Bytes::from).map_err(|source| PublishError::ReadLocal { path: path.into(), source })
}

/// Reads a stored playlist for resuming, retrying passing errors for a while.
async fn read_bounded<S: Store>(store: &S, key: &str) -> Result<Option<String>, PublishError> {
    let policy = RetryPolicy::bounded(8, Duration::from_secs(30));
    let got = storage::retry(&policy, key, std::future::pending(), || store.get(key))
        .await
        .map_err(|source| PublishError::ReadPlaylist { key: key.into(), source })?;
    Ok(got.map(|body| String::from_utf8_lossy(&body).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(rendition: usize, n: u32) -> ReadySegment {
        ReadySegment {
            rendition,
            run: 1,
            path: PathBuf::from(format!("/nonexistent/{rendition}-{n}")),
            init: None,
            duration: Duration::from_secs(2),
            completed_at: Timestamp::UNIX_EPOCH,
            after_gap: false,
        }
    }

    #[tokio::test]
    async fn pending_queue_drops_the_oldest_and_reports_a_gap() {
        let pending = PendingSegments::new(2);
        assert_eq!(pending.push(segment(0, 1)), None);
        assert_eq!(pending.push(segment(1, 1)), None);
        assert_eq!(pending.push(segment(1, 2)), Some(0), "the oldest (rendition 0) is dropped");
        assert!(matches!(pending.next().await, Next::Gap(0)));
        assert!(matches!(pending.next().await, Next::Segment(s) if s.rendition == 1));
        assert!(matches!(pending.next().await, Next::Segment(s) if s.rendition == 1));
        pending.close();
        assert!(matches!(pending.next().await, Next::Closed));
    }

    #[tokio::test]
    async fn pending_queue_wakes_a_waiting_uploader() {
        let pending = PendingSegments::new(4);
        let waiter = {
            let pending = pending.clone();
            tokio::spawn(async move { pending.next().await })
        };
        tokio::task::yield_now().await;
        pending.push(segment(0, 1));
        let next = tokio::time::timeout(Duration::from_secs(5), waiter).await.expect("woken").expect("task");
        assert!(matches!(next, Next::Segment(_)));
    }

    #[test]
    fn keys_join_the_prefix() {
        assert_eq!(join("", "index.m3u8"), "index.m3u8");
        assert_eq!(join("live/demo", "720p/3.m4s"), "live/demo/720p/3.m4s");
    }
}
