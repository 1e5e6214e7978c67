//! A scripted client drives the session through the command flow; replies are decoded
//! back and checked.

use bytes::{Bytes, BytesMut};

use super::*;
use crate::media::amf0::{self, Amf0Value};
use crate::rtmp::chunk::{ChunkDecoder, ChunkEncoder, ChunkError, ChunkLimits, RtmpMessage};
use crate::rtmp::command::{Command, command_message};
use crate::rtmp::handshake::{HANDSHAKE_PACKET_SIZE, ServerHandshake};

fn zero_fill(buffer: &mut [u8]) {
    buffer.fill(0);
}

/// The client side: encodes commands, decodes the server's replies.
struct Client {
    session: Session,
    encoder: ChunkEncoder,
    decoder: ChunkDecoder,
    received: BytesMut,
}

impl Client {
    fn new() -> Self {
        Self::with_config(SessionConfig::default())
    }

    fn with_config(config: SessionConfig) -> Self {
        let session = Session::with_handshake(config, ServerHandshake::with_random_source(zero_fill));
        Self {
            session,
            encoder: ChunkEncoder::new(),
            decoder: ChunkDecoder::new(ChunkLimits::default()),
            received: BytesMut::new(),
        }
    }

    /// Plain handshake; returns S0+S1+S2.
    fn handshake(&mut self) -> Bytes {
        let mut c0c1 = vec![3u8];
        c0c1.extend((0..HANDSHAKE_PACKET_SIZE).map(|i| if (4..8).contains(&i) { 0 } else { i as u8 }));
        self.session.handle_input(&c0c1).unwrap();
        let reply = self.session.take_output().expect("S0+S1+S2");
        self.session.handle_input(&reply[1..1 + HANDSHAKE_PACKET_SIZE]).unwrap();
        assert_eq!(self.session.take_output(), None, "nothing is sent after C2 alone");
        reply
    }

    fn send_raw(&mut self, message: &RtmpMessage) -> Result<(), SessionError> {
        let mut wire = BytesMut::new();
        self.encoder.encode(message, &mut wire).unwrap();
        self.session.handle_input(&wire)
    }

    fn send(&mut self, message: &RtmpMessage) {
        self.send_raw(message).unwrap();
    }

    fn command(&mut self, stream_id: u32, values: &[Amf0Value]) {
        self.send(&command_message(3, stream_id, values));
    }

    /// Every message the server has written since the last call.
    fn replies(&mut self) -> Vec<RtmpMessage> {
        if let Some(bytes) = self.session.take_output() {
            self.received.extend_from_slice(&bytes);
        }
        let mut messages = Vec::new();
        while let Some(message) = self.decoder.decode(&mut self.received).unwrap() {
            if message.type_id == 1 {
                let size = u32::from_be_bytes(message.payload[..4].try_into().unwrap());
                self.decoder.set_chunk_size(size).unwrap();
            }
            messages.push(message);
        }
        messages
    }

    fn events(&mut self) -> Vec<SessionEvent> {
        std::iter::from_fn(|| self.session.next_event()).collect()
    }

    fn connect(&mut self) {
        self.handshake();
        self.command(
            0,
            &[
                Amf0Value::string("connect"),
                Amf0Value::Number(1.0),
                Amf0Value::object([
                    ("app", Amf0Value::string("live")),
                    ("type", Amf0Value::string("nonprivate")),
                    ("tcUrl", Amf0Value::string("rtmp://127.0.0.1:1935/live")),
                ]),
            ],
        );
    }

    fn create_stream_and_publish(&mut self, name: &str) {
        self.command(0, &[Amf0Value::string("createStream"), Amf0Value::Number(4.0), Amf0Value::Null]);
        self.command(
            1,
            &[
                Amf0Value::string("publish"),
                Amf0Value::Number(5.0),
                Amf0Value::Null,
                Amf0Value::string(name),
                Amf0Value::string("live"),
            ],
        );
    }

    fn media(&mut self, type_id: u8, timestamp: u32, payload: &'static [u8]) -> Result<(), SessionError> {
        let message =
            RtmpMessage { chunk_stream_id: 6, timestamp, type_id, stream_id: 1, payload: Bytes::from_static(payload) };
        self.send_raw(&message)
    }
}

fn command_of(message: &RtmpMessage) -> Command {
    assert_eq!(message.type_id, 20, "expected an AMF0 command, got type {}", message.type_id);
    Command::parse(message).unwrap()
}

fn status_code_of(message: &RtmpMessage) -> (String, String, String) {
    let command = command_of(message);
    assert_eq!(command.name, "onStatus");
    let info = &command.arguments[0];
    let text = |key: &str| info.property(key).and_then(Amf0Value::as_str).unwrap_or_default().to_owned();
    (text("level"), text("code"), text("description"))
}

