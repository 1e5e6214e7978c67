//! Parsing one of our own media playlists back (from storage, after a restart of the
//! worker), so the stream continues with the next sequence number and discontinuity.
//!
//! The parser accepts what the worker's packager (`package::media_playlist`) writes; unknown tags are ignored,
//! and anything malformed is an error rather than a guess.

use std::time::Duration;

use jiff::Timestamp;
use thiserror::Error;

/// Most segments accepted in one playlist (a recording of several days at 2 s segments).
pub const MAX_PARSED_SEGMENTS: usize = 1_000_000;

/// Errors from parsing a media playlist.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ParseError {
    /// The text does not start with `#EXTM3U`.
    #[error("not an M3U8 playlist")]
    NotM3u8,
    /// A tag's value is malformed.
    #[error("line {line}: malformed {tag}")]
    Malformed {
        /// 1-based line number.
        line: usize,
        /// Tag name.
        tag: &'static str,
    },
    /// A segment URI without a preceding `EXTINF`.
    #[error("line {0}: segment URI without EXTINF")]
    UriWithoutDuration(usize),
    /// A tag that must come before the first segment comes after one.
    #[error("line {line}: {tag} after the first segment")]
    AfterFirstSegment {
        /// 1-based line number.
        line: usize,
        /// Tag name.
        tag: &'static str,
    },
    /// A sequence number beyond what 64 bits hold.
    #[error("line {0}: sequence number out of range")]
    SequenceOutOfRange(usize),
    /// The playlist lists more segments than accepted.
    #[error("playlist lists more than {MAX_PARSED_SEGMENTS} segments")]
    TooManySegments,
}

/// One segment as listed in a playlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedSegment {
    /// Media sequence number (from `EXT-X-MEDIA-SEQUENCE` and the position).
    pub sequence: u64,
    /// URI as written.
    pub uri: String,
    /// `EXTINF` duration.
    pub duration: Duration,
    /// Preceded by `EXT-X-DISCONTINUITY`.
    pub discontinuity: bool,
    /// Discontinuity sequence number of the segment.
    pub discontinuity_number: u64,
    /// `EXT-X-PROGRAM-DATE-TIME`, if present.
    pub program_date_time: Option<Timestamp>,
    /// URI of the `EXT-X-MAP` in effect, if any.
    pub map_uri: Option<String>,
}

/// A parsed media playlist.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParsedMediaPlaylist {
    /// `EXT-X-TARGETDURATION`.
    pub target_duration_s: Option<u32>,
    /// `EXT-X-MEDIA-SEQUENCE` (0 when absent).
    pub media_sequence: u64,
    /// `EXT-X-DISCONTINUITY-SEQUENCE` (0 when absent).
    pub discontinuity_sequence: u64,
    /// `EXT-X-ENDLIST` is present.
    pub ended: bool,
    /// The segments in order.
    pub segments: Vec<ParsedSegment>,
}

/// Parses a media playlist.
pub fn parse_media_playlist(text: &str) -> Result<ParsedMediaPlaylist, ParseError> {
    let mut lines = text.lines().enumerate().map(|(index, line)| (index + 1, line.trim()));
    match lines.next() {
        Some((_, "#EXTM3U")) => {}
        _ => return Err(ParseError::NotM3u8),
    }
    let mut playlist = ParsedMediaPlaylist::default();
    let mut pending_duration: Option<Duration> = None;
    let mut pending_discontinuity = false;
    let mut pending_time: Option<Timestamp> = None;
    let mut map_uri: Option<String> = None;
    let mut discontinuity_count = 0u64;
    for (line, content) in lines {
        if content.is_empty() {
            continue;
        }
        if let Some(value) = content.strip_prefix("#EXT-X-TARGETDURATION:") {
            playlist.target_duration_s =
                Some(value.parse().map_err(|_| ParseError::Malformed { line, tag: "EXT-X-TARGETDURATION" })?);
        } else if let Some(value) = content.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            if !playlist.segments.is_empty() {
                return Err(ParseError::AfterFirstSegment { line, tag: "EXT-X-MEDIA-SEQUENCE" });
            }
            playlist.media_sequence =
                value.parse().map_err(|_| ParseError::Malformed { line, tag: "EXT-X-MEDIA-SEQUENCE" })?;
        } else if let Some(value) = content.strip_prefix("#EXT-X-DISCONTINUITY-SEQUENCE:") {
            if !playlist.segments.is_empty() {
                return Err(ParseError::AfterFirstSegment { line, tag: "EXT-X-DISCONTINUITY-SEQUENCE" });
            }
            playlist.discontinuity_sequence =
                value.parse().map_err(|_| ParseError::Malformed { line, tag: "EXT-X-DISCONTINUITY-SEQUENCE" })?;
        } else if content == "#EXT-X-DISCONTINUITY" {
            pending_discontinuity = true;
        } else if content == "#EXT-X-ENDLIST" {
            playlist.ended = true;
        } else if let Some(value) = content.strip_prefix("#EXT-X-MAP:") {
            map_uri = Some(quoted_attribute(value, "URI").ok_or(ParseError::Malformed { line, tag: "EXT-X-MAP" })?);
        } else if let Some(value) = content.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            pending_time =
                Some(value.parse().map_err(|_| ParseError::Malformed { line, tag: "EXT-X-PROGRAM-DATE-TIME" })?);
        } else if let Some(value) = content.strip_prefix("#EXTINF:") {
            let seconds = value.split(',').next().unwrap_or_default();
            pending_duration = Some(parse_seconds(seconds).ok_or(ParseError::Malformed { line, tag: "EXTINF" })?);
        } else if content.starts_with('#') {
            continue;
        } else {
            let duration = pending_duration.take().ok_or(ParseError::UriWithoutDuration(line))?;
            if playlist.segments.len() >= MAX_PARSED_SEGMENTS {
                return Err(ParseError::TooManySegments);
            }
            if pending_discontinuity {
                discontinuity_count += 1;
            }
            let out_of_range = ParseError::SequenceOutOfRange(line);
            let sequence = playlist.media_sequence.checked_add(playlist.segments.len() as u64).ok_or(out_of_range)?;
            let out_of_range = ParseError::SequenceOutOfRange(line);
            let discontinuity_number =
                playlist.discontinuity_sequence.checked_add(discontinuity_count).ok_or(out_of_range)?;
            playlist.segments.push(ParsedSegment {
                sequence,
                uri: content.to_owned(),
                duration,
                discontinuity: pending_discontinuity,
                discontinuity_number,
                program_date_time: pending_time.take(),
                map_uri: map_uri.clone(),
            });
            pending_discontinuity = false;
        }
    }
    Ok(playlist)
}

