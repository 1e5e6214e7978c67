//! Transcoding with ffmpeg: the ladder plan, ffmpeg's argument vector, what reaches its
//! stdin, parsers of its progress and local playlists (all sans IO), and the process
//! supervisor that reports ffmpeg's output (fMP4 fragments or MPEG-TS segments).
//!
//! ffmpeg encodes and cuts; everything after (names, sequence numbers, playlists, uploads)
//! belongs to the packager and the worker. This module depends on `media` only: its inputs
//! are FLV tags and plain structs.

pub mod args;
pub mod cost;
pub mod gate;
pub mod lines;
pub mod local_playlist;
pub mod plan;
pub mod poster;
pub mod progress;
pub mod supervisor;

pub use args::ffmpeg_args;
pub use plan::{
    AudioPlan, Container, PlannedRendition, Profile, RenditionRequest, SourceFormat, SourceSize, TranscodePlan,
    select_ladder,
};
pub use progress::Progress;
pub use supervisor::{RestartPolicy, SegmentReady, SupervisorConfig, TranscodeError, TranscodeEvent, Transcoder};
