//! Low-Latency HLS media playlists (RFC 8216bis): the live window of a rendition with the
//! parts of its newest segments, the open segment's parts, a preload hint for the next
//! part, rendition reports, and delta updates; and the positions that blocking playlist
//! reloads (`_HLS_msn`, `_HLS_part`) wait for.
//!
//! [`LowLatencyPlaylist`] is a snapshot the packager takes after every part; the origin
//! keeps the newest one per rendition and renders it per request (a request may ask for a
//! delta update, and carries the other renditions' positions in its reports).

use std::fmt::Write as _;
use std::time::Duration;

use jiff::Timestamp;

use super::media_playlist::{format_duration, format_program_date_time};
use super::names;
use super::segment::{PartRecord, SegmentRecord};

/// The segment being filled, as far as its parts are in storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenSegmentView {
    pub sequence: u64,
    pub discontinuity: bool,
    pub discontinuity_number: u64,
    pub starts_at: Timestamp,
    /// Its stored parts, in order.
    pub parts: Vec<PartRecord>,
}

/// A rendition's low-latency playlist at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LowLatencyPlaylist {
    pub rendition: String,
    pub target_duration_s: u32,
    /// The live window of whole segments, oldest first.
    pub window: Vec<SegmentRecord>,
    /// Parts of the newest whole segments, by sequence.
    pub recent_parts: Vec<(u64, Vec<PartRecord>)>,
    pub open: Option<OpenSegmentView>,
    /// Sequence number of the next segment after the window (the open one, if any).
    pub next_sequence: u64,
    /// `EXT-X-DISCONTINUITY-SEQUENCE` when the window is empty.
    pub empty_discontinuity_sequence: u64,
    /// The stream has ended: `EXT-X-ENDLIST`, no preload hint.
    pub ended: bool,
}

/// Where a rendition stands, for rendition reports and blocking reloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The newest segment that has a part or is whole.
    pub msn: u64,
    /// Its newest part, when it has any in the playlist.
    pub part: Option<u32>,
}

/// `EXT-X-RENDITION-REPORT` of another rendition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenditionReport {
    /// URI of its media playlist relative to this one, e.g. `../360p/index.m3u8`.
    pub uri: String,
    pub position: Position,
}

/// How a playlist is rendered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RenderOptions<'a> {
    /// `PART-TARGET`: the longest part.
    pub part_target: Duration,
    /// A delta update (`_HLS_skip=YES`): segments older than the skip boundary are left
    /// out and counted in `EXT-X-SKIP`.
    pub skip: bool,
    /// URL that media URIs (segments, parts, init segments) are resolved against instead
    /// of the playlist's own location, e.g. `https://cdn.example.com/live/demo/720p`; media
    /// then comes from the bucket while the playlist comes from the origin.
    pub media_base: Option<&'a str>,
    pub reports: &'a [RenditionReport],
}

/// Whole segments whose parts stay listed, besides the open one: together they reach back
/// three target durations, as RFC 8216bis asks.
pub const SEGMENTS_WITH_PARTS: usize = 3;

impl LowLatencyPlaylist {
    /// The newest position: the open segment's last part, else the last whole segment (with
    /// its last part, if its parts are listed).
    pub fn position(&self) -> Option<Position> {
        if let Some(open) = &self.open
            && let Some(last) = open.parts.len().checked_sub(1)
        {
            return Some(Position { msn: open.sequence, part: Some(last as u32) });
        }
        let last = self.window.last()?;
        let part = self.parts_of(last.sequence).and_then(|parts| parts.len().checked_sub(1)).map(|p| p as u32);
        Some(Position { msn: last.sequence, part })
    }

    /// Whether a reload blocking on `msn` (and `part`) can be answered: the playlist holds
    /// that part or a later one (with `part`), or that whole segment or a later one.
    pub fn satisfies(&self, msn: u64, part: Option<u32>) -> bool {
        if self.ended {
            return true;
        }
        match part {
            None => self.holds_whole(msn),
            Some(part) => {
                let later_part = |sequence: u64, parts: usize| {
                    parts > 0 && (sequence > msn || (sequence == msn && parts as u64 > u64::from(part)))
                };
                let open = self.open.as_ref().is_some_and(|open| later_part(open.sequence, open.parts.len()));
                let completed = self.recent_parts.iter().any(|(sequence, parts)| later_part(*sequence, parts.len()));
                // A whole segment after `msn` holds later media even without listed parts.
                open || completed || self.window.last().is_some_and(|last| last.sequence > msn)
            }
        }
    }