/// Parses a non-negative decimal number of seconds into a duration, to the microsecond.
pub fn parse_seconds(text: &str) -> Option<Duration> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty()
        || !whole.bytes().all(|byte| byte.is_ascii_digit())
        || !fraction.bytes().all(|byte| byte.is_ascii_digit())
    {
        return None;
    }
    let seconds: u64 = whole.parse().ok()?;
    let mut micros = 0u32;
    for (index, digit) in fraction.bytes().take(6).enumerate() {
        micros += u32::from(digit - b'0') * 10u32.pow(5 - index as u32);
    }
    Some(Duration::from_secs(seconds) + Duration::from_micros(u64::from(micros)))
}

/// The value of `NAME="value"` in an attribute list.
fn quoted_attribute(list: &str, name: &str) -> Option<String> {
    let start = list.find(&format!("{name}=\""))? + name.len() + 2;
    let rest = list.get(start..)?;
    let end = rest.find('"')?;
    Some(rest.get(..end)?.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_segments_discontinuities_and_maps() {
        let text = "#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:10
#EXT-X-DISCONTINUITY-SEQUENCE:1
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI=\"init-1.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2024-05-01T12:00:00.000Z
#EXTINF:2.000000,
10.m4s
#EXT-X-DISCONTINUITY
#EXT-X-MAP:URI=\"init-2.mp4\"
#EXTINF:1.96,
11.m4s
#EXT-X-ENDLIST
";
        let playlist = parse_media_playlist(text).unwrap();
        assert_eq!(playlist.target_duration_s, Some(2));
        assert!(playlist.ended);
        assert_eq!(playlist.segments.len(), 2);
        let second = &playlist.segments[1];
        assert_eq!(second.sequence, 11);
        assert_eq!(second.duration, Duration::from_millis(1960));
        assert_eq!((second.discontinuity, second.discontinuity_number), (true, 2));
        assert_eq!(second.map_uri.as_deref(), Some("init-2.mp4"));
        assert_eq!(second.program_date_time, None);
        assert_eq!(playlist.segments[0].program_date_time.unwrap().as_millisecond(), 1_714_564_800_000);
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert_eq!(parse_media_playlist("hello"), Err(ParseError::NotM3u8));
        // Found by the fuzz target: a sequence set again after a segment, numbers past
        // 64 bits.
        assert_eq!(
            parse_media_playlist("#EXTM3U\n#EXTINF:1,\n5.ts\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:1,\n0.ts\n"),
            Err(ParseError::AfterFirstSegment { line: 4, tag: "EXT-X-MEDIA-SEQUENCE" })
        );
        assert_eq!(
            parse_media_playlist(
                "#EXTM3U\n#EXT-X-DISCONTINUITY-SEQUENCE:18446744073709551615\n#EXT-X-DISCONTINUITY\n#EXTINF:1,\n0.ts\n"
            ),
            Err(ParseError::SequenceOutOfRange(5))
        );
        assert_eq!(
            parse_media_playlist(
                "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:18446744073709551615\n#EXTINF:1,\na.ts\n#EXTINF:1,\nb.ts\n"
            ),
            Err(ParseError::SequenceOutOfRange(6))
        );
        assert_eq!(parse_media_playlist("#EXTM3U\n1.ts\n"), Err(ParseError::UriWithoutDuration(2)));
        assert_eq!(
            parse_media_playlist("#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:-1\n"),
            Err(ParseError::Malformed { line: 2, tag: "EXT-X-MEDIA-SEQUENCE" })
        );
        assert_eq!(
            parse_media_playlist("#EXTM3U\n#EXTINF:abc,\n"),
            Err(ParseError::Malformed { line: 2, tag: "EXTINF" })
        );
    }

    #[test]
    fn parses_seconds_exactly() {
        assert_eq!(parse_seconds("2.040000"), Some(Duration::from_micros(2_040_000)));
        assert_eq!(parse_seconds("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_seconds("1.2345678"), Some(Duration::from_micros(1_234_567)));
        assert_eq!(parse_seconds("-1"), None);
        assert_eq!(parse_seconds(".5"), None);
    }
}
