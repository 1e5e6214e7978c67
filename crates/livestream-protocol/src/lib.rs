//! The formats of livestream-operator, sans IO: bytes in, values and events out, no
//! socket, process or clock in sight. The worker's shells (the RTMP listener, the
//! transcoder's readers, the packager) drive these cores; the fuzz targets in `fuzz/`
//! drive them with arbitrary input.
//!
//! - [`media`]: FLV tags, AMF0 values, H.264 parameter sets, AAC in ADTS, MP4 boxes and
//!   the fragments of fragmented MP4, MPEG-TS demultiplexing and its conversion into FLV
//!   tags, RFC 6381 codec strings.
//! - [`rtmp`]: the RTMP server side: handshake, chunk stream, control messages, commands
//!   and the publish session. Depends on `media` (AMF0 and FLV) only.
//! - [`playlist`]: our own HLS media playlists parsed back, to resume a stream.
//! - [`srt`]: the publish an SRT caller asks for in its stream ID. Depends on `rtmp`'s
//!   stream key only; SRT's transport is libsrt's, in the worker.

pub mod media;
pub mod playlist;
pub mod rtmp;
pub mod srt;
