//! Object names of a stream's HLS output, relative to the stream's storage prefix.
//!
//! Layout: the master playlist at the root, one folder per rendition holding its media
//! playlist, its segments named by global sequence number and its init segments named by
//! discontinuity number (an init can change after a restart, and objects are immutable).
//!
//! ```text
//! master.m3u8                master playlist (live)
//! vod.m3u8                   master playlist of the recording
//! {rendition}/index.m3u8     media playlist (live window)
//! {rendition}/vod.m3u8       media playlist of the recording
//! {rendition}/{seq}.m4s      fMP4 segment (or {seq}.ts)
//! {rendition}/{seq}.{p}.m4s  part p of segment seq (LL-HLS)
//! {rendition}/init-{d}.mp4   fMP4 init segment of discontinuity number d
//! ```

/// Segment container, which decides segment extensions and whether init segments exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SegmentFormat {
    /// Fragmented MP4 (CMAF) segments with an init segment.
    Fmp4,
    /// MPEG-TS segments.
    Ts,
}

impl SegmentFormat {
    /// File extension of media segments, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            SegmentFormat::Fmp4 => "m4s",
            SegmentFormat::Ts => "ts",
        }
    }
}

/// Name of the live master playlist.
pub const MASTER_PLAYLIST: &str = "master.m3u8";
/// Name of the recording's master playlist.
pub const RECORDING_MASTER_PLAYLIST: &str = "vod.m3u8";
/// File name of a rendition's live media playlist inside its folder.
pub const MEDIA_PLAYLIST_FILE: &str = "index.m3u8";
/// File name of a rendition's recording playlist inside its folder.
pub const RECORDING_PLAYLIST_FILE: &str = "vod.m3u8";

/// Key of a rendition's live media playlist, e.g. `720p/index.m3u8`.
pub fn media_playlist_key(rendition: &str) -> String {
    format!("{rendition}/{MEDIA_PLAYLIST_FILE}")
}

/// Key of a rendition's recording playlist, e.g. `720p/vod.m3u8`.
pub fn recording_playlist_key(rendition: &str) -> String {
    format!("{rendition}/{RECORDING_PLAYLIST_FILE}")
}

/// File name of a media segment (its URI inside the media playlist), e.g. `42.m4s`.
pub fn segment_file_name(sequence: u64, format: SegmentFormat) -> String {
    format!("{sequence}.{}", format.extension())
}

/// Key of a media segment, e.g. `720p/42.m4s`.
pub fn segment_key(rendition: &str, sequence: u64, format: SegmentFormat) -> String {
    format!("{rendition}/{}", segment_file_name(sequence, format))
}

/// File name of a part (its URI inside the media playlist), e.g. `42.3.m4s`.
pub fn part_file_name(sequence: u64, index: u32) -> String {
    format!("{sequence}.{index}.m4s")
}

/// Key of a part, e.g. `720p/42.3.m4s`.
pub fn part_key(rendition: &str, sequence: u64, index: u32) -> String {
    format!("{rendition}/{}", part_file_name(sequence, index))
}

/// File name of an init segment (its URI inside the media playlist), e.g. `init-3.mp4`.
pub fn init_file_name(discontinuity: u64) -> String {
    format!("init-{discontinuity}.mp4")
}

/// Key of an init segment, e.g. `720p/init-3.mp4`.
pub fn init_key(rendition: &str, discontinuity: u64) -> String {
    format!("{rendition}/{}", init_file_name(discontinuity))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_layout() {
        assert_eq!(media_playlist_key("720p"), "720p/index.m3u8");
        assert_eq!(recording_playlist_key("720p"), "720p/vod.m3u8");
        assert_eq!(segment_key("720p", 42, SegmentFormat::Fmp4), "720p/42.m4s");
        assert_eq!(segment_key("source", 7, SegmentFormat::Ts), "source/7.ts");
        assert_eq!(init_key("360p", 3), "360p/init-3.mp4");
        assert_eq!(part_key("720p", 42, 3), "720p/42.3.m4s");
    }
}
