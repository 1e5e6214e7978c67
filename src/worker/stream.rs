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
use crate::storage::{AnyStore, InstrumentedStore};

use super::figures::IngestFigures;
use super::metrics::WorkerMetrics;
use super::pipeline::{self, PipelineState};
use super::publisher::PublishObserver;
use super::status::{Problem, StreamPhase, WorkerStatus};

/// Capacity of the channel between a connection and its stream, in messages: about two
/// seconds of a typical stream; a full channel makes the connection stop reading.
const MEDIA_CHANNEL_CAPACITY: usize = 512;

/// How one stream is processed and where it goes.
#[derive(Clone, Debug)]
pub struct StreamSettings {
    /// Name in logs and metrics, e.g. `live/demo` or `namespace/name`.
    pub label: String,
    /// Key prefix of the stream's objects.
    pub prefix: String,
    pub ladder: LadderSpec,
    pub hls: HlsSpec,
    pub ffmpeg: PathBuf,
    /// This stream's scratch directory.
    pub scratch_dir: PathBuf,
    pub reconnect_grace: Duration,
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
    problems: BTreeMap<&'static str, String>,
}

/// A stream and its task.
pub struct Stream {
    settings: StreamSettings,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    shared: Mutex<Shared>,
    publications: mpsc::Sender<Publication>,
    metrics: WorkerMetrics,
}

impl Stream {
    /// Starts the stream's task. It runs until `shutdown` turns true.
    pub fn spawn(
        settings: StreamSettings,
        store: Arc<InstrumentedStore<AnyStore>>,
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
        });
        let task = tokio::spawn(Arc::clone(&stream).run(rx, store, shutdown));
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
                .map(|(reason, message)| Problem { reason: (*reason).to_string(), message: message.clone() })
                .collect(),
        }
    }

    pub fn phase(&self) -> StreamPhase {
        self.lock().phase
    }

    /// Records an incoming media message for the live figures.
    pub(super) fn record_media(&self, bytes: usize, video_frame: bool) {
        let now = Instant::now();
        let mut shared = self.lock();
        shared.figures.record(now, bytes, video_frame);
        if shared.gauges_set_at.is_some_and(|at| now.saturating_duration_since(at) < Duration::from_secs(1)) {
            return;
        }
        shared.gauges_set_at = Some(now);
        let kbps = shared.figures.bitrate_kbps(now);
        let fps = shared.figures.frame_rate(now);
        drop(shared);
        self.metrics.set_ingest(&self.settings.label, kbps, fps);
    }

    /// Sets or clears a problem.
    pub(super) fn set_problem(&self, reason: &'static str, message: Option<String>) {
        let mut shared = self.lock();
        match message {
            Some(message) => {
                shared.problems.insert(reason, message);
            }
            None => {
                shared.problems.remove(reason);
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

    pub(super) fn metrics(&self) -> &WorkerMetrics {
        &self.metrics
    }

    async fn run(
        self: Arc<Self>,
        mut publications: mpsc::Receiver<Publication>,
        store: Arc<InstrumentedStore<AnyStore>>,
        shutdown: watch::Receiver<bool>,
    ) {
        let mut state = PipelineState::new(self.settings.clone(), store);
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
                    match pipeline::end_stream(&self, &mut state, shutdown.clone()).await {
                        Ok(()) => self.set_phase(StreamPhase::Ended),
                        Err(e) => {
                            tracing::error!(stream = %self.settings.label, error = %e, "cannot end the playlists");
                            self.set_problem("StorageUnavailable", Some(e.to_string()));
                            self.set_phase(StreamPhase::Ended);
                        }
                    }
                    continue;
                }
                () = stopped(&mut stop) => break,
            };
            grace_until = None;
            tracing::info!(stream = %self.settings.label, peer = %publication.peer, "publish started");
            self.set_phase(StreamPhase::Live);
            let outcome = pipeline::run_publication(&self, &mut state, publication, shutdown.clone()).await;
            match &outcome {
                Ok(reason) => tracing::info!(stream = %self.settings.label, reason = ?reason, "publish ended"),
                Err(e) => tracing::warn!(stream = %self.settings.label, error = %e, "publish failed"),
            }
            let stopping = *shutdown.borrow();
            if stopping {
                // The pod is stopping: the next worker continues these playlists.
                self.set_phase(StreamPhase::Idle);
                break;
            }
            if state.has_output() {
                self.set_phase(StreamPhase::Reconnecting);
                grace_until = Some(tokio::time::Instant::now() + self.settings.reconnect_grace);
            } else {
                self.set_phase(StreamPhase::Idle);
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

    fn storage_problem(&self, problem: Option<String>) {
        self.set_problem("StorageUnavailable", problem);
    }
}
