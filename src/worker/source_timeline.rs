//! A publish's timestamps, kept continuous for the transcoder.
//!
//! Encoders that restart their clock, wrap it, or stamp frames with a wall clock that
//! jumps send timestamps that leap by minutes or hours within one publish. Fed to ffmpeg
//! as they are, a forward leap of an hour becomes an hour of repeated frames, encoded as
//! fast as the machine allows (half an hour of filler segments in seconds), and a leap
//! back makes it drop every frame until the clock catches up. The timeline closes such a
//! leap: the frame after it follows the one before by the usual frame interval, and every
//! later frame of the publish keeps that shift. Audio and video are shifted each on its
//! own, so both close the same leap to within a frame of each other.

use std::time::Duration;

use crate::media::flv::{FlvTag, FlvTagKind};

/// Largest forward step between two frames of a kind that is taken as it is: a stall of an
/// encoder that stamps with a wall clock shows as a gap of this order, and ffmpeg fills it.
pub const MAX_FORWARD_STEP: Duration = Duration::from_secs(5);

/// Largest backward step that is taken as it is (encoders jitter by a few milliseconds).
pub const MAX_BACKWARD_STEP: Duration = Duration::from_secs(1);

/// The step assumed before two frames of a kind have shown the real one.
const DEFAULT_STEP_MS: i64 = 40;

/// A leap that the timeline closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leap {
    pub kind: FlvTagKind,
    /// The source's timestamp before the leap, and at it.
    pub from_ms: u32,
    pub to_ms: u32,
}

impl Leap {
    /// How far the source leapt, negative for a leap back.
    pub fn milliseconds(&self) -> i64 {
        i64::from(self.to_ms) - i64::from(self.from_ms)
    }
}

/// The timeline of one publish.
#[derive(Debug, Default, Clone)]
pub struct SourceTimeline {
    audio: KindTimeline,
    video: KindTimeline,
}

#[derive(Debug, Default, Clone)]
struct KindTimeline {
    /// The last frame's timestamp as the source sent it and as it goes on.
    last: Option<(u32, i64)>,
    /// Added to the source's timestamps since the last leap.
    shift: i64,
    /// The interval between the last two frames, when it was an ordinary one.
    step: Option<i64>,
}

impl SourceTimeline {
    pub fn new() -> Self {
        Self::default()
    }

    /// Gives `tag` its place on the continuous timeline; returns the leap it closed, if any.
    /// Sequence headers and metadata take the time of the last frame of their kind (a
    /// sequence header sent again mid-stream often carries timestamp 0).
    pub fn place(&mut self, tag: &mut FlvTag) -> Option<Leap> {
        let timeline = match tag.kind {
            FlvTagKind::Audio => &mut self.audio,
            FlvTagKind::Video => &mut self.video,
            FlvTagKind::Script => {
                if let Some((_, out)) = self.video.last {
                    tag.timestamp_ms = clamp(out);
                }
                return None;
            }
        };
        if tag.is_sequence_header() {
            if let Some((_, out)) = timeline.last {
                tag.timestamp_ms = clamp(out);
            }
            return None;
        }
        let leap = timeline.place(tag.kind, tag.timestamp_ms);
        tag.timestamp_ms = clamp(i64::from(tag.timestamp_ms) + timeline.shift);
        leap
    }
}

impl KindTimeline {
    fn place(&mut self, kind: FlvTagKind, timestamp_ms: u32) -> Option<Leap> {
        let source = i64::from(timestamp_ms);
        let mut leap = None;
        if let Some((previous, previous_out)) = self.last {
            let delta = source - i64::from(previous);
            if delta > millis(MAX_FORWARD_STEP) || delta < -millis(MAX_BACKWARD_STEP) {
                let step = self.step.unwrap_or(DEFAULT_STEP_MS);
                self.shift = previous_out + step - source;
                leap = Some(Leap { kind, from_ms: previous, to_ms: timestamp_ms });
            } else if delta > 0 && delta < 1000 {
                self.step = Some(delta);
            }
        }
        self.last = Some((timestamp_ms, source + self.shift));
        leap
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// An FLV timestamp: 32 bits of milliseconds.
fn clamp(timestamp_ms: i64) -> u32 {
    u32::try_from(timestamp_ms.max(0)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn video(timestamp_ms: u32) -> FlvTag {
        FlvTag::new(FlvTagKind::Video, timestamp_ms, Bytes::from_static(&[0x27, 0x01, 0, 0, 0, 0xAA]))
    }

    fn audio(timestamp_ms: u32) -> FlvTag {
        FlvTag::new(FlvTagKind::Audio, timestamp_ms, Bytes::from_static(&[0xAF, 0x01, 0xBB]))
    }

    fn placed(timeline: &mut SourceTimeline, mut tag: FlvTag) -> (u32, Option<Leap>) {
        let leap = timeline.place(&mut tag);
        (tag.timestamp_ms, leap)
    }

    #[test]
    fn ordinary_timestamps_pass_unchanged() {
        let mut timeline = SourceTimeline::new();
        // An encoder that starts at a large clock, with a gap of 3 s (a stall) and jitter.
        for timestamp in [5_000_000, 5_000_040, 5_000_080, 5_003_080, 5_003_070, 5_003_120] {
            assert_eq!(placed(&mut timeline, video(timestamp)), (timestamp, None));
        }
    }

    #[test]
    fn a_leap_forward_by_an_hour_is_closed_for_audio_and_video() {
        let mut timeline = SourceTimeline::new();
        for index in 0..50u32 {
            placed(&mut timeline, video(index * 40));
            placed(&mut timeline, audio(index * 21));
        }
        let hour = 3_600_000;
        let (at, leap) = placed(&mut timeline, video(hour + 2_000));
        assert_eq!(at, 49 * 40 + 40, "the frame after the leap follows the last by a frame");
        assert_eq!(leap.map(|leap| leap.milliseconds()), Some(i64::from(hour + 2_000 - 49 * 40)));
        assert_eq!(placed(&mut timeline, video(hour + 2_040)), (49 * 40 + 80, None), "the shift stays");
        // Audio leaps too, a moment later, and lands a step after its own last frame.
        assert_eq!(placed(&mut timeline, audio(hour + 1_030)).0, 49 * 21 + 21);
        assert_eq!(placed(&mut timeline, audio(hour + 1_051)), (49 * 21 + 42, None));
    }

    #[test]
    fn a_leap_back_is_closed_and_headers_take_their_kind_s_time() {
        let mut timeline = SourceTimeline::new();
        for index in 0..10u32 {
            placed(&mut timeline, video(600_000 + index * 40));
        }
        let (at, leap) = placed(&mut timeline, video(0));
        assert_eq!(at, 600_000 + 9 * 40 + 40);
        assert!(leap.is_some_and(|leap| leap.milliseconds() < 0));
        let mut header = FlvTag::new(FlvTagKind::Video, 0, Bytes::from_static(&[0x17, 0x00, 0, 0, 0, 1]));
        assert_eq!(timeline.place(&mut header), None);
        assert_eq!(header.timestamp_ms, at, "a sequence header sent again takes the last frame's time");
        let mut metadata = FlvTag::new(FlvTagKind::Script, 0, Bytes::new());
        timeline.place(&mut metadata);
        assert_eq!(metadata.timestamp_ms, at);
    }
}
