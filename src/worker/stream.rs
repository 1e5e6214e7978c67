//! One stream's life: Idle until an encoder publishes, Live while it does, Reconnecting
//! for a grace window after it leaves (a reconnect continues the same playlists), then
//! Ended with ENDLIST. The media work of each publish is in [`super::pipeline`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use tokio::sync::{mpsc, watch};

use crate::api::{HlsSpec, LadderSpec};
use crate::ingest::listener::{MediaMessage, PublishSink};
use crate::ingest::session::Rejection;
use crate::media::flv::{FlvTag, FlvTagKind};
use crate::origin::LiveIndex;
use crate::storage::{AnyStore, InstrumentedStore};

use super::figures::IngestFigures;
use super::metrics::WorkerMetrics;
use super::pipeline::{Pipeline, PipelineObserver};
use super::publisher::PublishObserver;
use super::status::{Problem, ProblemKind, StreamPhase, WorkerStatus};

/// Capacity of the channel between a connection and its stream, in messages: about two
/// seconds of a typical stream; a full channel makes the connection stop reading.
const MEDIA_CHANNEL_CAPACITY: usize = 512;
/// How long a stream may take at shutdown to upload what it has queued.
const SHUTDOWN_UPLOADS: Duration = Duration::from_secs(15);

/// How one stream is processed and where it goes.
#[derive(Clone, Debug)]
pub struct StreamSettings {
    /// Name in logs and metrics, e.g. `live/demo` or `namespace/name`.
    pub label: String,
    /// Key prefix of the stream's objects.
    pub prefix: String,
    pub ladder: LadderSpec,
    pub hls: HlsSpec,
    /// LL-HLS, for fMP4 streams.
    pub low_latency: Option<LowLatencySettings>,
    pub ffmpeg: PathBuf,
    /// This stream's scratch directory.
    pub scratch_dir: PathBuf,
    pub reconnect_grace: Duration,
}

/// Low-Latency HLS of a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LowLatencySettings {
    /// The longest part.
    pub part_target: Duration,
    /// URL of the stream's storage prefix for media URIs in low-latency playlists (when the
    /// origin serving them does not serve media); `None` keeps them relative.
    pub media_base: Option<String>,
}

/// An accepted publish, handed to the stream's task.
pub struct Publication {
    pub media: mpsc::Receiver<MediaMessage>,
    pub peer: SocketAddr,
}

struct Shared {
    phase: StreamPhase,
    started_at: Option<Timestamp>,
    last_segment_at: Option<Timestamp>,
    figures: IngestFigures,
    /// When the ingest gauges were last set: they follow the figures once a second, not
    /// on every media message.
    gauges_set_at: Option<Instant>,
    problems: BTreeMap<ProblemKind, String>,
}

/// A stream and its task.
pub struct Stream {
    settings: StreamSettings,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    shared: Mutex<Shared>,
    publications: mpsc::Sender<Publication>,
    metrics: WorkerMetrics,
    /// Turns true when another worker took over the stream: this one stops.
    superseded: watch::Sender<bool>,
}

