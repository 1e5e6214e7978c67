//! What the packager remembers of one uploaded media segment: a small, fixed-size record,
//! so a recording of a long event stays cheap (about 50 bytes a segment).

use std::time::Duration;

use jiff::Timestamp;

/// One media segment that is in storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentRecord {
    /// Global media sequence number; also names the object.
    pub sequence: u64,
    /// True duration of the segment.
    pub duration: Duration,
    /// Duration written in `EXTINF`: the true duration, or the target duration when the
    /// true one would round above it (see [`super::tracker`]).
    pub listed_duration: Duration,
    /// An `EXT-X-DISCONTINUITY` precedes this segment.
    pub discontinuity: bool,
    /// Discontinuity sequence number of this segment: how many discontinuities precede it
    /// in the life of the stream. Names the init segment it uses.
    pub discontinuity_number: u64,
    /// Wall-clock time of the segment's first sample, for `EXT-X-PROGRAM-DATE-TIME`.
    pub program_date_time: Timestamp,
    /// Size in bytes (0 when unknown, e.g. after a resume from a playlist).
    pub bytes: u64,
    /// How many parts (LL-HLS) were stored for it: `Some(0)` when none were, `None` when
    /// unknown (after a resume from a playlist, which does not list parts).
    pub parts: Option<u32>,
}

/// One part of a segment (LL-HLS): a run of fragments of ffmpeg's fragmented MP4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartRecord {
    pub duration: Duration,
    /// Starts with a sync sample: a player can start decoding here.
    pub independent: bool,
}
