//! Format code shared by ingest, transcode and package, sans IO: FLV tags and their video
//! bodies (legacy and Enhanced RTMP), AMF0 values, H.264, HEVC and AV1 configurations,
//! AAC in ADTS, the Matroska stream that carries HEVC and AV1 to ffmpeg, MP4 boxes
//! (including the fragments of fragmented MP4), MPEG-TS demultiplexing (and a live
//! transport stream turned into FLV tags) and the RFC 6381 codec strings read from them.
//!
//! Depends on no other module of the crate.

pub mod adts;
pub mod amf0;
pub mod av1;
mod bits;
pub mod codecs;
pub mod flv;
pub mod fmp4;
pub mod h264;
pub mod hevc;
pub mod matroska;
pub mod mp4;
pub mod mpegts;
pub mod ts_to_flv;
pub mod video_tag;
