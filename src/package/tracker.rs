//! One rendition's media track: global sequence numbers, the live sliding window,
//! discontinuities across transcoder runs, the recording, and resume from storage.
//!
//! The tracker is pure: it never touches storage or clocks. It learns of a segment only
//! once the caller has uploaded it, in two steps:
//!
//! 1. [`MediaTrack::next_slot`] tells the caller the sequence number and object key for the
//!    next segment of a run, and the init segment key to upload first (fMP4) when the run
//!    starts a new discontinuity;
//! 2. after the upload, [`MediaTrack::commit`] records the segment; only then does
//!    [`MediaTrack::render_live`] name it. The caller uploads that playlist, then deletes
//!    the objects listed in [`Committed::expired`].
//!
//! Target duration: `EXT-X-TARGETDURATION` is fixed when the track is created (and taken
//! back from storage on resume), so it never changes for the life of the stream. The
//! encoded renditions cut at forced keyframes every segment duration, so their segments
//! match it; a passthrough rendition cuts at the source's keyframes, which is why
//! [`target_duration_s`] leaves headroom for it. A segment whose duration would still round
//! above the target is listed with `EXTINF` equal to the target (the MUST of RFC 8216
//! section 4.3.3.1 wins over the accuracy SHOULD), keeps its true duration for program
//! date-times and bandwidth, and is reported through [`Committed::clamped`].
//!
//! Deletion: a segment that leaves the window stays in storage for one more window
//! (RFC 8216 section 6.2.2 asks for at least its duration plus the playlist's) before it is
//! returned in [`Committed::expired`]; with recording on, nothing expires.

use std::collections::VecDeque;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use thiserror::Error;

use super::low_latency::{LowLatencyPlaylist, OpenSegmentView, SEGMENTS_WITH_PARTS};
use super::media_playlist::{PlaylistHeader, PlaylistKind, render_media_playlist};
use super::names::{self, SegmentFormat};
use super::segment::{PartRecord, SegmentRecord};
use livestream_protocol::playlist::{ParseError, ParsedMediaPlaylist, parse_media_playlist};

/// Most segments the live window may hold.
pub const MAX_WINDOW_SEGMENTS: usize = 1000;

/// Settings of one media track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackConfig {
    /// Rendition name: the folder of its objects.
    pub rendition: String,
    /// Segment container.
    pub format: SegmentFormat,
    /// `EXT-X-TARGETDURATION` for a new stream; see [`target_duration_s`].
    pub target_duration_s: u32,
    /// Segments in the live window (at least 1, at most [`MAX_WINDOW_SEGMENTS`]).
    pub window_segments: usize,
    /// Keep every segment and list it in the recording playlist.
    pub recording: bool,
    /// Parts a segment can have at most (LL-HLS), for deleting the parts of segments
    /// whose count is unknown (resumed from a playlist); 0 when parts are never stored.
    pub max_parts_per_segment: u32,
    /// How long at least an object stays in storage after the playlists stop naming it,
    /// besides a window's worth of later segments: a player that read a playlist just
    /// before a burst of segments (storage catching up after an outage) still finds what
    /// it names.
    pub expiry_grace: std::time::Duration,
}

/// The target duration for a stream: the segment duration for encoded renditions (their
/// keyframes are forced at segment boundaries), twice that when a passthrough rendition
/// follows the source's own keyframes.
pub fn target_duration_s(segment_duration_s: u32, has_passthrough: bool) -> u32 {
    let base = segment_duration_s.max(1);
    if has_passthrough { base.saturating_mul(2) } else { base }
}

/// Errors of a media track.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TrackError {
    /// The slot does not match the track's state (another segment was committed since).
    #[error("slot for sequence {slot} is stale; the next sequence is {next}")]
    StaleSlot {
        /// Sequence of the slot given.
        slot: u64,
        /// Sequence the track expects.
        next: u64,
    },
    /// A segment of zero duration.
    #[error("segment {0} has zero duration")]
    ZeroDuration(u64),
    /// The stored playlist cannot be parsed.
    #[error("stored playlist: {0}")]
    Parse(#[from] ParseError),
    /// The stored playlist names an object this track would not name.
    #[error("stored playlist of rendition {rendition} names unexpected object {uri:?}")]
    ForeignUri {
        /// Rendition of the track.
        rendition: String,
        /// The URI found.
        uri: String,
    },
    /// A stored segment has no program date-time.
    #[error("stored playlist lists segment {0} without EXT-X-PROGRAM-DATE-TIME")]
    MissingProgramDateTime(u64),
    /// The configuration is out of range.
    #[error("invalid track configuration: {0}")]
    InvalidConfig(&'static str),
}

/// Where and how the next segment of a run goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentSlot {
    /// Global sequence number.
    pub sequence: u64,
    /// Object key of the segment, e.g. `720p/42.m4s`.
    pub key: String,
    /// `EXT-X-DISCONTINUITY` will precede the segment.
    pub discontinuity: bool,
    /// Discontinuity sequence number of the segment.
    pub discontinuity_number: u64,
    /// The init segment the segment uses (fMP4 only).
    pub init: Option<InitSlot>,
    run: u32,
    after_gap: bool,
}