    /// Whether segment `msn` is whole (or the stream has ended).
    pub fn holds_whole(&self, msn: u64) -> bool {
        self.ended || self.window.last().is_some_and(|last| last.sequence >= msn)
    }

    /// The segment number a blocking request may at most ask for: RFC 8216bis has the
    /// server refuse requests more than two segments ahead of the playlist.
    pub fn furthest_blockable(&self) -> u64 {
        self.position().map_or(self.next_sequence, |position| position.msn).saturating_add(2)
    }

    fn parts_of(&self, sequence: u64) -> Option<&[PartRecord]> {
        self.recent_parts.iter().find(|(s, _)| *s == sequence).map(|(_, parts)| parts.as_slice())
    }

    /// Renders the playlist.
    pub fn render(&self, options: &RenderOptions<'_>) -> String {
        let target = self.target_duration_s;
        let skip_until = Duration::from_secs(u64::from(target) * 6);
        let part_target = options.part_target;
        let media = |file: String| match options.media_base {
            Some(base) => format!("{}/{file}", base.trim_end_matches('/')),
            None => file,
        };
        let (media_sequence, discontinuity_sequence) = match self.window.first() {
            Some(first) => (first.sequence, first.discontinuity_number.saturating_sub(u64::from(first.discontinuity))),
            None => match &self.open {
                Some(open) => (open.sequence, open.discontinuity_number.saturating_sub(u64::from(open.discontinuity))),
                None => (self.next_sequence, self.empty_discontinuity_sequence),
            },
        };
        let skipped = if options.skip { self.skippable(skip_until) } else { 0 };
        let mut out = String::with_capacity(1024);
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:{target}\n\
             #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL={:.1},PART-HOLD-BACK={:.3}\n\
             #EXT-X-PART-INF:PART-TARGET={:.3}\n\
             #EXT-X-MEDIA-SEQUENCE:{media_sequence}\n#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuity_sequence}\n\
             #EXT-X-INDEPENDENT-SEGMENTS\n",
            skip_until.as_secs_f64(),
            (part_target * 3).as_secs_f64(),
            part_target.as_secs_f64(),
        );
        if skipped > 0 {
            let _ = writeln!(out, "#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}");
        }
        let mut first = true;
        for record in self.window.iter().skip(skipped) {
            if record.discontinuity {
                out.push_str("#EXT-X-DISCONTINUITY\n");
            }
            if first || record.discontinuity {
                let _ =
                    writeln!(out, "#EXT-X-MAP:URI=\"{}\"", media(names::init_file_name(record.discontinuity_number)));
            }
            first = false;
            let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", format_program_date_time(record.program_date_time));
            if let Some(parts) = self.parts_of(record.sequence) {
                write_parts(&mut out, record.sequence, parts, part_target, &media);
            }
            let _ = write!(
                out,
                "#EXTINF:{},\n{}\n",
                format_duration(record.listed_duration),
                media(names::segment_file_name(record.sequence, names::SegmentFormat::Fmp4))
            );
        }
        if let Some(open) = self.open.as_ref().filter(|open| !open.parts.is_empty()) {
            if open.discontinuity {
                out.push_str("#EXT-X-DISCONTINUITY\n");
            }
            if first || open.discontinuity {
                let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", media(names::init_file_name(open.discontinuity_number)));
            }
            let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", format_program_date_time(open.starts_at));
            write_parts(&mut out, open.sequence, &open.parts, part_target, &media);
        }
        if self.ended {
            out.push_str("#EXT-X-ENDLIST\n");
        } else {
            let (sequence, index) = match self.open.as_ref().filter(|open| !open.parts.is_empty()) {
                Some(open) => (open.sequence, open.parts.len() as u32),
                None => (self.next_sequence, 0),
            };
            let _ = writeln!(
                out,
                "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}\"",
                media(names::part_file_name(sequence, index))
            );
        }
        for report in options.reports {
            let _ = write!(out, "#EXT-X-RENDITION-REPORT:URI=\"{}\",LAST-MSN={}", report.uri, report.position.msn);
            if let Some(part) = report.position.part {
                let _ = write!(out, ",LAST-PART={part}");
            }
            out.push('\n');
        }
        out
    }

    /// How many of the oldest whole segments start more than `skip_until` before the end
    /// of the playlist.
    fn skippable(&self, skip_until: Duration) -> usize {
        let open: Duration = self.open.iter().flat_map(|open| open.parts.iter()).map(|part| part.duration).sum();
        let mut from_end = open;
        let mut kept = 0;
        for record in self.window.iter().rev() {
            from_end += record.duration;
            if from_end > skip_until {
                break;
            }
            kept += 1;
        }
        self.window.len() - kept.min(self.window.len())
    }
}

