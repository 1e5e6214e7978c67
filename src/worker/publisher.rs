//! Publishing one stream: the task that owns its media tracks and puts everything the
//! transcoder produced into storage, in the order that keeps every playlist true.
//!
//! - fMP4: each part is stored (LL-HLS) as it comes and named in the low-latency playlist
//!   that the origin serves; when a segment is complete, its parts joined are stored as the
//!   segment, then the standard media playlist, then the master playlist once every
//!   rendition has a segment. The init segment of a run goes first.
//! - MPEG-TS: each segment file from ffmpeg's HLS muxer, then the media playlist, then the
//!   master.
//! - Objects that left the window are deleted after the playlist that no longer names them.
//!
//! A storage outage delays the playlists (uploads are retried until they land or the
//! worker shuts down) but never publishes a playlist naming a missing object. Media waits
//! in the bounded [`OutputQueue`] meanwhile.
//!
//! One writer per stream: every media playlist is written over the version this publisher
//! wrote last (a conditional write), and carries a comment naming the publisher. A new
//! publisher that resumes the stream first rewrites each playlist over the version it read,
//! which makes the next write of the one before it fail: that one stops (Superseded), so
//! that two workers of one stream (a pod deleted while its successor starts) never both
//! extend the playlists.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use jiff::Timestamp;
use tokio::sync::watch;

use crate::media::codecs::{codecs_from_init_segment, codecs_from_ts_segment};
use crate::origin::StreamIndex;
use crate::package::names::{self, SegmentFormat};
use crate::package::{
    BandwidthFloor, BandwidthMeter, MediaTrack, TrackConfig, TrackError, UploadedPart, UploadedSegment, Variant,
    render_master_playlist,
};
use crate::storage::{self, Expect, InstrumentedStore, ObjectKind, RetryError, RetryPolicy, Store, StoreError};
use crate::transcode::poster::POSTER_FILE;

use super::outputs::{Next, Output, OutputQueue, ReadyPart, ReadySegment};
use super::status::ProblemKind;

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
    #[error("no init segment for run {run} of rendition {rendition}")]
    MissingInit { rendition: String, run: u32 },
    #[error("publishing was cancelled")]
    Cancelled,
    #[error("another worker took over the stream's playlists ({key} changed)")]
    Superseded { key: String },
    #[error("the publisher has stopped")]
    Stopped,
}

/// What the master playlist says of a rendition besides what is measured.
#[derive(Clone, Debug, PartialEq)]
pub struct RenditionOutput {
    pub name: String,
    pub resolution: Option<(u32, u32)>,
    pub frame_rate: Option<f64>,
    pub floor: BandwidthFloor,
}

/// What publishing reports to the stream's status.
pub trait PublishObserver: Send + Sync {
    /// A segment and the playlist naming it are in storage.
    fn segment_published(&self, at: Timestamp);
    /// Sets (`Some`) or clears (`None`) a problem of publishing.
    fn problem(&self, kind: ProblemKind, message: Option<String>);
    /// Media of a stream was dropped before it reached storage.
    fn media_dropped(&self);
    /// Another writer took over the playlists: this publisher has stopped.
    fn superseded(&self, message: String);
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
    /// LL-HLS: parts are stored and listed in low-latency playlists, none longer than this.
    pub part_target: Option<Duration>,
}

struct Rendition {
    output: RenditionOutput,
    track: MediaTrack,
    meter: BandwidthMeter,
    codecs: Option<String>,
    /// Media of this rendition was dropped before upload: the next segment starts a
    /// discontinuity, and parts up to it are skipped.
    after_gap: bool,
    /// The init segment of the newest run, with its run number (fMP4).
    init: Option<(u32, Bytes)>,
    /// The parts of the open segment, joined into its object when it closes.
    open_parts: Vec<Bytes>,
    /// What the next write of the media playlist expects to find: what this publisher
    /// wrote last (or read when it resumed).
    stored_playlist: Expect,
}

