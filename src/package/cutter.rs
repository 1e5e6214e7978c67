//! Where the fragments of ffmpeg's fragmented MP4 fall: each fragment is one part, and a
//! fragment that starts on a sync sample of the stream's timing track (video, else audio)
//! opens a new segment once the open one has reached the segment duration.
//!
//! ffmpeg cuts a fragment at every keyframe and after each part duration, and the encoded
//! renditions have keyframes forced at the segment boundaries, so their segments come out
//! at the segment duration exactly: such a segment is complete with the fragment that
//! brings it to the segment duration, without waiting for the next one (which would list
//! every segment one part late, or with fragments of a whole GOP, one segment late). The
//! first segment of a run is the exception: ffmpeg stretches a run's first video frame to
//! line it up with the audio's priming, so the forced keyframes fall a little later on the
//! run's timeline than the frames' durations suggest, and that segment ends at the next
//! keyframe. A passthrough rendition follows the source's keyframes: its segments end where the next
//! keyframe comes, and may be longer.

use std::time::Duration;

use crate::media::fmp4::{Fragment, InitSegment};

/// Where one fragment goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// The fragment opens a new segment.
    pub opens_segment: bool,
    /// It starts with a sync sample.
    pub independent: bool,
    pub duration: Duration,
    /// Decode time of its first sample, from the first fragment of the run.
    pub offset: Duration,
    /// The fragment completes its segment (keyframes forced at the segment boundaries).
    pub completes_segment: bool,
}

/// Cuts one rendition's fragments, run by run.
#[derive(Debug, Clone)]
pub struct Cutter {
    segment_duration: Duration,
    /// Keyframes are forced at the segment boundaries (an encoded rendition).
    forced_keyframes: bool,
    timing: Option<Timing>,
    /// Media time in the open segment, in timescale ticks; `None` before the run's first
    /// fragment and after a completed segment.
    open_ticks: Option<u64>,
    /// The run has placed a fragment.
    started: bool,
    /// The open segment is the run's first.
    first_segment: bool,
}

#[derive(Debug, Clone, Copy)]
struct Timing {
    track_id: u32,
    timescale: u32,
    first_decode_time: Option<u64>,
}

/// What a fragment becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// A part of its own.
    Part(Placement),
    /// No part of its own: its bytes go at the start of the next part.
    Join,
}

impl Cutter {
    /// A cutter for segments of `segment_duration`; `forced_keyframes` when the rendition's
    /// keyframes are forced at the segment boundaries.
    pub fn new(segment_duration: Duration, forced_keyframes: bool) -> Self {
        Self { segment_duration, forced_keyframes, timing: None, open_ticks: None, started: false, first_segment: true }
    }

    /// Starts a run with its init segment: the next fragment opens a segment.
    pub fn start_run(&mut self, init: &InitSegment) {
        let track = init.timing_track();
        self.timing = Some(Timing { track_id: track.id, timescale: track.timescale, first_decode_time: None });
        self.open_ticks = None;
        self.started = false;
        self.first_segment = true;
    }

    /// Places a fragment of the current run; `None` before [`Self::start_run`], and for the
    /// fragments of a run before its first sample of the timing track (audio that ffmpeg
    /// muxed before the first video frame: a segment must start on a keyframe).
    ///
    /// ffmpeg cuts a fragment when any track reaches the fragment duration, so now and then
    /// a fragment holds only audio, between two video frames: it takes no time of the
    /// stream's timeline, and is [`Cut::Join`]ed to the next part.
    pub fn place(&mut self, fragment: &Fragment) -> Option<Cut> {
        let timing = self.timing.as_mut()?;
        let Some(run) = fragment.run(timing.track_id).copied() else {
            return self.started.then_some(Cut::Join);
        };
        self.started = true;
        let first = *timing.first_decode_time.get_or_insert(run.base_decode_time);
        let timescale = u64::from(timing.timescale);
        let ticks = |duration: Duration| {
            u64::try_from(duration.as_nanos().saturating_mul(u128::from(timescale)) / 1_000_000_000).unwrap_or(u64::MAX)
        };
        // Keyframes forced at the boundary can land a tick or two early after rounding of
        // frame durations; a twentieth of the segment duration absorbs that and nothing more.
        let long_enough = ticks(self.segment_duration).saturating_sub(ticks(self.segment_duration / 20));
        let opens_segment = match self.open_ticks {
            None => true,
            Some(open) => run.starts_with_sync && open >= long_enough,
        };
        if opens_segment && !run.starts_with_sync {
            tracing::warn!("a segment starts without a keyframe: ffmpeg did not force one at the boundary");
        }
        if opens_segment && self.open_ticks.is_some() {
            self.first_segment = false;
        }
        let open = if opens_segment { 0 } else { self.open_ticks.unwrap_or(0) };
        let filled = open.saturating_add(run.duration);
        // Complete only when the forced keyframe is the very next frame: within half a
        // frame of the segment duration, not within the tolerance of a cut.
        let half_frame = run.duration / u64::from(run.samples.max(1)) / 2;
        let completes_segment = self.forced_keyframes
            && !self.first_segment
            && filled.saturating_add(half_frame) >= ticks(self.segment_duration);
        if completes_segment {
            self.first_segment = false;
        }
        self.open_ticks = if completes_segment { None } else { Some(filled) };
        Some(Cut::Part(Placement {
            opens_segment,
            independent: run.starts_with_sync,
            duration: ticks_to_duration(run.duration, timing.timescale),
            offset: ticks_to_duration(run.base_decode_time.saturating_sub(first), timing.timescale),
            completes_segment,
        }))
    }
}