/// The init segment of a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitSlot {
    /// Object key, e.g. `720p/init-2.mp4`.
    pub key: String,
    /// The key is new: upload the run's init segment under it before the media segment.
    pub upload: bool,
}

/// An uploaded segment, as the caller reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadedSegment {
    /// True duration of the segment.
    pub duration: Duration,
    /// Size in bytes.
    pub bytes: u64,
    /// Wall-clock time at which the segment was complete (its last sample was encoded).
    /// The first segment of a run starts `duration` before it; later ones continue the run.
    pub completed_at: Timestamp,
}

/// One part as the caller reports it, once its object is in storage (or, when parts are
/// not stored, once it is known).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadedPart {
    pub duration: Duration,
    pub bytes: u64,
    /// Starts with a sync sample.
    pub independent: bool,
    /// Wall-clock time of the part's first sample (its ingest time): the program date-time
    /// of the segment when the part opens one.
    pub starts_at: Timestamp,
    /// The part's object is in storage, so playlists may name it.
    pub stored: bool,
}

/// Where the next part goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartSlot {
    /// The segment the part belongs to; when it opens a new segment, its slot (with the
    /// discontinuity and the init segment to upload first).
    pub segment: SegmentSlot,
    /// The part starts the segment.
    pub opens_segment: bool,
    /// Index of the part in its segment.
    pub index: u32,
    /// Object key of the part, e.g. `720p/42.3.m4s`.
    pub key: String,
}

/// The segment being filled with parts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OpenSegment {
    slot: SegmentSlot,
    starts_at: Timestamp,
    parts: Vec<PartRecord>,
    /// Parts `0..stored` are in storage; a part that could not be stored ends the listing
    /// of parts for this segment.
    stored: usize,
    duration: Duration,
    bytes: u64,
}

/// The result of committing a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The record now in the window.
    pub record: SegmentRecord,
    /// Object keys no playlist names any more, past their grace period: delete them after
    /// uploading the new playlist. Always empty when recording.
    pub expired: Vec<String>,
    /// The segment's `EXTINF` was capped at the target duration.
    pub clamped: bool,
}

/// Where the track stands after its last segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    discontinuity_number: u64,
    /// The run of the last segment and the time its last sample ends; `None` after a
    /// resume, so the next segment always starts a discontinuity.
    continuing: Option<(u32, Timestamp)>,
}

/// One rendition's media track.
#[derive(Debug, Clone)]
pub struct MediaTrack {
    config: TrackConfig,
    next_sequence: u64,
    last: Option<Position>,
    window: VecDeque<SegmentRecord>,
    /// Segments that left the window, and when.
    retired: VecDeque<(SegmentRecord, std::time::Instant)>,
    recording: Vec<SegmentRecord>,
    ended: bool,
    /// The segment being filled with parts (fMP4), named by `next_sequence`.
    open: Option<OpenSegment>,
    /// Parts of the last completed segments, oldest first, for the low-latency playlist.
    recent_parts: VecDeque<(u64, Vec<PartRecord>)>,
}

impl MediaTrack {
    /// A new track for a new stream, starting at sequence 0.
    pub fn new(config: TrackConfig) -> Result<Self, TrackError> {
        validate(&config)?;
        Ok(Self {
            config,
            next_sequence: 0,
            last: None,
            window: VecDeque::new(),
            retired: VecDeque::new(),
            recording: Vec::new(),
            ended: false,
            open: None,
            recent_parts: VecDeque::new(),
        })
    }

    /// Continues a stream from its live media playlist as stored (and, when recording, its
    /// recording playlist): the next segment gets the next sequence number and a
    /// discontinuity, and the stored target duration is kept.
    pub fn resume(
        mut config: TrackConfig,
        live_playlist: &str,
        recording_playlist: Option<&str>,
    ) -> Result<Self, TrackError> {
        validate(&config)?;
        let live = parse_media_playlist(live_playlist)?;
        if let Some(target) = live.target_duration_s {
            config.target_duration_s = target.max(1);
        }
        let window = records_from(&config, &live)?;
        let mut recording = Vec::new();
        if config.recording {
            if let Some(text) = recording_playlist {
                recording = records_from(&config, &parse_media_playlist(text)?)?;
            }
            let last_recorded = recording.last().map(|record| record.sequence);
            recording.extend(window.iter().filter(|record| last_recorded.is_none_or(|last| record.sequence > last)));
        }
        let last_record = window.last().or(recording.last());
        let next_sequence = last_record.map_or(live.media_sequence, |record| record.sequence + 1);
        let discontinuity_number = last_record
            .map_or(live.discontinuity_sequence, |record| record.discontinuity_number.max(live.discontinuity_sequence));
        let mut track = Self {
            config,
            next_sequence,
            last: Some(Position { discontinuity_number, continuing: None }),
            window: window.into(),
            retired: VecDeque::new(),
            recording,
            ended: false,
            open: None,
            recent_parts: VecDeque::new(),
        };
        while track.window.len() > track.config.window_segments {
            if let Some(record) = track.window.pop_front() {
                track.retired.push_back((record, std::time::Instant::now()));
            }
        }
        Ok(track)
    }

