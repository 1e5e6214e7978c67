//! Prometheus metrics of the streams a process runs, labelled by stream.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StreamLabel {
    stream: String,
}

/// The per-stream metrics.
#[derive(Clone, Debug, Default)]
pub struct WorkerMetrics {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    live: Family<StreamLabel, Gauge>,
    ingest_bitrate_kbps: Family<StreamLabel, Gauge>,
    ingest_fps: Family<StreamLabel, Gauge<f64, AtomicU64>>,
    segments_produced: Family<StreamLabel, Counter>,
    segments_uploaded: Family<StreamLabel, Counter>,
    segments_dropped: Family<StreamLabel, Counter>,
    ffmpeg_restarts: Family<StreamLabel, Counter>,
    timestamp_leaps: Family<StreamLabel, Counter>,
    transcode_speed: Family<StreamLabel, Gauge<f64, AtomicU64>>,
    transcoder_behind: Family<StreamLabel, Gauge>,
    presets_lowered: Family<StreamLabel, Counter>,
    publishes: Family<StreamLabel, Counter>,
}

fn label(stream: &str) -> StreamLabel {
    StreamLabel { stream: stream.to_string() }
}

impl WorkerMetrics {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn register(&self, registry: &mut Registry) {
        let m = &self.inner;
        registry.register("livestream_live", "Whether an encoder is publishing (1) or not (0)", m.live.clone());
        registry.register(
            "livestream_ingest_bitrate_kbps",
            "Incoming bitrate over the last 5 seconds, in kbit/s",
            m.ingest_bitrate_kbps.clone(),
        );
        registry.register("livestream_ingest_fps", "Incoming video frames per second", m.ingest_fps.clone());
        registry.register("livestream_publishes", "Publishes accepted", m.publishes.clone());
        registry.register("livestream_segments_produced", "Segments ffmpeg finished", m.segments_produced.clone());
        registry.register(
            "livestream_segments_uploaded",
            "Segments in storage and named by a playlist",
            m.segments_uploaded.clone(),
        );
        registry.register(
            "livestream_segments_dropped",
            "Drops of media (parts or segments) before storage: refused for good, or waiting past the queue's bound",
            m.segments_dropped.clone(),
        );
        registry.register("livestream_ffmpeg_restarts", "Restarts of ffmpeg after it died", m.ffmpeg_restarts.clone());
        registry.register(
            "livestream_source_timestamp_leaps",
            "Leaps of the source's timestamps (more than 5 s forward or 1 s back) closed up before transcoding",
            m.timestamp_leaps.clone(),
        );
        registry.register(
            "livestream_transcode_speed",
            "ffmpeg's processing speed relative to real time",
            m.transcode_speed.clone(),
        );
        registry.register(
            "livestream_transcoder_behind",
            "Whether ffmpeg falls behind the source (1): its input queue stayed full, the encoder is slowed down",
            m.transcoder_behind.clone(),
        );
        registry.register(
            "livestream_transcoder_presets_lowered",
            "Restarts of ffmpeg at a faster x264 preset because it fell behind the source (ladder.whenBehind: FasterPreset)",
            m.presets_lowered.clone(),
        );
    }

    pub fn set_live(&self, stream: &str, live: bool) {
        self.inner.live.get_or_create(&label(stream)).set(i64::from(live));
    }

    pub fn set_ingest(&self, stream: &str, kbps: u64, fps: f64) {
        self.inner.ingest_bitrate_kbps.get_or_create(&label(stream)).set(i64::try_from(kbps).unwrap_or(i64::MAX));
        self.inner.ingest_fps.get_or_create(&label(stream)).set(fps);
    }

    /// Counts a publish of `stream`, and gives its counters and its transcoder-behind
    /// gauge a series at 0 if they have none yet: the first restart, drop or leap is then
    /// an increase, which `increase()` and `rate()` see.
    pub fn publish_started(&self, stream: &str) {
        let stream = label(stream);
        self.inner.publishes.get_or_create(&stream).inc();
        let m = &self.inner;
        for counter in
            [&m.segments_produced, &m.segments_uploaded, &m.segments_dropped, &m.ffmpeg_restarts, &m.timestamp_leaps]
        {
            counter.get_or_create(&stream).inc_by(0);
        }
        m.presets_lowered.get_or_create(&stream).inc_by(0);
        m.transcoder_behind.get_or_create(&stream).inc_by(0);
    }

    pub fn segment_produced(&self, stream: &str) {
        self.inner.segments_produced.get_or_create(&label(stream)).inc();
    }

    pub fn segment_uploaded(&self, stream: &str) {
        self.inner.segments_uploaded.get_or_create(&label(stream)).inc();
    }

    pub fn segment_dropped(&self, stream: &str) {
        self.inner.segments_dropped.get_or_create(&label(stream)).inc();
    }

    pub fn ffmpeg_restarted(&self, stream: &str) {
        self.inner.ffmpeg_restarts.get_or_create(&label(stream)).inc();
    }

    pub fn timestamp_leapt(&self, stream: &str) {
        self.inner.timestamp_leaps.get_or_create(&label(stream)).inc();
    }

    pub fn set_transcode_speed(&self, stream: &str, speed: f64) {
        self.inner.transcode_speed.get_or_create(&label(stream)).set(speed);
    }

    pub fn set_transcoder_behind(&self, stream: &str, behind: bool) {
        self.inner.transcoder_behind.get_or_create(&label(stream)).set(i64::from(behind));
    }

    pub fn preset_lowered(&self, stream: &str) {
        self.inner.presets_lowered.get_or_create(&label(stream)).inc();
    }

    /// Uploaded segments of a stream (for tests and status).
    pub fn uploaded(&self, stream: &str) -> u64 {
        self.inner.segments_uploaded.get_or_create(&label(stream)).get()
    }

    /// ffmpeg restarts of a stream.
    pub fn restarts(&self, stream: &str) -> u64 {
        self.inner.ffmpeg_restarts.get_or_create(&label(stream)).get()
    }
}
