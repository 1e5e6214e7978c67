//! HLS packaging, sans IO: where ffmpeg's fragments fall into parts and segments, global
//! segment numbering per rendition, live windows with discontinuities across transcoder
//! runs, recordings, standard and low-latency media playlists and master playlists.
//!
//! Nothing here touches storage or clocks; the worker uploads objects and passes in times.

pub mod bandwidth;
pub mod cutter;
pub mod low_latency;
pub mod master;
pub mod media_playlist;
pub mod names;
pub mod segment;
pub mod tracker;

pub use bandwidth::{BandwidthFloor, BandwidthMeter};
pub use low_latency::{LowLatencyPlaylist, Position, RenderOptions, RenditionReport};
pub use master::{Variant, render_master_playlist};
pub use names::SegmentFormat;
pub use segment::{PartRecord, SegmentRecord};
pub use tracker::{
    Committed, InitSlot, MediaTrack, PartSlot, SegmentSlot, TrackConfig, TrackError, UploadedPart, UploadedSegment,
};
