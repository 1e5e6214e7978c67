//! An RTMP publisher for sources ffmpeg will not send: it publishes FLV tags that ffmpeg
//! encoded and the test rewrote (timestamps that leap, for one), at the pace the test gives.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use livestream::ingest::chunk::{ChunkEncoder, RtmpMessage};
use livestream::ingest::command::command_message;
use livestream::ingest::control::{self, ControlMessage};
use livestream::media::amf0::Amf0Value;
use livestream::media::flv::{FlvReader, FlvTag, FlvTagKind};

use super::process::testenv_bin;

/// H.264 + AAC tags of `seconds` of a test pattern, as ffmpeg writes them to an FLV file.
pub fn encoded_tags(dir: &Path, seconds: u32) -> Vec<FlvTag> {
    encoded_tags_sized(dir, seconds, "320x180")
}

/// As [`encoded_tags`], at the picture size `size` (`WIDTHxHEIGHT`).
pub fn encoded_tags_sized(dir: &Path, seconds: u32, size: &str) -> Vec<FlvTag> {
    let path = dir.join(format!("source-{size}.flv"));
    let status = Command::new(testenv_bin("ffmpeg"))
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", &format!("testsrc=size={size}:rate=25")])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &seconds.to_string()])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "25"])
        .args(["-c:a", "aac", "-b:a", "64k", "-f", "flv"])
        .arg(&path)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success(), "ffmpeg could not write {}", path.display());
    let mut reader = FlvReader::new();
    reader.push(&std::fs::read(&path).expect("the FLV ffmpeg wrote"));
    let mut tags = Vec::new();
    while let Some(tag) = reader.next_tag().expect("ffmpeg's FLV parses") {
        tags.push(tag);
    }
    tags
}

/// One tag to publish, sent `at` after the publish starts.
#[derive(Debug, Clone)]
pub struct Scheduled {
    pub tag: FlvTag,
    pub at: Duration,
}

/// `tags` on their own timeline, with the encoder's clock leaping `leap` ahead from `from`
/// on: the timestamps jump, the pace of sending does not.
pub fn leaping(tags: Vec<FlvTag>, from: Duration, leap: Duration) -> Vec<Scheduled> {
    let (from, leap) = (from.as_millis() as u32, leap.as_millis() as u32);
    tags.into_iter()
        .map(|mut tag| {
            let at = Duration::from_millis(u64::from(tag.timestamp_ms));
            if tag.timestamp_ms >= from {
                tag.timestamp_ms += leap;
            }
            Scheduled { tag, at }
        })
        .collect()
}

/// Publishes `tags` to `app`/`key` on an RTMP server, each at its time, then unpublishes
/// cleanly (FCUnpublish, deleteStream) and closes. The server's replies are read and
/// discarded.
pub fn publish(port: u16, app: &str, key: &str, tags: &[Scheduled]) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    handshake(&mut stream)?;
    let mut drain = stream.try_clone()?;
    let reader = std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while matches!(drain.read(&mut buffer), Ok(read) if read > 0) {}
    });

    let mut encoder = ChunkEncoder::new();
    let mut send = |encoder: &ChunkEncoder, message: RtmpMessage| -> std::io::Result<()> {
        let mut wire = BytesMut::new();
        encoder.encode(&message, &mut wire).map_err(std::io::Error::other)?;
        stream.write_all(&wire)
    };
    send(&encoder, control::build(ControlMessage::SetChunkSize(65_536)))?;
    encoder.set_chunk_size(65_536).map_err(std::io::Error::other)?;
    let connect = Amf0Value::object([("app", Amf0Value::string(app))]);
    send(&encoder, command_message(3, 0, &[Amf0Value::string("connect"), Amf0Value::Number(1.0), connect]))?;
    send(
        &encoder,
        command_message(3, 0, &[Amf0Value::string("createStream"), Amf0Value::Number(2.0), Amf0Value::Null]),
    )?;
    let publish = [Amf0Value::string("publish"), Amf0Value::Number(3.0), Amf0Value::Null, Amf0Value::string(key)];
    send(&encoder, command_message(4, 1, &publish))?;

    let start = Instant::now();
    for Scheduled { tag, at } in tags {
        if let Some(wait) = at.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
        let (chunk_stream_id, type_id) = match tag.kind {
            FlvTagKind::Audio => (4, 8),
            FlvTagKind::Video => (6, 9),
            FlvTagKind::Script => (5, 18),
        };
        send(
            &encoder,
            RtmpMessage {
                chunk_stream_id,
                timestamp: tag.timestamp_ms,
                type_id,
                stream_id: 1,
                payload: tag.data.clone(),
            },
        )?;
    }
    let key_value = Amf0Value::string(key);
    send(
        &encoder,
        command_message(3, 0, &[Amf0Value::string("FCUnpublish"), Amf0Value::Number(4.0), Amf0Value::Null, key_value]),
    )?;
    send(
        &encoder,
        command_message(
            3,
            0,
            &[Amf0Value::string("deleteStream"), Amf0Value::Number(5.0), Amf0Value::Null, Amf0Value::Number(1.0)],
        ),
    )?;
    // The server may close first, on deleteStream: then there is nothing to shut down.
    match stream.shutdown(std::net::Shutdown::Write) {
        Err(error) if error.kind() != std::io::ErrorKind::NotConnected => return Err(error),
        _ => {}
    }
    let _ = reader.join();
    Ok(())
}

/// The client half of a plain handshake: C0 C1, then C2 echoing S1.
fn handshake(stream: &mut TcpStream) -> std::io::Result<()> {
    let mut c0c1 = vec![3u8];
    c0c1.extend_from_slice(&[0u8; 1536]);
    stream.write_all(&c0c1)?;
    let mut reply = vec![0u8; 1 + 2 * 1536];
    stream.read_exact(&mut reply)?;
    stream.write_all(&reply[1..1 + 1536])
}