/// `ticks` of a track with `timescale` ticks a second, to the nearest nanosecond.
fn ticks_to_duration(ticks: u64, timescale: u32) -> Duration {
    let timescale = u128::from(timescale.max(1));
    let nanos = (u128::from(ticks) * 1_000_000_000 + timescale / 2) / timescale;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::fmp4::testing::{fragment, init_segment};
    use crate::media::fmp4::{FragmentReader, Piece};

    fn part(cut: Option<Cut>) -> Placement {
        match cut {
            Some(Cut::Part(placement)) => placement,
            other => panic!("not a part: {other:?}"),
        }
    }

    fn parse(bytes: &[u8]) -> Vec<Piece> {
        let mut reader = FragmentReader::new();
        reader.push(bytes);
        let mut pieces = Vec::new();
        while let Some(piece) = reader.next_piece().unwrap() {
            pieces.push(piece);
        }
        pieces
    }

    #[test]
    fn parts_of_half_a_second_make_segments_of_two() {
        // 30 fps at timescale 15360: 512 ticks a frame, 15 frames a part, keyframes every 60.
        let mut stream = init_segment();
        for index in 0..10u32 {
            stream.extend(fragment(index + 1, u64::from(index) * 15 * 512, 15, index % 4 == 0));
        }
        let pieces = parse(&stream);
        let Piece::Init(init) = &pieces[0] else { panic!() };
        let mut cutter = Cutter::new(Duration::from_secs(2), false);
        cutter.start_run(init);
        let placements: Vec<Placement> = pieces[1..]
            .iter()
            .map(|piece| match piece {
                Piece::Fragment(fragment) => part(cutter.place(fragment)),
                Piece::Init(_) => panic!(),
            })
            .collect();
        let opens: Vec<bool> = placements.iter().map(|p| p.opens_segment).collect();
        assert_eq!(opens, [true, false, false, false, true, false, false, false, true, false]);
        assert!(placements.iter().all(|p| p.duration == Duration::from_millis(500)));
        assert!(placements.iter().all(|p| !p.completes_segment), "a passthrough segment ends at the next keyframe");
        assert_eq!(placements[5].offset, Duration::from_millis(2500));

        let mut forced = Cutter::new(Duration::from_secs(2), true);
        forced.start_run(init);
        let placements: Vec<Placement> = pieces[1..]
            .iter()
            .map(|piece| match piece {
                Piece::Fragment(fragment) => part(forced.place(fragment)),
                Piece::Init(_) => panic!(),
            })
            .collect();
        let completes: Vec<bool> = placements.iter().map(|p| p.completes_segment).collect();
        // The run's first segment ends at the next keyframe; the later ones with their last part.
        assert_eq!(completes, [false, false, false, false, false, false, false, true, false, false]);
        let opens: Vec<bool> = placements.iter().map(|p| p.opens_segment).collect();
        assert_eq!(opens, [true, false, false, false, true, false, false, false, true, false]);
    }

    #[test]
    fn a_keyframe_too_early_does_not_cut_and_a_new_run_always_does() {
        let mut stream = init_segment();
        stream.extend(fragment(1, 0, 15, true));
        stream.extend(fragment(2, 15 * 512, 15, true));
        let pieces = parse(&stream);
        let Piece::Init(init) = &pieces[0] else { panic!() };
        let mut cutter = Cutter::new(Duration::from_secs(2), false);
        let Piece::Fragment(first) = &pieces[1] else { panic!() };
        let Piece::Fragment(second) = &pieces[2] else { panic!() };
        assert_eq!(cutter.place(first), None, "no run started");
        cutter.start_run(init);
        assert!(part(cutter.place(first)).opens_segment);
        let early = part(cutter.place(second));
        assert!(early.independent && !early.opens_segment, "a keyframe after 0.5 s stays in the segment");
        cutter.start_run(init);
        assert!(part(cutter.place(second)).opens_segment, "a new run opens a segment");
    }

    #[test]
    fn audio_before_the_first_frame_is_dropped_and_audio_alone_joins_the_next_part() {
        let mut stream = init_segment();
        stream.extend(fragment(1, 0, 0, false));
        stream.extend(fragment(2, 0, 15, true));
        stream.extend(fragment(3, 15 * 512, 0, false));
        let pieces = parse(&stream);
        let Piece::Init(init) = &pieces[0] else { panic!() };
        let fragments: Vec<&Fragment> = pieces[1..]
            .iter()
            .map(|piece| match piece {
                Piece::Fragment(fragment) => fragment,
                Piece::Init(_) => panic!(),
            })
            .collect();
        let mut cutter = Cutter::new(Duration::from_secs(2), true);
        cutter.start_run(init);
        assert_eq!(cutter.place(fragments[0]), None, "audio before any video");
        assert!(part(cutter.place(fragments[1])).opens_segment);
        assert_eq!(cutter.place(fragments[2]), Some(Cut::Join), "audio alone joins the next part");
    }
}
