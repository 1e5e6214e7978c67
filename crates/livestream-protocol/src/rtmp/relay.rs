//! Handing a publishing connection on to another RTMP server, as an ingest gateway does
//! with a stream's worker: what the server says to the client's replayed bytes, filtered
//! for the client. Sans IO: the server's bytes go in, the bytes for the client come out.
//!
//! The gateway has already answered the client's handshake, `connect` and `createStream`
//! itself (it had to, to learn the stream key from `publish`), and then replays every
//! byte the client sent to the server. The server answers all of it again. Those answers
//! are dropped: its handshake reply, its control messages and command results. Its
//! answer to `publish` (its first `onStatus`) and everything after go to the client,
//! decoded and encoded again at the chunk size the client reads with, so the client's
//! view of every chunk stream stays whole. The bytes from the client need no such care:
//! the server has seen all of them, so they are copied as they come.

use bytes::{Bytes, BytesMut};
use thiserror::Error;

use super::chunk::{ChunkDecoder, ChunkEncoder, ChunkError, ChunkLimits, RtmpMessage};
use super::command::Command;
use super::control::{self, ControlMessage};
use super::handshake::HANDSHAKE_PACKET_SIZE;

/// The server's handshake reply: S0, S1 and S2.
const HANDSHAKE_REPLY_LEN: usize = 1 + 2 * HANDSHAKE_PACKET_SIZE;
/// Type id of an AMF0 command message.
const COMMAND_AMF0: u8 = 20;
/// Bytes the server may send before it answers the publish: its answers to a handshake
/// and a few commands take a few hundred.
const MAX_BYTES_BEFORE_ANSWER: usize = 64 * 1024;

/// Errors of the server's side of a relay.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RelayError {
    /// The server's chunk stream is malformed.
    #[error("the server's chunk stream: {0}")]
    Chunk(#[from] ChunkError),
    /// The server said too much without answering the publish.
    #[error("the server sent {0} bytes without answering the publish")]
    NoAnswer(usize),
}

/// What the server answered to `publish`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishAnswer {
    /// `NetStream.Publish.Start`: media may flow.
    Started,
    /// Any other status: the publish is refused (`NetStream.Publish.BadName`, ...).
    Refused {
        /// The status code.
        code: String,
    },
}

/// Filters what a server sends back to a relayed client.
#[derive(Debug)]
pub struct ServerReplies {
    handshake_left: usize,
    received: usize,
    decoder: ChunkDecoder,
    encoder: ChunkEncoder,
    input: BytesMut,
    output: BytesMut,
    answer: Option<PublishAnswer>,
}

impl ServerReplies {
    /// Filters for a client that reads chunks of `client_chunk_size` (what the gateway
    /// announced to it).
    pub fn new(client_chunk_size: u32) -> Result<Self, RelayError> {
        let mut encoder = ChunkEncoder::new();
        encoder.set_chunk_size(client_chunk_size)?;
        Ok(Self {
            handshake_left: HANDSHAKE_REPLY_LEN,
            received: 0,
            decoder: ChunkDecoder::new(ChunkLimits::default()),
            encoder,
            input: BytesMut::new(),
            output: BytesMut::new(),
            answer: None,
        })
    }

    /// Takes bytes the server sent.
    pub fn handle_input(&mut self, mut bytes: &[u8]) -> Result<(), RelayError> {
        let skipped = self.handshake_left.min(bytes.len());
        self.handshake_left -= skipped;
        bytes = &bytes[skipped..];
        self.received = self.received.saturating_add(bytes.len());
        if self.answer.is_none() && self.received > MAX_BYTES_BEFORE_ANSWER {
            return Err(RelayError::NoAnswer(self.received));
        }
        self.input.extend_from_slice(bytes);
        while let Some(message) = self.decoder.decode(&mut self.input)? {
            if let Some(ControlMessage::SetChunkSize(size)) = control::parse(&message).ok().flatten() {
                self.decoder.set_chunk_size(size)?;
            }
            if self.answer.is_none() {
                self.answer = publish_answer(&message);
            }
            if self.answer.is_some() {
                self.forward(&message)?;
            }
        }
        Ok(())
    }

    /// The server's answer to the publish, once it came.
    pub fn publish_answer(&self) -> Option<&PublishAnswer> {
        self.answer.as_ref()
    }

    /// Bytes for the client, if any.
    pub fn take_output(&mut self) -> Option<Bytes> {
        (!self.output.is_empty()).then(|| self.output.split().freeze())
    }

    fn forward(&mut self, message: &RtmpMessage) -> Result<(), RelayError> {
        self.encoder.encode(message, &mut self.output)?;
        // The server's later chunk size is the client's too: announced at the old size,
        // used from the next message on.
        if let Some(ControlMessage::SetChunkSize(size)) = control::parse(message).ok().flatten() {
            self.encoder.set_chunk_size(size)?;
        }
        Ok(())
    }
}