impl Stream {
    /// Starts the stream's task. It runs until `shutdown` turns true.
    pub fn spawn(
        settings: StreamSettings,
        store: Arc<InstrumentedStore<AnyStore>>,
        index: Arc<LiveIndex>,
        metrics: WorkerMetrics,
        shutdown: watch::Receiver<bool>,
    ) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(2);
        let stream = Arc::new(Self {
            settings,
            task: Mutex::new(None),
            shared: Mutex::new(Shared {
                phase: StreamPhase::Idle,
                started_at: None,
                last_segment_at: None,
                figures: IngestFigures::new(Duration::from_secs(5)),
                gauges_set_at: None,
                problems: BTreeMap::new(),
            }),
            publications: tx,
            metrics,
            superseded: watch::channel(false).0,
        });
        let observer: Arc<dyn PipelineObserver> = stream.clone();
        let pipeline = Pipeline::new(stream.settings.clone(), store, index, observer, stream.superseded.subscribe());
        let task = tokio::spawn(Arc::clone(&stream).run(pipeline, rx, shutdown));
        *stream.task.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
        stream
    }

    /// Waits for the stream's task to end (after shutdown), at most `limit`.
    pub async fn join(&self, limit: Duration) -> bool {
        let task = self.task.lock().unwrap_or_else(PoisonError::into_inner).take();
        match task {
            Some(task) => tokio::time::timeout(limit, task).await.is_ok(),
            None => true,
        }
    }

    pub fn settings(&self) -> &StreamSettings {
        &self.settings
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Accepts a publish unless one is live: the first publisher keeps the stream.
    pub fn begin_publish(&self, peer: SocketAddr) -> Result<PublishSink, Rejection> {
        let mut shared = self.lock();
        if shared.phase == StreamPhase::Live {
            return Err(Rejection::AlreadyLive);
        }
        if *self.superseded.borrow() {
            return Err(Rejection::Other("another worker serves this stream now".into()));
        }
        let (sink, media) = PublishSink::channel(MEDIA_CHANNEL_CAPACITY);
        self.publications
            .try_send(Publication { media, peer })
            .map_err(|_| Rejection::Other("the stream is still finishing its previous publish".into()))?;
        if shared.phase != StreamPhase::Reconnecting {
            shared.started_at = Some(Timestamp::now());
        }
        shared.phase = StreamPhase::Live;
        Ok(sink)
    }

    /// The status served on `/status`.
    pub fn status(&self) -> WorkerStatus {
        let now = Instant::now();
        let mut shared = self.lock();
        let live = shared.phase == StreamPhase::Live;
        WorkerStatus {
            phase: shared.phase,
            started_at: shared.started_at.map(|t| t.to_string()),
            last_segment_at: shared.last_segment_at.map(|t| t.to_string()),
            ingest_bitrate_kbps: live.then(|| shared.figures.bitrate_kbps(now)),
            frame_rate: live.then(|| shared.figures.frame_rate(now)),
            problems: shared
                .problems
                .iter()
                .map(|(kind, message)| Problem { reason: kind.reason().to_string(), message: message.clone() })
                .collect(),
        }
    }

    pub fn phase(&self) -> StreamPhase {
        self.lock().phase
    }

    /// Sets or clears a problem.
    fn set_problem(&self, kind: ProblemKind, message: Option<String>) {
        let mut shared = self.lock();
        match message {
            Some(message) => {
                shared.problems.insert(kind, message);
            }
            None => {
                shared.problems.remove(&kind);
            }
        }
    }

    fn set_phase(&self, phase: StreamPhase) {
        let mut shared = self.lock();
        shared.phase = phase;
        if phase != StreamPhase::Live {
            shared.figures = IngestFigures::new(Duration::from_secs(5));
            shared.gauges_set_at = None;
        }
        drop(shared);
        if phase != StreamPhase::Live {
            self.metrics.set_ingest(&self.settings.label, 0, 0.0);
        }
        self.metrics.set_live(&self.settings.label, phase == StreamPhase::Live);
    }

    /// Whether any media of the stream reached storage.
    fn has_output(&self) -> bool {
        self.lock().last_segment_at.is_some()
    }

    async fn run(
        self: Arc<Self>,
        mut pipeline: Pipeline,
        mut publications: mpsc::Receiver<Publication>,
        shutdown: watch::Receiver<bool>,
    ) {
        let mut grace_until: Option<tokio::time::Instant> = None;
        let mut stop = shutdown.clone();
        loop {
            let publication = tokio::select! {
                publication = publications.recv() => match publication {
                    Some(publication) => publication,
                    None => break,
                },
                () = sleep_until(grace_until), if grace_until.is_some() => {
                    grace_until = None;
                    tracing::info!(stream = %self.settings.label, "no reconnect within the grace window; ending the stream");
                    self.end(&mut pipeline).await;
                    continue;
                }
                () = stopped(&mut stop) => break,
            };
            grace_until = None;
            tracing::info!(stream = %self.settings.label, peer = %publication.peer, "publish started");
            self.set_phase(StreamPhase::Live);
            let outcome = pipeline.run_publication(publication, shutdown.clone()).await;
            match &outcome {
                Ok(reason) => tracing::info!(stream = %self.settings.label, reason = ?reason, "publish ended"),
                Err(e) => tracing::warn!(stream = %self.settings.label, error = %e, "publish failed"),
            }
            if *shutdown.borrow() {
                // The pod is stopping: the next worker continues these playlists.
                self.set_phase(StreamPhase::Idle);
                break;
            }
            if *self.superseded.borrow() {
                // Another worker owns the playlists now: nothing to end here.
                self.set_phase(StreamPhase::Idle);
                continue;
            }
            if !self.has_output() {
                self.set_phase(StreamPhase::Idle);
            } else if outcome.as_ref().is_ok_and(|reason| reason.is_clean()) {
                // The encoder said it is done (OBS's Stop): end now, not after the grace.
                self.end(&mut pipeline).await;
            } else {
                self.set_phase(StreamPhase::Reconnecting);
                grace_until = Some(tokio::time::Instant::now() + self.settings.reconnect_grace);
            }
        }
        pipeline.shut_down(SHUTDOWN_UPLOADS).await;
    }

    /// Ends the playlists and marks the stream Ended.
    async fn end(&self, pipeline: &mut Pipeline) {
        match pipeline.end_stream().await {
            Ok(()) => self.set_phase(StreamPhase::Ended),
            Err(_) if *self.superseded.borrow() => self.set_phase(StreamPhase::Idle),
            Err(e) => {
                tracing::error!(stream = %self.settings.label, error = %e, "cannot end the playlists");
                self.set_problem(ProblemKind::StorageUnavailable, Some(e.to_string()));
                self.set_phase(StreamPhase::Ended);
            }
        }
    }
}

