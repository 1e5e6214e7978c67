//! livestream-operator: live streaming on Kubernetes. RTMP ingest, an ABR ladder through
//! ffmpeg, HLS packaged in Rust and written to S3-compatible storage; the operator that
//! runs it from `LiveStream` resources; and `livestream serve`, the same worker as one
//! process.

pub mod api;
pub mod backoff;
pub mod controller;
pub mod gateway;
pub mod ingest;
pub mod origin;
pub mod package;
pub mod serve;
pub mod storage;
pub mod telemetry;
pub mod transcode;
pub mod worker;

/// The formats, sans IO, from the crate that holds them.
pub use livestream_protocol::media;
