//! One stream's pipeline: RTMP ingest, ffmpeg transcoding, HLS packaging and uploads,
//! with its configuration file, live figures and status; and the process that runs
//! streams, for `livestream worker` and `livestream serve`.

pub mod config;
pub mod figures;
pub mod ingest_clock;
pub mod keys;
pub mod manager;
pub mod metrics;
pub mod outputs;
pub mod pipeline;
pub mod publisher;
pub mod real_time;
pub mod run;
pub mod runtime;
pub mod scratch;
pub mod source;
pub mod source_timeline;
pub mod status;
pub mod stream;