/// Parts are listed at most `part_target` long (RFC 8216bis: a part's duration is at most
/// the part target): the first part of a run can be a few milliseconds longer, its first
/// frame starting with the audio.
fn write_parts(
    out: &mut String,
    sequence: u64,
    parts: &[PartRecord],
    part_target: Duration,
    media: &impl Fn(String) -> String,
) {
    for (index, part) in parts.iter().enumerate() {
        let _ = write!(
            out,
            "#EXT-X-PART:DURATION={},URI=\"{}\"",
            format_part_duration(part.duration.min(part_target)),
            media(names::part_file_name(sequence, index as u32))
        );
        if part.independent {
            out.push_str(",INDEPENDENT=YES");
        }
        out.push('\n');
    }
}

/// Seconds with five decimals, e.g. `0.50000`.
fn format_part_duration(duration: Duration) -> String {
    format!("{:.5}", duration.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: i64 = 1_714_564_800;

    fn at(seconds: f64) -> Timestamp {
        Timestamp::from_millisecond(START * 1000 + (seconds * 1000.0) as i64).unwrap()
    }

    fn part(millis: u64, independent: bool) -> PartRecord {
        PartRecord { duration: Duration::from_millis(millis), independent }
    }

    fn record(sequence: u64, start: f64) -> SegmentRecord {
        SegmentRecord {
            sequence,
            duration: Duration::from_secs(2),
            listed_duration: Duration::from_secs(2),
            discontinuity: false,
            discontinuity_number: 0,
            program_date_time: at(start),
            bytes: 1000,
            parts: Some(4),
        }
    }

    fn four_parts() -> Vec<PartRecord> {
        vec![part(500, true), part(500, false), part(500, false), part(500, false)]
    }

    fn playlist() -> LowLatencyPlaylist {
        LowLatencyPlaylist {
            rendition: "720p".into(),
            target_duration_s: 2,
            window: vec![record(10, 0.0), record(11, 2.0)],
            recent_parts: vec![(11, four_parts())],
            open: Some(OpenSegmentView {
                sequence: 12,
                discontinuity: false,
                discontinuity_number: 0,
                starts_at: at(4.0),
                parts: vec![part(500, true), part(500, false)],
            }),
            next_sequence: 12,
            empty_discontinuity_sequence: 0,
            ended: false,
        }
    }

    fn options(reports: &[RenditionReport]) -> RenderOptions<'_> {
        RenderOptions { part_target: Duration::from_millis(500), skip: false, media_base: None, reports }
    }

    #[test]
    fn renders_parts_hint_and_reports() {
        let reports =
            [RenditionReport { uri: "../360p/index.m3u8".into(), position: Position { msn: 12, part: Some(1) } }];
        let expected = "#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:2
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12.0,PART-HOLD-BACK=1.500
#EXT-X-PART-INF:PART-TARGET=0.500
#EXT-X-MEDIA-SEQUENCE:10
#EXT-X-DISCONTINUITY-SEQUENCE:0
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI=\"init-0.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2024-05-01T12:00:00.000Z
#EXTINF:2.000000,
10.m4s
#EXT-X-PROGRAM-DATE-TIME:2024-05-01T12:00:02.000Z
#EXT-X-PART:DURATION=0.50000,URI=\"11.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.50000,URI=\"11.1.m4s\"
#EXT-X-PART:DURATION=0.50000,URI=\"11.2.m4s\"
#EXT-X-PART:DURATION=0.50000,URI=\"11.3.m4s\"
#EXTINF:2.000000,
11.m4s
#EXT-X-PROGRAM-DATE-TIME:2024-05-01T12:00:04.000Z
#EXT-X-PART:DURATION=0.50000,URI=\"12.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.50000,URI=\"12.1.m4s\"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"12.2.m4s\"
#EXT-X-RENDITION-REPORT:URI=\"../360p/index.m3u8\",LAST-MSN=12,LAST-PART=1
";
        assert_eq!(playlist().render(&options(&reports)), expected);
    }

    #[test]
    fn media_uris_can_point_at_the_bucket() {
        let text = playlist()
            .render(&RenderOptions { media_base: Some("https://cdn.example.com/live/720p/"), ..options(&[]) });
        assert!(text.contains("#EXT-X-MAP:URI=\"https://cdn.example.com/live/720p/init-0.mp4\"\n"));
        assert!(text.contains("\nhttps://cdn.example.com/live/720p/10.m4s\n"));
        assert!(text.contains("URI=\"https://cdn.example.com/live/720p/12.1.m4s\"\n"));
        assert!(text.contains("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"https://cdn.example.com/live/720p/12.2.m4s\""));
    }

    #[test]
    fn positions_and_blocking() {
        let playlist = playlist();
        assert_eq!(playlist.position(), Some(Position { msn: 12, part: Some(1) }));
        assert!(playlist.satisfies(11, None), "segment 11 is whole");
        assert!(!playlist.satisfies(12, None), "segment 12 is open");
        assert!(playlist.satisfies(12, Some(1)));
        assert!(!playlist.satisfies(12, Some(2)), "the hinted part");
        assert!(playlist.satisfies(11, Some(7)), "a part of 11 that does not exist: 12.0 is later");
        assert!(!playlist.satisfies(13, Some(0)));
        assert_eq!(playlist.furthest_blockable(), 14);
        let mut ended = playlist.clone();
        ended.ended = true;
        assert!(ended.satisfies(40, Some(3)), "an ended stream answers at once");
        let text = ended.render(&options(&[]));
        assert!(text.ends_with("URI=\"12.1.m4s\"\n#EXT-X-ENDLIST\n"), "{text}");
        assert!(!text.contains("PRELOAD-HINT"));
    }

    #[test]
    fn hint_names_the_next_segment_when_none_is_open() {
        let mut playlist = playlist();
        playlist.open = None;
        playlist.next_sequence = 12;
        assert_eq!(playlist.position(), Some(Position { msn: 11, part: Some(3) }));
        assert!(playlist.render(&options(&[])).contains("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"12.0.m4s\"\n"));
    }

    #[test]
    fn delta_updates_skip_segments_before_the_boundary() {
        let mut playlist = playlist();
        playlist.window = (0..12).map(|n| record(n, 2.0 * n as f64)).collect();
        playlist.recent_parts = vec![(11, four_parts())];
        let full = playlist.render(&options(&[]));
        let delta = playlist.render(&RenderOptions { skip: true, ..options(&[]) });
        // 12 s of skip boundary: segments 6..=11 (12 s) minus the open second: 5 of them
        // stay whole with the open segment, the 7 before are skipped.
        assert!(delta.contains("#EXT-X-MEDIA-SEQUENCE:0\n"));
        assert!(delta.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=7\n"), "{delta}");
        assert!(!delta.contains("\n6.m4s\n") && delta.contains("\n7.m4s\n"));
        assert!(delta.contains("#EXT-X-MAP:URI=\"init-0.mp4\"\n#EXT-X-PROGRAM-DATE-TIME:2024-05-01T12:00:14.000Z\n"));
        assert!(!full.contains("EXT-X-SKIP"));
        assert_eq!(full.matches("#EXTINF").count(), 12);
    }

    #[test]
    fn open_segment_after_a_discontinuity_carries_its_map() {
        let mut playlist = playlist();
        if let Some(open) = playlist.open.as_mut() {
            open.discontinuity = true;
            open.discontinuity_number = 1;
        }
        let text = playlist.render(&options(&[]));
        assert!(text.contains(
            "11.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init-1.mp4\"\n#EXT-X-PROGRAM-DATE-TIME:2024-05-01T12:00:04.000Z\n#EXT-X-PART:"
        ));
    }
}
