//! Protocol control messages (types 1, 2, 3, 5, 6) and User Control events (type 4):
//! parsing what the peer sends and building what the server sends.

use bytes::{BufMut, BytesMut};

use super::chunk::{RtmpMessage, message_type};

/// Chunk stream reserved for protocol control messages.
pub const CONTROL_CHUNK_STREAM_ID: u32 = 2;

/// User Control event types.
mod event_type {
    pub const STREAM_BEGIN: u16 = 0;
    pub const STREAM_EOF: u16 = 1;
    pub const STREAM_DRY: u16 = 2;
    pub const SET_BUFFER_LENGTH: u16 = 3;
    pub const STREAM_IS_RECORDED: u16 = 4;
    pub const PING_REQUEST: u16 = 6;
    pub const PING_RESPONSE: u16 = 7;
}

/// A decoded protocol control message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlMessage {
    /// Set Chunk Size (the top bit is masked off as the specification says).
    SetChunkSize(u32),
    /// Abort the incomplete message on a chunk stream.
    Abort {
        /// The chunk stream whose message to drop.
        chunk_stream_id: u32,
    },
    /// Acknowledgement of bytes received by the peer.
    Acknowledgement {
        /// Bytes the peer has received so far.
        sequence_number: u32,
    },
    /// Window Acknowledgement Size: how often the peer wants acknowledgements.
    WindowAckSize(u32),
    /// Set Peer Bandwidth.
    SetPeerBandwidth {
        /// Window size in bytes.
        window: u32,
        /// 0 hard, 1 soft, 2 dynamic.
        limit_type: u8,
    },
    /// A User Control event.
    UserControl(UserControlEvent),
}

/// A User Control event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserControlEvent {
    /// A stream became functional.
    StreamBegin(u32),
    /// Playback of a stream ended.
    StreamEof(u32),
    /// No more data on a stream.
    StreamDry(u32),
    /// The client's buffer length for a stream, in milliseconds.
    SetBufferLength {
        /// The stream.
        stream_id: u32,
        /// Buffer length in milliseconds.
        buffer_ms: u32,
    },
    /// A stream is recorded.
    StreamIsRecorded(u32),
    /// Ping request carrying a timestamp to echo.
    PingRequest(u32),
    /// Ping response echoing a timestamp.
    PingResponse(u32),
    /// Any other event type.
    Other(u16),
}

/// Why a control message could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// The payload is shorter than its type requires.
    #[error("control message of type {type_id} has a {length}-byte payload, too short")]
    Truncated {
        /// The message type.
        type_id: u8,
        /// The payload length received.
        length: usize,
    },
}

/// Parses `message` if it is a protocol control or user control message; `Ok(None)` for
/// any other type.
pub fn parse(message: &RtmpMessage) -> Result<Option<ControlMessage>, ControlError> {
    let payload = &message.payload[..];
    let truncated = || ControlError::Truncated { type_id: message.type_id, length: payload.len() };
    let u32_at = |offset: usize| -> Result<u32, ControlError> {
        payload
            .get(offset..offset + 4)
            .and_then(|bytes| <[u8; 4]>::try_from(bytes).ok())
            .map(u32::from_be_bytes)
            .ok_or_else(truncated)
    };
    let parsed = match message.type_id {
        message_type::SET_CHUNK_SIZE => ControlMessage::SetChunkSize(u32_at(0)? & 0x7FFF_FFFF),
        message_type::ABORT => ControlMessage::Abort { chunk_stream_id: u32_at(0)? },
        message_type::ACKNOWLEDGEMENT => ControlMessage::Acknowledgement { sequence_number: u32_at(0)? },
        message_type::WINDOW_ACK_SIZE => ControlMessage::WindowAckSize(u32_at(0)?),
        message_type::SET_PEER_BANDWIDTH => ControlMessage::SetPeerBandwidth {
            window: u32_at(0)?,
            limit_type: payload.get(4).copied().ok_or_else(truncated)?,
        },
        message_type::USER_CONTROL => {
            let event = payload
                .get(..2)
                .and_then(|bytes| <[u8; 2]>::try_from(bytes).ok())
                .map(u16::from_be_bytes)
                .ok_or_else(truncated)?;
            ControlMessage::UserControl(match event {
                event_type::STREAM_BEGIN => UserControlEvent::StreamBegin(u32_at(2)?),
                event_type::STREAM_EOF => UserControlEvent::StreamEof(u32_at(2)?),
                event_type::STREAM_DRY => UserControlEvent::StreamDry(u32_at(2)?),
                event_type::SET_BUFFER_LENGTH => {
                    UserControlEvent::SetBufferLength { stream_id: u32_at(2)?, buffer_ms: u32_at(6)? }
                }
                event_type::STREAM_IS_RECORDED => UserControlEvent::StreamIsRecorded(u32_at(2)?),
                event_type::PING_REQUEST => UserControlEvent::PingRequest(u32_at(2)?),
                event_type::PING_RESPONSE => UserControlEvent::PingResponse(u32_at(2)?),
                other => UserControlEvent::Other(other),
            })
        }
        _ => return Ok(None),
    };
    Ok(Some(parsed))
}

