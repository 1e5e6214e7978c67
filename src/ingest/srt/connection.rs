//! One accepted SRT publisher: its messages (MPEG-TS) received on a thread of their own,
//! converted into FLV tags and forwarded to the publish's sink.
//!
//! How a publish ends: libsrt reports a closed connection both when the sender closed it
//! and when it fell silent past the peer idle timeout. A close right after media is the
//! sender's own (ffmpeg's and OBS's Stop) and ends the stream at once, like an RTMP
//! unpublish; a close after a silence is a dropped connection, which the stream's
//! reconnect grace covers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use livestream_protocol::media::ts_to_flv::{TsToFlv, TsToFlvError};
use livestream_srt::{Connection, Received, SrtError};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, timeout_at};
use tracing::Instrument;

use super::gate::{Gate, Pending};
use crate::ingest::listener::{self, EndReason, MediaMessage, PublishSink, Rejection, wait_for_shutdown};
use crate::telemetry::clip;

/// How long the receiving thread waits in libsrt before it looks whether to stop.
const RECEIVE_POLL: Duration = Duration::from_millis(250);
/// Messages between the receiving thread and the task: about 1.8 MB of MPEG-TS.
const MESSAGE_QUEUE: usize = 1024;
/// A close this long after the last message is a dropped connection, not a sender's stop.
const SILENCE_BEFORE_DROP: Duration = Duration::from_secs(2);
/// Longest wait for the media consumer to take the end of the publish.
const END_DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);

/// What the receiving thread hands over.
enum Delivery {
    Message(Vec<u8>),
    Closed,
    Failed(SrtError),
}

/// Why a publish's loop stopped.
enum Stop {
    SenderClosed,
    Dropped,
    MediaTimedOut,
    Format(TsToFlvError),
    Receive(SrtError),
    /// The receiving thread is gone without a word (it could not start).
    ReceiverGone,
    Shutdown,
    ConsumerGone,
}

