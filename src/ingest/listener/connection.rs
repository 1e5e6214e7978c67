//! One client connection: socket reads and writes around a [`Session`], with timeouts,
//! the publish decision, and backpressure from the media channel.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{Instant, timeout};
use tracing::Instrument;

use super::relay::{RelayOutcome, relay};
use super::tls::TlsIdentity;
use super::{
    EndReason, ListenerConfig, MediaMessage, Publish, PublishHandler, PublishRequest, PublishSink, wait_for_shutdown,
};
use crate::ingest::admission::Unauthenticated;
use crate::ingest::session::{Rejection, Session, SessionError, SessionEvent, StreamKey};
use crate::media::flv::{FlvTag, FlvTagKind};
use crate::telemetry::clip;

/// Longest wait for the media consumer to take the end-of-publish message.
const END_DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for the client to close after its publish was refused.
const REJECTION_LINGER: Duration = Duration::from_secs(2);
/// Most bytes read and discarded while waiting for a refused client to close.
const REJECTION_LINGER_MAX_BYTES: usize = 256 * 1024;
/// Most bytes kept for a relay before the publish: a handshake and a few commands take
/// a few kilobytes; more is a client that is not publishing.
const MAX_RECORDED_BYTES: usize = 64 * 1024;

/// What every connection of a listener shares.
pub(super) struct ConnectionContext {
    pub(super) config: ListenerConfig,
    pub(super) handler: Arc<dyn PublishHandler>,
}

/// Why a connection's loop stopped.
#[derive(Debug)]
enum CloseCause {
    PeerClosed,
    HandshakeTimedOut,
    /// No accepted publish within the publish timeout.
    PublishTimedOut,
    /// A publishing connection sent no media for the media timeout.
    MediaTimedOut,
    IdleTimedOut,
    Protocol(SessionError),
    Io(std::io::Error),
    Rejected,
    Shutdown,
    ConsumerGone,
    /// The publish goes to another server.
    Relay(SocketAddr),
    /// A relayed client sent too much before its publish.
    TooMuchBeforePublish,
}

/// Serves one accepted connection until it closes: first the TLS handshake when `tls`
/// is given, within the time of the RTMP handshake.
pub(super) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<Arc<TlsIdentity>>,
    context: Arc<ConnectionContext>,
    unauthenticated: Unauthenticated,
    shutdown: watch::Receiver<bool>,
) {
    let scheme = if tls.is_some() { "rtmps" } else { "rtmp" };
    let span = tracing::info_span!("rtmp_connection", %peer, scheme, app = tracing::field::Empty);
    async move {
        let _active = context.config.metrics.record_accepted();
        tracing::debug!("connection accepted");
        let accepted = Instant::now();
        match tls {
            None => serve_stream(stream, accepted, peer, &context, unauthenticated, shutdown).await,
            Some(identity) => {
                let handshake = timeout(context.config.handshake_timeout, identity.acceptor().accept(stream));
                match handshake.await {
                    Ok(Ok(stream)) => serve_stream(stream, accepted, peer, &context, unauthenticated, shutdown).await,
                    Ok(Err(error)) => {
                        context.config.metrics.record_tls_failure();
                        tracing::info!(%error, "TLS handshake failed");
                    }
                    Err(_) => {
                        context.config.metrics.record_tls_failure();
                        tracing::info!("TLS handshake timed out");
                    }
                }
            }
        }
    }
    .instrument(span)
    .await;
}

/// Runs the RTMP session over an established byte stream.
async fn serve_stream<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    accepted: Instant,
    peer: SocketAddr,
    context: &ConnectionContext,
    unauthenticated: Unauthenticated,
    shutdown: watch::Receiver<bool>,
) {
    let mut connection = Connection {
        stream,
        accepted,
        peer,
        session: Session::new(context.config.session),
        sink: None,
        context,
        shutdown,
        read_buffer: vec![0u8; context.config.read_buffer_size.max(1)],
        unauthenticated,
        last_media: Instant::now(),
        recorded: context.handler.relays().then(Vec::new),
    };
    match connection.run().await {
        CloseCause::Relay(target) => connection.relay(target).await,
        closed => connection.finish(closed).await,
    }
}

/// The first path segment of an application name.
fn first_segment(app: &str) -> &str {
    app.split('/').next().unwrap_or_default()
}

