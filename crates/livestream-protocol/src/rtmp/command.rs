//! AMF0 command messages: parsing what the client invokes (connect, publish, ...) and
//! building command messages to send.

use bytes::BytesMut;

use super::chunk::{RtmpMessage, message_type};
use crate::media::amf0::{self, Amf0Error, Amf0Reader, Amf0Value};

/// A command invocation: name, transaction id, command object and further arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// Procedure name, for example "connect" or "publish".
    pub name: String,
    /// Transaction id the reply must carry (0 when none is expected).
    pub transaction_id: f64,
    /// The command object (Null for most commands after connect).
    pub command_object: Amf0Value,
    /// Arguments after the command object.
    pub arguments: Vec<Amf0Value>,
}

/// Why a command message could not be parsed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CommandError {
    /// The payload is not valid AMF0.
    #[error("malformed AMF0 in command: {0}")]
    Amf(#[from] Amf0Error),
    /// The first value is not a string.
    #[error("command message does not start with a command name")]
    MissingName,
}

impl Command {
    /// Parses an AMF0 command (type 20) or AMF3-framed command (type 17, whose AMF0 body
    /// follows a leading format byte).
    pub fn parse(message: &RtmpMessage) -> Result<Command, CommandError> {
        let mut body = &message.payload[..];
        if message.type_id == message_type::COMMAND_AMF3
            && let Some((0, rest)) = body.split_first()
        {
            body = rest;
        }
        let mut reader = Amf0Reader::new(body);
        let name = match reader.read_value()? {
            Amf0Value::String(name) => name,
            _ => return Err(CommandError::MissingName),
        };
        let transaction_id = if reader.is_empty() { 0.0 } else { reader.read_value()?.as_number().unwrap_or(0.0) };
        let command_object = if reader.is_empty() { Amf0Value::Null } else { reader.read_value()? };
        let arguments = reader.read_all()?;
        Ok(Command { name, transaction_id, command_object, arguments })
    }

    /// The string argument at `index` (after the command object), if there is one.
    pub fn string_argument(&self, index: usize) -> Option<&str> {
        self.arguments.get(index).and_then(Amf0Value::as_str)
    }

    /// The number argument at `index` (after the command object), if there is one.
    pub fn number_argument(&self, index: usize) -> Option<f64> {
        self.arguments.get(index).and_then(Amf0Value::as_number)
    }
}

/// Builds an AMF0 command message from `values` on the given chunk and message streams.
pub fn command_message(chunk_stream_id: u32, stream_id: u32, values: &[Amf0Value]) -> RtmpMessage {
    let mut payload = BytesMut::new();
    amf0::encode_all(values, &mut payload);
    RtmpMessage {
        chunk_stream_id,
        timestamp: 0,
        type_id: message_type::COMMAND_AMF0,
        stream_id,
        payload: payload.freeze(),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn message(type_id: u8, payload: Vec<u8>) -> RtmpMessage {
        RtmpMessage { chunk_stream_id: 3, timestamp: 0, type_id, stream_id: 0, payload: Bytes::from(payload) }
    }

    #[test]
    fn parses_publish() {
        let built = command_message(
            8,
            1,
            &[
                Amf0Value::string("publish"),
                Amf0Value::Number(5.0),
                Amf0Value::Null,
                Amf0Value::string("key"),
                Amf0Value::string("live"),
            ],
        );
        assert_eq!((built.chunk_stream_id, built.stream_id, built.type_id), (8, 1, 20));
        let command = Command::parse(&built).unwrap();
        assert_eq!(command.name, "publish");
        assert_eq!(command.transaction_id, 5.0);
        assert_eq!(command.command_object, Amf0Value::Null);
        assert_eq!(command.string_argument(0), Some("key"));
        assert_eq!(command.string_argument(1), Some("live"));
        assert_eq!(command.string_argument(2), None);
    }

    #[test]
    fn parses_amf3_framed_command() {
        let mut payload = vec![0u8];
        payload.extend_from_slice(b"\x02\x00\x0ccreateStream\x00\x40\x00\x00\x00\x00\x00\x00\x00\x05");
        let command = Command::parse(&message(17, payload)).unwrap();
        assert_eq!(command.name, "createStream");
        assert_eq!(command.transaction_id, 2.0);
    }

    #[test]
    fn short_commands_get_defaults() {
        let command = Command::parse(&message(20, b"\x02\x00\x04ping".to_vec())).unwrap();
        assert_eq!((command.transaction_id, command.command_object), (0.0, Amf0Value::Null));
    }

    #[test]
    fn malformed_commands_are_errors() {
        assert_eq!(Command::parse(&message(20, vec![0x05])), Err(CommandError::MissingName));
        assert_eq!(Command::parse(&message(20, vec![])), Err(CommandError::Amf(Amf0Error::Truncated)));
        assert_eq!(
            Command::parse(&message(20, b"\x02\x00\x01a\x07\x00\x00".to_vec())),
            Err(CommandError::Amf(Amf0Error::UnsupportedMarker(7)))
        );
    }
}