/// Builds the message carrying `control`, ready for the chunk encoder.
pub fn build(control: ControlMessage) -> RtmpMessage {
    let mut payload = BytesMut::with_capacity(10);
    let type_id = match control {
        ControlMessage::SetChunkSize(size) => {
            payload.put_u32(size & 0x7FFF_FFFF);
            message_type::SET_CHUNK_SIZE
        }
        ControlMessage::Abort { chunk_stream_id } => {
            payload.put_u32(chunk_stream_id);
            message_type::ABORT
        }
        ControlMessage::Acknowledgement { sequence_number } => {
            payload.put_u32(sequence_number);
            message_type::ACKNOWLEDGEMENT
        }
        ControlMessage::WindowAckSize(size) => {
            payload.put_u32(size);
            message_type::WINDOW_ACK_SIZE
        }
        ControlMessage::SetPeerBandwidth { window, limit_type } => {
            payload.put_u32(window);
            payload.put_u8(limit_type);
            message_type::SET_PEER_BANDWIDTH
        }
        ControlMessage::UserControl(event) => {
            put_user_control(&mut payload, event);
            message_type::USER_CONTROL
        }
    };
    RtmpMessage {
        chunk_stream_id: CONTROL_CHUNK_STREAM_ID,
        timestamp: 0,
        type_id,
        stream_id: 0,
        payload: payload.freeze(),
    }
}

fn put_user_control(payload: &mut BytesMut, event: UserControlEvent) {
    let (kind, stream_or_value) = match event {
        UserControlEvent::StreamBegin(stream_id) => (event_type::STREAM_BEGIN, stream_id),
        UserControlEvent::StreamEof(stream_id) => (event_type::STREAM_EOF, stream_id),
        UserControlEvent::StreamDry(stream_id) => (event_type::STREAM_DRY, stream_id),
        UserControlEvent::SetBufferLength { stream_id, buffer_ms } => {
            payload.put_u16(event_type::SET_BUFFER_LENGTH);
            payload.put_u32(stream_id);
            payload.put_u32(buffer_ms);
            return;
        }
        UserControlEvent::StreamIsRecorded(stream_id) => (event_type::STREAM_IS_RECORDED, stream_id),
        UserControlEvent::PingRequest(timestamp) => (event_type::PING_REQUEST, timestamp),
        UserControlEvent::PingResponse(timestamp) => (event_type::PING_RESPONSE, timestamp),
        UserControlEvent::Other(kind) => {
            payload.put_u16(kind);
            return;
        }
    };
    payload.put_u16(kind);
    payload.put_u32(stream_or_value);
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn message(type_id: u8, payload: &'static [u8]) -> RtmpMessage {
        RtmpMessage { chunk_stream_id: 2, timestamp: 0, type_id, stream_id: 0, payload: Bytes::from_static(payload) }
    }

    #[test]
    fn parses_protocol_control_messages() {
        assert_eq!(parse(&message(1, &[0, 0, 0x10, 0])), Ok(Some(ControlMessage::SetChunkSize(4096))));
        assert_eq!(parse(&message(1, &[0xFF, 0xFF, 0xFF, 0xFF])), Ok(Some(ControlMessage::SetChunkSize(0x7FFF_FFFF))));
        assert_eq!(parse(&message(2, &[0, 0, 0, 4])), Ok(Some(ControlMessage::Abort { chunk_stream_id: 4 })));
        assert_eq!(
            parse(&message(3, &[0, 0, 1, 0])),
            Ok(Some(ControlMessage::Acknowledgement { sequence_number: 256 }))
        );
        assert_eq!(parse(&message(5, &[0, 0x26, 0x25, 0xA0])), Ok(Some(ControlMessage::WindowAckSize(2_500_000))));
        assert_eq!(
            parse(&message(6, &[0, 0x26, 0x25, 0xA0, 2])),
            Ok(Some(ControlMessage::SetPeerBandwidth { window: 2_500_000, limit_type: 2 }))
        );
        assert_eq!(parse(&message(9, &[1, 2, 3])), Ok(None));
    }

    #[test]
    fn parses_user_control_events() {
        assert_eq!(
            parse(&message(4, &[0, 6, 0, 0, 0, 9])),
            Ok(Some(ControlMessage::UserControl(UserControlEvent::PingRequest(9))))
        );
        assert_eq!(
            parse(&message(4, &[0, 3, 0, 0, 0, 1, 0, 0, 0x0B, 0xB8])),
            Ok(Some(ControlMessage::UserControl(UserControlEvent::SetBufferLength { stream_id: 1, buffer_ms: 3000 })))
        );
        assert_eq!(parse(&message(4, &[0, 31])), Ok(Some(ControlMessage::UserControl(UserControlEvent::Other(31)))));
    }

    #[test]
    fn short_payloads_are_errors() {
        assert_eq!(parse(&message(1, &[0, 0])), Err(ControlError::Truncated { type_id: 1, length: 2 }));
        assert_eq!(parse(&message(6, &[0, 0, 0, 1])), Err(ControlError::Truncated { type_id: 6, length: 4 }));
        assert_eq!(parse(&message(4, &[0])), Err(ControlError::Truncated { type_id: 4, length: 1 }));
        assert_eq!(parse(&message(4, &[0, 6, 0])), Err(ControlError::Truncated { type_id: 4, length: 3 }));
    }

    #[test]
    fn builds_server_messages() {
        let ack = build(ControlMessage::Acknowledgement { sequence_number: 0x0102_0304 });
        assert_eq!((ack.chunk_stream_id, ack.type_id, ack.stream_id), (2, 3, 0));
        assert_eq!(&ack.payload[..], &[1, 2, 3, 4]);
        assert_eq!(
            &build(ControlMessage::SetPeerBandwidth { window: 2_500_000, limit_type: 2 }).payload[..],
            &[0, 0x26, 0x25, 0xA0, 2]
        );
        assert_eq!(
            &build(ControlMessage::UserControl(UserControlEvent::StreamBegin(1))).payload[..],
            &[0, 0, 0, 0, 0, 1]
        );
        assert_eq!(
            &build(ControlMessage::UserControl(UserControlEvent::PingResponse(7))).payload[..],
            &[0, 7, 0, 0, 0, 7]
        );
    }
}
