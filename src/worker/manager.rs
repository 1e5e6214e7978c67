//! Routes publishes to streams: checks the application and the key, finds or creates the
//! stream, and refuses a second publisher while one is live.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

use crate::api::{HlsSpec, LadderSpec};
use crate::ingest::listener::{Publish, PublishHandler, PublishRequest};
use crate::ingest::session::Rejection;
use crate::origin::LiveIndex;
use crate::storage::{AnyStore, InstrumentedStore};
use crate::telemetry::clip;

use super::keys::{KeyPolicy, is_valid_name};
use super::metrics::WorkerMetrics;
use super::status::{StreamPhase, WorkerStatus};
use super::stream::{LowLatencySettings, Stream, StreamSettings};

/// Where a stream's objects go.
#[derive(Clone, Debug)]
pub enum PrefixRule {
    /// One stream (a LiveStream's worker): every publish goes under this prefix.
    Fixed(String),
    /// Many streams (`livestream serve`): `APP/NAME` under this root prefix (may be empty).
    PerStream(String),
}

/// What every stream of a manager shares.
#[derive(Clone, Debug)]
pub struct ManagerSettings {
    /// The RTMP application encoders must use; `None` accepts any valid name.
    pub app: Option<String>,
    pub policy: KeyPolicy,
    pub prefix: PrefixRule,
    pub ladder: LadderSpec,
    pub hls: HlsSpec,
    /// Where media URIs of low-latency playlists point (see [`LowLatencySettings`]): for a
    /// fixed prefix, the URL of that prefix; for per-stream prefixes, the URL of the root
    /// prefix, to which `APP/NAME` is added.
    pub media_base_url: Option<String>,
    pub ffmpeg: PathBuf,
    /// This process's scratch directory; each stream works in a folder of its own in it.
    pub scratch_dir: PathBuf,
    pub reconnect_grace: Duration,
}

/// The streams of one process.
pub struct StreamManager {
    settings: ManagerSettings,
    store: Arc<InstrumentedStore<AnyStore>>,
    index: Arc<LiveIndex>,
    metrics: WorkerMetrics,
    shutdown: watch::Receiver<bool>,
    streams: Mutex<BTreeMap<String, Arc<Stream>>>,
}

/// Most streams one `serve` process runs; more publishes are refused.
const MAX_STREAMS: usize = 64;

impl StreamManager {
    pub fn new(
        settings: ManagerSettings,
        store: Arc<InstrumentedStore<AnyStore>>,
        index: Arc<LiveIndex>,
        metrics: WorkerMetrics,
        shutdown: watch::Receiver<bool>,
    ) -> Arc<Self> {
        Arc::new(Self { settings, store, index, metrics, shutdown, streams: Mutex::new(BTreeMap::new()) })
    }

    pub fn settings(&self) -> &ManagerSettings {
        &self.settings
    }

    /// The streams by `APP/NAME`, with their status.
    pub fn list(&self) -> Vec<(String, WorkerStatus)> {
        let streams: Vec<(String, Arc<Stream>)> = self
            .streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        streams.into_iter().map(|(path, stream)| (path, stream.status())).collect()
    }

    /// The status of the one stream of a worker (Idle before the first publish).
    pub fn single_status(&self) -> WorkerStatus {
        let streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        streams.values().next().map(|s| s.status()).unwrap_or_else(WorkerStatus::idle)
    }

    /// After shutdown: waits for every stream to flush its last segments, at most `limit`.
    pub async fn join_all(&self, limit: Duration) -> bool {
        let streams: Vec<Arc<Stream>> =
            self.streams.lock().unwrap_or_else(PoisonError::into_inner).values().cloned().collect();
        let deadline = tokio::time::Instant::now() + limit;
        let mut all = true;
        for stream in streams {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            all &= stream.join(left).await;
        }
        all
    }

    /// Whether any stream is live.
    pub fn any_live(&self) -> bool {
        self.list().iter().any(|(_, status)| status.phase == StreamPhase::Live)
    }

    fn stream_for(&self, app: &str, name: &str) -> Result<Arc<Stream>, Rejection> {
        let path = format!("{app}/{name}");
        let mut streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(stream) = streams.get(&path) {
            return Ok(stream.clone());
        }
        if streams.len() >= MAX_STREAMS {
            return Err(Rejection::Other(format!("this server runs at most {MAX_STREAMS} streams")));
        }
        let (prefix, label, media_base) = match &self.settings.prefix {
            PrefixRule::Fixed(prefix) => (prefix.clone(), prefix.clone(), self.settings.media_base_url.clone()),
            PrefixRule::PerStream(root) => (
                super::publisher::join(root, &path),
                path.clone(),
                self.settings.media_base_url.as_ref().map(|base| format!("{}/{path}", base.trim_end_matches('/'))),
            ),
        };
        let settings = StreamSettings {
            label,
            prefix,
            ladder: self.settings.ladder.clone(),
            hls: self.settings.hls.clone(),
            low_latency: self
                .settings
                .hls
                .part_target()
                .map(|part_target| LowLatencySettings { part_target, media_base }),
            ffmpeg: self.settings.ffmpeg.clone(),
            scratch_dir: self.settings.scratch_dir.join(app).join(name),
            reconnect_grace: self.settings.reconnect_grace,
        };
        let stream = Stream::spawn(
            settings,
            self.store.clone(),
            self.index.clone(),
            self.metrics.clone(),
            self.shutdown.clone(),
        );
        streams.insert(path, stream.clone());
        Ok(stream)
    }
}

impl StreamManager {
    /// The stream name a request may publish as: its application is this manager's and its
    /// key a known one.
    fn resolve(&self, request: &PublishRequest) -> Result<String, Rejection> {
        let app_ok = match &self.settings.app {
            Some(app) => request.app == *app,
            None => is_valid_name(&request.app),
        };
        if !app_ok {
            tracing::warn!(peer = %request.peer, app = %clip(&request.app), "publish refused: unknown application");
            return Err(Rejection::BadKey);
        }
        self.settings.policy.resolve(request.stream_key.expose()).ok_or_else(|| {
            tracing::warn!(
                peer = %request.peer,
                key = %request.stream_key.fingerprint(),
                "publish refused: unknown stream key"
            );
            Rejection::BadKey
        })
    }
}

impl PublishHandler for StreamManager {
    fn authorize(&self, request: &PublishRequest) -> Result<Publish, Rejection> {
        let name = self.resolve(request)?;
        let stream = self.stream_for(&request.app, &name)?;
        let sink = stream.begin_publish(request.peer);
        match &sink {
            Ok(_) => self.metrics.publish_started(&stream.settings().label),
            Err(Rejection::AlreadyLive) => {
                tracing::warn!(stream = %stream.settings().label, peer = %request.peer, "publish refused: already live")
            }
            Err(_) => {}
        }
        sink.map(Publish::Media)
    }

    fn admits(&self, request: &PublishRequest) -> Result<(), Rejection> {
        let name = self.resolve(request)?;
        let path = format!("{}/{name}", request.app);
        let live = self
            .streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&path)
            .is_some_and(|stream| stream.phase() == StreamPhase::Live);
        if live { Err(Rejection::AlreadyLive) } else { Ok(()) }
    }
}
