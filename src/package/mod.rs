//! HLS packaging, sans IO: global segment numbering per rendition, live windows with
//! discontinuities across transcoder runs, recordings, media and master playlists, and the
//! codec strings and H.264 facts they need, read from the actual streams.
//!
//! Nothing here touches storage or clocks; the worker uploads objects and passes in times.

pub mod bandwidth;
pub mod codecs;
pub mod h264;
pub mod master;
pub mod media_playlist;
pub mod mp4;
pub mod mpegts;
pub mod names;
pub mod resume;
pub mod segment;
pub mod tracker;

pub use bandwidth::{BandwidthFloor, BandwidthMeter};
pub use codecs::{CodecsError, StreamCodecs, codecs_from_init_segment, codecs_from_ts_segment};
pub use master::{Variant, render_master_playlist};
pub use names::SegmentFormat;
pub use segment::SegmentRecord;
pub use tracker::{Committed, InitSlot, MediaTrack, SegmentSlot, TrackConfig, TrackError, UploadedSegment};
