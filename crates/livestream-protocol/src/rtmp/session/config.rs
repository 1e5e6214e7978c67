//! Settings of one publish session.

use crate::rtmp::chunk::ChunkLimits;

/// Limits and protocol settings of a [`Session`](super::Session).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    /// Bounds on incoming chunks and messages.
    pub chunk_limits: ChunkLimits,
    /// Chunk size the server announces and uses for what it sends.
    pub outgoing_chunk_size: u32,
    /// Window Acknowledgement Size the server announces (how often the client acknowledges).
    pub window_ack_size: u32,
    /// Set Peer Bandwidth window the server announces.
    pub peer_bandwidth: u32,
    /// Most message streams a connection may create with createStream.
    pub max_message_streams: u32,
    /// The Enhanced RTMP video FourCCs the server takes, named in the connect reply to a
    /// client that sends its own `fourCcList`.
    pub video_fourccs: &'static [&'static str],
}

/// What the worker decodes: H.264, HEVC and AV1.
pub const VIDEO_FOURCCS: &[&str] = &["avc1", "hvc1", "av01"];

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            chunk_limits: ChunkLimits::default(),
            outgoing_chunk_size: 4096,
            window_ack_size: 2_500_000,
            peer_bandwidth: 2_500_000,
            max_message_streams: 8,
            video_fourccs: VIDEO_FOURCCS,
        }
    }
}
