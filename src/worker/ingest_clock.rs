//! When each frame of a publish arrived: the wall-clock time of input timestamps, so that a
//! part's program date-time is the ingest time of its first frame, and the latency a player
//! shows is measured from the moment the frame reached the worker.
//!
//! Encoders and networks deliver in bursts, so the arrival time of single frames jitters
//! by a few hundred milliseconds, which dated segments would pass on to players as jumps
//! of their timeline. The clock dates a timestamp by the frames that arrived soonest
//! around it instead: the smallest arrival delay (arrival minus timestamp) over the ten
//! seconds before it. That follows an encoder whose clock drifts from the wall clock, and
//! is the ingest time the frame would have had without the jitter.
//!
//! The clock follows the video frames of a publish; audio frames only until the first
//! video frame (a source without video is dated by its audio), because interleaved audio
//! timestamps run a little behind or ahead of the video's and would look like a restart.

use std::collections::VecDeque;

use jiff::Timestamp;

use crate::media::flv::{FlvTag, FlvTagKind};

/// Frames remembered: about a minute at 60 fps, far more than ffmpeg holds back.
const CAPACITY: usize = 4096;
/// How far back from a timestamp the soonest arrival is looked for.
const WINDOW_MS: u64 = 10_000;

/// Input timestamps (milliseconds) and their arrival delays, oldest first.
#[derive(Debug, Default)]
pub struct IngestClock {
    /// Input timestamp and arrival time minus it, in milliseconds since the epoch.
    samples: VecDeque<(u32, i64)>,
    /// A video frame was recorded: audio no longer is.
    video: bool,
}

impl IngestClock {
    pub fn new() -> Self {
        Self::default()
    }

    /// Notes that the media frame `tag` arrived at `at`: a video frame, or an audio frame
    /// before any video; configurations and metadata are not frames.
    pub fn record_tag(&mut self, tag: &FlvTag, at: Timestamp) {
        let frame = tag.kind != FlvTagKind::Script && !tag.is_sequence_header();
        if frame && (tag.kind == FlvTagKind::Video || !self.video) {
            if tag.kind == FlvTagKind::Video && !self.video {
                // The audio recorded so far ran ahead or behind: start from the video.
                self.video = true;
                self.samples.clear();
            }
            self.record(tag.timestamp_ms, at);
        }
    }

    /// Notes that the frame with input timestamp `timestamp_ms` arrived at `at`. A
    /// timestamp that goes back (a new publish that starts at zero) starts over.
    pub fn record(&mut self, timestamp_ms: u32, at: Timestamp) {
        if let Some((last, _)) = self.samples.back() {
            if timestamp_ms < *last {
                self.samples.clear();
            } else if timestamp_ms == *last {
                return;
            }
        }
        if self.samples.len() == CAPACITY {
            self.samples.pop_front();
        }
        self.samples.push_back((timestamp_ms, at.as_millisecond() - i64::from(timestamp_ms)));
    }

    /// The ingest time of input timestamp `timestamp_ms`: the timestamp plus the smallest
    /// arrival delay of the frames up to ten seconds before it (or of the first frames,
    /// for a timestamp before any).
    pub fn wall_time(&self, timestamp_ms: u64) -> Option<Timestamp> {
        let end = self.samples.partition_point(|(ts, _)| u64::from(*ts) <= timestamp_ms).max(1);
        let from = timestamp_ms.saturating_sub(WINDOW_MS);
        let delay = self
            .samples
            .range(..end.min(self.samples.len()))
            .rev()
            .take_while(|(ts, _)| u64::from(*ts) >= from)
            .map(|(_, delay)| *delay)
            .min()
            .or_else(|| self.samples.get(end - 1).map(|(_, delay)| *delay))?;
        let millis = i64::try_from(timestamp_ms).ok()?.checked_add(delay)?;
        Timestamp::from_millisecond(millis).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(millis: i64) -> Timestamp {
        Timestamp::from_millisecond(1_714_564_800_000 + millis).unwrap()
    }

    impl IngestClock {
        fn wall_time_at(&self, timestamp_ms: u64) -> Timestamp {
            self.wall_time(timestamp_ms).expect("a time")
        }
    }

    #[test]
    fn dates_by_the_soonest_arrivals() {
        let mut clock = IngestClock::new();
        assert_eq!(clock.wall_time(0), None);
        // Frame 1000 came 50 ms late, frame 1033 on time, frame 1066 in a late burst.
        clock.record(1000, at(50));
        clock.record(1033, at(33));
        clock.record(1066, at(300));
        assert_eq!(clock.wall_time_at(1000), at(50), "only the first frame so far");
        assert_eq!(clock.wall_time_at(1066), at(66), "the burst does not move the timeline");
        assert_eq!(clock.wall_time_at(2000), at(1000));
        assert_eq!(clock.wall_time_at(900), at(-50), "before the first frame: its delay");
    }

    #[test]
    fn follows_a_drifting_encoder() {
        let mut clock = IngestClock::new();
        // One frame a second whose delay grows by 100 ms a second.
        for second in 0..30u32 {
            clock.record(second * 1000, at(i64::from(second) * 1100));
        }
        // Ten seconds back from 29 s the smallest delay is that of 19 s: 1.9 s.
        assert_eq!(clock.wall_time_at(29_000), at(29_000 + 1_900));
    }

    #[test]
    fn audio_dates_a_source_until_its_first_video_frame() {
        use bytes::Bytes;
        let tag = |kind, timestamp_ms, data: &'static [u8]| FlvTag::new(kind, timestamp_ms, Bytes::from_static(data));
        let mut clock = IngestClock::new();
        clock.record_tag(&tag(FlvTagKind::Audio, 0, &[0xaf, 0, 0x11, 0x90]), at(0));
        assert_eq!(clock.wall_time(0), None, "a configuration is no frame");
        clock.record_tag(&tag(FlvTagKind::Audio, 1000, &[0xaf, 1, 0x21]), at(1200));
        assert_eq!(clock.wall_time_at(1000), at(1200), "audio alone dates the source");
        clock.record_tag(&tag(FlvTagKind::Video, 1010, &[0x17, 1, 0, 0, 0]), at(1010));
        clock.record_tag(&tag(FlvTagKind::Audio, 1005, &[0xaf, 1, 0x21]), at(5000));
        assert_eq!(clock.wall_time_at(1010), at(1010), "video from its first frame on, audio ignored");
    }

    #[test]
    fn a_timestamp_going_back_starts_over() {
        let mut clock = IngestClock::new();
        clock.record(5000, at(0));
        clock.record(0, at(10_000));
        assert_eq!(clock.wall_time_at(5000), at(15_000));
    }
}
