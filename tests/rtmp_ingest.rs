//! RTMP ingest against a real ffmpeg publisher: timestamps and an FLV rebuilt from what
//! was received, refused keys, a second publisher, malformed input, connection limits and
//! timeouts; RTMPS with a certificate that is renewed while the server runs.

use std::collections::HashSet;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::BytesMut;
use livestream::ingest::chunk::{ChunkEncoder, RtmpMessage};
use livestream::ingest::command::command_message;
use livestream::ingest::control::{self, ControlMessage};
use livestream::ingest::listener::{
    self, EndReason, Endpoint, IngestMetrics, ListenerConfig, MediaMessage, Publish, PublishHandler, PublishRequest,
    PublishSink, Rejection, TlsFiles, TlsIdentity,
};
use livestream::media::amf0::Amf0Value;
use livestream::media::flv::{self, FlvTag, FlvTagKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::timeout;

const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------
// Log capture: every test's logs go to one buffer, so tests can check what was logged.

#[derive(Clone, Default)]
struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl Write for LogCapture {
    fn write(&mut self, buffer: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buffer);
        Ok(buffer.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

fn captured_logs() -> &'static LogCapture {
    static CAPTURE: OnceLock<LogCapture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture = LogCapture::default();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(capture.clone())
            .init();
        capture
    })
}

fn logs_text() -> String {
    String::from_utf8_lossy(&captured_logs().0.lock().unwrap()).into_owned()
}

// ---------------------------------------------------------------------------------------
// The fixture: a 3-second FLV (H.264 + AAC) made once per test run.