/// The answer an `onStatus` about publishing gives, if `message` is one.
fn publish_answer(message: &RtmpMessage) -> Option<PublishAnswer> {
    if message.type_id != COMMAND_AMF0 {
        return None;
    }
    let command = Command::parse(message).ok()?;
    if command.name != "onStatus" {
        return None;
    }
    let code = command.arguments.first()?.property("code")?.as_str()?;
    match code {
        "NetStream.Publish.Start" => Some(PublishAnswer::Started),
        code if code.starts_with("NetStream.Publish.") => Some(PublishAnswer::Refused { code: code.to_string() }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::amf0::Amf0Value;
    use crate::rtmp::chunk::ChunkLimits;
    use crate::rtmp::command::command_message;
    use crate::rtmp::session::replies;

    /// `messages` as a server sends them, from the default chunk size on.
    fn wire(messages: &[RtmpMessage]) -> BytesMut {
        let mut encoder = ChunkEncoder::new();
        let mut out = BytesMut::new();
        for message in messages {
            encoder.encode(message, &mut out).unwrap();
            if let Some(ControlMessage::SetChunkSize(size)) = control::parse(message).unwrap() {
                encoder.set_chunk_size(size).unwrap();
            }
        }
        out
    }

    fn decode_all(mut bytes: BytesMut, chunk_size: u32) -> Vec<RtmpMessage> {
        let mut decoder = ChunkDecoder::new(ChunkLimits::default());
        decoder.set_chunk_size(chunk_size).unwrap();
        let mut messages = Vec::new();
        while let Some(message) = decoder.decode(&mut bytes).unwrap() {
            if let Some(ControlMessage::SetChunkSize(size)) = control::parse(&message).unwrap() {
                decoder.set_chunk_size(size).unwrap();
            }
            messages.push(message);
        }
        messages
    }

    /// What a server sends to a replayed connect, createStream and publish.
    fn server_answers(publish_code: &str) -> Vec<u8> {
        let mut bytes = vec![3u8; HANDSHAKE_REPLY_LEN];
        let status = command_message(
            5,
            1,
            &[
                Amf0Value::string("onStatus"),
                Amf0Value::Number(0.0),
                Amf0Value::Null,
                Amf0Value::object([("level", Amf0Value::string("status")), ("code", Amf0Value::string(publish_code))]),
            ],
        );
        let messages = [
            control::build(ControlMessage::WindowAckSize(2_500_000)),
            control::build(ControlMessage::SetChunkSize(4096)),
            replies::connect_result(1.0, None),
            replies::result(2.0, Amf0Value::Number(1.0)),
            status,
            control::build(ControlMessage::Acknowledgement { sequence_number: 7 }),
        ];
        bytes.extend_from_slice(&wire(&messages));
        bytes
    }

    #[test]
    fn the_answers_to_the_replay_are_dropped_and_the_rest_reencoded() {
        let mut replies = ServerReplies::new(4096).unwrap();
        let bytes = server_answers("NetStream.Publish.Start");
        // Byte by byte: nothing depends on how the server's bytes are split.
        for byte in &bytes {
            replies.handle_input(std::slice::from_ref(byte)).unwrap();
        }
        assert_eq!(replies.publish_answer(), Some(&PublishAnswer::Started));
        let forwarded = decode_all(BytesMut::from(&replies.take_output().unwrap()[..]), 4096);
        assert_eq!(forwarded.len(), 2, "the publish status and the acknowledgement after it");
        assert_eq!(Command::parse(&forwarded[0]).unwrap().name, "onStatus");
        assert_eq!(
            control::parse(&forwarded[1]).unwrap(),
            Some(ControlMessage::Acknowledgement { sequence_number: 7 })
        );
        assert_eq!(replies.take_output(), None);
    }

    #[test]
    fn a_refusal_is_forwarded_and_named() {
        let mut replies = ServerReplies::new(4096).unwrap();
        replies.handle_input(&server_answers("NetStream.Publish.BadName")).unwrap();
        assert_eq!(
            replies.publish_answer(),
            Some(&PublishAnswer::Refused { code: "NetStream.Publish.BadName".into() })
        );
        assert!(replies.take_output().is_some(), "the client sees the server's refusal");
    }

    #[test]
    fn a_server_that_never_answers_is_an_error() {
        let mut replies = ServerReplies::new(4096).unwrap();
        replies.handle_input(&vec![3u8; HANDSHAKE_REPLY_LEN]).unwrap();
        let ack = wire(&[control::build(ControlMessage::Acknowledgement { sequence_number: 1 })]);
        let mut result = Ok(());
        for _ in 0..(MAX_BYTES_BEFORE_ANSWER / ack.len() + 2) {
            result = replies.handle_input(&ack);
            if result.is_err() {
                break;
            }
        }
        assert!(matches!(result, Err(RelayError::NoAnswer(_))), "{result:?}");
    }
}
