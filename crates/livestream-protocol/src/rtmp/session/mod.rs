//! The sans-IO publish-side RTMP session: bytes from the socket in, bytes to write and
//! [`SessionEvent`]s out.
//!
//! The shell feeds what it reads to [`Session::handle_input`], writes what
//! [`Session::take_output`] returns and acts on [`Session::next_event`]. When the client
//! asks to publish, the session reports [`SessionEvent::PublishRequested`] and processes
//! nothing more until the shell calls [`Session::accept_publish`] or
//! [`Session::reject_publish`]; after a rejection [`Session::is_closing`] is true and the
//! shell closes the connection once the output is written.

mod config;
mod error;
mod event;
mod media;
mod names;
pub(crate) mod replies;
mod stream_key;

pub use config::SessionConfig;
pub use error::SessionError;
pub use event::{Rejection, SessionEvent};
pub use replies::status_code;
pub use stream_key::{StreamKey, constant_time_eq};

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::chunk::{ChunkDecoder, ChunkEncoder, RtmpMessage, message_type};
use super::command::Command;
use super::control::{self, ControlMessage, UserControlEvent};
use super::handshake::{HandshakeForm, HandshakeStatus, ServerHandshake};
use crate::media::amf0::Amf0Value;

/// Set Peer Bandwidth limit type "dynamic".
const PEER_BANDWIDTH_DYNAMIC: u8 = 2;

/// Where the publish on this connection stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PublishState {
    /// No publish yet, or the last one ended.
    Idle,
    /// publish received; waiting for the shell's decision.
    Pending { stream_id: u32 },
    /// Publishing on `stream_id`.
    Publishing { stream_id: u32 },
    /// The publish was refused; the connection is closing.
    Rejected,
}

/// One publishing client's RTMP session.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    handshake: ServerHandshake,
    handshake_done: bool,
    input: BytesMut,
    output: BytesMut,
    events: VecDeque<SessionEvent>,
    decoder: ChunkDecoder,
    encoder: ChunkEncoder,
    app: Option<String>,
    created_streams: Vec<u32>,
    next_stream_id: u32,
    publish: PublishState,
    bytes_received: u64,
    bytes_acknowledged: u64,
    acknowledgement_window: u32,
}

impl Session {
    /// A session that answers the handshake with random S1/S2 bytes.
    pub fn new(config: SessionConfig) -> Self {
        Self::with_handshake(config, ServerHandshake::new())
    }

    /// A session using the given handshake (tests use a deterministic one).
    pub fn with_handshake(config: SessionConfig, handshake: ServerHandshake) -> Self {
        Self {
            config,
            handshake,
            handshake_done: false,
            input: BytesMut::new(),
            output: BytesMut::new(),
            events: VecDeque::new(),
            decoder: ChunkDecoder::new(config.chunk_limits),
            encoder: ChunkEncoder::new(),
            app: None,
            created_streams: Vec::new(),
            next_stream_id: 1,
            publish: PublishState::Idle,
            bytes_received: 0,
            bytes_acknowledged: 0,
            acknowledgement_window: config.window_ack_size,
        }
    }

    /// Feeds bytes read from the socket. An error means the connection must be closed.
    pub fn handle_input(&mut self, data: &[u8]) -> Result<(), SessionError> {
        if self.is_closing() {
            return Ok(());
        }
        self.bytes_received += data.len() as u64;
        self.input.extend_from_slice(data);
        self.process_input()?;
        self.acknowledge_if_due();
        Ok(())
    }

    /// Bytes to write to the socket, if any.
    pub fn take_output(&mut self) -> Option<Bytes> {
        if self.output.is_empty() { None } else { Some(self.output.split().freeze()) }
    }

    /// The next event for the shell, if any.
    pub fn next_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// True once the handshake has completed.
    pub fn is_handshake_complete(&self) -> bool {
        self.handshake_done
    }

    /// The handshake form the client used, once C1 has been read.
    pub fn handshake_form(&self) -> Option<HandshakeForm> {
        self.handshake.form()
    }

    /// The application name from connect, once connected.
    pub fn app(&self) -> Option<&str> {
        self.app.as_deref()
    }

    /// True while a publish waits for [`accept_publish`](Self::accept_publish) or
    /// [`reject_publish`](Self::reject_publish).
    pub fn is_publish_pending(&self) -> bool {
        matches!(self.publish, PublishState::Pending { .. })
    }

    /// True while publishing.
    pub fn is_publishing(&self) -> bool {
        matches!(self.publish, PublishState::Publishing { .. })
    }

    /// True once a publish was rejected: write the remaining output, then close.
    pub fn is_closing(&self) -> bool {
        self.publish == PublishState::Rejected
    }

