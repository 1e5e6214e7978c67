//! The live status a worker reports on `GET /status`, which the operator reads to fill in
//! the LiveStream's status. It carries no secret.

use serde::{Deserialize, Serialize};

/// Where a worker's stream is.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum StreamPhase {
    /// Waiting for an encoder.
    Idle,
    /// An encoder is publishing.
    Live,
    /// The encoder disconnected; a reconnect within the grace window continues the stream.
    Reconnecting,
    /// The last publish ended and the playlists carry ENDLIST.
    Ended,
}

/// What can go wrong with a stream without stopping it (yet); the reason of the
/// LiveStream's Degraded condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProblemKind {
    /// Uploads fail and are retried.
    StorageUnavailable,
    /// ffmpeg died and is being restarted.
    TranscoderRestarting,
    /// ffmpeg died too often; the publish was stopped.
    TranscoderFailed,
    /// ffmpeg does not keep up with the source: the encoder is slowed down, viewers stall.
    TranscoderBehind,
    /// Media was lost before it reached storage (storage too slow for too long).
    MediaDropped,
    /// Another worker took over the stream's playlists; this one stopped writing.
    Superseded,
    /// The last publish was refused for what it carried (a codec the worker does not
    /// decode, no video, a passthrough the container cannot hold).
    SourceUnsupported,
}

impl ProblemKind {
    /// The CamelCase reason, as conditions carry it.
    pub fn reason(self) -> &'static str {
        match self {
            ProblemKind::StorageUnavailable => "StorageUnavailable",
            ProblemKind::TranscoderRestarting => "TranscoderRestarting",
            ProblemKind::TranscoderFailed => "TranscoderFailed",
            ProblemKind::TranscoderBehind => "TranscoderBehind",
            ProblemKind::MediaDropped => "MediaDropped",
            ProblemKind::Superseded => "Superseded",
            ProblemKind::SourceUnsupported => "SourceUnsupported",
        }
    }
}

/// A problem that does not stop the stream (yet).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// CamelCase reason, e.g. `StorageUnavailable`, `TranscoderRestarting`.
    pub reason: String,
    /// What happened, for people.
    pub message: String,
}

/// The body of `GET /status`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkerStatus {
    pub phase: StreamPhase,
    /// When the current publish started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When the last segment reached storage (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_segment_at: Option<String>,
    /// Incoming bitrate in kbit/s while live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingest_bitrate_kbps: Option<u64>,
    /// Incoming frame rate while live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_rate: Option<f64>,
    /// Current problems; empty when healthy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
}

impl WorkerStatus {
    pub fn idle() -> Self {
        Self {
            phase: StreamPhase::Idle,
            started_at: None,
            last_segment_at: None,
            ingest_bitrate_kbps: None,
            frame_rate: None,
            problems: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape_is_stable() {
        let mut status = WorkerStatus::idle();
        status.phase = StreamPhase::Live;
        status.ingest_bitrate_kbps = Some(2500);
        status.problems.push(Problem { reason: "StorageUnavailable".into(), message: "retrying".into() });
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "phase": "Live",
                "ingestBitrateKbps": 2500,
                "problems": [{"reason": "StorageUnavailable", "message": "retrying"}],
            })
        );
        assert_eq!(serde_json::from_value::<WorkerStatus>(json).unwrap(), status);
    }
}