/// Publishes one stream's media and playlists.
pub struct Publisher<S: Store> {
    store: Arc<InstrumentedStore<S>>,
    settings: PublishSettings,
    renditions: Vec<Rendition>,
    master: Option<String>,
    policy: RetryPolicy,
    cancel: watch::Receiver<bool>,
    observer: Arc<dyn PublishObserver>,
    index: Option<Arc<StreamIndex>>,
    /// Names this publisher in the playlists it writes.
    writer: String,
}

/// Attempts at taking over a stream's playlists while another writer still extends them.
const CLAIM_ATTEMPTS: usize = 10;

impl<S: Store> Publisher<S> {
    /// Opens the stream's tracks: continued from the playlists in storage when they exist
    /// (a restarted worker or a new publish after the stream ended), new otherwise.
    pub async fn open(
        store: Arc<InstrumentedStore<S>>,
        settings: PublishSettings,
        outputs: Vec<RenditionOutput>,
        cancel: watch::Receiver<bool>,
        observer: Arc<dyn PublishObserver>,
        index: Option<Arc<StreamIndex>>,
    ) -> Result<Self, PublishError> {
        let writer = format!("{:016x}", rand::random::<u64>());
        let mut attempt = 0;
        loop {
            attempt += 1;
            let renditions = open_tracks(store.inner(), &settings, &outputs).await?;
            let mut publisher = Self {
                store: store.clone(),
                settings: settings.clone(),
                renditions,
                master: None,
                policy: RetryPolicy::until_cancelled(),
                cancel: cancel.clone(),
                observer: observer.clone(),
                index: index.clone(),
                writer: writer.clone(),
            };
            match publisher.claim().await {
                Ok(()) => {
                    for index in 0..publisher.renditions.len() {
                        publisher.refresh_index(index);
                    }
                    return Ok(publisher);
                }
                Err(PublishError::Superseded { key }) if attempt < CLAIM_ATTEMPTS => {
                    tracing::info!(%key, "another writer extended the stored playlists meanwhile; reading them again");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Takes over the stored playlists: each one is rewritten, naming this publisher,
    /// over the version read.
    async fn claim(&mut self) -> Result<(), PublishError> {
        for index in 0..self.renditions.len() {
            if matches!(self.renditions[index].stored_playlist, Expect::Version(_)) {
                let playlist = self.renditions[index].track.render_live();
                self.put_playlist(index, playlist, ObjectKind::MediaPlaylist).await?;
            }
        }
        Ok(())
    }

    /// Publishes what the queue hands out until it is closed and drained. Returns when it
    /// is, or when storage refuses for good (an error is logged, media is counted lost).
    pub async fn run(mut self, queue: OutputQueue) {
        loop {
            let next = queue.next().await;
            let rendition = match &next {
                Next::Output(Output::Part(part)) | Next::StalePart(part) => Some(part.rendition),
                Next::Output(Output::Segment(segment)) => Some(segment.rendition),
                _ => None,
            };
            let result = match next {
                Next::Closed => break,
                Next::Gap(rendition) => self.gap(rendition).await,
                Next::Output(Output::Init { rendition, run, bytes }) => {
                    self.init(rendition, run, bytes);
                    Ok(())
                }
                Next::Output(Output::Part(part)) => self.publish_part(part, true).await,
                Next::StalePart(part) => self.publish_part(part, false).await,
                Next::Output(Output::RunEnded { rendition, run }) => self.run_ended(rendition, run).await,
                Next::Output(Output::Segment(segment)) => self.publish_file(segment).await,
                Next::Output(Output::Poster(jpeg)) => self.put(POSTER_FILE, jpeg, ObjectKind::Poster).await,
                Next::Output(Output::EndStream(reply)) => {
                    let _ = reply.send(self.end().await);
                    Ok(())
                }
            };
            match result {
                Ok(()) => {}
                Err(PublishError::Cancelled) => {
                    tracing::warn!(prefix = %self.settings.prefix, "shutting down with media not uploaded");
                    break;
                }
                Err(error @ PublishError::Superseded { .. }) => {
                    tracing::error!(prefix = %self.settings.prefix, %error, "stopping: this worker no longer writes the stream");
                    self.observer.superseded(error.to_string());
                    break;
                }
                Err(error) => {
                    tracing::error!(prefix = %self.settings.prefix, %error, "cannot publish; skipping it");
                    self.observer.media_dropped();
                    if let Some(rendition) = rendition {
                        self.mark_gap(rendition);
                    }
                }
            }
        }
    }

    fn mark_gap(&mut self, rendition: usize) {
        if let Some(r) = self.renditions.get_mut(rendition) {
            r.after_gap = true;
        }
    }

    /// Media of `rendition` was dropped before it came here: what is open is complete as
    /// far as it goes, and the rendition continues after a discontinuity.
    async fn gap(&mut self, rendition: usize) -> Result<(), PublishError> {
        self.observer.media_dropped();
        let closed = self.close_segment(rendition).await;
        self.mark_gap(rendition);
        closed
    }

    fn init(&mut self, rendition: usize, run: u32, bytes: Bytes) {
        let Some(r) = self.renditions.get_mut(rendition) else { return };
        match codecs_from_init_segment(&bytes) {
            Ok(codecs) => r.codecs = Some(codecs.to_string()),
            Err(error) => {
                tracing::warn!(rendition = %r.output.name, %error, "cannot read the codecs of an init segment")
            }
        }
        r.init = Some((run, bytes));
    }

    async fn run_ended(&mut self, rendition: usize, run: u32) -> Result<(), PublishError> {
        let open_run = self.renditions.get(rendition).and_then(|r| r.track.open_run());
        if open_run == Some(run) { self.close_segment(rendition).await } else { Ok(()) }
    }

    /// Stores one part (when LL-HLS is on and storage keeps up), after closing the open
    /// segment when the part opens a new one.
    async fn publish_part(&mut self, part: ReadyPart, fresh: bool) -> Result<(), PublishError> {
        let Some(r) = self.renditions.get(part.rendition) else { return Ok(()) };
        if r.after_gap && !part.opens_segment {
            // A segment after lost media must start where a player can decode.
            return Ok(());
        }
        if part.opens_segment || r.track.open_run().is_some_and(|run| run != part.run) {
            self.close_segment(part.rendition).await?;
        }
        let Some(r) = self.renditions.get(part.rendition) else { return Ok(()) };
        let slot = r.track.next_part(part.run, r.after_gap, part.opens_segment);
        if let Some(init) = slot.segment.init.as_ref().filter(|init| slot.opens_segment && init.upload) {
            let body = match &r.init {
                Some((run, body)) if *run == part.run => body.clone(),
                _ => return Err(PublishError::MissingInit { rendition: r.output.name.clone(), run: part.run }),
            };
            let key = init.key.clone();
            self.put(&key, body, ObjectKind::InitSegment).await?;
        }
        // A part that is stale (its segment completes further down the queue) is stored
        // with its segment only, unless its segment's parts are already listed.
        let stored =
            self.settings.part_target.is_some() && (fresh || (!slot.opens_segment && r.track.lists_open_parts()));
        if stored {
            self.put(&slot.key, part.bytes.clone(), ObjectKind::Part).await?;
        }
        let Some(r) = self.renditions.get_mut(part.rendition) else { return Ok(()) };
        let uploaded = UploadedPart {
            duration: part.duration,
            bytes: part.bytes.len() as u64,
            independent: part.independent,
            starts_at: part.starts_at,
            stored,
        };
        r.track.commit_part(&slot, uploaded)?;
        r.open_parts.push(part.bytes);
        r.after_gap = false;
        if part.completes_segment {
            return self.close_segment(part.rendition).await;
        }
        if stored {
            self.refresh_index(part.rendition);
        }
        Ok(())
    }

    /// Stores the open segment of `rendition` (its parts joined), then its playlists.
    async fn close_segment(&mut self, rendition: usize) -> Result<(), PublishError> {
        let Some(r) = self.renditions.get_mut(rendition) else { return Ok(()) };
        let Some(key) = r.track.open_segment_key().map(str::to_owned) else { return Ok(()) };
        let mut body = BytesMut::with_capacity(r.open_parts.iter().map(Bytes::len).sum());
        for part in r.open_parts.drain(..) {
            body.extend_from_slice(&part);
        }
        self.put(&key, body.freeze(), ObjectKind::Segment(SegmentFormat::Fmp4)).await?;
        let Some(r) = self.renditions.get_mut(rendition) else { return Ok(()) };
        let Some(committed) = r.track.close_segment()? else { return Ok(()) };
        r.meter.record(committed.record.bytes, committed.record.duration);
        self.segment_committed(rendition, committed).await
    }

    /// Uploads one MPEG-TS segment from the scratch disk, then its playlists. The local file
    /// is removed once uploaded.
    async fn publish_file(&mut self, segment: ReadySegment) -> Result<(), PublishError> {
        let result = self.publish_file_inner(&segment).await;
        let _ = tokio::fs::remove_file(&segment.path).await;
        result
    }

    async fn publish_file_inner(&mut self, segment: &ReadySegment) -> Result<(), PublishError> {
        if segment.after_gap {
            self.mark_gap(segment.rendition);
        }
        let Some(rendition) = self.renditions.get(segment.rendition) else { return Ok(()) };
        let slot = rendition.track.next_slot(segment.run, rendition.after_gap);
        let body = tokio::fs::read(&segment.path)
            .await
            .map(Bytes::from)
            .map_err(|source| PublishError::ReadLocal { path: segment.path.clone(), source })?;
        if rendition.codecs.is_none() {
            let codecs = codecs_from_ts_segment(&body).ok().map(|c| c.to_string());
            if let Some(r) = self.renditions.get_mut(segment.rendition) {
                r.codecs = codecs;
            }
        }
        let bytes = body.len() as u64;
        self.put(&slot.key, body, ObjectKind::Segment(self.settings.format)).await?;
        let Some(r) = self.renditions.get_mut(segment.rendition) else { return Ok(()) };
        let committed = r
            .track
            .commit(&slot, UploadedSegment { duration: segment.duration, bytes, completed_at: segment.completed_at })?;
        r.after_gap = false;
        r.meter.record(bytes, segment.duration);
        self.segment_committed(segment.rendition, committed).await
    }

    /// After a segment is in storage: the standard media playlist, the master, and the
    /// deletion of what left the window.
    async fn segment_committed(
        &mut self,
        rendition: usize,
        committed: crate::package::Committed,
    ) -> Result<(), PublishError> {
        let Some(r) = self.renditions.get(rendition) else { return Ok(()) };
        if committed.clamped {
            tracing::warn!(
                rendition = %r.output.name,
                sequence = committed.record.sequence,
                duration_s = committed.record.duration.as_secs_f64(),
                "segment longer than the target duration; listed at the target"
            );
        }
        let playlist = r.track.render_live();
        self.put_playlist(rendition, playlist, ObjectKind::MediaPlaylist).await?;
        self.observer.segment_published(Timestamp::now());
        self.write_master_if_changed().await?;
        self.refresh_index(rendition);
        for key in committed.expired {
            let full = join(&self.settings.prefix, &key);
            if let Err(e) = self.store.delete(&full).await {
                tracing::warn!(key = %full, error = %e, "cannot delete an expired object");
            }
        }
        Ok(())
    }

    /// Ends the stream: the open segments are completed, every live playlist gets ENDLIST;
    /// with recording on, the recording playlists and their master are written.
    pub async fn end(&mut self) -> Result<(), PublishError> {
        for index in 0..self.renditions.len() {
            self.close_segment(index).await?;
        }
        for index in 0..self.renditions.len() {
            let Some(rendition) = self.renditions.get_mut(index) else { continue };
            if rendition.track.window().len() == 0 {
                continue;
            }
            rendition.track.end();
            let live = rendition.track.render_live();
            let recording = self.settings.recording.then(|| rendition.track.render_recording());
            let name = rendition.output.name.clone();
            self.put_playlist(index, live, ObjectKind::VodPlaylist).await?;
            if let Some(recording) = recording {
                self.put(&names::recording_playlist_key(&name), Bytes::from(recording), ObjectKind::VodPlaylist)
                    .await?;
            }
            self.refresh_index(index);
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
        Some(self.master_of(uri))
    }

    fn master_of(&self, uri: impl Fn(&str) -> String) -> String {
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
        render_master_playlist(&variants)
    }

    /// Hands the origin the newest low-latency playlist of `rendition`, and the master
    /// once every rendition has something to play and its codecs are known.
    fn refresh_index(&self, rendition: usize) {
        let Some(index) = &self.index else { return };
        let Some(r) = self.renditions.get(rendition) else { return };
        index.update(rendition, r.track.low_latency());
        let playable = self.renditions.iter().all(|r| r.codecs.is_some() && r.track.is_playable());
        if playable && self.renditions.iter().all(|r| r.meter.peak_bps() > 0) {
            index.set_master(self.master_of(names::media_playlist_key));
        }
    }

    /// Writes the media playlist of `rendition`, naming this publisher, over the version
    /// it wrote last.
    async fn put_playlist(&mut self, rendition: usize, mut text: String, kind: ObjectKind) -> Result<(), PublishError> {
        let Some(r) = self.renditions.get(rendition) else { return Ok(()) };
        text.push_str(&format!("# writer {}\n", self.writer));
        let full = join(&self.settings.prefix, &names::media_playlist_key(&r.output.name));
        let expect = r.stored_playlist.clone();
        let body = Bytes::from(text);
        let store = &self.store;
        let observer = &self.observer;
        let result = storage::retry(&self.policy, &full, cancelled(self.cancel.clone()), || {
            let body = body.clone();
            let (full, expect) = (full.clone(), expect.clone());
            async move {
                let outcome = match store.put_if(&full, body.clone(), kind, &expect).await {
                    Err(StoreError::Conflict { .. }) => written_already(store.as_ref(), &full, &body).await,
                    outcome => outcome,
                };
                if let Err(e) = &outcome
                    && e.is_retryable()
                {
                    observer.problem(ProblemKind::StorageUnavailable, Some(format!("uploading {full}: {e}")));
                }
                outcome
            }
        })
        .await;
        let version = match result {
            Ok(version) => version,
            Err(RetryError::Cancelled { .. }) => return Err(PublishError::Cancelled),
            Err(RetryError::Permanent { source: StoreError::Conflict { .. }, .. }) => {
                return Err(PublishError::Superseded { key: full });
            }
            Err(e) => return Err(e.into()),
        };
        self.observer.problem(ProblemKind::StorageUnavailable, None);
        if let Some(r) = self.renditions.get_mut(rendition) {
            r.stored_playlist = Expect::Version(version);
        }
        Ok(())
    }

    async fn put(&self, key: &str, body: Bytes, kind: ObjectKind) -> Result<(), PublishError> {
        let full = join(&self.settings.prefix, key);
        let store = &self.store;
        let observer = &self.observer;
        let result = storage::retry(&self.policy, &full, cancelled(self.cancel.clone()), || {
            let body = body.clone();
            let full = full.clone();
            async move {
                let outcome = store.put(&full, body, kind).await;
                if let Err(e) = &outcome {
                    observer.problem(ProblemKind::StorageUnavailable, Some(format!("uploading {full}: {e}")));
                }
                outcome
            }
        })
        .await;
        match result {
            Ok(()) => {
                observer.problem(ProblemKind::StorageUnavailable, None);
                Ok(())
            }
            Err(RetryError::Cancelled { .. }) => Err(PublishError::Cancelled),
            Err(e) => Err(e.into()),
        }
    }
}

/// After a conditional write was refused: the version under `key` when the object there
/// is `body` byte for byte, else the conflict. An attempt whose answer was lost (storage
/// went away after writing, or the connection broke) may have written this very body; no
/// other writer can, since every playlist names its writer.
async fn written_already<S: Store>(store: &S, key: &str, body: &Bytes) -> Result<storage::Version, StoreError> {
    match store.get_versioned(key).await? {
        Some((stored, version)) if stored == *body => Ok(version),
        _ => Err(StoreError::Conflict { key: key.to_string() }),
    }
}

/// `prefix/key`, or `key` when the prefix is empty.
pub fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() { key.to_string() } else { format!("{prefix}/{key}") }
}

/// Resolves when `cancel` turns true.
async fn cancelled(mut cancel: watch::Receiver<bool>) {
    let _ = cancel.wait_for(|c| *c).await;
}

/// The stream's tracks: continued from the playlists in storage when they exist (a
/// restarted worker, or a new publish after the stream ended), new otherwise.
async fn open_tracks<S: Store>(
    store: &S,
    settings: &PublishSettings,
    outputs: &[RenditionOutput],
) -> Result<Vec<Rendition>, PublishError> {
    let mut renditions = Vec::with_capacity(outputs.len());
    let min_peak = Duration::from_secs(u64::from(settings.segment_duration_s)) / 2;
    let target_duration_s =
        crate::package::tracker::target_duration_s(settings.segment_duration_s, settings.has_passthrough);
    let max_parts_per_segment = match settings.part_target {
        Some(part) if !part.is_zero() => {
            let target = Duration::from_secs(u64::from(target_duration_s));
            u32::try_from(target.as_nanos() / part.as_nanos()).unwrap_or(u32::MAX).saturating_add(2)
        }
        _ => 0,
    };
    for output in outputs {
        let config = TrackConfig {
            rendition: output.name.clone(),
            format: settings.format,
            target_duration_s,
            window_segments: settings.window_segments,
            recording: settings.recording,
            max_parts_per_segment,
            // As long as a window lasts, the longest a playlist read just before a burst of
            // segments can be in use.
            expiry_grace: Duration::from_secs(
                u64::from(target_duration_s).saturating_mul(settings.window_segments as u64),
            ),
        };
        let live_key = join(&settings.prefix, &names::media_playlist_key(&output.name));
        let (track, stored_playlist) = match read_bounded(store, &live_key).await? {
            Some((live, version)) => {
                let recording = if settings.recording {
                    let key = join(&settings.prefix, &names::recording_playlist_key(&output.name));
                    read_bounded(store, &key).await?.map(|(text, _)| text)
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
                (track, Expect::Version(version))
            }
            None => (MediaTrack::new(config)?, Expect::Absent),
        };
        let meter = BandwidthMeter::new(output.floor, min_peak);
        renditions.push(Rendition {
            output: output.clone(),
            track,
            meter,
            codecs: None,
            after_gap: false,
            init: None,
            open_parts: Vec::new(),
            stored_playlist,
        });
    }
    Ok(renditions)
}

/// Reads a stored playlist and its version for resuming, retrying passing errors for a
/// while.
async fn read_bounded<S: Store>(store: &S, key: &str) -> Result<Option<(String, storage::Version)>, PublishError> {
    let policy = RetryPolicy::bounded(8, Duration::from_secs(30));
    let got = storage::retry(&policy, key, std::future::pending(), || store.get_versioned(key))
        .await
        .map_err(|source| PublishError::ReadPlaylist { key: key.into(), source })?;
    Ok(got.map(|(body, version)| (String::from_utf8_lossy(&body).into_owned(), version)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refused_write_whose_body_is_stored_already_was_this_writers() {
        let dir = tempfile::tempdir().unwrap();
        let store = storage::LocalStore::new(dir.path().to_path_buf());
        let key = "live/demo/720p/index.m3u8";
        let ours = Bytes::from_static(b"#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:4\n# writer a\n");
        let written = store.put_if(key, ours.clone(), ObjectKind::MediaPlaylist, &Expect::Absent).await.unwrap();
        // The same write again, as a retry after a lost answer: its condition no longer holds.
        let retried = store.put_if(key, ours.clone(), ObjectKind::MediaPlaylist, &Expect::Absent).await;
        assert!(matches!(retried, Err(StoreError::Conflict { .. })), "{retried:?}");
        assert_eq!(written_already(&store, key, &ours).await.unwrap(), written);

        let theirs = Bytes::from_static(b"#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:4\n# writer b\n");
        let refused = written_already(&store, key, &theirs).await;
        assert!(matches!(refused, Err(StoreError::Conflict { .. })), "another writer's object: {refused:?}");
        let missing = written_already(&store, "live/demo/360p/index.m3u8", &ours).await;
        assert!(matches!(missing, Err(StoreError::Conflict { .. })), "no object: {missing:?}");
    }

    #[test]
    fn keys_join_the_prefix() {
        assert_eq!(join("", "index.m3u8"), "index.m3u8");
        assert_eq!(join("live/demo", "720p/3.m4s"), "live/demo/720p/3.m4s");
    }
}
