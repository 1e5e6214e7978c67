//! Relaying a publish to another RTMP server, as the ingest gateway hands a publisher to
//! its stream's worker: connect, replay every byte the client sent, pass on the server's
//! answer to the publish (filtered by [`ServerReplies`]), then copy bytes both ways until
//! either side closes, the client stops sending, or the listener shuts down. No media is
//! parsed or buffered on the way.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{Instant, timeout};

use super::{ListenerConfig, wait_for_shutdown};
use crate::backoff::Backoff;
use crate::ingest::relay::{PublishAnswer, ServerReplies};

/// How long a relay keeps trying to connect to its target: a worker that has just become
/// ready may not be reachable at its Service's address for a moment (until kube-proxy
/// has its endpoint), nor a restarted worker until its new pod is; a publisher waits for
/// the answer to its publish meanwhile.
const CONNECT_PATIENCE: Duration = Duration::from_secs(5);

/// The pause between two attempts to connect.
const CONNECT_BACKOFF: Backoff = Backoff { min: Duration::from_millis(100), max: Duration::from_secs(1) };

/// How a relayed publish ended.
#[derive(Debug)]
pub(super) enum RelayOutcome {
    /// The server took the publish, and the relay ran until `ended`.
    Ended { ended: &'static str },
    /// The server refused the publish with this status code.
    Refused(String),
    /// The server could not be reached or did not answer in time.
    Unreachable(String),
}

/// A connection to `target`, each attempt within `attempt_timeout`, tried again after
/// refusals and failures until `patience` has passed.
async fn connect(target: SocketAddr, attempt_timeout: Duration, patience: Duration) -> Result<TcpStream, String> {
    let deadline = Instant::now() + patience;
    let mut attempts = 0;
    loop {
        let error = match timeout(attempt_timeout, TcpStream::connect(target)).await {
            Ok(Ok(server)) => return Ok(server),
            Ok(Err(error)) => format!("cannot connect: {error}"),
            Err(_) => "no connection in time".to_string(),
        };
        attempts += 1;
        let pause = CONNECT_BACKOFF.delay(attempts);
        if Instant::now() + pause >= deadline {
            return Err(format!("{error} ({attempts} attempts)"));
        }
        tokio::time::sleep(pause).await;
    }
}

/// Relays the connection `client`, whose bytes so far are `recorded`, to `target`.
/// `started` is called once the server has taken the publish.
pub(super) async fn relay<S: AsyncRead + AsyncWrite + Unpin>(
    mut client: S,
    recorded: &[u8],
    target: SocketAddr,
    config: &ListenerConfig,
    mut shutdown: watch::Receiver<bool>,
    started: impl FnOnce(),
) -> RelayOutcome {
    let unreachable = |what: String| RelayOutcome::Unreachable(format!("{target}: {what}"));
    let mut server = match connect(target, config.handshake_timeout, CONNECT_PATIENCE).await {
        Ok(server) => server,
        Err(error) => return unreachable(error),
    };
    let _ = server.set_nodelay(true);
    let mut replies = match ServerReplies::new(config.session.outgoing_chunk_size) {
        Ok(replies) => replies,
        Err(error) => return unreachable(error.to_string()),
    };
    if let Err(error) = timeout(config.idle_timeout, server.write_all(recorded))
        .await
        .unwrap_or_else(|_| Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the replay was not taken in time")))
    {
        return unreachable(format!("cannot replay the client's bytes: {error}"));
    }

    // The server's answer to the publish, within the time a client has to publish.
    let mut buffer = vec![0u8; config.read_buffer_size.max(1)];
    let answer = loop {
        if let Some(answer) = replies.publish_answer() {
            break answer.clone();
        }
        match timeout(config.publish_timeout, server.read(&mut buffer)).await {
            Ok(Ok(0)) => return unreachable("closed without answering the publish".into()),
            Ok(Ok(count)) => {
                if let Err(error) = replies.handle_input(&buffer[..count]) {
                    return unreachable(error.to_string());
                }
            }
            Ok(Err(error)) => return unreachable(error.to_string()),
            Err(_) => return unreachable("no answer to the publish in time".into()),
        }
    };
    if let Some(bytes) = replies.take_output()
        && client.write_all(&bytes).await.is_err()
    {
        return RelayOutcome::Ended { ended: "the client closed" };
    }
    if let PublishAnswer::Refused { code } = answer {
        return RelayOutcome::Refused(code);
    }
    started();

    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut server_read, mut server_write) = server.into_split();
    let metrics = &config.metrics;
    let upstream = async {
        let mut buffer = vec![0u8; config.read_buffer_size.max(1)];
        loop {
            match timeout(config.media_timeout, client_read.read(&mut buffer)).await {
                Err(_) => return "the client sent nothing for the media timeout",
                Ok(Ok(0)) | Ok(Err(_)) => return "the client closed",
                Ok(Ok(count)) => {
                    metrics.record_bytes(count);
                    if server_write.write_all(&buffer[..count]).await.is_err() {
                        return "the server closed";
                    }
                }
            }
        }
    };
    let downstream = async {
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            match server_read.read(&mut buffer).await {
                Ok(0) | Err(_) => return "the server closed",
                Ok(count) => {
                    if replies.handle_input(&buffer[..count]).is_err() {
                        return "the server broke the protocol";
                    }
                    if let Some(bytes) = replies.take_output()
                        && client_write.write_all(&bytes).await.is_err()
                    {
                        return "the client closed";
                    }
                }
            }
        }
    };
    let ended = tokio::select! {
        ended = upstream => ended,
        ended = downstream => ended,
        () = wait_for_shutdown(&mut shutdown) => "the listener shut down",
    };
    RelayOutcome::Ended { ended }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A free port on the loopback interface, with nothing listening on it.
    fn vacant() -> SocketAddr {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
    }

    #[tokio::test]
    async fn a_target_that_comes_up_within_the_patience_is_reached() {
        let target = vacant();
        let server = tokio::spawn(async move {
            // The worker comes up a moment after the publisher arrived.
            tokio::time::sleep(Duration::from_millis(400)).await;
            let listener = tokio::net::TcpListener::bind(target).await.unwrap();
            listener.accept().await.map(|_| ())
        });
        let connected = connect(target, Duration::from_secs(1), Duration::from_secs(5)).await;
        assert!(connected.is_ok(), "{connected:?}");
        server.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_target_that_never_comes_up_is_given_up_after_the_patience() {
        let started = Instant::now();
        let error = connect(vacant(), Duration::from_secs(1), Duration::from_millis(800)).await.unwrap_err();
        assert!(error.contains("cannot connect") && error.contains("attempts"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(10), "gave up in {:?}", started.elapsed());
    }
}
