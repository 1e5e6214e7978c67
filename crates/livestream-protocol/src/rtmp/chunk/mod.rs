//! The RTMP chunk stream: messages split into chunks, interleaved across chunk streams.
//!
//! [`ChunkDecoder`] reassembles incoming chunks into [`RtmpMessage`]s within
//! [`ChunkLimits`]; [`ChunkEncoder`] splits outgoing messages into chunks.

mod decoder;
mod encoder;

pub use decoder::ChunkDecoder;
pub use encoder::ChunkEncoder;

use bytes::Bytes;

/// Chunk size both sides use until a Set Chunk Size message changes it.
pub const DEFAULT_CHUNK_SIZE: u32 = 128;
/// Largest chunk size the wire format can express (the top bit must be zero).
pub const MAX_CHUNK_SIZE_FIELD: u32 = 0x7FFF_FFFF;
/// Lowest chunk stream id usable for messages (0 and 1 select the longer basic headers).
pub const MIN_CHUNK_STREAM_ID: u32 = 2;
/// Highest chunk stream id the three-byte basic header can express.
pub const MAX_CHUNK_STREAM_ID: u32 = 65_599;
/// Largest message length the three-byte length field can express.
pub const MAX_MESSAGE_LENGTH_FIELD: u32 = 0xFF_FFFF;
/// Timestamp field value announcing a four-byte extended timestamp.
const EXTENDED_TIMESTAMP_MARKER: u32 = 0xFF_FFFF;

/// RTMP message type ids.
pub mod message_type {
    /// Protocol control: Set Chunk Size.
    pub const SET_CHUNK_SIZE: u8 = 1;
    /// Protocol control: Abort Message.
    pub const ABORT: u8 = 2;
    /// Protocol control: Acknowledgement.
    pub const ACKNOWLEDGEMENT: u8 = 3;
    /// User Control Message.
    pub const USER_CONTROL: u8 = 4;
    /// Protocol control: Window Acknowledgement Size.
    pub const WINDOW_ACK_SIZE: u8 = 5;
    /// Protocol control: Set Peer Bandwidth.
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    /// Audio data (an FLV audio tag body).
    pub const AUDIO: u8 = 8;
    /// Video data (an FLV video tag body).
    pub const VIDEO: u8 = 9;
    /// Data message in AMF3 framing.
    pub const DATA_AMF3: u8 = 15;
    /// Shared object in AMF3 framing.
    pub const SHARED_OBJECT_AMF3: u8 = 16;
    /// Command in AMF3 framing.
    pub const COMMAND_AMF3: u8 = 17;
    /// Data message (AMF0), for example @setDataFrame.
    pub const DATA_AMF0: u8 = 18;
    /// Shared object (AMF0).
    pub const SHARED_OBJECT_AMF0: u8 = 19;
    /// Command (AMF0), for example connect or publish.
    pub const COMMAND_AMF0: u8 = 20;
    /// Aggregate of FLV-tag-shaped sub-messages.
    pub const AGGREGATE: u8 = 22;
}

/// One complete RTMP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmpMessage {
    /// Chunk stream it travelled on.
    pub chunk_stream_id: u32,
    /// Absolute timestamp in milliseconds (wrapping at 2^32).
    pub timestamp: u32,
    /// Message type id, see [`message_type`].
    pub type_id: u8,
    /// Message stream id (0 for the connection, else a stream created by createStream).
    pub stream_id: u32,
    /// The message payload.
    pub payload: Bytes,
}

/// Bounds the decoder enforces on what a peer sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLimits {
    /// Largest chunk size a peer may set with Set Chunk Size.
    pub max_chunk_size: u32,
    /// Largest message length a message header may announce.
    pub max_message_size: u32,
    /// Most chunk streams tracked at once.
    pub max_chunk_streams: usize,
    /// Most payload bytes held in incomplete messages across all chunk streams.
    pub max_pending_bytes: usize,
}

impl Default for ChunkLimits {
    fn default() -> Self {
        Self {
            max_chunk_size: 64 * 1024,
            max_message_size: 16 * 1024 * 1024,
            max_chunk_streams: 32,
            max_pending_bytes: 32 * 1024 * 1024,
        }
    }
}

/// Why chunk data could not be decoded or encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// Set Chunk Size asked for more than the configured maximum.
    #[error("peer set chunk size {requested}, above the maximum of {max}")]
    ChunkSizeTooLarge {
        /// The size asked for.
        requested: u32,
        /// The configured maximum.
        max: u32,
    },
    /// A chunk size of zero, or with the reserved top bit set.
    #[error("invalid chunk size {0}")]
    InvalidChunkSize(u32),
    /// A message header announced more than the configured maximum message size.
    #[error("message of {length} bytes announced, above the maximum of {max}")]
    MessageTooLarge {
        /// The announced length.
        length: u32,
        /// The configured maximum.
        max: u32,
    },
    /// A new chunk stream beyond the configured number.
    #[error("more than {max} chunk streams in use")]
    TooManyChunkStreams {
        /// The configured maximum.
        max: usize,
    },
    /// A compressed header (type 1, 2 or 3) on a chunk stream with no earlier header.
    #[error("chunk header type {format} on chunk stream {chunk_stream_id}, which has no previous header")]
    MissingPreviousHeader {
        /// The chunk stream.
        chunk_stream_id: u32,
        /// The header type (1, 2 or 3).
        format: u8,
    },
    /// A type 0, 1 or 2 header while a message on that chunk stream is incomplete.
    #[error("new message header on chunk stream {chunk_stream_id} before its previous message completed")]
    HeaderInsideMessage {
        /// The chunk stream.
        chunk_stream_id: u32,
    },
    /// Incomplete messages would hold more than the configured number of bytes.
    #[error("incomplete messages exceed {max} buffered bytes")]
    PendingBytesExceeded {
        /// The configured maximum.
        max: usize,
    },
    /// An outgoing chunk stream id outside 2..=65599.
    #[error("chunk stream id {0} cannot be encoded")]
    InvalidChunkStreamId(u32),
    /// An outgoing message longer than the 24-bit length field.
    #[error("message of {0} bytes is too long to encode")]
    MessageTooLongToEncode(usize),
}
