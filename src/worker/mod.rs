//! One stream's pipeline: RTMP ingest, ffmpeg transcoding, HLS packaging and uploads,
//! with its configuration file, live figures and status.

pub mod config;
pub mod figures;
pub mod keys;
pub mod status;
