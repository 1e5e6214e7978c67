//! Format code shared by ingest, transcode and package, sans IO: FLV tags, AMF0 values,
//! H.264 parameter sets, MP4 boxes (including the fragments of fragmented MP4), MPEG-TS
//! demultiplexing and the RFC 6381 codec strings read from them.
//!
//! Depends on no other module of the crate.

pub mod amf0;
pub mod codecs;
pub mod flv;
pub mod fmp4;
pub mod h264;
pub mod mp4;
pub mod mpegts;
