//! Rendering of the HLS master playlist (RFC 8216 section 4.3.4.2).

use std::fmt::Write as _;

/// One variant stream of the master playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// URI of its media playlist relative to the master, e.g. `720p/index.m3u8`.
    pub uri: String,
    /// `BANDWIDTH`: peak bit rate in bit/s.
    pub bandwidth_bps: u64,
    /// `AVERAGE-BANDWIDTH` in bit/s.
    pub average_bandwidth_bps: u64,
    /// `CODECS`, e.g. `avc1.64001f,mp4a.40.2`; left out when unknown.
    pub codecs: Option<String>,
    /// `RESOLUTION` as width and height.
    pub resolution: Option<(u32, u32)>,
    /// `FRAME-RATE`.
    pub frame_rate: Option<f64>,
}

/// Renders the master playlist, variants highest bandwidth first.
pub fn render_master_playlist(variants: &[Variant]) -> String {
    let mut sorted: Vec<&Variant> = variants.iter().collect();
    sorted.sort_by_key(|variant| std::cmp::Reverse(variant.bandwidth_bps));
    let mut out = String::from("#EXTM3U\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    for variant in sorted {
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={}",
            variant.bandwidth_bps, variant.average_bandwidth_bps
        );
        if let Some(codecs) = &variant.codecs {
            let _ = write!(out, ",CODECS=\"{codecs}\"");
        }
        if let Some((width, height)) = variant.resolution {
            let _ = write!(out, ",RESOLUTION={width}x{height}");
        }
        if let Some(rate) = variant.frame_rate.filter(|rate| rate.is_finite() && *rate > 0.0) {
            let _ = write!(out, ",FRAME-RATE={rate:.3}");
        }
        let _ = writeln!(out, "\n{}", variant.uri);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_variants_highest_first() {
        let variants = [
            Variant {
                uri: "360p/index.m3u8".into(),
                bandwidth_bps: 1_328_000,
                average_bandwidth_bps: 928_000,
                codecs: Some("avc1.64001e,mp4a.40.2".into()),
                resolution: Some((640, 360)),
                frame_rate: Some(30.0),
            },
            Variant {
                uri: "720p/index.m3u8".into(),
                bandwidth_bps: 4_628_000,
                average_bandwidth_bps: 3_128_000,
                codecs: Some("avc1.64001f,mp4a.40.2".into()),
                resolution: Some((1280, 720)),
                frame_rate: Some(29.97),
            },
        ];
        let expected = "#EXTM3U
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-STREAM-INF:BANDWIDTH=4628000,AVERAGE-BANDWIDTH=3128000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,FRAME-RATE=29.970
720p/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=1328000,AVERAGE-BANDWIDTH=928000,CODECS=\"avc1.64001e,mp4a.40.2\",RESOLUTION=640x360,FRAME-RATE=30.000
360p/index.m3u8
";
        assert_eq!(render_master_playlist(&variants), expected);
    }

    #[test]
    fn leaves_out_unknown_attributes() {
        let variant = Variant {
            uri: "source/index.m3u8".into(),
            bandwidth_bps: 1,
            average_bandwidth_bps: 1,
            codecs: None,
            resolution: None,
            frame_rate: Some(f64::NAN),
        };
        assert_eq!(
            render_master_playlist(&[variant]),
            "#EXTM3U\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-STREAM-INF:BANDWIDTH=1,AVERAGE-BANDWIDTH=1\nsource/index.m3u8\n"
        );
    }
}
