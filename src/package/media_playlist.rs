//! Rendering of HLS media playlists (RFC 8216 section 4.3) from segment records.

use std::fmt::Write as _;
use std::time::Duration;

use jiff::Timestamp;

use super::names::{self, SegmentFormat};
use super::segment::SegmentRecord;

/// Whether a playlist is the live sliding window or a finished recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaylistKind {
    /// Live window: segments come and go; `EXT-X-ENDLIST` once the stream ends.
    Live {
        /// The stream has ended: append `EXT-X-ENDLIST`.
        ended: bool,
    },
    /// `EXT-X-PLAYLIST-TYPE:VOD` with every segment and `EXT-X-ENDLIST`.
    Vod,
}

/// Everything a media playlist shows besides its segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlaylistHeader {
    /// Segment container: fMP4 adds `EXT-X-MAP` and needs version 7.
    pub format: SegmentFormat,
    /// `EXT-X-TARGETDURATION`, fixed for the life of the stream.
    pub target_duration_s: u32,
    /// Live window or recording.
    pub kind: PlaylistKind,
    /// `EXT-X-MEDIA-SEQUENCE` to show when there are no segments.
    pub empty_media_sequence: u64,
    /// `EXT-X-DISCONTINUITY-SEQUENCE` to show when there are no segments.
    pub empty_discontinuity_sequence: u64,
}

/// Renders a media playlist listing `segments` (in sequence order).
pub fn render_media_playlist<'a>(
    header: &PlaylistHeader,
    segments: impl IntoIterator<Item = &'a SegmentRecord>,
) -> String {
    let mut segments = segments.into_iter().peekable();
    let (media_sequence, discontinuity_sequence) = match segments.peek() {
        Some(first) => (first.sequence, first.discontinuity_number.saturating_sub(u64::from(first.discontinuity))),
        None => (header.empty_media_sequence, header.empty_discontinuity_sequence),
    };
    let version = match header.format {
        SegmentFormat::Fmp4 => 7,
        SegmentFormat::Ts => 3,
    };
    let mut out = String::with_capacity(256);
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "#EXTM3U\n#EXT-X-VERSION:{version}\n#EXT-X-TARGETDURATION:{}\n#EXT-X-MEDIA-SEQUENCE:{media_sequence}\n#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuity_sequence}\n",
        header.target_duration_s
    );
    if header.kind == PlaylistKind::Vod {
        out.push_str("#EXT-X-PLAYLIST-TYPE:VOD\n");
    }
    out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
    let mut first = true;
    for segment in segments {
        if segment.discontinuity {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if header.format == SegmentFormat::Fmp4 && (first || segment.discontinuity) {
            let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", names::init_file_name(segment.discontinuity_number));
        }
        let _ = write!(
            out,
            "#EXT-X-PROGRAM-DATE-TIME:{}\n#EXTINF:{},\n{}\n",
            format_program_date_time(segment.program_date_time),
            format_duration(segment.listed_duration),
            names::segment_file_name(segment.sequence, header.format)
        );
        first = false;
    }
    let ended = match header.kind {
        PlaylistKind::Live { ended } => ended,
        PlaylistKind::Vod => true,
    };
    if ended {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    out
}

/// RFC 3339 with milliseconds in UTC, e.g. `2024-05-01T12:00:00.000Z`.
pub fn format_program_date_time(time: Timestamp) -> String {
    time.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Seconds with six decimals, e.g. `2.000000`.
pub fn format_duration(duration: Duration) -> String {
    format!("{}.{:06}", duration.as_secs(), duration.subsec_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(sequence: u64, millis: u64, discontinuity: bool, number: u64, at_seconds: i64) -> SegmentRecord {
        SegmentRecord {
            sequence,
            duration: Duration::from_millis(millis),
            listed_duration: Duration::from_millis(millis),
            discontinuity,
            discontinuity_number: number,
            program_date_time: Timestamp::from_second(1_714_564_800 + at_seconds).unwrap(),
            bytes: 1000,
            parts: Some(0),
        }
    }

    #[test]
    fn renders_live_fmp4_window_with_discontinuity() {
        let header = PlaylistHeader {
            format: SegmentFormat::Fmp4,
            target_duration_s: 2,
            kind: PlaylistKind::Live { ended: false },
            empty_media_sequence: 0,
            empty_discontinuity_sequence: 0,
        };
        let segments = [record(10, 2000, false, 1, 0), record(11, 1960, false, 1, 2), record(12, 2000, true, 2, 30)];
        let expected = "#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:10
#EXT-X-DISCONTINUITY-SEQUENCE:1
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI=\"init-1.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2024-05-01T12:00:00.000Z
#EXTINF:2.000000,
10.m4s
#EXT-X-PROGRAM-DATE-TIME:2024-05-01T12:00:02.000Z
#EXTINF:1.960000,
11.m4s
#EXT-X-DISCONTINUITY
#EXT-X-MAP:URI=\"init-2.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2024-05-01T12:00:30.000Z
#EXTINF:2.000000,
12.m4s
";
        assert_eq!(render_media_playlist(&header, &segments), expected);
    }

    #[test]
    fn renders_vod_ts_with_leading_discontinuity() {
        let header = PlaylistHeader {
            format: SegmentFormat::Ts,
            target_duration_s: 4,
            kind: PlaylistKind::Vod,
            empty_media_sequence: 0,
            empty_discontinuity_sequence: 0,
        };
        let segments = [record(5, 4000, true, 3, 0)];
        let expected = "#EXTM3U
#EXT-X-VERSION:3
#EXT-X-TARGETDURATION:4
#EXT-X-MEDIA-SEQUENCE:5
#EXT-X-DISCONTINUITY-SEQUENCE:2
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-DISCONTINUITY
#EXT-X-PROGRAM-DATE-TIME:2024-05-01T12:00:00.000Z
#EXTINF:4.000000,
5.ts
#EXT-X-ENDLIST
";
        assert_eq!(render_media_playlist(&header, &segments), expected);
    }

    #[test]
    fn renders_empty_ended_playlist() {
        let header = PlaylistHeader {
            format: SegmentFormat::Ts,
            target_duration_s: 2,
            kind: PlaylistKind::Live { ended: true },
            empty_media_sequence: 7,
            empty_discontinuity_sequence: 1,
        };
        let text = render_media_playlist(&header, &[]);
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:7\n#EXT-X-DISCONTINUITY-SEQUENCE:1\n"), "{text}");
        assert!(text.ends_with("#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-ENDLIST\n"), "{text}");
    }

    #[test]
    fn formats_times_and_durations() {
        let time = Timestamp::from_millisecond(1_714_564_800_123).unwrap();
        assert_eq!(format_program_date_time(time), "2024-05-01T12:00:00.123Z");
        assert_eq!(format_duration(Duration::from_micros(2_040_000)), "2.040000");
    }
}