    /// The slot for the next segment of transcoder run `run`. A new run (or `after_gap`,
    /// when segments of the run were lost) starts a discontinuity.
    pub fn next_slot(&self, run: u32, after_gap: bool) -> SegmentSlot {
        let (discontinuity, discontinuity_number) = match &self.last {
            None => (false, 0),
            Some(position) => {
                let same_run = position.continuing.is_some_and(|(last_run, _)| last_run == run);
                let discontinuity = !same_run || after_gap;
                (discontinuity, position.discontinuity_number + u64::from(discontinuity))
            }
        };
        let init = match self.config.format {
            SegmentFormat::Fmp4 => Some(InitSlot {
                key: names::init_key(&self.config.rendition, discontinuity_number),
                upload: self.last.is_none() || discontinuity,
            }),
            SegmentFormat::Ts => None,
        };
        SegmentSlot {
            sequence: self.next_sequence,
            key: names::segment_key(&self.config.rendition, self.next_sequence, self.config.format),
            discontinuity,
            discontinuity_number,
            init,
            run,
            after_gap,
        }
    }

    /// Records an uploaded segment in the slot given by [`Self::next_slot`].
    pub fn commit(&mut self, slot: &SegmentSlot, segment: UploadedSegment) -> Result<Committed, TrackError> {
        if self.open.is_some() || self.next_slot(slot.run, slot.after_gap) != *slot {
            return Err(TrackError::StaleSlot { slot: slot.sequence, next: self.next_sequence });
        }
        let continued_start = self
            .last
            .and_then(|position| position.continuing)
            .filter(|(run, _)| !slot.discontinuity && *run == slot.run)
            .map(|(_, end)| end);
        let program_date_time = continued_start.unwrap_or_else(|| shift(segment.completed_at, segment.duration, false));
        self.commit_record(slot, segment.duration, segment.bytes, program_date_time, Some(0))
    }

    /// Where the next part of run `run` goes. `opens_segment` when the part starts a new
    /// segment (the cutter's decision; a part always opens one when none is open, and a
    /// new run or `after_gap` always does): the open segment must be closed first with
    /// [`Self::close_segment`].
    pub fn next_part(&self, run: u32, after_gap: bool, opens_segment: bool) -> PartSlot {
        match &self.open {
            Some(open) if !opens_segment && !after_gap && open.slot.run == run => PartSlot {
                segment: open.slot.clone(),
                opens_segment: false,
                index: open.parts.len() as u32,
                key: names::part_key(&self.config.rendition, open.slot.sequence, open.parts.len() as u32),
            },
            _ => {
                let segment = self.next_slot(run, after_gap);
                let key = names::part_key(&self.config.rendition, segment.sequence, 0);
                PartSlot { segment, opens_segment: true, index: 0, key }
            }
        }
    }

    /// Whether a segment is being filled with parts.
    pub fn has_open_segment(&self) -> bool {
        self.open.is_some()
    }

    /// The transcoder run of the segment being filled.
    pub fn open_run(&self) -> Option<u32> {
        self.open.as_ref().map(|open| open.slot.run)
    }

    /// Whether the open segment's parts are listed, every one so far: a part added to it
    /// must be stored too, or the listing of the segment would be withdrawn at its close.
    pub fn lists_open_parts(&self) -> bool {
        self.open.as_ref().is_some_and(|open| open.stored > 0 && open.stored == open.parts.len())
    }

    /// Whether a player has something to play: a whole segment, or a stored part.
    pub fn is_playable(&self) -> bool {
        !self.window.is_empty() || self.open.as_ref().is_some_and(|open| open.stored > 0)
    }

    /// Records a part in the slot given by [`Self::next_part`]. A part that opens a
    /// segment needs the previous one closed.
    pub fn commit_part(&mut self, slot: &PartSlot, part: UploadedPart) -> Result<(), TrackError> {
        let stale = || TrackError::StaleSlot { slot: slot.segment.sequence, next: self.next_sequence };
        if slot.opens_segment {
            if self.open.is_some() || self.next_slot(slot.segment.run, slot.segment.after_gap) != slot.segment {
                return Err(stale());
            }
            self.open = Some(OpenSegment {
                slot: slot.segment.clone(),
                starts_at: part.starts_at,
                parts: Vec::new(),
                stored: 0,
                duration: Duration::ZERO,
                bytes: 0,
            });
            self.ended = false;
        }
        let open = self.open.as_mut().ok_or_else(stale)?;
        if open.slot != slot.segment || open.parts.len() as u32 != slot.index {
            return Err(TrackError::StaleSlot { slot: slot.segment.sequence, next: self.next_sequence });
        }
        if part.stored && open.stored == open.parts.len() {
            open.stored += 1;
        }
        open.parts.push(PartRecord { duration: part.duration, independent: part.independent });
        open.duration += part.duration;
        open.bytes += part.bytes;
        Ok(())
    }

    /// The object key of the open segment, to upload its parts joined under before
    /// [`Self::close_segment`].
    pub fn open_segment_key(&self) -> Option<&str> {
        self.open.as_ref().map(|open| open.slot.key.as_str())
    }