    /// Accepts the pending publish: sends StreamBegin and NetStream.Publish.Start, then
    /// processes any input that arrived meanwhile. Does nothing if no publish is pending.
    pub fn accept_publish(&mut self) -> Result<(), SessionError> {
        let PublishState::Pending { stream_id } = self.publish else {
            return Ok(());
        };
        self.publish = PublishState::Publishing { stream_id };
        self.send(control::build(ControlMessage::UserControl(UserControlEvent::StreamBegin(stream_id))));
        self.send(replies::on_status(stream_id, "status", status_code::PUBLISH_START, "Publishing started."));
        self.process_input()?;
        self.acknowledge_if_due();
        Ok(())
    }

    /// Refuses the pending publish with an error status. The shell then closes the
    /// connection. Does nothing if no publish is pending.
    pub fn reject_publish(&mut self, rejection: &Rejection) {
        let PublishState::Pending { stream_id } = self.publish else {
            return;
        };
        self.publish = PublishState::Rejected;
        let (code, description) = match rejection {
            Rejection::BadKey => (status_code::PUBLISH_BAD_NAME, "Invalid stream key."),
            Rejection::AlreadyLive => (status_code::PUBLISH_BAD_NAME, "Stream already publishing."),
            Rejection::Other(message) => (status_code::PUBLISH_REJECTED, message.as_str()),
        };
        self.send(replies::on_status(stream_id, "error", code, description));
    }

    fn process_input(&mut self) -> Result<(), SessionError> {
        if !self.handshake_done {
            match self.handshake.process(&mut self.input, &mut self.output)? {
                HandshakeStatus::InProgress => return Ok(()),
                HandshakeStatus::Done => self.handshake_done = true,
            }
        }
        while !self.is_publish_pending() && !self.is_closing() {
            let Some(message) = self.decoder.decode(&mut self.input)? else { break };
            self.handle_message(message)?;
        }
        Ok(())
    }

    fn acknowledge_if_due(&mut self) {
        let window = u64::from(self.acknowledgement_window);
        if window > 0 && self.bytes_received - self.bytes_acknowledged >= window {
            self.bytes_acknowledged = self.bytes_received;
            // The sequence number wraps at 2^32 like every RTMP counter.
            let sequence_number = (self.bytes_received & u64::from(u32::MAX)) as u32;
            self.send(control::build(ControlMessage::Acknowledgement { sequence_number }));
        }
    }

    fn send(&mut self, message: RtmpMessage) {
        // Every message the session builds uses a valid chunk stream id and fits the length
        // field, so encoding cannot fail; a failure would only drop that one reply.
        if let Err(error) = self.encoder.encode(&message, &mut self.output) {
            tracing::warn!(%error, "could not encode an RTMP reply");
        }
    }

    fn handle_message(&mut self, message: RtmpMessage) -> Result<(), SessionError> {
        if let Some(control) = control::parse(&message)? {
            self.handle_control(control)?;
            return Ok(());
        }
        match message.type_id {
            message_type::AUDIO | message_type::VIDEO => {
                self.handle_media(message.type_id, message.timestamp, message.payload)
            }
            message_type::DATA_AMF0 | message_type::DATA_AMF3 => self.handle_data(&message),
            message_type::AGGREGATE => self.handle_aggregate(&message),
            message_type::COMMAND_AMF0 | message_type::COMMAND_AMF3 => {
                let command = Command::parse(&message)?;
                self.handle_command(&command, message.stream_id)
            }
            _ => Ok(()),
        }
    }

    fn handle_control(&mut self, control: ControlMessage) -> Result<(), SessionError> {
        match control {
            ControlMessage::SetChunkSize(size) => self.decoder.set_chunk_size(size)?,
            ControlMessage::Abort { chunk_stream_id } => self.decoder.abort(chunk_stream_id),
            ControlMessage::WindowAckSize(size) => self.acknowledgement_window = size,
            ControlMessage::UserControl(UserControlEvent::PingRequest(timestamp)) => {
                self.send(control::build(ControlMessage::UserControl(UserControlEvent::PingResponse(timestamp))));
            }
            ControlMessage::Acknowledgement { .. }
            | ControlMessage::SetPeerBandwidth { .. }
            | ControlMessage::UserControl(_) => {}
        }
        Ok(())
    }

    fn handle_media(&mut self, type_id: u8, timestamp: u32, data: Bytes) -> Result<(), SessionError> {
        if !self.is_publishing() {
            return Err(SessionError::MediaBeforePublish { type_id });
        }
        if data.is_empty() {
            return Ok(());
        }
        self.events.push_back(if type_id == message_type::AUDIO {
            SessionEvent::Audio { timestamp, data }
        } else {
            SessionEvent::Video { timestamp, data }
        });
        Ok(())
    }

    fn handle_data(&mut self, message: &RtmpMessage) -> Result<(), SessionError> {
        let mut payload = message.payload.clone();
        if message.type_id == message_type::DATA_AMF3 && payload.first() == Some(&0) {
            payload = payload.slice(1..);
        }
        self.handle_data_payload(message.type_id, &payload)
    }

    fn handle_data_payload(&mut self, type_id: u8, payload: &Bytes) -> Result<(), SessionError> {
        let Some(data) = media::metadata_body(payload) else {
            return Ok(());
        };
        if !self.is_publishing() {
            return Err(SessionError::MediaBeforePublish { type_id });
        }
        self.events.push_back(SessionEvent::Metadata { data });
        Ok(())
    }