#[test]
fn handshake_reply_is_s0_s1_s2() {
    let mut client = Client::new();
    let reply = client.handshake();
    assert_eq!(reply.len(), 1 + 2 * HANDSHAKE_PACKET_SIZE);
    assert_eq!(reply[0], 3);
}

#[test]
fn connect_is_answered_with_control_messages_and_result() {
    let mut client = Client::new();
    client.connect();
    assert_eq!(client.events(), vec![SessionEvent::Connected { app: "live".into() }]);

    let raw = client.session.take_output().unwrap();
    // Window Acknowledgement Size 2500000, Set Peer Bandwidth 2500000 dynamic, Set Chunk
    // Size 4096: three type 0 chunks on chunk stream 2, byte for byte.
    let expected_controls: Vec<u8> = [
        &[0x02, 0, 0, 0, 0, 0, 4, 5, 0, 0, 0, 0, 0x00, 0x26, 0x25, 0xA0][..],
        &[0x02, 0, 0, 0, 0, 0, 5, 6, 0, 0, 0, 0, 0x00, 0x26, 0x25, 0xA0, 0x02],
        &[0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0x00, 0x00, 0x10, 0x00],
    ]
    .concat();
    assert_eq!(&raw[..expected_controls.len()], &expected_controls[..]);

    client.received.extend_from_slice(&raw);
    let replies = client.replies();
    assert_eq!(replies.len(), 4);
    let result = command_of(&replies[3]);
    assert_eq!((result.name.as_str(), result.transaction_id), ("_result", 1.0));
    assert_eq!(replies[3].chunk_stream_id, 3);
    let info = &result.arguments[0];
    assert_eq!(info.property("code").and_then(Amf0Value::as_str), Some("NetConnection.Connect.Success"));
    assert_eq!(info.property("level").and_then(Amf0Value::as_str), Some("status"));
    assert_eq!(result.command_object.property("fmsVer").and_then(Amf0Value::as_str), Some("FMS/3,0,1,123"));
    assert_eq!(result.command_object.property("fourCcList"), None, "a legacy client is answered as before");
}

#[test]
fn an_enhanced_rtmp_client_is_told_the_fourccs_the_server_takes() {
    let mut client = Client::new();
    client.handshake();
    let offered = ["av01", "vp09", "hvc1", "avc1"].map(Amf0Value::string).to_vec();
    client.command(
        0,
        &[
            Amf0Value::string("connect"),
            Amf0Value::Number(1.0),
            Amf0Value::object([("app", Amf0Value::string("live")), ("fourCcList", Amf0Value::StrictArray(offered))]),
        ],
    );
    let replies = client.replies();
    let result = command_of(replies.last().unwrap());
    let taken = ["avc1", "hvc1", "av01"].map(Amf0Value::string).to_vec();
    assert_eq!(result.command_object.property("fourCcList"), Some(&Amf0Value::StrictArray(taken)));
}

