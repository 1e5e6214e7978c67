//! The interface between the listener and the rest of the worker (or the ingest
//! gateway): who may publish, and where the media goes.

use std::net::SocketAddr;

use tokio::sync::mpsc;

use crate::ingest::session::{Rejection, StreamKey};
use crate::media::flv::FlvTag;

/// Largest capacity [`PublishSink::channel`] creates.
pub const MAX_CHANNEL_CAPACITY: usize = 1 << 16;

/// A client's request to publish.
#[derive(Debug, Clone)]
pub struct PublishRequest {
    /// Application name from the connect command.
    pub app: String,
    /// The stream key (never log it; use [`StreamKey::fingerprint`]).
    pub stream_key: StreamKey,
    /// The client's address.
    pub peer: SocketAddr,
}

/// Where an accepted publish goes.
#[derive(Debug)]
pub enum Publish {
    /// Its media comes to this process, through the sink.
    Media(PublishSink),
    /// The connection is handed to the RTMP server at this address (the stream's worker,
    /// for the ingest gateway), which decides the publish itself: everything the client
    /// sent is replayed to it, and then bytes are copied both ways. Only a handler whose
    /// [`PublishHandler::relays`] is true may answer so.
    Relay(SocketAddr),
}

/// Decides whether a publish may go ahead and where its media goes.
pub trait PublishHandler: Send + Sync {
    /// Accepts the publish, or refuses it. Called on the connection's task; keep it quick.
    fn authorize(&self, request: &PublishRequest) -> Result<Publish, Rejection>;

    /// Whether publishes may be relayed: the listener then keeps every byte a client sends
    /// until its publish is decided, to replay them.
    fn relays(&self) -> bool {
        false
    }

    /// Whether [`authorize`](Self::authorize) would let `request` publish (its
    /// application, its key, a stream not live from another publisher), without starting
    /// anything: for protocols that refuse a caller during their handshake (SRT), before a
    /// connection exists. Called on a thread of the protocol library; keep it quicker still.
    fn admits(&self, request: &PublishRequest) -> Result<(), Rejection> {
        let _ = request;
        Ok(())
    }
}

/// One message of an accepted publish, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaMessage {
    /// An audio, video or metadata (`onMetaData`) message, as the FLV tag it maps onto.
    Tag(FlvTag),
    /// The publish ended; nothing follows. A channel that closes without this message
    /// ended like [`EndReason::Disconnected`].
    End(EndReason),
}

/// How a publish ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// The client unpublished cleanly.
    Unpublished,
    /// The connection dropped without an unpublish.
    Disconnected,
    /// The client sent nothing for the idle timeout.
    TimedOut,
    /// The client broke the protocol.
    ProtocolError(String),
    /// The listener is shutting down.
    Shutdown,
}

impl EndReason {
    /// True only for a clean unpublish.
    pub fn is_clean(&self) -> bool {
        matches!(self, EndReason::Unpublished)
    }
}

/// Where an accepted publish's media goes: a bounded channel. While it is full the
/// connection stops reading, so TCP pushes back on the encoder.
#[derive(Debug, Clone)]
pub struct PublishSink {
    sender: mpsc::Sender<MediaMessage>,
}

impl PublishSink {
    /// Wraps the sending half of a bounded channel.
    pub fn new(sender: mpsc::Sender<MediaMessage>) -> Self {
        Self { sender }
    }

    /// A sink and the receiver of its channel, holding at most `capacity` messages
    /// (clamped to 1..=[`MAX_CHANNEL_CAPACITY`]).
    pub fn channel(capacity: usize) -> (PublishSink, mpsc::Receiver<MediaMessage>) {
        let (sender, receiver) = mpsc::channel(capacity.clamp(1, MAX_CHANNEL_CAPACITY));
        (Self::new(sender), receiver)
    }

    /// Sends one message, waiting while the channel is full. Fails if the receiver is gone.
    pub(crate) async fn send(&self, message: MediaMessage) -> Result<(), mpsc::error::SendError<MediaMessage>> {
        self.sender.send(message).await
    }
}
