//! What a session reports to its shell, and how the shell refuses a publish.

use bytes::Bytes;

use super::StreamKey;

/// Something the shell must act on or forward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// The client connected to an application.
    Connected {
        /// Application name, without query string.
        app: String,
    },
    /// The client asked to publish; answer with `accept_publish` or `reject_publish`.
    PublishRequested {
        /// Application name, without query string.
        app: String,
        /// The stream key (publish name without query string).
        stream_key: StreamKey,
    },
    /// Stream metadata: an FLV script tag body (AMF0 "onMetaData" and its object).
    Metadata {
        /// The script tag body.
        data: Bytes,
    },
    /// An audio message: an FLV audio tag body.
    Audio {
        /// Timestamp in milliseconds.
        timestamp: u32,
        /// The tag body.
        data: Bytes,
    },
    /// A video message: an FLV video tag body.
    Video {
        /// Timestamp in milliseconds.
        timestamp: u32,
        /// The tag body.
        data: Bytes,
    },
    /// The client ended the publish cleanly (FCUnpublish, deleteStream or closeStream).
    Unpublished,
}

/// Why a publish is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The stream key is not valid for this application.
    BadKey,
    /// The stream is already live from another publisher, which keeps it.
    AlreadyLive,
    /// Any other reason, with a message the client is shown.
    Other(String),
}

impl Rejection {
    /// A short label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Rejection::BadKey => "bad_key",
            Rejection::AlreadyLive => "already_live",
            Rejection::Other(_) => "other",
        }
    }
}