fn fixture_flv() -> &'static Path {
    static FIXTURE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = FIXTURE.get_or_init(|| {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("fixture.flv");
        let status = std::process::Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y"])
            .args(["-f", "lavfi", "-i", "testsrc=size=160x90:rate=25"])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
            .args(["-t", "3", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p"])
            .args(["-c:a", "aac", "-b:a", "64k", "-f", "flv"])
            .arg(&path)
            .status()
            .expect("ffmpeg must be on PATH");
        assert!(status.success(), "ffmpeg could not make the fixture FLV");
        (directory, path)
    });
    path
}

/// `(codec_type, dts)` of every packet in `path`, in file order.
fn probe_packets(path: &Path) -> Vec<(String, i64)> {
    let output = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "packet=codec_type,dts", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe must be on PATH");
    assert!(output.status.success(), "ffprobe failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter(|line| !line.is_empty())
        .map(|line| {
            let (kind, dts) = line.split_once(',').unwrap_or_else(|| panic!("unexpected ffprobe line {line:?}"));
            (kind.to_owned(), dts.trim().parse().unwrap_or_else(|_| panic!("unexpected dts in {line:?}")))
        })
        .collect()
}

fn dts_of(packets: &[(String, i64)], kind: &str) -> Vec<i64> {
    packets.iter().filter(|(packet_kind, _)| packet_kind == kind).map(|(_, dts)| *dts).collect()
}

// ---------------------------------------------------------------------------------------
// A handler that accepts one key, refuses a second publisher, and hands each accepted
// publish's receiver to the test.

struct TestHandler {
    expected_key: String,
    channel_capacity: usize,
    live: Mutex<HashSet<String>>,
    requests: Mutex<Vec<(String, String)>>,
    accepted: mpsc::UnboundedSender<mpsc::Receiver<MediaMessage>>,
}

impl PublishHandler for TestHandler {
    fn authorize(&self, request: &PublishRequest) -> Result<Publish, Rejection> {
        let key = request.stream_key.expose().to_owned();
        self.requests.lock().unwrap().push((request.app.clone(), key.clone()));
        if !request.stream_key.matches(&self.expected_key) {
            return Err(Rejection::BadKey);
        }
        if !self.live.lock().unwrap().insert(key) {
            return Err(Rejection::AlreadyLive);
        }
        let (sink, receiver) = PublishSink::channel(self.channel_capacity);
        self.accepted.send(receiver).map_err(|_| Rejection::Other("test is over".into()))?;
        Ok(Publish::Media(sink))
    }
}

struct TestServer {
    address: SocketAddr,
    /// The RTMPS port, when started with a certificate.
    tls_address: Option<SocketAddr>,
    metrics: Arc<IngestMetrics>,
    handler: Arc<TestHandler>,
    accepted: mpsc::UnboundedReceiver<mpsc::Receiver<MediaMessage>>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl TestServer {
    async fn start(expected_key: &str, configure: impl FnOnce(&mut ListenerConfig)) -> TestServer {
        Self::start_with_capacity(expected_key, 64, configure).await
    }

    async fn start_with_capacity(
        expected_key: &str,
        channel_capacity: usize,
        configure: impl FnOnce(&mut ListenerConfig),
    ) -> TestServer {
        Self::start_endpoints(expected_key, channel_capacity, None, configure).await
    }

    /// RTMP, and RTMPS with the certificate in `tls`.
    async fn start_tls(expected_key: &str, tls: TlsFiles, configure: impl FnOnce(&mut ListenerConfig)) -> TestServer {
        Self::start_endpoints(expected_key, 64, Some(tls), configure).await
    }

    async fn start_endpoints(
        expected_key: &str,
        channel_capacity: usize,
        tls: Option<TlsFiles>,
        configure: impl FnOnce(&mut ListenerConfig),
    ) -> TestServer {
        captured_logs();
        let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = socket.local_addr().unwrap();
        let mut endpoints = vec![Endpoint::plain(socket)];
        let mut tls_address = None;
        if let Some(files) = tls {
            let identity = Arc::new(TlsIdentity::load(files).expect("the test certificate loads"));
            let tls_socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
            tls_address = Some(tls_socket.local_addr().unwrap());
            endpoints.push(Endpoint::tls(tls_socket, identity));
        }
        let metrics = Arc::new(IngestMetrics::default());
        let mut config = ListenerConfig { metrics: Arc::clone(&metrics), ..ListenerConfig::default() };
        configure(&mut config);
        let (accepted_sender, accepted) = mpsc::unbounded_channel();
        let handler = Arc::new(TestHandler {
            expected_key: expected_key.to_owned(),
            channel_capacity,
            live: Mutex::new(HashSet::new()),
            requests: Mutex::new(Vec::new()),
            accepted: accepted_sender,
        });
        let (shutdown, shutdown_receiver) = watch::channel(false);
        let dyn_handler: Arc<dyn PublishHandler> = handler.clone();
        let task = tokio::spawn(listener::run(endpoints, config, dyn_handler, shutdown_receiver));
        TestServer { address, tls_address, metrics, handler, accepted, shutdown, task }
    }

    fn url(&self, key: &str) -> String {
        format!("rtmp://{}/live/{key}", self.address)
    }

    fn tls_url(&self, key: &str) -> String {
        format!("rtmps://{}/live/{key}", self.tls_address.expect("started with TLS"))
    }

    async fn next_publish(&mut self) -> mpsc::Receiver<MediaMessage> {
        let accepted = timeout(STARTUP_TIMEOUT, self.accepted.recv()).await;
        let Ok(accepted) = accepted else {
            let logs = logs_text();
            let tail = &logs[logs.len().saturating_sub(3000)..];
            panic!("no publish was accepted in time; the last logs:\n{tail}");
        };
        accepted.expect("handler dropped")
    }

    fn requests(&self) -> Vec<(String, String)> {
        self.handler.requests.lock().unwrap().clone()
    }

    async fn stop(self) {
        self.shutdown.send(true).unwrap();
        timeout(CLOSE_TIMEOUT, self.task).await.expect("listener did not stop in time").unwrap();
    }
}

/// `ffmpeg -re -i FIXTURE -c copy -f flv URL`, looping the input forever if asked.
fn push(url: &str, loop_forever: bool) -> Child {
    let mut command = Command::new("ffmpeg");
    command.args(["-hide_banner", "-loglevel", "error", "-nostdin"]);
    if loop_forever {
        command.args(["-stream_loop", "-1"]);
    }
    command
        .arg("-re")
        .arg("-i")
        .arg(fixture_flv())
        .args(["-c", "copy", "-f", "flv", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("ffmpeg must be on PATH")
}

async fn wait_exit(child: Child, what: &str) -> std::process::Output {
    timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{what}: ffmpeg did not exit in time"))
        .unwrap()
}

/// Timestamps of the coded video frames (not the sequence header) among `messages`.
fn coded_video_timestamps(messages: &[MediaMessage]) -> Vec<i64> {
    messages
        .iter()
        .filter_map(|message| match message {
            MediaMessage::Tag(FlvTag { kind: FlvTagKind::Video, timestamp_ms, data }) if data.get(1) == Some(&1) => {
                Some(i64::from(*timestamp_ms))
            }
            _ => None,
        })
        .collect()
}

/// Receives media until End, within a deadline.
async fn collect_until_end(receiver: &mut mpsc::Receiver<MediaMessage>) -> (Vec<MediaMessage>, EndReason) {
    let mut messages = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::time::timeout_at(deadline, receiver.recv()).await {
            Err(_) => panic!("publish did not end in time ({} messages so far)", messages.len()),
            Ok(None) => panic!("media channel closed without an End message"),
            Ok(Some(MediaMessage::End(reason))) => return (messages, reason),
            Ok(Some(message)) => messages.push(message),
        }
    }
}

/// Drains a publish in the background, publishing the newest video timestamp; resolves to
/// how the publish ended.
fn track_progress(mut receiver: mpsc::Receiver<MediaMessage>) -> (watch::Receiver<Option<u32>>, JoinHandle<EndReason>) {
    let (latest_sender, latest) = watch::channel(None);
    let task = tokio::spawn(async move {
        while let Some(message) = receiver.recv().await {
            match message {
                MediaMessage::Tag(FlvTag { kind: FlvTagKind::Video, timestamp_ms: timestamp, .. }) => {
                    latest_sender.send_modify(|latest: &mut Option<u32>| {
                        *latest = Some(latest.map_or(timestamp, |seen| seen.max(timestamp)))
                    });
                }
                MediaMessage::End(reason) => return reason,
                MediaMessage::Tag(_) => {}
            }
        }
        EndReason::Disconnected
    });
    (latest, task)
}

/// Waits until the tracked video timestamp reaches `at_least`.
async fn wait_for_video_at(latest: &mut watch::Receiver<Option<u32>>, at_least: u32, what: &str) -> u32 {
    let reached = timeout(STARTUP_TIMEOUT, latest.wait_for(|seen| seen.is_some_and(|seen| seen >= at_least)))
        .await
        .unwrap_or_else(|_| panic!("{what}: video did not reach {at_least} ms in time"))
        .expect("progress tracker ended");
    reached.unwrap_or_default()
}

/// Reads until the server closes the connection (EOF or reset), within a deadline.
async fn expect_closed(stream: &mut TcpStream, what: &str) {
    let mut buffer = [0u8; 4096];
    let closed = timeout(CLOSE_TIMEOUT, async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "{what}: the server did not close the connection");
}

/// The client half of a plain handshake.
async fn plain_handshake(stream: &mut TcpStream) -> std::io::Result<()> {
    let mut c0c1 = vec![3u8];
    c0c1.extend_from_slice(&[0u8; 1536]);
    stream.write_all(&c0c1).await?;
    let mut reply = vec![0u8; 1 + 2 * 1536];
    stream.read_exact(&mut reply).await?;
    stream.write_all(&reply[1..1 + 1536]).await
}

// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_publish_keeps_timestamps_and_rebuilds_a_decodable_flv() {
    let key = "timestamps-key-5f2a9c";
    let mut server = TestServer::start(key, |_| {}).await;
    let publisher = push(&server.url(key), false);
    let mut receiver = server.next_publish().await;
    let (messages, end) = collect_until_end(&mut receiver).await;
    let output = wait_exit(publisher, "publisher").await;
    assert!(output.status.success(), "ffmpeg failed: {}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(end, EndReason::Unpublished, "ffmpeg unpublishes cleanly at the end");
    assert_eq!(server.requests(), vec![("live".to_owned(), key.to_owned())]);

    // Timestamps of coded frames equal the packet timestamps in the file.
    let file_packets = probe_packets(fixture_flv());
    let received_video = coded_video_timestamps(&messages);
    let received_audio: Vec<i64> = messages
        .iter()
        .filter_map(|message| match message {
            MediaMessage::Tag(FlvTag { kind: FlvTagKind::Audio, timestamp_ms, data })
                if !flv::is_aac_sequence_header(data) =>
            {
                Some(i64::from(*timestamp_ms))
            }
            _ => None,
        })
        .collect();
    assert_eq!(received_video, dts_of(&file_packets, "video"), "video timestamps");
    assert_eq!(received_audio, dts_of(&file_packets, "audio"), "audio timestamps");
    assert!(
        messages
            .iter()
            .any(|message| matches!(message, MediaMessage::Tag(tag) if tag.avc_decoder_configuration().is_some())),
        "the AVC sequence header arrives"
    );
    assert!(
        messages
            .iter()
            .any(|message| matches!(message, MediaMessage::Tag(tag) if tag.kind == FlvTagKind::Audio && tag.is_sequence_header())),
        "the AAC sequence header arrives"
    );
    let Some(MediaMessage::Tag(FlvTag { kind: FlvTagKind::Script, data: metadata, .. })) = messages.first() else {
        panic!("metadata comes first, got {:?}", messages.first());
    };
    assert_eq!(&metadata[..13], b"\x02\x00\x0aonMetaData", "metadata is a script tag body starting with onMetaData");

    // An FLV rebuilt from the messages decodes with the same packets.
    let directory = tempfile::tempdir().unwrap();
    let rebuilt_path = directory.path().join("rebuilt.flv");
    let mut rebuilt = flv::file_header(true, true).to_vec();
    for message in &messages {
        let MediaMessage::Tag(tag) = message else { unreachable!("End is not collected") };
        rebuilt.extend_from_slice(&tag.encode().unwrap());
    }
    std::fs::write(&rebuilt_path, &rebuilt).unwrap();
    let rebuilt_packets = probe_packets(&rebuilt_path);
    assert_eq!(rebuilt_packets.len(), file_packets.len(), "packet count of the rebuilt FLV");
    assert_eq!(dts_of(&rebuilt_packets, "video"), dts_of(&file_packets, "video"));
    let decoded = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v", "-show_entries", "stream=nb_read_frames"])
        .args(["-of", "csv=p=0"])
        .arg(&rebuilt_path)
        .output()
        .unwrap();
    assert!(decoded.stderr.is_empty(), "decoding errors: {}", String::from_utf8_lossy(&decoded.stderr));
    assert_eq!(
        String::from_utf8_lossy(&decoded.stdout).trim(),
        dts_of(&file_packets, "video").len().to_string(),
        "every video frame decodes"
    );

    // The key never reaches the logs; its fingerprint and the app do.
    let logs = logs_text();
    assert!(!logs.contains(key), "the stream key was logged");
    let fingerprint = livestream::ingest::session::StreamKey::new(key).fingerprint();
    assert!(logs.contains(&fingerprint), "the key fingerprint is logged");
    assert!(logs.contains("app=live") || logs.contains("app=\"live\""), "the app is logged");
    assert!(logs.contains("form=Some(Digest("), "ffmpeg's handshake is answered in the digest form");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_is_refused() {
    let server = TestServer::start("right-key", |_| {}).await;
    let publisher = push(&server.url("wrong-key"), false);
    let output = wait_exit(publisher, "publisher with a wrong key").await;
    assert!(!output.status.success(), "ffmpeg must fail when its key is refused");
    assert_eq!(server.requests(), vec![("live".to_owned(), "wrong-key".to_owned())]);
    assert_eq!(server.metrics.publishes_rejected(&Rejection::BadKey), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_publisher_is_refused_and_the_first_keeps_streaming() {
    let key = "shared-key";
    let mut server = TestServer::start(key, |_| {}).await;
    let first = push(&server.url(key), true);
    let (mut latest, first_end) = track_progress(server.next_publish().await);
    let started_at = wait_for_video_at(&mut latest, 0, "first publisher").await;

    let second = push(&server.url(key), false);
    let output = wait_exit(second, "second publisher").await;
    assert!(!output.status.success(), "the second publisher must be refused");
    assert_eq!(server.metrics.publishes_rejected(&Rejection::AlreadyLive), 1);
    assert_eq!(server.requests().len(), 2);

    let after_refusal = latest.borrow().unwrap_or(started_at);
    wait_for_video_at(&mut latest, after_refusal + 1000, "first publisher after the refusal").await;

    drop(first);
    let end = timeout(CLOSE_TIMEOUT, first_end).await.expect("first publish did not end").unwrap();
    assert_eq!(end, EndReason::Disconnected, "a killed publisher is a dropped connection");
    assert!(!end.is_clean());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_closes_only_that_connection() {
    let key = "steady-key";
    let mut server = TestServer::start(key, |_| {}).await;
    let publisher = push(&server.url(key), true);
    let (mut latest, _end) = track_progress(server.next_publish().await);
    wait_for_video_at(&mut latest, 0, "publisher").await;

    let mut garbage = TcpStream::connect(server.address).await.unwrap();
    garbage.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    expect_closed(&mut garbage, "garbage before the handshake").await;

    let mut absurd = TcpStream::connect(server.address).await.unwrap();
    plain_handshake(&mut absurd).await.unwrap();
    let mut wire = BytesMut::new();
    ChunkEncoder::new().encode(&control::build(ControlMessage::SetChunkSize(0x7FFF_FFFF)), &mut wire).unwrap();
    absurd.write_all(&wire).await.unwrap();
    expect_closed(&mut absurd, "absurd Set Chunk Size").await;

    let mut bad_chunk = TcpStream::connect(server.address).await.unwrap();
    plain_handshake(&mut bad_chunk).await.unwrap();
    bad_chunk.write_all(&[0x45, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x14, 0x01, 0x02]).await.unwrap();
    expect_closed(&mut bad_chunk, "chunk header without a previous header").await;

    assert_eq!(server.metrics.protocol_errors(), 3);
    let after = latest.borrow().unwrap_or_default();
    wait_for_video_at(&mut latest, after + 500, "publisher after the malformed connections").await;
    drop(publisher);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_are_refused() {
    let server = TestServer::start("k", |config| config.max_connections = 1).await;
    let mut first = TcpStream::connect(server.address).await.unwrap();
    plain_handshake(&mut first).await.unwrap();

    let mut second = TcpStream::connect(server.address).await.unwrap();
    expect_closed(&mut second, "connection beyond the limit").await;
    assert_eq!(server.metrics.connections_refused(), 1);
    assert_eq!(server.metrics.connections_accepted(), 1);

    drop(first);
    // The slot frees once the server has seen the first connection close.
    timeout(CLOSE_TIMEOUT, async {
        while server.metrics.active_connections() != 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the first connection's slot was not released");
    let mut third = TcpStream::connect(server.address).await.unwrap();
    timeout(CLOSE_TIMEOUT, plain_handshake(&mut third))
        .await
        .expect("handshake after the slot freed timed out")
        .expect("a connection is accepted once a slot is free");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_time_out() {
    let server = TestServer::start("k", |config| {
        config.handshake_timeout = Duration::from_millis(300);
        config.idle_timeout = Duration::from_millis(300);
    })
    .await;
    let mut silent = TcpStream::connect(server.address).await.unwrap();
    expect_closed(&mut silent, "no handshake").await;

    let mut idle = TcpStream::connect(server.address).await.unwrap();
    plain_handshake(&mut idle).await.unwrap();
    expect_closed(&mut idle, "idle after the handshake").await;
    assert_eq!(server.metrics.connections_accepted(), 2);
    server.stop().await;
}

/// A TCP connection to `server` from the loopback address `source`.
async fn connect_from(source: &str, server: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket.connect(server).await.unwrap()
}

/// Sockets that never handshake, from one address, reopened as the server closes them,
/// keep no publisher out: connections that have not published have a budget of their
/// own, per address, and a few seconds each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_connections_do_not_lock_out_publishers() {
    let key = "edge-key";
    let mut server = TestServer::start(key, |_| {}).await;
    let address = server.address;
    let flood = tokio::spawn(async move {
        let mut open = Vec::new();
        loop {
            // The server keeps two of them at most; the others close at once.
            open.retain(|stream: &TcpStream| stream.peer_addr().is_ok());
            if open.len() < 20 {
                open.push(connect_from("127.0.0.2", address).await);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused_before = server.metrics.connections_refused();
    assert!(refused_before > 0, "the flood beyond two connections is refused");
    let publisher = push(&server.url(key), true);
    let (mut latest, _end) = track_progress(server.next_publish().await);
    wait_for_video_at(&mut latest, 1000, "a publisher beside the flood").await;
    flood.abort();
    drop(publisher);
    server.stop().await;
}

/// A client that handshakes and then sends a byte now and then is closed when its time to
/// publish is over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drip_after_the_handshake_keeps_no_slot() {
    let server = TestServer::start("k", |config| config.publish_timeout = Duration::from_millis(800)).await;
    let mut drip = TcpStream::connect(server.address).await.unwrap();
    plain_handshake(&mut drip).await.unwrap();
    let started = std::time::Instant::now();
    // The start of a chunk header, one byte at a time: never a whole message.
    let header = [0x03u8, 0, 0, 0, 0, 0, 100, 20, 0, 0, 0, 0];
    let mut closed = false;
    for byte in header.iter().cycle().take(40) {
        if drip.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !closed {
        expect_closed(&mut drip, "a drip after the handshake").await;
    }
    assert!(started.elapsed() < Duration::from_secs(3), "closed at the publish deadline: {:?}", started.elapsed());
    server.stop().await;
}

/// A publisher that goes silent after publishing is closed, and its publish ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_that_sends_no_media_is_closed() {
    let mut server = TestServer::start("k", |config| config.media_timeout = Duration::from_millis(700)).await;
    let mut publisher = TcpStream::connect(server.address).await.unwrap();
    plain_handshake(&mut publisher).await.unwrap();
    publisher.write_all(&publish_script("k", 1, 100)).await.unwrap();
    let mut receiver = server.next_publish().await;
    let (_, end) = collect_until_end(&mut receiver).await;
    assert_eq!(end, EndReason::TimedOut);
    expect_closed(&mut publisher, "a silent publisher").await;
    server.stop().await;
}

/// A client's strings are its own to size: a 65,000-byte application name leaves log lines
/// of ordinary length.
#[tokio::test]
async fn attacker_sized_names_leave_short_log_lines() {
    let server = TestServer::start("k", |_| {}).await;
    let huge_app = format!("huge-app-{}", "a".repeat(65_000));
    let mut refused = TcpStream::connect(server.address).await.unwrap();
    plain_handshake(&mut refused).await.unwrap();
    refused.write_all(&publish_script_for(&huge_app, "wrong", 0, 0)).await.unwrap();
    expect_closed(&mut refused, "a refused publish with a huge application name").await;
    assert_eq!(server.metrics.publishes_rejected(&Rejection::BadKey), 1);

    let logs = logs_text();
    let lines: Vec<&str> = logs.lines().filter(|line| line.contains("huge-app-aaaa")).collect();
    assert!(lines.len() >= 2, "the connection and the refusal are logged with the application, clipped:\n{lines:?}");
    let longest = lines.iter().map(|line| line.len()).max().unwrap_or_default();
    assert!(longest < 600, "a log line with the application is {longest} bytes long");
    assert!(
        lines.iter().all(|line| line.contains("(65009 bytes)")),
        "the clipped name says how long it was: {lines:?}"
    );
    server.stop().await;
}

/// The bytes a minimal publisher sends after the handshake: a larger chunk size, connect,
/// createStream, publish, then `count` video messages of `size` bytes, 40 ms apart.
fn publish_script(key: &str, count: usize, size: usize) -> Vec<u8> {
    publish_script_for("live", key, count, size)
}

/// [`publish_script`] to the application `app`.
fn publish_script_for(app: &str, key: &str, count: usize, size: usize) -> Vec<u8> {
    let mut encoder = ChunkEncoder::new();
    let mut wire = BytesMut::new();
    let mut send = |encoder: &ChunkEncoder, message: RtmpMessage| encoder.encode(&message, &mut wire).unwrap();
    send(&encoder, control::build(ControlMessage::SetChunkSize(65_536)));
    encoder.set_chunk_size(65_536).unwrap();
    let connect_object = Amf0Value::object([("app", Amf0Value::string(app))]);
    send(&encoder, command_message(3, 0, &[Amf0Value::string("connect"), Amf0Value::Number(1.0), connect_object]));
    send(
        &encoder,
        command_message(3, 0, &[Amf0Value::string("createStream"), Amf0Value::Number(2.0), Amf0Value::Null]),
    );
    let publish = [Amf0Value::string("publish"), Amf0Value::Number(3.0), Amf0Value::Null, Amf0Value::string(key)];
    send(&encoder, command_message(4, 1, &publish));
    for index in 0..count {
        let mut payload = vec![0x55u8; size];
        payload[..5].copy_from_slice(&[0x27, 0x01, 0, 0, 0]);
        let timestamp = u32::try_from(index).unwrap() * 40;
        send(
            &encoder,
            RtmpMessage { chunk_stream_id: 6, timestamp, type_id: 9, stream_id: 1, payload: payload.into() },
        );
    }
    wire.to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_media_channel_stops_reading_from_the_publisher() {
    const MESSAGES: usize = 256;
    const MESSAGE_SIZE: usize = 64_000;
    const CAPACITY: usize = 2;
    let key = "backpressure-key";
    let mut server = TestServer::start_with_capacity(key, CAPACITY, |_| {}).await;
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    plain_handshake(&mut stream).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    // Replies are read and discarded so that the server's writes never block.
    tokio::spawn(async move {
        let mut buffer = [0u8; 4096];
        while matches!(reader.read(&mut buffer).await, Ok(count) if count > 0) {}
    });
    let wire = publish_script(key, MESSAGES, MESSAGE_SIZE);
    let total = wire.len() as u64;
    let mut sender = tokio::spawn(async move { writer.write_all(&wire).await });

    let mut receiver = server.next_publish().await;
    // Nobody consumes: the server stops reading, so the 16 MB cannot all be sent.
    assert!(
        timeout(Duration::from_secs(1), &mut sender).await.is_err(),
        "the publisher could write everything although the media channel was full"
    );
    assert!(receiver.len() <= CAPACITY);
    let read_while_blocked = server.metrics.bytes_received();
    assert!(read_while_blocked < total / 2, "server read {read_while_blocked} of {total} bytes while blocked");

    // Consuming lets everything through, in order.
    let mut timestamps = Vec::new();
    while timestamps.len() < MESSAGES {
        match timeout(STARTUP_TIMEOUT, receiver.recv()).await.expect("media stalled after consuming resumed") {
            Some(MediaMessage::Tag(FlvTag { kind: FlvTagKind::Video, timestamp_ms, data })) => {
                assert_eq!(data.len(), MESSAGE_SIZE);
                timestamps.push(timestamp_ms);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let expected: Vec<u32> = (0..MESSAGES).map(|index| u32::try_from(index).unwrap() * 40).collect();
    assert_eq!(timestamps, expected);
    timeout(CLOSE_TIMEOUT, sender).await.expect("the publisher's writes did not finish").unwrap().unwrap();
    let end = timeout(CLOSE_TIMEOUT, receiver.recv()).await.expect("no end after the publisher closed");
    assert_eq!(end, Some(MediaMessage::End(EndReason::Disconnected)));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_open_publishes() {
    let key = "shutdown-key";
    let mut server = TestServer::start(key, |_| {}).await;
    let publisher = push(&server.url(key), true);
    let (mut latest, end) = track_progress(server.next_publish().await);
    wait_for_video_at(&mut latest, 0, "publisher").await;
    server.stop().await;
    let end = timeout(CLOSE_TIMEOUT, end).await.expect("the publish did not end on shutdown").unwrap();
    assert_eq!(end, EndReason::Shutdown);
    drop(publisher);
}

// ---------------------------------------------------------------------------------------
// RTMPS

/// A self-signed certificate for `localhost`, written as PEM files into `dir`.
fn write_certificate(dir: &Path, name: &str) -> (TlsFiles, Vec<u8>) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let files = TlsFiles { certificate: dir.join(format!("{name}.crt")), private_key: dir.join(format!("{name}.key")) };
    std::fs::write(&files.certificate, certified.cert.pem()).unwrap();
    std::fs::write(&files.private_key, certified.signing_key.serialize_pem()).unwrap();
    (files, certified.cert.der().to_vec())
}

/// A TLS client that trusts only `trusted` (DER), with the server name `localhost`.
async fn tls_connect(
    address: SocketAddr,
    trusted: &[u8],
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from(trusted.to_vec())).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let stream = TcpStream::connect(address).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    timeout(CLOSE_TIMEOUT, connector.connect(name, stream)).await.map_err(|_| std::io::ErrorKind::TimedOut)?
}

/// ffmpeg publishes over RTMPS as over RTMP: the same timestamps arrive and the publish
/// ends cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_publishes_over_rtmps() {
    let dir = tempfile::tempdir().unwrap();
    let (files, _) = write_certificate(dir.path(), "ingest");
    let key = "rtmps-key-81c3e0";
    let mut server = TestServer::start_tls(key, files, |_| {}).await;
    let publisher = push(&server.tls_url(key), false);
    let mut receiver = server.next_publish().await;
    let (messages, end) = collect_until_end(&mut receiver).await;
    let output = wait_exit(publisher, "RTMPS publisher").await;
    assert!(output.status.success(), "ffmpeg failed over RTMPS: {}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(end, EndReason::Unpublished);
    let video = coded_video_timestamps(&messages);
    assert_eq!(video, dts_of(&probe_packets(fixture_flv()), "video"), "video timestamps over RTMPS");
    assert!(logs_text().contains("scheme=\"rtmps\"") || logs_text().contains("scheme=rtmps"), "logs name RTMPS");
    assert!(!logs_text().contains(key), "the stream key was logged");
    assert_eq!(server.metrics.tls_failures(), 0);

    server.stop().await;
}

/// Plain RTMP sent to the RTMPS port, and a socket that never starts TLS, are closed
/// and counted; TLS clients on that port and plain RTMP on its own go on working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_rtmp_and_silence_on_the_rtmps_port_are_closed_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (files, certificate) = write_certificate(dir.path(), "ingest");
    let server =
        TestServer::start_tls("k", files, |config| config.handshake_timeout = Duration::from_millis(500)).await;
    let tls_address = server.tls_address.unwrap();

    let mut plain = TcpStream::connect(tls_address).await.unwrap();
    let mut c0c1 = vec![3u8];
    c0c1.extend_from_slice(&[0u8; 1536]);
    plain.write_all(&c0c1).await.unwrap();
    expect_closed(&mut plain, "plain RTMP on the RTMPS port").await;

    let mut silent = TcpStream::connect(tls_address).await.unwrap();
    expect_closed(&mut silent, "no TLS handshake").await;
    assert_eq!(server.metrics.tls_failures(), 2, "both failures are counted");

    let mut client = tls_connect(tls_address, &certificate).await.expect("a TLS client still connects");
    let mut c0c1 = vec![3u8];
    c0c1.extend_from_slice(&[0u8; 1536]);
    client.write_all(&c0c1).await.unwrap();
    let mut reply = vec![0u8; 1 + 2 * 1536];
    timeout(CLOSE_TIMEOUT, client.read_exact(&mut reply)).await.expect("S0 S1 S2 in time").unwrap();
    assert_eq!(reply[0], 3, "the RTMP handshake answers inside TLS");
    let mut beside = TcpStream::connect(server.address).await.unwrap();
    timeout(CLOSE_TIMEOUT, plain_handshake(&mut beside)).await.expect("plain handshake in time").unwrap();
    server.stop().await;
}

/// A renewed certificate (the files replaced, as cert-manager renews a Secret) is served
/// to new connections within seconds, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_served_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (files, first) = write_certificate(dir.path(), "ingest");
    let server = TestServer::start_tls("k", files.clone(), |_| {}).await;
    let tls_address = server.tls_address.unwrap();
    tls_connect(tls_address, &first).await.expect("the first certificate is served");

    let (renewed_files, renewed) = write_certificate(dir.path(), "renewed");
    std::fs::rename(&renewed_files.certificate, &files.certificate).unwrap();
    std::fs::rename(&renewed_files.private_key, &files.private_key).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while tls_connect(tls_address, &renewed).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the renewed certificate was not served within 15 s: {:?}",
            tls_connect(tls_address, &renewed).await.err()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(tls_connect(tls_address, &first).await.is_err(), "the old certificate is no longer served");

    // Files that do not load leave the renewed certificate in use.
    std::fs::write(&files.certificate, "not a certificate").unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !logs_text().contains("serving the previous certificate") {
        assert!(tokio::time::Instant::now() < deadline, "the broken file was not noticed within 15 s");
        tls_connect(tls_address, &renewed).await.expect("a broken file keeps the last good certificate");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tls_connect(tls_address, &renewed).await.expect("a broken file keeps the last good certificate");
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Other RTMP clients: GStreamer's own (rtmp2sink) and librtmp, the library of rtmpdump
// from which OBS's RTMP output descends (GStreamer's rtmpsink).

/// GStreamer remuxing the fixture to `url` with `sink`, in real time (the sink syncs to
/// the clock).
fn gstreamer_push(sink: &str, url: &str) -> Child {
    Command::new("gst-launch-1.0")
        .arg("-q")
        .arg("filesrc")
        .arg(format!("location={}", fixture_flv().display()))
        .args(["!", "flvdemux", "name=demux"])
        .args(["demux.video", "!", "queue", "!", "h264parse", "!", "mux."])
        .args(["demux.audio", "!", "queue", "!", "aacparse", "!", "mux."])
        .args(["flvmux", "name=mux", "streamable=true", "!", sink])
        .arg(format!("location={url}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("gst-launch-1.0 must be on PATH (scripts/testenv.sh installs it)")
}

/// GStreamer's rtmp2sink and librtmp (rtmpsink) publish: every video frame arrives with
/// its timestamp, the publish ends as the client ends it, and the key is not logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_and_librtmp_publish_every_frame() {
    let expected = dts_of(&probe_packets(fixture_flv()), "video");
    for sink in ["rtmp2sink", "rtmpsink"] {
        let key = format!("{sink}-key-2d94b1");
        let mut server = TestServer::start(&key, |_| {}).await;
        let publisher = gstreamer_push(sink, &server.url(&key));
        let mut receiver = server.next_publish().await;
        let (messages, end) = collect_until_end(&mut receiver).await;
        let output = wait_exit(publisher, sink).await;
        assert!(output.status.success(), "{sink} failed: {}", String::from_utf8_lossy(&output.stderr));
        assert_eq!(end, EndReason::Unpublished, "{sink} unpublishes at the end of its input");
        assert_eq!(server.requests(), vec![("live".to_owned(), key.clone())], "{sink}");
        assert!(
            messages.iter().any(|m| matches!(m, MediaMessage::Tag(tag) if tag.avc_decoder_configuration().is_some())),
            "{sink}: the AVC sequence header arrives"
        );
        assert_eq!(coded_video_timestamps(&messages), expected, "{sink}: video timestamps");
        let audio = messages.iter().filter(|m| matches!(m, MediaMessage::Tag(t) if t.kind == FlvTagKind::Audio));
        assert!(audio.count() > 100, "{sink}: the audio arrives");
        assert!(!logs_text().contains(&key), "{sink}: the stream key was logged");
        server.stop().await;
    }
}
