//! The command messages the server sends in reply to a publishing client.

use crate::media::amf0::Amf0Value;
use crate::rtmp::chunk::RtmpMessage;
use crate::rtmp::command::command_message;

/// Chunk stream for connection-level command replies.
pub const COMMAND_CHUNK_STREAM_ID: u32 = 3;
/// Chunk stream for stream-level status messages.
pub const STATUS_CHUNK_STREAM_ID: u32 = 5;

/// Status codes sent in onStatus messages.
pub mod status_code {
    /// The connect succeeded.
    pub const CONNECT_SUCCESS: &str = "NetConnection.Connect.Success";
    /// Publishing started.
    pub const PUBLISH_START: &str = "NetStream.Publish.Start";
    /// Bad stream name (wrong key, or the stream is already being published).
    pub const PUBLISH_BAD_NAME: &str = "NetStream.Publish.BadName";
    /// Publishing refused for another reason.
    pub const PUBLISH_REJECTED: &str = "NetStream.Publish.Rejected";
}

/// `_result` for connect: server properties and NetConnection.Connect.Success. An
/// Enhanced RTMP client (one that sent a `fourCcList`) is told the FourCCs the server
/// takes, in a `fourCcList` of the server's properties.
pub fn connect_result(transaction_id: f64, fourccs: Option<&[&str]>) -> RtmpMessage {
    let mut properties =
        vec![("fmsVer", Amf0Value::string("FMS/3,0,1,123")), ("capabilities", Amf0Value::Number(31.0))];
    if let Some(fourccs) = fourccs {
        let list = fourccs.iter().map(|fourcc| Amf0Value::string(*fourcc)).collect();
        properties.push(("fourCcList", Amf0Value::StrictArray(list)));
    }
    command_message(
        COMMAND_CHUNK_STREAM_ID,
        0,
        &[
            Amf0Value::string("_result"),
            Amf0Value::Number(transaction_id),
            Amf0Value::object(properties),
            Amf0Value::object([
                ("level", Amf0Value::string("status")),
                ("code", Amf0Value::string(status_code::CONNECT_SUCCESS)),
                ("description", Amf0Value::string("Connection succeeded.")),
                ("objectEncoding", Amf0Value::Number(0.0)),
            ]),
        ],
    )
}

/// `_result` with a null command object and one more value (Undefined for none).
pub fn result(transaction_id: f64, value: Amf0Value) -> RtmpMessage {
    command_message(
        COMMAND_CHUNK_STREAM_ID,
        0,
        &[Amf0Value::string("_result"), Amf0Value::Number(transaction_id), Amf0Value::Null, value],
    )
}

/// `onFCPublish` announcing that publishing may start.
pub fn on_fc_publish() -> RtmpMessage {
    command_message(
        COMMAND_CHUNK_STREAM_ID,
        0,
        &[
            Amf0Value::string("onFCPublish"),
            Amf0Value::Number(0.0),
            Amf0Value::Null,
            Amf0Value::object([
                ("code", Amf0Value::string(status_code::PUBLISH_START)),
                ("description", Amf0Value::string("FCPublish accepted.")),
            ]),
        ],
    )
}

/// `onStatus` on message stream `stream_id`.
pub fn on_status(stream_id: u32, level: &str, code: &str, description: &str) -> RtmpMessage {
    command_message(
        STATUS_CHUNK_STREAM_ID,
        stream_id,
        &[
            Amf0Value::string("onStatus"),
            Amf0Value::Number(0.0),
            Amf0Value::Null,
            Amf0Value::object([
                ("level", Amf0Value::string(level)),
                ("code", Amf0Value::string(code)),
                ("description", Amf0Value::string(description)),
            ]),
        ],
    )
}
