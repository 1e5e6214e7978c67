//! The `LiveStream` status: what the operator and the worker observed.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Observed state of a LiveStream. It never holds a secret: the ingest URL names the
/// application, not the stream key.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LiveStreamStatus {
    /// Where the stream is in its life.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Ready, Live and Degraded, each with a reason, a message and the generation it
    /// was computed for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The generation of the spec that this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Where encoders push: `rtmp://HOST:PORT/APP`, to which they append the stream key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingest_url: Option<String>,
    /// Where encoders push RTMPS, when `spec.ingest.tls` is set: `rtmps://HOST:PORT/APP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure_ingest_url: Option<String>,
    /// Where encoders push SRT, when `spec.ingest.srt` is set: `srt://HOST:PORT`, with the
    /// stream ID `#!::r=APP/STREAMKEY,m=publish`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub srt_ingest_url: Option<String>,
    /// Where viewers play: the master playlist in storage (standard HLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub playback_url: Option<String>,
    /// Where viewers play with Low-Latency HLS: the master playlist from the worker's
    /// origin (its playlists name the media in storage). Set while Low-Latency HLS is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low_latency_playback_url: Option<String>,
    /// A JPEG of the stream's latest picture (the top rendition's), beside the master
    /// playlist, refreshed every few seconds while the stream is live: for a player's
    /// poster or a list of streams. Set with the playback URL; the object exists once the
    /// stream has been live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poster_url: Option<String>,
    /// Figures of the running stream, from the worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<LiveFigures>,
}

/// The life cycle of a stream.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The worker is being created or has not started yet.
    Pending,
    /// The worker runs and waits for an encoder.
    Idle,
    /// An encoder is publishing.
    Live,
    /// The last publish ended; the playlists carry ENDLIST.
    Ended,
    /// `spec.suspend` is set: no worker runs.
    Suspended,
    /// The stream cannot run until its spec or its references are fixed.
    Failed,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// Live figures of a publishing stream.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LiveFigures {
    /// Bitrate of the incoming stream in kbit/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingest_bitrate_kbps: Option<u64>,
    /// Frame rate of the incoming stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_rate: Option<f64>,
    /// When the current publish started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When the last segment reached storage (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_segment_at: Option<String>,
}

/// Condition types.
pub mod condition {
    /// The worker and its children exist and are healthy; the stream can take a publish.
    pub const READY: &str = "Ready";
    /// An encoder is publishing and segments are reaching storage.
    pub const LIVE: &str = "Live";
    /// Something is wrong but the stream may still work: storage errors, ffmpeg restarts.
    pub const DEGRADED: &str = "Degraded";
}