    /// Records the open segment, its object uploaded, as a whole segment of the window.
    /// Its parts stay listed in the low-latency playlist when all of them were stored.
    pub fn close_segment(&mut self) -> Result<Option<Committed>, TrackError> {
        let Some(open) = self.open.take() else { return Ok(None) };
        let all_stored = open.stored == open.parts.len();
        let parts = Some(open.stored as u32);
        let committed = self.commit_record(&open.slot, open.duration, open.bytes, open.starts_at, parts)?;
        if all_stored && !open.parts.is_empty() {
            self.recent_parts.push_back((open.slot.sequence, open.parts));
            while self.recent_parts.len() > SEGMENTS_WITH_PARTS {
                self.recent_parts.pop_front();
            }
        }
        Ok(Some(committed))
    }

    /// Drops the open segment without listing it (its parts could not all be kept):
    /// the sequence number it had is used by the next segment, after a discontinuity.
    /// Only valid while none of its parts was listed.
    pub fn abandon_open_segment(&mut self) -> bool {
        match &self.open {
            Some(open) if open.stored == 0 => {
                self.open = None;
                true
            }
            _ => false,
        }
    }

    fn commit_record(
        &mut self,
        slot: &SegmentSlot,
        duration: Duration,
        bytes: u64,
        program_date_time: Timestamp,
        parts: Option<u32>,
    ) -> Result<Committed, TrackError> {
        if duration.is_zero() {
            return Err(TrackError::ZeroDuration(slot.sequence));
        }
        let segment = UploadedSegment { duration, bytes, completed_at: program_date_time };
        let target = Duration::from_secs(u64::from(self.config.target_duration_s));
        let clamped = rounds_above(segment.duration, target);
        let listed_duration = if clamped { target } else { segment.duration };
        let record = SegmentRecord {
            sequence: slot.sequence,
            duration: segment.duration,
            listed_duration,
            discontinuity: slot.discontinuity,
            discontinuity_number: slot.discontinuity_number,
            program_date_time,
            bytes: segment.bytes,
            parts,
        };
        self.window.push_back(record);
        if self.config.recording {
            self.recording.push(record);
        }
        self.next_sequence += 1;
        self.ended = false;
        self.last = Some(Position {
            discontinuity_number: slot.discontinuity_number,
            continuing: Some((slot.run, shift(program_date_time, segment.duration, true))),
        });
        let expired = self.slide_window();
        Ok(Committed { record, expired, clamped })
    }

    /// Moves segments beyond the window to the retired queue and returns the objects whose
    /// grace period is over.
    fn slide_window(&mut self) -> Vec<String> {
        while self.window.len() > self.config.window_segments {
            let Some(record) = self.window.pop_front() else { break };
            if !self.config.recording {
                self.retired.push_back((record, std::time::Instant::now()));
            }
        }
        let mut expired = Vec::new();
        while self.retired.len() > self.config.window_segments
            && self.retired.front().is_some_and(|(_, at)| at.elapsed() >= self.config.expiry_grace)
        {
            let Some((record, _)) = self.retired.pop_front() else { break };
            expired.push(names::segment_key(&self.config.rendition, record.sequence, self.config.format));
            let parts = record.parts.unwrap_or(self.config.max_parts_per_segment);
            expired.extend((0..parts).map(|index| names::part_key(&self.config.rendition, record.sequence, index)));
            let next_number = self
                .retired
                .front()
                .map(|(next, _)| next)
                .or(self.window.front())
                .map(|next| next.discontinuity_number);
            if self.config.format == SegmentFormat::Fmp4 && next_number != Some(record.discontinuity_number) {
                expired.push(names::init_key(&self.config.rendition, record.discontinuity_number));
            }
        }
        expired
    }

    /// Marks the stream as ended: the live playlist gets `EXT-X-ENDLIST`. A later commit
    /// (the encoder came back) reopens it.
    pub fn end(&mut self) {
        self.ended = true;
    }

    /// The live media playlist.
    pub fn render_live(&self) -> String {
        render_media_playlist(&self.header(PlaylistKind::Live { ended: self.ended }), &self.window)
    }

    /// The recording playlist: `EXT-X-PLAYLIST-TYPE:VOD` with every segment of the event
    /// and `EXT-X-ENDLIST`. Empty of segments unless recording.
    pub fn render_recording(&self) -> String {
        render_media_playlist(&self.header(PlaylistKind::Vod), &self.recording)
    }

    fn header(&self, kind: PlaylistKind) -> PlaylistHeader {
        PlaylistHeader {
            format: self.config.format,
            target_duration_s: self.config.target_duration_s,
            kind,
            empty_media_sequence: self.next_sequence,
            empty_discontinuity_sequence: self.last.map_or(0, |position| position.discontinuity_number),
        }
    }