#[test]
fn full_publish_flow() {
    let mut client = Client::new();
    client.connect();
    client.replies();
    client.events();

    client.command(
        0,
        &[Amf0Value::string("releaseStream"), Amf0Value::Number(2.0), Amf0Value::Null, Amf0Value::string("key")],
    );
    client.command(
        0,
        &[Amf0Value::string("FCPublish"), Amf0Value::Number(3.0), Amf0Value::Null, Amf0Value::string("key")],
    );
    let replies = client.replies();
    let names: Vec<(String, f64)> =
        replies.iter().map(command_of).map(|command| (command.name, command.transaction_id)).collect();
    assert_eq!(names, vec![("_result".into(), 2.0), ("onFCPublish".into(), 0.0), ("_result".into(), 3.0)]);

    client.command(0, &[Amf0Value::string("createStream"), Amf0Value::Number(4.0), Amf0Value::Null]);
    let replies = client.replies();
    let result = command_of(&replies[0]);
    assert_eq!((result.name.as_str(), result.transaction_id), ("_result", 4.0));
    assert_eq!(result.number_argument(0), Some(1.0), "createStream returns stream id 1");

    client.command(
        1,
        &[
            Amf0Value::string("publish"),
            Amf0Value::Number(5.0),
            Amf0Value::Null,
            Amf0Value::string("key?token=1"),
            Amf0Value::string("live"),
        ],
    );
    assert!(client.replies().is_empty(), "nothing is sent before the shell decides");
    assert_eq!(
        client.events(),
        vec![SessionEvent::PublishRequested { app: "live".into(), stream_key: StreamKey::new("key") }]
    );
    assert!(client.session.is_publish_pending());

    client.session.accept_publish().unwrap();
    let replies = client.replies();
    assert_eq!(replies.len(), 2);
    assert_eq!((replies[0].type_id, &replies[0].payload[..]), (4, &[0, 0, 0, 0, 0, 1][..]), "StreamBegin 1");
    assert_eq!(replies[1].stream_id, 1, "onStatus travels on the published stream");
    let (level, code, _) = status_code_of(&replies[1]);
    assert_eq!((level.as_str(), code.as_str()), ("status", "NetStream.Publish.Start"));

    let metadata = Amf0Value::EcmaArray(vec![("width".into(), Amf0Value::Number(160.0))]);
    let mut data = BytesMut::new();
    amf0::encode_all(
        &[Amf0Value::string("@setDataFrame"), Amf0Value::string("onMetaData"), metadata.clone()],
        &mut data,
    );
    client.send(&RtmpMessage { chunk_stream_id: 4, timestamp: 0, type_id: 18, stream_id: 1, payload: data.freeze() });
    client.media(9, 0, &[0x17, 0x00, 0, 0, 0, 1]).unwrap();
    client.media(8, 23, &[0xAF, 0x01, 0x21]).unwrap();
    let mut expected_metadata = BytesMut::new();
    amf0::encode_all(&[Amf0Value::string("onMetaData"), metadata], &mut expected_metadata);
    assert_eq!(
        client.events(),
        vec![
            SessionEvent::Metadata { data: expected_metadata.freeze() },
            SessionEvent::Video { timestamp: 0, data: Bytes::from_static(&[0x17, 0x00, 0, 0, 0, 1]) },
            SessionEvent::Audio { timestamp: 23, data: Bytes::from_static(&[0xAF, 0x01, 0x21]) },
        ]
    );

    client.command(
        0,
        &[Amf0Value::string("FCUnpublish"), Amf0Value::Number(6.0), Amf0Value::Null, Amf0Value::string("key")],
    );
    client.command(
        0,
        &[Amf0Value::string("deleteStream"), Amf0Value::Number(7.0), Amf0Value::Null, Amf0Value::Number(1.0)],
    );
    assert_eq!(client.events(), vec![SessionEvent::Unpublished], "one Unpublished for FCUnpublish + deleteStream");
    assert!(!client.session.is_publishing());
}

#[test]
fn rejected_key_gets_bad_name_and_closes() {
    let mut client = Client::new();
    client.connect();
    client.create_stream_and_publish("wrong");
    client.replies();
    client.events();
    client.session.reject_publish(&Rejection::BadKey);
    let replies = client.replies();
    assert_eq!(replies.len(), 1);
    let (level, code, _) = status_code_of(&replies[0]);
    assert_eq!((level.as_str(), code.as_str()), ("error", "NetStream.Publish.BadName"));
    assert!(client.session.is_closing());
    assert!(client.media(9, 0, &[0x17]).is_ok(), "input after a rejection is ignored");
    assert!(client.events().is_empty());
}

#[test]
fn second_publisher_refusal_says_already_publishing() {
    let mut client = Client::new();
    client.connect();
    client.create_stream_and_publish("key");
    client.replies();
    client.session.reject_publish(&Rejection::AlreadyLive);
    let (level, code, description) = status_code_of(&client.replies()[0]);
    assert_eq!((level.as_str(), code.as_str()), ("error", "NetStream.Publish.BadName"));
    assert!(description.to_lowercase().contains("already publishing"), "{description}");
}

#[test]
fn other_rejections_carry_their_message() {
    let mut client = Client::new();
    client.connect();
    client.create_stream_and_publish("key");
    client.replies();
    client.session.reject_publish(&Rejection::Other("server is draining".into()));
    let (level, code, description) = status_code_of(&client.replies()[0]);
    assert_eq!(
        (level.as_str(), code.as_str(), description.as_str()),
        ("error", "NetStream.Publish.Rejected", "server is draining")
    );
}

#[test]
fn media_before_publish_is_a_protocol_error() {
    let mut client = Client::new();
    client.connect();
    assert_eq!(client.media(9, 0, &[0x17, 0x01]), Err(SessionError::MediaBeforePublish { type_id: 9 }));
}

