//! What kind of object a key holds, and the HTTP headers each kind is served with.
//!
//! Cache lifetimes, and why:
//! - Live playlists (master and media): `max-age=1`. A player reloads a live media
//!   playlist about once per target duration, and the smallest target duration this
//!   project produces is 2 s. A cache lifetime of at most half the target duration keeps
//!   every reload one that can see the newest segment, while a CDN still collapses the
//!   requests of all viewers of an edge into at most one origin fetch per second. One
//!   second is the smallest non-zero lifetime `max-age` can express. The master playlist
//!   gets the same lifetime: it is rewritten when the ladder changes across a restart, and
//!   a stale one would name renditions that no longer exist.
//! - Ended playlists (with `EXT-X-ENDLIST`): `max-age=30`. A player fetches such a
//!   playlist once per viewing and never reloads it, so its origin load is small either
//!   way; 30 s absorbs a burst of viewers at an edge, and is still short enough that when
//!   the same stream goes live again, new viewers see the live playlist within half a
//!   minute.
//! - The poster (`poster.jpg`, the latest picture of the stream, rewritten every few
//!   seconds): `max-age=2`, so a page that shows it sees a picture a few seconds old.
//! - Segments, parts and init segments: `max-age=31536000, immutable`. A name is never reused for
//!   different bytes, so caches may keep them for a year without revalidating.

/// Container format of a media segment: the packager's, so that names and headers agree.
pub use crate::package::SegmentFormat;

/// The kind of an HLS object in storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    /// The multivariant playlist that lists the renditions.
    MasterPlaylist,
    /// A live media playlist: rewritten every segment.
    MediaPlaylist,
    /// A media playlist that has ended (`EXT-X-ENDLIST`): no longer changes while the
    /// stream stays ended.
    VodPlaylist,
    /// An fMP4 initialisation segment (`EXT-X-MAP`).
    InitSegment,
    /// A media segment.
    Segment(SegmentFormat),
    /// A part of an fMP4 media segment (LL-HLS).
    Part,
    /// The stream's poster: a JPEG of its latest picture, rewritten as the stream goes on.
    Poster,
}

impl ObjectKind {
    /// The `Content-Type` the object is stored and served with.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::MasterPlaylist | Self::MediaPlaylist | Self::VodPlaylist => "application/vnd.apple.mpegurl",
            Self::InitSegment => "video/mp4",
            Self::Segment(SegmentFormat::Fmp4) | Self::Part => "video/iso.segment",
            Self::Segment(SegmentFormat::Ts) => "video/mp2t",
            Self::Poster => "image/jpeg",
        }
    }

    /// The `Cache-Control` the object is stored and served with (see the module
    /// documentation for the reasons behind each value).
    pub fn cache_control(self) -> &'static str {
        match self {
            Self::MasterPlaylist | Self::MediaPlaylist => "max-age=1",
            Self::VodPlaylist => "max-age=30",
            Self::InitSegment | Self::Segment(_) | Self::Part => "max-age=31536000, immutable",
            Self::Poster => "max-age=2",
        }
    }

    /// Whether the object may be rewritten under the same key.
    pub fn is_playlist(self) -> bool {
        matches!(self, Self::MasterPlaylist | Self::MediaPlaylist | Self::VodPlaylist)
    }

    /// A short stable name for metrics labels and logs.
    pub fn label(self) -> &'static str {
        match self {
            Self::MasterPlaylist => "master_playlist",
            Self::MediaPlaylist => "media_playlist",
            Self::VodPlaylist => "vod_playlist",
            Self::InitSegment => "init_segment",
            Self::Segment(SegmentFormat::Fmp4) => "segment_fmp4",
            Self::Segment(SegmentFormat::Ts) => "segment_ts",
            Self::Part => "part",
            Self::Poster => "poster",
        }
    }

    /// The kind of object a key names, judged by its extension, for serving objects that
    /// were written earlier. A key cannot tell a master, live or ended playlist apart, so
    /// every playlist is reported as a live [`ObjectKind::MediaPlaylist`]: all playlists
    /// share one content type, and the shortest cache lifetime is the safe one.
    pub fn from_key(key: &str) -> Option<Self> {
        let (_, extension) = key.rsplit_once('.')?;
        match extension {
            "m3u8" => Some(Self::MediaPlaylist),
            "mp4" => Some(Self::InitSegment),
            "m4s" => Some(Self::Segment(SegmentFormat::Fmp4)),
            "ts" => Some(Self::Segment(SegmentFormat::Ts)),
            "jpg" => Some(Self::Poster),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [ObjectKind; 8] = [
        ObjectKind::MasterPlaylist,
        ObjectKind::MediaPlaylist,
        ObjectKind::VodPlaylist,
        ObjectKind::InitSegment,
        ObjectKind::Segment(SegmentFormat::Fmp4),
        ObjectKind::Segment(SegmentFormat::Ts),
        ObjectKind::Part,
        ObjectKind::Poster,
    ];

    #[test]
    fn content_types_follow_the_hls_and_cmaf_registrations() {
        let types: Vec<_> = ALL.iter().map(|k| k.content_type()).collect();
        assert_eq!(
            types,
            [
                "application/vnd.apple.mpegurl",
                "application/vnd.apple.mpegurl",
                "application/vnd.apple.mpegurl",
                "video/mp4",
                "video/iso.segment",
                "video/mp2t",
                "video/iso.segment",
                "image/jpeg"
            ]
        );
    }

    #[test]
    fn playlists_are_short_lived_and_segments_immutable() {
        let values: Vec<_> = ALL.iter().map(|k| k.cache_control()).collect();
        assert_eq!(
            values,
            [
                "max-age=1",
                "max-age=1",
                "max-age=30",
                "max-age=31536000, immutable",
                "max-age=31536000, immutable",
                "max-age=31536000, immutable",
                "max-age=31536000, immutable",
                "max-age=2"
            ]
        );
        assert!(ALL.iter().all(|k| k.is_playlist() == k.content_type().ends_with("mpegurl")));
    }

    #[test]
    fn labels_are_distinct() {
        let mut labels: Vec<_> = ALL.iter().map(|k| k.label()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), ALL.len());
    }

    #[test]
    fn kinds_are_recognised_by_extension() {
        assert_eq!(ObjectKind::from_key("live/demo/master.m3u8"), Some(ObjectKind::MediaPlaylist));
        assert_eq!(ObjectKind::from_key("live/demo/720p/init.mp4"), Some(ObjectKind::InitSegment));
        assert_eq!(
            ObjectKind::from_key("live/demo/720p/seg_00012.m4s"),
            Some(ObjectKind::Segment(SegmentFormat::Fmp4))
        );
        assert_eq!(ObjectKind::from_key("a/seg1.ts"), Some(ObjectKind::Segment(SegmentFormat::Ts)));
        assert_eq!(ObjectKind::from_key("live/demo/poster.jpg"), Some(ObjectKind::Poster));
        assert_eq!(ObjectKind::from_key("a/index.html"), None);
        assert_eq!(ObjectKind::from_key("m3u8"), None);
        assert_eq!(ObjectKind::from_key("a/playlist.M3U8"), None);
    }
}