/// Serves one accepted connection until it closes.
pub(super) async fn serve(
    connection: Connection,
    peer: SocketAddr,
    pending: Pending,
    gate: Arc<Gate>,
    shutdown: watch::Receiver<bool>,
) {
    let span = tracing::info_span!("srt_connection", %peer, app = %clip(&pending.request.app));
    async move {
        let metrics = Arc::clone(&gate.config().metrics);
        let _active = metrics.record_accepted();
        let Pending { request, slot, mut unauthenticated, .. } = pending;
        let key_fingerprint = request.stream_key.fingerprint();
        // SRT publishes end here: the ingest gateway relays RTMP only.
        let authorized = gate.handler().authorize(&request).and_then(|publish| match publish {
            listener::Publish::Media(sink) => Ok(sink),
            listener::Publish::Relay(_) => Err(Rejection::Other("SRT is not relayed".into())),
        });
        let sink = match authorized {
            Ok(sink) => sink,
            Err(rejection) => {
                metrics.record_rejected(&rejection);
                tracing::info!(key_fingerprint, reason = rejection.label(), "SRT publish refused");
                return;
            }
        };
        unauthenticated.authenticated();
        tracing::info!(key_fingerprint, "SRT publish accepted");
        if let Err(error) = connection.set_receive_timeout(RECEIVE_POLL) {
            tracing::warn!(%error, "cannot set the SRT receive timeout");
        }
        let (deliveries_tx, deliveries) = mpsc::channel(MESSAGE_QUEUE);
        let receiver = std::thread::Builder::new()
            .name("srt-receive".into())
            .spawn(move || receive(connection, deliveries_tx))
            .inspect_err(|error| tracing::error!(%error, "cannot start an SRT receiving thread"))
            .ok();
        let mut publish = Publish { sink, converter: TsToFlv::new(), gate: &gate, shutdown };
        let stop = publish.run(deliveries).await;
        publish.finish(stop).await;
        drop(slot);
        if let Some(thread) = receiver {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
    .instrument(span)
    .await;
}

/// Receives messages until the connection closes or the task goes away.
fn receive(connection: Connection, deliveries: mpsc::Sender<Delivery>) {
    let mut buffer = vec![0u8; livestream_srt::MAX_MESSAGE_LEN];
    loop {
        let delivery = match connection.recv(&mut buffer) {
            Ok(Received::Message(length)) => Delivery::Message(buffer.get(..length).unwrap_or_default().to_vec()),
            Ok(Received::Nothing) if deliveries.is_closed() => return,
            Ok(Received::Nothing) => continue,
            Ok(Received::Closed) => Delivery::Closed,
            Err(error) => Delivery::Failed(error),
        };
        let last = !matches!(delivery, Delivery::Message(_));
        if deliveries.blocking_send(delivery).is_err() || last {
            return;
        }
    }
}

struct Publish<'a> {
    sink: PublishSink,
    converter: TsToFlv,
    gate: &'a Gate,
    shutdown: watch::Receiver<bool>,
}

impl Publish<'_> {
    async fn run(&mut self, mut deliveries: mpsc::Receiver<Delivery>) -> Stop {
        let media_timeout = self.gate.config().media_timeout;
        let metrics = Arc::clone(&self.gate.config().metrics);
        let mut last_message = Instant::now();
        let mut last_media = Instant::now();
        loop {
            let delivery = tokio::select! {
                () = wait_for_shutdown(&mut self.shutdown) => return Stop::Shutdown,
                delivery = timeout_at(last_media + media_timeout, deliveries.recv()) => delivery,
            };
            let message = match delivery {
                Err(_) => return Stop::MediaTimedOut,
                Ok(None) => return Stop::ReceiverGone,
                Ok(Some(Delivery::Failed(error))) => return Stop::Receive(error),
                Ok(Some(Delivery::Closed)) if last_message.elapsed() < SILENCE_BEFORE_DROP => {
                    return Stop::SenderClosed;
                }
                Ok(Some(Delivery::Closed)) => return Stop::Dropped,
                Ok(Some(Delivery::Message(message))) => message,
            };
            last_message = Instant::now();
            metrics.record_bytes(message.len());
            if let Err(error) = self.converter.push(&message) {
                return Stop::Format(error);
            }
            if self.forward_tags(&mut last_media).await.is_err() {
                return Stop::ConsumerGone;
            }
        }
    }

    /// Sends the converter's tags, waiting while the sink is full.
    async fn forward_tags(&mut self, last_media: &mut Instant) -> Result<(), ()> {
        while let Some(tag) = self.converter.next_tag() {
            *last_media = Instant::now();
            self.sink.send(MediaMessage::Tag(tag)).await.map_err(drop)?;
        }
        Ok(())
    }

    /// Logs why the publish ended and tells the sink.
    async fn finish(mut self, stop: Stop) {
        let reason = match stop {
            Stop::SenderClosed => {
                // The frames still held belong to the stream: a clean end keeps them.
                let mut ignored = Instant::now();
                if self.converter.finish().is_ok() && self.forward_tags(&mut ignored).await.is_err() {
                    return;
                }
                tracing::info!("SRT sender closed the connection; publish ended");
                EndReason::Unpublished
            }
            Stop::Dropped => {
                tracing::info!("SRT sender fell silent; connection dropped");
                EndReason::TimedOut
            }
            Stop::MediaTimedOut => {
                tracing::info!("no media from the SRT sender for too long");
                EndReason::TimedOut
            }
            Stop::Format(error) => {
                self.gate.config().metrics.record_protocol_error();
                tracing::warn!(%error, "the SRT sender's MPEG-TS cannot be read; closing the connection");
                EndReason::ProtocolError(error.to_string())
            }
            Stop::Receive(error) => {
                tracing::info!(%error, "SRT connection failed");
                EndReason::Disconnected
            }
            Stop::ReceiverGone => EndReason::Disconnected,
            Stop::Shutdown => EndReason::Shutdown,
            Stop::ConsumerGone => {
                tracing::info!("media consumer went away; closing the connection");
                return;
            }
        };
        if tokio::time::timeout(END_DELIVERY_TIMEOUT, self.sink.send(MediaMessage::End(reason))).await.is_err() {
            tracing::warn!("media consumer did not take the end of the publish in time");
        }
    }
}