struct Connection<'a, S> {
    stream: S,
    /// When the TCP connection was accepted: the deadlines count from here.
    accepted: Instant,
    peer: SocketAddr,
    session: Session,
    sink: Option<PublishSink>,
    context: &'a ConnectionContext,
    shutdown: watch::Receiver<bool>,
    read_buffer: Vec<u8>,
    /// Counts against the budget of connections that have not published, until one does.
    unauthenticated: Unauthenticated,
    /// When the last media message arrived (or the publish was accepted).
    last_media: Instant,
    /// Every byte the client sent, kept until its publish is decided when the handler may
    /// relay it.
    recorded: Option<Vec<u8>>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<'_, S> {
    async fn run(&mut self) -> CloseCause {
        let now = self.accepted;
        let config = &self.context.config;
        let handshake_deadline = now.checked_add(config.handshake_timeout).unwrap_or(now);
        let publish_deadline = now.checked_add(config.publish_timeout).unwrap_or(now);
        loop {
            if let Err(closed) = self.handle_events().await {
                return closed;
            }
            if let Err(closed) = self.flush().await {
                return closed;
            }
            if self.session.is_closing() {
                return CloseCause::Rejected;
            }
            let handshaking = !self.session.is_handshake_complete();
            let publishing = self.sink.is_some();
            let now = Instant::now();
            // Only a complete media message moves a publisher's deadline: a client that
            // drips bytes keeps no slot.
            let (read_timeout, expired) = if handshaking {
                (handshake_deadline.saturating_duration_since(now), CloseCause::HandshakeTimedOut)
            } else {
                let (deadline, cause) = match publishing {
                    false => (publish_deadline, CloseCause::PublishTimedOut),
                    true => (self.last_media + self.context.config.media_timeout, CloseCause::MediaTimedOut),
                };
                let left = deadline.saturating_duration_since(now);
                if left < self.context.config.idle_timeout {
                    (left, cause)
                } else {
                    (self.context.config.idle_timeout, CloseCause::IdleTimedOut)
                }
            };
            if read_timeout.is_zero() {
                // A client that keeps sending past its deadline still gets no more time.
                return expired;
            }
            let read = tokio::select! {
                () = wait_for_shutdown(&mut self.shutdown) => return CloseCause::Shutdown,
                read = timeout(read_timeout, self.stream.read(&mut self.read_buffer)) => read,
            };
            match read {
                Err(_) => return expired,
                Ok(Ok(0)) => return CloseCause::PeerClosed,
                Ok(Ok(count)) => {
                    self.context.config.metrics.record_bytes(count);
                    let data = self.read_buffer.get(..count).unwrap_or_default();
                    if let Some(recorded) = &mut self.recorded {
                        if recorded.len() + data.len() > MAX_RECORDED_BYTES {
                            return CloseCause::TooMuchBeforePublish;
                        }
                        recorded.extend_from_slice(data);
                    }
                    if let Err(error) = self.session.handle_input(data) {
                        return CloseCause::Protocol(error);
                    }
                    if handshaking && self.session.is_handshake_complete() {
                        tracing::debug!(form = ?self.session.handshake_form(), "handshake complete");
                    }
                }
                Ok(Err(error)) => return CloseCause::Io(error),
            }
        }
    }

    async fn handle_events(&mut self) -> Result<(), CloseCause> {
        while let Some(event) = self.session.next_event() {
            match event {
                SessionEvent::Connected { app } => {
                    // Only the first segment: an encoder given the whole URL as its server
                    // sends the stream key as the app's last segment.
                    tracing::Span::current().record("app", clip(first_segment(&app)).as_str());
                    tracing::info!("client connected");
                }
                SessionEvent::PublishRequested { app, stream_key } => self.decide_publish(app, stream_key)?,
                SessionEvent::Metadata { data } => {
                    self.forward(MediaMessage::Tag(FlvTag::new(FlvTagKind::Script, 0, data))).await?
                }
                SessionEvent::Audio { timestamp, data } => {
                    self.last_media = Instant::now();
                    self.forward(MediaMessage::Tag(FlvTag::new(FlvTagKind::Audio, timestamp, data))).await?
                }
                SessionEvent::Video { timestamp, data } => {
                    self.last_media = Instant::now();
                    self.forward(MediaMessage::Tag(FlvTag::new(FlvTagKind::Video, timestamp, data))).await?
                }
                SessionEvent::Unpublished => {
                    if self.sink.is_some() {
                        tracing::info!("publish ended by the client");
                        self.forward(MediaMessage::End(EndReason::Unpublished)).await?;
                        self.sink = None;
                    }
                }
            }
        }
        Ok(())
    }

    fn decide_publish(&mut self, app: String, stream_key: StreamKey) -> Result<(), CloseCause> {
        let key_fingerprint = stream_key.fingerprint();
        let request = PublishRequest { app, stream_key, peer: self.peer };
        match self.context.handler.authorize(&request) {
            Ok(Publish::Relay(target)) if self.recorded.is_some() => {
                tracing::info!(app = %clip(&request.app), key_fingerprint, %target, "publish relayed");
                Err(CloseCause::Relay(target))
            }
            Ok(Publish::Relay(_)) => {
                tracing::error!("a publish handler that does not relay asked for a relay; refusing the publish");
                self.session.reject_publish(&Rejection::Other("not served here".into()));
                Ok(())
            }
            Ok(Publish::Media(sink)) => {
                self.sink = Some(sink);
                self.unauthenticated.authenticated();
                self.last_media = Instant::now();
                tracing::info!(app = %clip(&request.app), key_fingerprint, "publish accepted");
                self.session.accept_publish().map_err(CloseCause::Protocol)
            }
            Err(rejection) => {
                self.context.config.metrics.record_rejected(&rejection);
                tracing::info!(app = %clip(&request.app), key_fingerprint, reason = rejection.label(), "publish refused");
                self.session.reject_publish(&rejection);
                Ok(())
            }
        }
    }

    /// Sends to the sink, waiting while its channel is full (the socket is not read
    /// meanwhile, which is the backpressure on the encoder).
    async fn forward(&mut self, message: MediaMessage) -> Result<(), CloseCause> {
        let Some(sink) = &self.sink else { return Ok(()) };
        tokio::select! {
            () = wait_for_shutdown(&mut self.shutdown) => Err(CloseCause::Shutdown),
            sent = sink.send(message) => sent.map_err(|_| CloseCause::ConsumerGone),
        }
    }

    async fn flush(&mut self) -> Result<(), CloseCause> {
        while let Some(bytes) = self.session.take_output() {
            match timeout(self.context.config.idle_timeout, self.stream.write_all(&bytes)).await {
                Err(_) => return Err(CloseCause::IdleTimedOut),
                Ok(Err(error)) => return Err(CloseCause::Io(error)),
                Ok(Ok(())) => {}
            }
        }
        Ok(())
    }

    /// Logs why the connection closed and tells the sink how the publish ended.
    async fn finish(mut self, closed: CloseCause) {
        let end_reason = match &closed {
            CloseCause::PeerClosed => {
                tracing::info!("client closed the connection");
                Some(EndReason::Disconnected)
            }
            CloseCause::HandshakeTimedOut => {
                tracing::info!("handshake timed out");
                Some(EndReason::TimedOut)
            }
            CloseCause::PublishTimedOut => {
                tracing::info!("no publish in time after connecting");
                Some(EndReason::TimedOut)
            }
            CloseCause::MediaTimedOut => {
                tracing::info!("no media for too long");
                Some(EndReason::TimedOut)
            }
            CloseCause::IdleTimedOut => {
                tracing::info!("connection idle for too long");
                Some(EndReason::TimedOut)
            }
            CloseCause::Protocol(error) => {
                self.context.config.metrics.record_protocol_error();
                tracing::warn!(%error, "protocol error; closing the connection");
                Some(EndReason::ProtocolError(error.to_string()))
            }
            CloseCause::Io(error) => {
                tracing::info!(%error, "connection failed");
                Some(EndReason::Disconnected)
            }
            CloseCause::Rejected => {
                self.linger_after_rejection().await;
                None
            }
            CloseCause::Shutdown => Some(EndReason::Shutdown),
            CloseCause::ConsumerGone => {
                tracing::info!("media consumer went away; closing the connection");
                None
            }
            CloseCause::TooMuchBeforePublish => {
                tracing::info!(limit = MAX_RECORDED_BYTES, "too many bytes before a publish; closing the connection");
                None
            }
            // Served by `relay`, which takes the connection over instead.
            CloseCause::Relay(_) => None,
        };
        if let (Some(sink), Some(reason)) = (self.sink.take(), end_reason)
            && timeout(END_DELIVERY_TIMEOUT, sink.send(MediaMessage::End(reason))).await.is_err()
        {
            tracing::warn!("media consumer did not take the end of the publish in time");
        }
    }

    /// Hands the connection to `target`: what the session still has to say to the client
    /// first, then the replay and the copy (see [`relay`]).
    async fn relay(mut self, target: SocketAddr) {
        if self.flush().await.is_err() {
            return;
        }
        let recorded = self.recorded.take().unwrap_or_default();
        let metrics = &self.context.config.metrics;
        let unauthenticated = &mut self.unauthenticated;
        let outcome = relay(self.stream, &recorded, target, &self.context.config, self.shutdown, || {
            unauthenticated.authenticated();
            metrics.record_relay("started");
        })
        .await;
        match outcome {
            RelayOutcome::Ended { ended } => tracing::info!(%target, ended, "relayed publish ended"),
            RelayOutcome::Refused(code) => {
                metrics.record_relay("refused");
                tracing::info!(%target, code, "the worker refused the relayed publish");
            }
            RelayOutcome::Unreachable(error) => {
                metrics.record_relay("unreachable");
                tracing::warn!(%target, %error, "the relayed publish did not reach its worker");
            }
        }
    }

    /// After refusing a publish: signal end of output and let the client read the refusal
    /// and close first, so unread input does not turn the close into a reset.
    async fn linger_after_rejection(&mut self) {
        if self.stream.shutdown().await.is_err() {
            return;
        }
        let deadline = Instant::now() + REJECTION_LINGER;
        let mut discarded = 0usize;
        while discarded < REJECTION_LINGER_MAX_BYTES {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut self.read_buffer)).await {
                Ok(Ok(count)) if count > 0 => discarded += count,
                _ => return,
            }
        }
    }
}