#[test]
fn media_pipelined_behind_publish_waits_for_the_decision() {
    let mut client = Client::new();
    client.connect();
    client.command(0, &[Amf0Value::string("createStream"), Amf0Value::Number(2.0), Amf0Value::Null]);
    let mut wire = BytesMut::new();
    let publish = command_message(
        3,
        1,
        &[Amf0Value::string("publish"), Amf0Value::Number(3.0), Amf0Value::Null, Amf0Value::string("k")],
    );
    client.encoder.encode(&publish, &mut wire).unwrap();
    let video = RtmpMessage {
        chunk_stream_id: 6,
        timestamp: 40,
        type_id: 9,
        stream_id: 1,
        payload: Bytes::from_static(&[0x27, 1]),
    };
    client.encoder.encode(&video, &mut wire).unwrap();
    client.session.handle_input(&wire).unwrap();
    client.events();
    assert!(client.session.is_publish_pending());
    client.session.accept_publish().unwrap();
    assert_eq!(client.events(), vec![SessionEvent::Video { timestamp: 40, data: Bytes::from_static(&[0x27, 1]) }]);
}

#[test]
fn whole_url_as_server_with_empty_key_resolves_the_key() {
    let mut client = Client::new();
    client.handshake();
    client.command(
        0,
        &[
            Amf0Value::string("connect"),
            Amf0Value::Number(1.0),
            Amf0Value::object([("app", Amf0Value::string("live/abc"))]),
        ],
    );
    client.create_stream_and_publish("");
    let events = client.events();
    assert_eq!(
        events.last(),
        Some(&SessionEvent::PublishRequested { app: "live".into(), stream_key: StreamKey::new("abc") })
    );
}

#[test]
fn ping_request_gets_ping_response() {
    let mut client = Client::new();
    client.connect();
    client.replies();
    client.send(&control::build(ControlMessage::UserControl(UserControlEvent::PingRequest(1234))));
    let replies = client.replies();
    assert_eq!(replies.len(), 1);
    assert_eq!((replies[0].type_id, &replies[0].payload[..]), (4, &[0, 7, 0, 0, 0x04, 0xD2][..]));
}

#[test]
fn acknowledgement_after_the_window() {
    let mut client = Client::new();
    client.connect();
    client.replies();
    client.send(&control::build(ControlMessage::WindowAckSize(5000)));
    assert!(client.replies().is_empty(), "handshake and connect are below the window");
    client.command(
        0,
        &[Amf0Value::string("noop"), Amf0Value::Number(0.0), Amf0Value::Null, Amf0Value::string("x".repeat(2500))],
    );
    let replies = client.replies();
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].type_id, 3);
    let sequence_number = u32::from_be_bytes(replies[0].payload[..4].try_into().unwrap());
    assert_eq!(u64::from(sequence_number), client.session.bytes_received);
    assert!(sequence_number >= 5000);
}

#[test]
fn incoming_chunk_size_change_applies_to_later_chunks() {
    let mut client = Client::new();
    client.connect();
    client.send(&control::build(ControlMessage::SetChunkSize(4096)));
    client.encoder.set_chunk_size(4096).unwrap();
    client.create_stream_and_publish("k");
    client.events();
    client.session.accept_publish().unwrap();
    let big = vec![0x27u8; 3000];
    client.send(&RtmpMessage {
        chunk_stream_id: 6,
        timestamp: 0,
        type_id: 9,
        stream_id: 1,
        payload: Bytes::from(big.clone()),
    });
    assert_eq!(client.events(), vec![SessionEvent::Video { timestamp: 0, data: Bytes::from(big) }]);
}

#[test]
fn absurd_chunk_size_is_a_protocol_error() {
    let mut client = Client::new();
    client.connect();
    assert_eq!(
        client.send_raw(&control::build(ControlMessage::SetChunkSize(0x7FFF_FFFF))),
        Err(SessionError::Chunk(ChunkError::ChunkSizeTooLarge { requested: 0x7FFF_FFFF, max: 64 * 1024 }))
    );
}

#[test]
fn commands_before_connect_are_protocol_errors() {
    let mut client = Client::new();
    client.handshake();
    let result = client.send_raw(&command_message(3, 0, &[Amf0Value::string("createStream"), Amf0Value::Number(2.0)]));
    assert_eq!(result, Err(SessionError::CommandBeforeConnect("createStream".into())));
}

#[test]
fn publish_on_an_uncreated_stream_is_a_protocol_error() {
    let mut client = Client::new();
    client.connect();
    let publish = command_message(
        3,
        7,
        &[Amf0Value::string("publish"), Amf0Value::Number(3.0), Amf0Value::Null, Amf0Value::string("k")],
    );
    assert_eq!(client.send_raw(&publish), Err(SessionError::UnknownMessageStream(7)));
}

#[test]
fn garbage_after_handshake_is_an_error_not_a_panic() {
    let mut client = Client::new();
    client.handshake();
    // A type 1 header on a chunk stream that never had a type 0 header.
    assert!(matches!(
        client.session.handle_input(&[0x45, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x14]),
        Err(SessionError::Chunk(ChunkError::MissingPreviousHeader { .. }))
    ));
}