    /// The live window as a low-latency playlist: with the parts that are in storage, and
    /// the open segment.
    pub fn low_latency(&self) -> LowLatencyPlaylist {
        let first_listed = self.window.front().map_or(self.next_sequence, |record| record.sequence);
        LowLatencyPlaylist {
            rendition: self.config.rendition.clone(),
            target_duration_s: self.config.target_duration_s,
            window: self.window.iter().copied().collect(),
            recent_parts: {
                let listed: Vec<_> =
                    self.recent_parts.iter().filter(|(sequence, _)| *sequence >= first_listed).cloned().collect();
                let skip = listed.len().saturating_sub(SEGMENTS_WITH_PARTS);
                listed.into_iter().skip(skip).collect()
            },
            open: self.open.as_ref().map(|open| OpenSegmentView {
                sequence: open.slot.sequence,
                discontinuity: open.slot.discontinuity,
                discontinuity_number: open.slot.discontinuity_number,
                starts_at: open.starts_at,
                parts: open.parts[..open.stored].to_vec(),
            }),
            next_sequence: self.next_sequence,
            empty_discontinuity_sequence: self.last.map_or(0, |position| position.discontinuity_number),
            ended: self.ended,
        }
    }

    /// The track's configuration (with the target duration in force).
    pub fn config(&self) -> &TrackConfig {
        &self.config
    }

    /// Sequence number the next segment will get.
    pub fn next_sequence(&self) -> u64 {
        self.next_sequence
    }

    /// The segments of the live window, oldest first.
    pub fn window(&self) -> impl ExactSizeIterator<Item = &SegmentRecord> {
        self.window.iter()
    }

    /// The segments of the recording, oldest first.
    pub fn recording(&self) -> &[SegmentRecord] {
        &self.recording
    }

    /// Whether [`Self::end`] was called since the last commit.
    pub fn is_ended(&self) -> bool {
        self.ended
    }
}

fn validate(config: &TrackConfig) -> Result<(), TrackError> {
    if config.window_segments == 0 || config.window_segments > MAX_WINDOW_SEGMENTS {
        return Err(TrackError::InvalidConfig("window_segments must be between 1 and 1000"));
    }
    if config.target_duration_s == 0 {
        return Err(TrackError::InvalidConfig("target_duration_s must be positive"));
    }
    if config.rendition.is_empty() || config.rendition.contains('/') {
        return Err(TrackError::InvalidConfig("rendition must be a non-empty name without '/'"));
    }
    Ok(())
}

/// Whether `duration` rounded to the nearest second exceeds `target`.
fn rounds_above(duration: Duration, target: Duration) -> bool {
    duration >= target + Duration::from_millis(500)
}

/// `time` moved by `duration`, forward or back; unchanged if out of range.
fn shift(time: Timestamp, duration: Duration, forward: bool) -> Timestamp {
    let Ok(signed) = SignedDuration::try_from(duration) else { return time };
    let moved = if forward { time.checked_add(signed) } else { time.checked_sub(signed) };
    moved.unwrap_or(time)
}

