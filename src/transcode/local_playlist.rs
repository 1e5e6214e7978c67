//! ffmpeg's local per-rendition playlists, read to discover completed segments.
//!
//! The HLS muxer lists a segment only once it is complete (with `temp_file`) and rewrites
//! the playlist atomically, so every segment listed is ready to upload. The list is short
//! (it scrolls), so [`SegmentCursor`] remembers what was already seen and reports segments
//! that scrolled off before they could be seen.

use std::time::Duration;

use thiserror::Error;

/// Longest segment duration accepted from a local playlist.
const MAX_SEGMENT_SECONDS: f64 = 3600.0;

/// Errors from parsing a local playlist.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum LocalPlaylistError {
    /// The text does not start with `#EXTM3U` (e.g. an empty file).
    #[error("not an M3U8 playlist")]
    NotM3u8,
    /// A malformed tag.
    #[error("malformed {0}")]
    Malformed(&'static str),
}

/// One completed segment listed by ffmpeg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSegment {
    /// ffmpeg's sequence number of the segment within the run.
    pub sequence: u64,
    /// File name inside the rendition folder.
    pub file_name: String,
    /// Duration from `EXTINF`.
    pub duration: Duration,
}

/// A parsed local playlist.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LocalPlaylist {
    /// `EXT-X-MEDIA-SEQUENCE`.
    pub media_sequence: u64,
    /// File name of the init segment (`EXT-X-MAP`), for fMP4.
    pub init_file_name: Option<String>,
    /// Segments listed.
    pub segments: Vec<LocalSegment>,
    /// `EXT-X-ENDLIST` is present: ffmpeg finished the run cleanly.
    pub ended: bool,
}

/// Parses a local playlist written by ffmpeg.
pub fn parse_local_playlist(text: &str) -> Result<LocalPlaylist, LocalPlaylistError> {
    let mut lines = text.lines().map(str::trim).filter(|line| !line.is_empty());
    if lines.next() != Some("#EXTM3U") {
        return Err(LocalPlaylistError::NotM3u8);
    }
    let mut playlist = LocalPlaylist::default();
    let mut pending: Option<Duration> = None;
    for line in lines {
        if let Some(value) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            playlist.media_sequence =
                value.parse().map_err(|_| LocalPlaylistError::Malformed("EXT-X-MEDIA-SEQUENCE"))?;
        } else if let Some(value) = line.strip_prefix("#EXT-X-MAP:") {
            let uri = value.split_once("URI=\"").and_then(|(_, rest)| rest.split_once('"')).map(|(uri, _)| uri);
            playlist.init_file_name = Some(uri.ok_or(LocalPlaylistError::Malformed("EXT-X-MAP"))?.to_owned());
        } else if let Some(value) = line.strip_prefix("#EXTINF:") {
            let seconds: f64 = value
                .split(',')
                .next()
                .unwrap_or_default()
                .trim()
                .parse()
                .map_err(|_| LocalPlaylistError::Malformed("EXTINF"))?;
            if !(0.0..=MAX_SEGMENT_SECONDS).contains(&seconds) {
                return Err(LocalPlaylistError::Malformed("EXTINF"));
            }
            pending = Some(Duration::from_secs_f64(seconds));
        } else if line == "#EXT-X-ENDLIST" {
            playlist.ended = true;
        } else if !line.starts_with('#') {
            let duration = pending.take().ok_or(LocalPlaylistError::Malformed("segment without EXTINF"))?;
            let sequence = playlist.media_sequence + playlist.segments.len() as u64;
            playlist.segments.push(LocalSegment { sequence, file_name: line.to_owned(), duration });
        }
    }
    Ok(playlist)
}

/// Remembers which segments of one rendition's local playlist were already reported.
#[derive(Debug, Clone, Default)]
pub struct SegmentCursor {
    next_sequence: u64,
}

/// Segments not seen before, and how many scrolled off unseen just before them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewSegments {
    /// Segments that left the local playlist before they were seen.
    pub missed: u64,
    /// New segments, oldest first.
    pub segments: Vec<LocalSegment>,
}

impl SegmentCursor {
    /// A cursor at the start of a run (ffmpeg numbers a run's segments from 0).
    pub fn new() -> Self {
        Self::default()
    }

    /// The segments of `playlist` not reported yet.
    pub fn advance(&mut self, playlist: &LocalPlaylist) -> NewSegments {
        let fresh: Vec<LocalSegment> =
            playlist.segments.iter().filter(|segment| segment.sequence >= self.next_sequence).cloned().collect();
        let Some(first) = fresh.first() else { return NewSegments::default() };
        let missed = first.sequence - self.next_sequence;
        self.next_sequence = fresh.last().map_or(self.next_sequence, |last| last.sequence + 1);
        NewSegments { missed, segments: fresh }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FFMPEG_PLAYLIST: &str = "#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:1
#EXT-X-MEDIA-SEQUENCE:3
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI=\"init_0.mp4\"
#EXTINF:1.000000,
seg_3.m4s
#EXTINF:0.040000,
seg_4.m4s
#EXT-X-ENDLIST
";

    #[test]
    fn parses_ffmpeg_playlist() {
        let playlist = parse_local_playlist(FFMPEG_PLAYLIST).unwrap();
        assert_eq!(playlist.media_sequence, 3);
        assert_eq!(playlist.init_file_name.as_deref(), Some("init_0.mp4"));
        assert!(playlist.ended);
        assert_eq!(
            playlist.segments,
            vec![
                LocalSegment { sequence: 3, file_name: "seg_3.m4s".into(), duration: Duration::from_secs(1) },
                LocalSegment { sequence: 4, file_name: "seg_4.m4s".into(), duration: Duration::from_millis(40) },
            ]
        );
    }

    #[test]
    fn cursor_reports_new_segments_once_and_gaps() {
        let mut cursor = SegmentCursor::new();
        let playlist = parse_local_playlist(FFMPEG_PLAYLIST).unwrap();
        let first = cursor.advance(&playlist);
        assert_eq!(first.missed, 3, "segments 0 to 2 scrolled off unseen");
        assert_eq!(first.segments.len(), 2);
        assert_eq!(cursor.advance(&playlist), NewSegments::default());
        let mut later = playlist.clone();
        later.segments.push(LocalSegment {
            sequence: 5,
            file_name: "seg_5.m4s".into(),
            duration: Duration::from_secs(1),
        });
        let next = cursor.advance(&later);
        assert_eq!((next.missed, next.segments.len()), (0, 1));
        assert_eq!(next.segments[0].file_name, "seg_5.m4s");
    }

    #[test]
    fn malformed_playlists_are_errors() {
        assert_eq!(parse_local_playlist(""), Err(LocalPlaylistError::NotM3u8));
        assert_eq!(
            parse_local_playlist("#EXTM3U\nseg_0.ts\n"),
            Err(LocalPlaylistError::Malformed("segment without EXTINF"))
        );
        assert_eq!(parse_local_playlist("#EXTM3U\n#EXTINF:-1,\n"), Err(LocalPlaylistError::Malformed("EXTINF")));
        assert_eq!(parse_local_playlist("#EXTM3U\n#EXTINF:NaN,\n"), Err(LocalPlaylistError::Malformed("EXTINF")));
    }
}