    fn handle_aggregate(&mut self, message: &RtmpMessage) -> Result<(), SessionError> {
        if !self.is_publishing() {
            return Err(SessionError::MediaBeforePublish { type_id: message.type_id });
        }
        let parts = media::split_aggregate(message.timestamp, &message.payload)
            .ok_or(SessionError::MalformedMedia("aggregate"))?;
        for part in parts {
            if part.type_id == message_type::DATA_AMF0 {
                self.handle_data_payload(part.type_id, &part.data)?;
            } else {
                self.handle_media(part.type_id, part.timestamp, part.data)?;
            }
        }
        Ok(())
    }

    fn handle_command(&mut self, command: &Command, stream_id: u32) -> Result<(), SessionError> {
        let name = command.name.as_str();
        if name == "connect" {
            return self.handle_connect(command);
        }
        let requires_connection =
            matches!(name, "releaseStream" | "FCPublish" | "createStream" | "publish" | "FCUnpublish" | "deleteStream");
        if requires_connection && self.app.is_none() {
            return Err(SessionError::CommandBeforeConnect(command.name.clone()));
        }
        match name {
            "releaseStream" => self.send(replies::result(command.transaction_id, Amf0Value::Undefined)),
            "FCPublish" => {
                self.send(replies::on_fc_publish());
                self.send(replies::result(command.transaction_id, Amf0Value::Undefined));
            }
            "createStream" => self.handle_create_stream(command)?,
            "publish" => self.handle_publish(command, stream_id)?,
            "FCUnpublish" => {
                self.end_publish(None);
                self.send(replies::result(command.transaction_id, Amf0Value::Undefined));
            }
            "deleteStream" => {
                let deleted = command.number_argument(0).map(|id| id as u32);
                self.end_publish(deleted);
                if let Some(deleted) = deleted {
                    self.created_streams.retain(|created| *created != deleted);
                }
            }
            "closeStream" => self.end_publish(Some(stream_id)),
            _ => {}
        }
        Ok(())
    }

    fn handle_connect(&mut self, command: &Command) -> Result<(), SessionError> {
        if self.app.is_some() {
            return Err(SessionError::DuplicateConnect);
        }
        let object = &command.command_object;
        let app = names::application_name(
            object.property("app").and_then(Amf0Value::as_str),
            object.property("tcUrl").and_then(Amf0Value::as_str),
        );
        self.app = Some(app.clone());
        self.send(control::build(ControlMessage::WindowAckSize(self.config.window_ack_size)));
        self.send(control::build(ControlMessage::SetPeerBandwidth {
            window: self.config.peer_bandwidth,
            limit_type: PEER_BANDWIDTH_DYNAMIC,
        }));
        self.send(control::build(ControlMessage::SetChunkSize(self.config.outgoing_chunk_size)));
        if let Err(error) = self.encoder.set_chunk_size(self.config.outgoing_chunk_size) {
            tracing::warn!(%error, "configured outgoing chunk size is invalid; keeping the default");
        }
        let enhanced = object.property("fourCcList").is_some();
        self.send(replies::connect_result(command.transaction_id, enhanced.then_some(self.config.video_fourccs)));
        self.events.push_back(SessionEvent::Connected { app });
        Ok(())
    }

    fn handle_create_stream(&mut self, command: &Command) -> Result<(), SessionError> {
        if self.created_streams.len() >= self.config.max_message_streams as usize {
            return Err(SessionError::TooManyMessageStreams(self.config.max_message_streams));
        }
        let stream_id = self.next_stream_id;
        self.next_stream_id = self.next_stream_id.wrapping_add(1).max(1);
        self.created_streams.push(stream_id);
        self.send(replies::result(command.transaction_id, Amf0Value::Number(f64::from(stream_id))));
        Ok(())
    }

    fn handle_publish(&mut self, command: &Command, stream_id: u32) -> Result<(), SessionError> {
        if self.publish != PublishState::Idle {
            return Err(SessionError::PublishWhileBusy);
        }
        if !self.created_streams.contains(&stream_id) {
            return Err(SessionError::UnknownMessageStream(stream_id));
        }
        let publish_name = command.string_argument(0).unwrap_or_default();
        let (app, key) = names::resolve_publish(self.app.as_deref().unwrap_or_default(), publish_name);
        self.publish = PublishState::Pending { stream_id };
        self.events.push_back(SessionEvent::PublishRequested { app, stream_key: StreamKey::new(key) });
        Ok(())
    }

    /// Ends an active publish (on `stream_id`, or on any stream for `None`) and reports it.
    fn end_publish(&mut self, stream_id: Option<u32>) {
        if let PublishState::Publishing { stream_id: publishing } = self.publish
            && stream_id.is_none_or(|ended| ended == publishing)
        {
            self.publish = PublishState::Idle;
            self.events.push_back(SessionEvent::Unpublished);
        }
    }
}

#[cfg(test)]
mod tests;
