//! Why a session ended in a protocol error.

use crate::rtmp::chunk::ChunkError;
use crate::rtmp::command::CommandError;
use crate::rtmp::control::ControlError;
use crate::rtmp::handshake::HandshakeError;

/// A protocol error: the connection must be closed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SessionError {
    /// The handshake failed.
    #[error("handshake: {0}")]
    Handshake(#[from] HandshakeError),
    /// The chunk stream was malformed or broke a limit.
    #[error("chunk stream: {0}")]
    Chunk(#[from] ChunkError),
    /// A protocol control message was malformed.
    #[error("control message: {0}")]
    Control(#[from] ControlError),
    /// A command message was malformed.
    #[error("command: {0}")]
    Command(#[from] CommandError),
    /// A data or aggregate message was malformed.
    #[error("malformed {0} message")]
    MalformedMedia(&'static str),
    /// Audio, video or metadata before a publish was accepted.
    #[error("media message (type {type_id}) before an accepted publish")]
    MediaBeforePublish {
        /// The message type.
        type_id: u8,
    },
    /// A command that needs a connection arrived before connect.
    #[error("command {0:?} before connect")]
    CommandBeforeConnect(String),
    /// A second connect on the same connection.
    #[error("connect received twice")]
    DuplicateConnect,
    /// publish while another publish is pending or active on this connection.
    #[error("publish while another publish is pending or active")]
    PublishWhileBusy,
    /// publish on a message stream that createStream did not create.
    #[error("publish on message stream {0}, which was not created")]
    UnknownMessageStream(u32),
    /// createStream beyond the configured number of message streams.
    #[error("more than {0} message streams created")]
    TooManyMessageStreams(u32),
}