/// Segment records from a stored playlist, checking that it names what this track would.
fn records_from(config: &TrackConfig, playlist: &ParsedMediaPlaylist) -> Result<Vec<SegmentRecord>, TrackError> {
    let foreign = |uri: &str| TrackError::ForeignUri { rendition: config.rendition.clone(), uri: uri.to_owned() };
    playlist
        .segments
        .iter()
        .map(|segment| {
            if segment.uri != names::segment_file_name(segment.sequence, config.format) {
                return Err(foreign(&segment.uri));
            }
            if config.format == SegmentFormat::Fmp4 {
                let expected = names::init_file_name(segment.discontinuity_number);
                if segment.map_uri.as_deref() != Some(expected.as_str()) {
                    return Err(foreign(segment.map_uri.as_deref().unwrap_or("(no EXT-X-MAP)")));
                }
            }
            Ok(SegmentRecord {
                sequence: segment.sequence,
                duration: segment.duration,
                listed_duration: segment.duration,
                discontinuity: segment.discontinuity,
                discontinuity_number: segment.discontinuity_number,
                program_date_time: segment
                    .program_date_time
                    .ok_or(TrackError::MissingProgramDateTime(segment.sequence))?,
                bytes: 0,
                parts: None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: i64 = 1_714_564_800;

    fn config(format: SegmentFormat, window: usize, recording: bool) -> TrackConfig {
        TrackConfig {
            rendition: "720p".into(),
            format,
            target_duration_s: 2,
            window_segments: window,
            recording,
            max_parts_per_segment: 0,
            expiry_grace: std::time::Duration::ZERO,
        }
    }

    fn at(seconds: f64) -> Timestamp {
        Timestamp::from_millisecond(START * 1000 + (seconds * 1000.0) as i64).unwrap()
    }

    fn push(track: &mut MediaTrack, run: u32, millis: u64, completed: f64) -> (SegmentSlot, Committed) {
        let slot = track.next_slot(run, false);
        let segment =
            UploadedSegment { duration: Duration::from_millis(millis), bytes: 1000, completed_at: at(completed) };
        let committed = track.commit(&slot, segment).unwrap();
        (slot, committed)
    }

    #[test]
    fn first_segment_names_and_init() {
        let track = MediaTrack::new(config(SegmentFormat::Fmp4, 3, false)).unwrap();
        let slot = track.next_slot(1, false);
        assert_eq!(slot.sequence, 0);
        assert_eq!(slot.key, "720p/0.m4s");
        assert!(!slot.discontinuity);
        assert_eq!(slot.init, Some(InitSlot { key: "720p/init-0.mp4".into(), upload: true }));
    }

    #[test]
    fn window_slides_and_expires_after_grace() {
        let mut track = MediaTrack::new(config(SegmentFormat::Fmp4, 3, false)).unwrap();
        let mut expired = Vec::new();
        for index in 0..8 {
            let (slot, committed) = push(&mut track, 1, 2000, 2.0 * f64::from(index + 1));
            assert_eq!(slot.init.as_ref().unwrap().upload, index == 0, "init upload only once per run");
            expired.push(committed.expired);
        }
        let window: Vec<u64> = track.window().map(|record| record.sequence).collect();
        assert_eq!(window, vec![5, 6, 7]);
        // Segment 0 leaves the window with segment 3 and expires one window later (6).
        assert!(expired[..6].iter().all(Vec::is_empty));
        assert_eq!(expired[6], vec!["720p/0.m4s".to_string()]);
        assert_eq!(expired[7], vec!["720p/1.m4s".to_string()]);
    }

    #[test]
    fn a_burst_of_segments_expires_nothing_before_the_grace_time() {
        // Storage catching up after an outage commits many segments at once: what left the
        // window stays until the grace time has passed, however many segments follow.
        let grace = TrackConfig { expiry_grace: Duration::from_secs(3600), ..config(SegmentFormat::Fmp4, 3, false) };
        let mut track = MediaTrack::new(grace).unwrap();
        for index in 0..20 {
            let (_, committed) = push(&mut track, 1, 2000, 2.0 * f64::from(index + 1));
            assert!(committed.expired.is_empty(), "segment {index} expired objects within the grace time");
        }
        assert_eq!(track.window().map(|record| record.sequence).collect::<Vec<_>>(), vec![17, 18, 19]);
    }

    #[test]
    fn new_run_starts_discontinuity_with_new_init() {
        let mut track = MediaTrack::new(config(SegmentFormat::Fmp4, 3, false)).unwrap();
        push(&mut track, 1, 2000, 2.0);
        push(&mut track, 1, 2000, 4.0);
        let slot = track.next_slot(2, false);
        assert!(slot.discontinuity);
        assert_eq!(slot.discontinuity_number, 1);
        assert_eq!(slot.init, Some(InitSlot { key: "720p/init-1.mp4".into(), upload: true }));
        track
            .commit(&slot, UploadedSegment { duration: Duration::from_secs(2), bytes: 1, completed_at: at(20.0) })
            .unwrap();
        push(&mut track, 2, 2000, 22.0);
        let expected = "#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:1
#EXT-X-DISCONTINUITY-SEQUENCE:0
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI=\"init-0.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2024-05-01T12:00:02.000Z
#EXTINF:2.000000,
1.m4s
#EXT-X-DISCONTINUITY
#EXT-X-MAP:URI=\"init-1.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2024-05-01T12:00:18.000Z
#EXTINF:2.000000,
2.m4s
#EXT-X-PROGRAM-DATE-TIME:2024-05-01T12:00:20.000Z
#EXTINF:2.000000,
3.m4s
";
        assert_eq!(track.render_live(), expected);
    }

    #[test]
    fn discontinuity_sequence_counts_tags_that_left_and_inits_expire() {
        let mut track = MediaTrack::new(config(SegmentFormat::Fmp4, 2, false)).unwrap();
        push(&mut track, 1, 2000, 2.0);
        push(&mut track, 2, 2000, 4.0);
        push(&mut track, 3, 2000, 6.0);
        assert!(track.render_live().contains("#EXT-X-MEDIA-SEQUENCE:1\n#EXT-X-DISCONTINUITY-SEQUENCE:0\n"));
        push(&mut track, 3, 2000, 8.0);
        assert!(track.render_live().contains("#EXT-X-MEDIA-SEQUENCE:2\n#EXT-X-DISCONTINUITY-SEQUENCE:1\n"));
        let (_, committed) = push(&mut track, 3, 2000, 10.0);
        // Segment 0 (run 1) expires with its init, which nothing else uses.
        assert_eq!(committed.expired, vec!["720p/0.m4s".to_string(), "720p/init-0.mp4".to_string()]);
        let (_, committed) = push(&mut track, 3, 2000, 12.0);
        assert_eq!(committed.expired, vec!["720p/1.m4s".to_string(), "720p/init-1.mp4".to_string()]);
        let (_, committed) = push(&mut track, 3, 2000, 14.0);
        assert_eq!(committed.expired, vec!["720p/2.m4s".to_string()], "init-2 is still in use");
    }

    #[test]
    fn gap_within_run_is_a_discontinuity() {
        let mut track = MediaTrack::new(config(SegmentFormat::Ts, 5, false)).unwrap();
        push(&mut track, 1, 2000, 2.0);
        let slot = track.next_slot(1, true);
        assert!(slot.discontinuity);
        assert_eq!(slot.init, None);
        assert_eq!(slot.key, "720p/1.ts");
    }

    #[test]
    fn program_date_time_continues_within_a_run() {
        let mut track = MediaTrack::new(config(SegmentFormat::Ts, 5, false)).unwrap();
        let (_, first) = push(&mut track, 1, 2000, 2.5);
        // Completed late (upload queue): the date still follows the previous segment.
        let (_, second) = push(&mut track, 1, 1960, 9.0);
        assert_eq!(first.record.program_date_time, at(0.5));
        assert_eq!(second.record.program_date_time, at(2.5));
    }

    #[test]
    fn overlong_segment_is_listed_at_target() {
        let mut track = MediaTrack::new(config(SegmentFormat::Ts, 5, false)).unwrap();
        let (_, fine) = push(&mut track, 1, 2490, 3.0);
        assert!(!fine.clamped);
        let (_, long) = push(&mut track, 1, 4000, 7.0);
        assert!(long.clamped);
        assert_eq!(long.record.listed_duration, Duration::from_secs(2));
        assert!(track.render_live().contains("#EXTINF:2.490000,\n0.ts\n"));
        assert!(track.render_live().contains("#EXTINF:2.000000,\n1.ts\n"));
    }

    #[test]
    fn stale_slot_and_zero_duration_are_refused() {
        let mut track = MediaTrack::new(config(SegmentFormat::Ts, 5, false)).unwrap();
        let slot = track.next_slot(1, false);
        push(&mut track, 1, 2000, 2.0);
        let segment = UploadedSegment { duration: Duration::from_secs(2), bytes: 1, completed_at: at(4.0) };
        assert_eq!(track.commit(&slot, segment), Err(TrackError::StaleSlot { slot: 0, next: 1 }));
        let slot = track.next_slot(1, false);
        let zero = UploadedSegment { duration: Duration::ZERO, ..segment };
        assert_eq!(track.commit(&slot, zero), Err(TrackError::ZeroDuration(1)));
        assert!(MediaTrack::new(config(SegmentFormat::Ts, 0, false)).is_err());
    }

    #[test]
    fn end_adds_endlist_and_commit_reopens() {
        let mut track = MediaTrack::new(config(SegmentFormat::Ts, 5, false)).unwrap();
        push(&mut track, 1, 2000, 2.0);
        track.end();
        assert!(track.render_live().ends_with("0.ts\n#EXT-X-ENDLIST\n"));
        push(&mut track, 2, 2000, 10.0);
        assert!(!track.render_live().contains("ENDLIST"));
    }

    #[test]
    fn recording_keeps_everything_and_renders_vod() {
        let mut track = MediaTrack::new(config(SegmentFormat::Ts, 2, true)).unwrap();
        for index in 0..5 {
            let (_, committed) = push(&mut track, 1, 2000, 2.0 * f64::from(index + 1));
            assert!(committed.expired.is_empty());
        }
        push(&mut track, 2, 2000, 30.0);
        let vod = track.render_recording();
        assert!(vod.starts_with("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-DISCONTINUITY-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n"));
        assert_eq!(vod.matches("#EXTINF").count(), 6);
        assert_eq!(vod.matches("#EXT-X-DISCONTINUITY\n").count(), 1);
        assert!(vod.ends_with("5.ts\n#EXT-X-ENDLIST\n"));
        assert_eq!(track.window().len(), 2);
    }

    #[test]
    fn resume_round_trip_continues_with_discontinuity() {
        let mut track = MediaTrack::new(config(SegmentFormat::Fmp4, 3, true)).unwrap();
        for index in 0..4 {
            push(&mut track, 1, 2000, 2.0 * f64::from(index + 1));
        }
        push(&mut track, 2, 2000, 20.0);
        let live = track.render_live();
        let recording = track.render_recording();

        let mut resumed = MediaTrack::resume(config(SegmentFormat::Fmp4, 3, true), &live, Some(&recording)).unwrap();
        assert_eq!(resumed.render_live(), live, "re-rendering a resumed playlist changes nothing");
        assert_eq!(resumed.render_recording(), recording);
        assert_eq!(resumed.next_sequence(), 5);
        let slot = resumed.next_slot(1, false);
        assert_eq!((slot.sequence, slot.discontinuity, slot.discontinuity_number), (5, true, 2));
        assert_eq!(slot.init.as_ref().unwrap().key, "720p/init-2.mp4");
        resumed
            .commit(&slot, UploadedSegment { duration: Duration::from_secs(2), bytes: 1, completed_at: at(60.0) })
            .unwrap();
        assert_eq!(resumed.recording().len(), 6);
        assert!(resumed.render_live().contains("#EXT-X-MEDIA-SEQUENCE:3\n#EXT-X-DISCONTINUITY-SEQUENCE:0\n"));
    }

    #[test]
    fn resume_keeps_stored_target_and_rejects_foreign_playlists() {
        let mut track =
            MediaTrack::new(TrackConfig { target_duration_s: 4, ..config(SegmentFormat::Ts, 3, false) }).unwrap();
        push(&mut track, 1, 4000, 4.0);
        let resumed = MediaTrack::resume(config(SegmentFormat::Ts, 3, false), &track.render_live(), None).unwrap();
        assert_eq!(resumed.config().target_duration_s, 4);

        let foreign =
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PROGRAM-DATE-TIME:2024-05-01T12:00:00Z\n#EXTINF:2,\nseg_0.ts\n";
        assert!(matches!(
            MediaTrack::resume(config(SegmentFormat::Ts, 3, false), foreign, None),
            Err(TrackError::ForeignUri { .. })
        ));
        let no_date = "#EXTM3U\n#EXTINF:2,\n0.ts\n";
        assert_eq!(
            MediaTrack::resume(config(SegmentFormat::Ts, 3, false), no_date, None).unwrap_err(),
            TrackError::MissingProgramDateTime(0)
        );
    }

    #[test]
    fn resume_of_empty_playlist_keeps_numbers() {
        let text = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:40\n#EXT-X-DISCONTINUITY-SEQUENCE:3\n#EXT-X-ENDLIST\n";
        let resumed = MediaTrack::resume(config(SegmentFormat::Fmp4, 3, false), text, None).unwrap();
        let slot = resumed.next_slot(1, false);
        assert_eq!((slot.sequence, slot.discontinuity_number), (40, 4));
    }

    fn part(track: &mut MediaTrack, run: u32, opens: bool, stored: bool, start: f64) -> PartSlot {
        if opens {
            track.close_segment().unwrap();
        }
        let slot = track.next_part(run, false, opens);
        let uploaded = UploadedPart {
            duration: Duration::from_millis(500),
            bytes: 100,
            independent: opens,
            starts_at: at(start),
            stored,
        };
        track.commit_part(&slot, uploaded).unwrap();
        slot
    }

    #[test]
    fn parts_fill_the_open_segment_and_stay_listed_for_recent_segments() {
        let mut track =
            MediaTrack::new(TrackConfig { max_parts_per_segment: 6, ..config(SegmentFormat::Fmp4, 3, false) }).unwrap();
        let first = part(&mut track, 1, true, true, 0.0);
        assert_eq!((first.key.as_str(), first.opens_segment, first.index), ("720p/0.0.m4s", true, 0));
        assert_eq!(first.segment.init.as_ref().map(|i| i.upload), Some(true));
        for index in 1..4 {
            let slot = part(&mut track, 1, false, true, 0.5 * f64::from(index));
            assert_eq!(slot.key, format!("720p/0.{index}.m4s"));
        }
        assert!(track.is_playable() && track.window().len() == 0, "playable from its parts");
        let view = track.low_latency();
        assert_eq!(view.open.as_ref().map(|o| o.parts.len()), Some(4));
        assert_eq!(track.open_segment_key(), Some("720p/0.m4s"));
        // The next segment closes this one: two seconds, dated by its first part.
        let second = part(&mut track, 1, true, true, 2.0);
        assert!(!second.segment.discontinuity);
        let record = *track.window().next().unwrap();
        assert_eq!((record.sequence, record.duration, record.parts), (0, Duration::from_secs(2), Some(4)));
        assert_eq!(record.program_date_time, at(0.0));
        assert_eq!(
            track.low_latency().recent_parts,
            vec![(
                0,
                vec![
                    PartRecord { duration: Duration::from_millis(500), independent: true },
                    PartRecord { duration: Duration::from_millis(500), independent: false },
                    PartRecord { duration: Duration::from_millis(500), independent: false },
                    PartRecord { duration: Duration::from_millis(500), independent: false },
                ]
            )]
        );
        // A new run opens a segment after a discontinuity, with a new init.
        let restarted = part(&mut track, 2, true, true, 9.0);
        assert!(restarted.segment.discontinuity);
        assert_eq!(restarted.segment.init.as_ref().map(|i| i.key.as_str()), Some("720p/init-1.mp4"));
    }

    #[test]
    fn a_part_not_stored_ends_the_listing_of_its_segment() {
        let mut track = MediaTrack::new(config(SegmentFormat::Fmp4, 3, false)).unwrap();
        part(&mut track, 1, true, true, 0.0);
        assert!(track.lists_open_parts());
        part(&mut track, 1, false, false, 0.5);
        assert!(!track.lists_open_parts(), "the listing stops at the part not stored");
        part(&mut track, 1, false, true, 1.0);
        assert_eq!(track.low_latency().open.unwrap().parts.len(), 1, "only the part before the gap");
        part(&mut track, 1, true, true, 2.0);
        assert!(track.low_latency().recent_parts.is_empty(), "a segment with parts missing lists none");
        assert_eq!(track.window().next().unwrap().parts, Some(1));
    }

    #[test]
    fn parts_expire_with_their_segment() {
        let mut track = MediaTrack::new(config(SegmentFormat::Fmp4, 1, false)).unwrap();
        let mut expired = Vec::new();
        for segment in 0..4 {
            part(&mut track, 1, true, true, 2.0 * f64::from(segment));
            part(&mut track, 1, false, true, 2.0 * f64::from(segment) + 1.0);
            if let Some(committed) = track.close_segment().unwrap() {
                expired.extend(committed.expired);
            }
        }
        assert!(expired.contains(&"720p/0.m4s".to_string()));
        assert!(expired.contains(&"720p/0.0.m4s".to_string()) && expired.contains(&"720p/0.1.m4s".to_string()));
        assert!(!expired.contains(&"720p/0.2.m4s".to_string()), "only the parts it had");
    }

    #[test]
    fn target_duration_policy() {
        assert_eq!(target_duration_s(2, false), 2);
        assert_eq!(target_duration_s(2, true), 4);
    }
}
