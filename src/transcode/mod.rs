//! Transcoding with ffmpeg: the ladder plan, ffmpeg's argument vector, FLV input, parsers
//! of ffmpeg's progress and local playlists (all sans IO), and the process supervisor.
//!
//! ffmpeg encodes and cuts; everything after (names, sequence numbers, playlists, uploads)
//! belongs to the packager and the worker. This module depends on no other module of the
//! crate: its inputs are plain structs.

pub mod args;
pub mod flv;
pub mod gate;
pub mod lines;
pub mod local_playlist;
pub mod plan;
pub mod progress;
pub mod supervisor;

pub use args::ffmpeg_args;
pub use flv::{FlvTag, FlvTagKind};
pub use plan::{
    AudioPlan, Container, PlannedRendition, Profile, RenditionRequest, SourceSize, TranscodePlan, select_ladder,
};
pub use progress::Progress;
pub use supervisor::{RestartPolicy, SegmentReady, SupervisorConfig, TranscodeError, TranscodeEvent, Transcoder};