/// Resolves when `shutdown` turns true (or its sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

impl PublishObserver for Stream {
    fn segment_published(&self, at: Timestamp) {
        self.lock().last_segment_at = Some(at);
        self.metrics.segment_uploaded(&self.settings.label);
    }

    fn problem(&self, kind: ProblemKind, message: Option<String>) {
        self.set_problem(kind, message);
    }

    fn superseded(&self, message: String) {
        self.set_problem(ProblemKind::Superseded, Some(message));
        self.superseded.send_replace(true);
    }

    fn media_dropped(&self) {
        self.metrics.segment_dropped(&self.settings.label);
        self.set_problem(
            ProblemKind::MediaDropped,
            Some("media was dropped before it reached storage; playlists continue after a discontinuity".into()),
        );
    }
}

impl PipelineObserver for Stream {
    fn media_received(&self, tag: &FlvTag) {
        let now = Instant::now();
        let video_frame = tag.kind == FlvTagKind::Video && !tag.is_sequence_header();
        let mut shared = self.lock();
        shared.figures.record(now, tag.data.len(), video_frame);
        if shared.gauges_set_at.is_some_and(|at| now.saturating_duration_since(at) < Duration::from_secs(1)) {
            return;
        }
        shared.gauges_set_at = Some(now);
        let kbps = shared.figures.bitrate_kbps(now);
        let fps = shared.figures.frame_rate(now);
        drop(shared);
        self.metrics.set_ingest(&self.settings.label, kbps, fps);
    }

    fn transcode_speed(&self, speed: f64) {
        self.metrics.set_transcode_speed(&self.settings.label, speed);
    }

    fn transcoder_restarted(&self) {
        self.metrics.ffmpeg_restarted(&self.settings.label);
    }

    fn timestamps_leapt(&self) {
        self.metrics.timestamp_leapt(&self.settings.label);
    }

    fn transcoder_behind(&self, behind: Option<String>) {
        self.metrics.set_transcoder_behind(&self.settings.label, behind.is_some());
        self.set_problem(ProblemKind::TranscoderBehind, behind);
    }

    fn segment_produced(&self) {
        self.metrics.segment_produced(&self.settings.label);
    }

    fn preset_lowered(&self, _preset: crate::api::EncoderPreset) {
        self.metrics.preset_lowered(&self.settings.label);
    }
}
