//! A live Matroska stream, written sans IO: how HEVC and AV1 from Enhanced RTMP reach
//! ffmpeg, whose FLV demuxer (before 6.1) knows no FourCC codecs.
//!
//! Matroska carries what Enhanced RTMP sends without conversion: the decoder
//! configuration record (`hvcC`, `av1C`, the AAC AudioSpecificConfig) becomes the
//! track's CodecPrivate, a coded frame in its ISO BMFF sample form becomes a SimpleBlock,
//! and the timestamps stay in milliseconds (the default TimestampScale). The Segment and
//! its Clusters have unknown sizes, as in any live Matroska stream; a Cluster starts at
//! each video keyframe, and before a block's time would leave the 16-bit range of its
//! Cluster. Blocks carry presentation times (decode time plus composition offset).

/// Track number of the video track.
pub const VIDEO_TRACK: u8 = 1;
/// Track number of the audio track.
pub const AUDIO_TRACK: u8 = 2;

const EBML: u32 = 0x1A45_DFA3;
const EBML_VERSION: u32 = 0x4286;
const EBML_READ_VERSION: u32 = 0x42F7;
const EBML_MAX_ID_LENGTH: u32 = 0x42F2;
const EBML_MAX_SIZE_LENGTH: u32 = 0x42F3;
const DOC_TYPE: u32 = 0x4282;
const DOC_TYPE_VERSION: u32 = 0x4287;
const DOC_TYPE_READ_VERSION: u32 = 0x4285;
const SEGMENT: u32 = 0x1853_8067;
const INFO: u32 = 0x1549_A966;
const TIMESTAMP_SCALE: u32 = 0x2A_D7B1;
const MUXING_APP: u32 = 0x4D80;
const WRITING_APP: u32 = 0x5741;
const TRACKS: u32 = 0x1654_AE6B;
const TRACK_ENTRY: u32 = 0xAE;
const TRACK_NUMBER: u32 = 0xD7;
const TRACK_UID: u32 = 0x73C5;
const TRACK_TYPE: u32 = 0x83;
const FLAG_LACING: u32 = 0x9C;
const CODEC_ID: u32 = 0x86;
const CODEC_PRIVATE: u32 = 0x63A2;
const VIDEO: u32 = 0xE0;
const PIXEL_WIDTH: u32 = 0xB0;
const PIXEL_HEIGHT: u32 = 0xBA;
const AUDIO: u32 = 0xE1;
const SAMPLING_FREQUENCY: u32 = 0xB5;
const CHANNELS: u32 = 0x9F;
const CLUSTER: u32 = 0x1F43_B675;
const CLUSTER_TIMESTAMP: u32 = 0xE7;
const SIMPLE_BLOCK: u32 = 0xA3;

/// The size of a Segment or Cluster whose end is not known (a live stream).
const UNKNOWN_SIZE: [u8; 8] = [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
/// Matroska's track type codes.
const TRACK_TYPE_VIDEO: u64 = 1;
const TRACK_TYPE_AUDIO: u64 = 2;
const SIMPLE_BLOCK_KEYFRAME: u8 = 0x80;

/// The video track: a Matroska codec id (`V_MPEGH/ISO/HEVC`, `V_AV1`, `V_MPEG4/ISO/AVC`)
/// and its configuration record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoTrack<'a> {
    pub codec_id: &'static str,
    pub codec_private: &'a [u8],
    /// The picture size, when known (decoders learn it from the stream anyway).
    pub size: Option<(u32, u32)>,
}

/// The audio track: AAC with its AudioSpecificConfig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioTrack<'a> {
    pub audio_specific_config: &'a [u8],
}

/// Writes one live Matroska stream: [`MatroskaWriter::header`] once, then blocks.
#[derive(Debug, Default)]
pub struct MatroskaWriter {
    cluster_start_ms: Option<i64>,
}

impl MatroskaWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// The EBML header, the start of the Segment, its Info and its Tracks.
    pub fn header(&mut self, video: Option<&VideoTrack<'_>>, audio: Option<&AudioTrack<'_>>) -> Vec<u8> {
        self.cluster_start_ms = None;
        let mut out = Vec::with_capacity(256);
        let mut ebml = Vec::new();
        uint(&mut ebml, EBML_VERSION, 1);
        uint(&mut ebml, EBML_READ_VERSION, 1);
        uint(&mut ebml, EBML_MAX_ID_LENGTH, 4);
        uint(&mut ebml, EBML_MAX_SIZE_LENGTH, 8);
        element(&mut ebml, DOC_TYPE, b"matroska");
        uint(&mut ebml, DOC_TYPE_VERSION, 4);
        uint(&mut ebml, DOC_TYPE_READ_VERSION, 2);
        element(&mut out, EBML, &ebml);

        id(&mut out, SEGMENT);
        out.extend_from_slice(&UNKNOWN_SIZE);
        let mut info = Vec::new();
        uint(&mut info, TIMESTAMP_SCALE, 1_000_000);
        element(&mut info, MUXING_APP, b"livestream");
        element(&mut info, WRITING_APP, b"livestream");
        element(&mut out, INFO, &info);

        let mut tracks = Vec::new();
        if let Some(video) = video {
            let mut entry = track_entry(VIDEO_TRACK, TRACK_TYPE_VIDEO, video.codec_id, video.codec_private);
            if let Some((width, height)) = video.size {
                let mut settings = Vec::new();
                uint(&mut settings, PIXEL_WIDTH, u64::from(width));
                uint(&mut settings, PIXEL_HEIGHT, u64::from(height));
                element(&mut entry, VIDEO, &settings);
            }
            element(&mut tracks, TRACK_ENTRY, &entry);
        }
        if let Some(audio) = audio {
            let config = audio.audio_specific_config;
            let mut entry = track_entry(AUDIO_TRACK, TRACK_TYPE_AUDIO, "A_AAC", config);
            if let Some((rate, channels)) = aac_rate_and_channels(config) {
                let mut settings = Vec::new();
                element(&mut settings, SAMPLING_FREQUENCY, &f64::from(rate).to_be_bytes());
                uint(&mut settings, CHANNELS, u64::from(channels));
                element(&mut entry, AUDIO, &settings);
            }
            element(&mut tracks, TRACK_ENTRY, &entry);
        }
        element(&mut out, TRACKS, &tracks);
        out
    }

    /// One frame of `track` at `timestamp_ms` (presentation time), preceded by a new
    /// Cluster when one is due.
    pub fn block(&mut self, track: u8, timestamp_ms: i64, keyframe: bool, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() + 24);
        let relative = self.cluster_start_ms.map(|start| timestamp_ms - start);
        let relative = match relative {
            Some(relative) if !(keyframe && track == VIDEO_TRACK) => i16::try_from(relative).ok(),
            _ => None,
        };
        let relative = relative.unwrap_or_else(|| {
            let start = timestamp_ms.max(0);
            let mut cluster = Vec::new();
            uint(&mut cluster, CLUSTER_TIMESTAMP, start as u64);
            id(&mut out, CLUSTER);
            out.extend_from_slice(&UNKNOWN_SIZE);
            out.extend_from_slice(&cluster);
            self.cluster_start_ms = Some(start);
            // A negative time (a composition offset before zero) is clamped into range.
            i16::try_from(timestamp_ms - start).unwrap_or(0)
        });
        id(&mut out, SIMPLE_BLOCK);
        size(&mut out, data.len() as u64 + 4);
        out.push(0x80 | track);
        out.extend_from_slice(&relative.to_be_bytes());
        out.push(if keyframe { SIMPLE_BLOCK_KEYFRAME } else { 0 });
        out.extend_from_slice(data);
        out
    }
}

fn track_entry(number: u8, kind: u64, codec_id: &str, codec_private: &[u8]) -> Vec<u8> {
    let mut entry = Vec::new();
    uint(&mut entry, TRACK_NUMBER, u64::from(number));
    uint(&mut entry, TRACK_UID, u64::from(number));
    uint(&mut entry, TRACK_TYPE, kind);
    uint(&mut entry, FLAG_LACING, 0);
    element(&mut entry, CODEC_ID, codec_id.as_bytes());
    if !codec_private.is_empty() {
        element(&mut entry, CODEC_PRIVATE, codec_private);
    }
    entry
}

/// The sample rate and channel count of an AAC AudioSpecificConfig.
fn aac_rate_and_channels(config: &[u8]) -> Option<(u32, u8)> {
    const RATES: [u32; 13] = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];
    let bits = u32::from_be_bytes([
        *config.first()?,
        *config.get(1)?,
        config.get(2).copied().unwrap_or(0),
        config.get(3).copied().unwrap_or(0),
    ]);
    let (skip, index) = match bits >> 27 {
        31 => (11, (bits >> 17) & 0x0F),
        _ => (5, (bits >> 23) & 0x0F),
    };
    let rate = *RATES.get(index as usize)?;
    let channels = ((bits << (skip + 4)) >> 28) as u8;
    Some((rate, channels))
}

fn id(out: &mut Vec<u8>, id: u32) {
    let bytes = id.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    out.extend_from_slice(&bytes[skip..]);
}

/// An EBML variable-size integer of the fewest bytes.
fn size(out: &mut Vec<u8>, value: u64) {
    let length = (1..=8).find(|length| value < (1u64 << (7 * length)) - 1).unwrap_or(8);
    let marked = value | (1u64 << (7 * length));
    out.extend_from_slice(&marked.to_be_bytes()[8 - length as usize..]);
}

fn element(out: &mut Vec<u8>, element_id: u32, body: &[u8]) {
    id(out, element_id);
    size(out, body.len() as u64);
    out.extend_from_slice(body);
}

fn uint(out: &mut Vec<u8>, element_id: u32, value: u64) {
    let bytes = value.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(7);
    element(out, element_id, &bytes[skip..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_minimal_variable_integers() {
        let encoded = |value| {
            let mut out = Vec::new();
            size(&mut out, value);
            out
        };
        assert_eq!(encoded(0), [0x80]);
        assert_eq!(encoded(126), [0xFE]);
        assert_eq!(encoded(127), [0x40, 0x7F], "all ones in one byte would mean unknown");
        assert_eq!(encoded(300), [0x41, 0x2C]);
    }

    #[test]
    fn header_holds_both_tracks_with_their_configurations() {
        let mut writer = MatroskaWriter::new();
        let video = VideoTrack { codec_id: "V_MPEGH/ISO/HEVC", codec_private: &[1, 2, 3], size: Some((320, 180)) };
        let audio = AudioTrack { audio_specific_config: &[0x11, 0x90] };
        let header = writer.header(Some(&video), Some(&audio));
        assert_eq!(header[..4], [0x1A, 0x45, 0xDF, 0xA3]);
        let find = |needle: &[u8]| header.windows(needle.len()).any(|w| w == needle);
        assert!(find(b"\x86\x90V_MPEGH/ISO/HEVC"), "video codec id");
        assert!(find(&[0x63, 0xA2, 0x83, 1, 2, 3]), "CodecPrivate");
        assert!(find(&[0xB0, 0x82, 0x01, 0x40, 0xBA, 0x81, 180]), "picture size");
        assert!(find(b"\x86\x85A_AAC"), "audio codec id");
        assert!(find(&[0xB5, 0x88, 0x40, 0xE7, 0x70, 0, 0, 0, 0, 0]), "48 kHz as a float");
        assert!(find(&[0x9F, 0x81, 2]), "stereo");
    }

    #[test]
    fn clusters_start_at_keyframes_and_when_time_leaves_their_range() {
        let mut writer = MatroskaWriter::new();
        let first = writer.block(VIDEO_TRACK, 1000, true, &[9]);
        assert_eq!(first[..4], [0x1F, 0x43, 0xB6, 0x75], "a cluster first");
        assert_eq!(first[12..16], [0xE7, 0x82, 0x03, 0xE8], "at 1000 ms");
        assert_eq!(first[16..], [0xA3, 0x85, 0x81, 0, 0, 0x80, 9], "the keyframe at offset 0");
        let audio = writer.block(AUDIO_TRACK, 1021, true, &[7, 7]);
        assert_eq!(audio, [0xA3, 0x86, 0x82, 0, 21, 0x80, 7, 7], "in the same cluster");
        let b_frame = writer.block(VIDEO_TRACK, 990, false, &[1]);
        assert_eq!(b_frame, [0xA3, 0x85, 0x81, 0xFF, 0xF6, 0, 1], "a presentation time before the cluster's");
        let late = writer.block(AUDIO_TRACK, 1000 + 40_000, true, &[7]);
        assert_eq!(late[..4], [0x1F, 0x43, 0xB6, 0x75], "40 s later: a new cluster");
        assert_eq!(writer.block(VIDEO_TRACK, 41_040, true, &[9])[..4], [0x1F, 0x43, 0xB6, 0x75]);
    }

    #[test]
    fn aac_configurations_give_rate_and_channels() {
        assert_eq!(aac_rate_and_channels(&[0x11, 0x90]), Some((48000, 2)));
        assert_eq!(aac_rate_and_channels(&[0x12, 0x08]), Some((44100, 1)));
        assert_eq!(aac_rate_and_channels(&[0x17]), None);
        assert_eq!(aac_rate_and_channels(&[0x17, 0x88]), None, "an explicit frequency is left to the decoder");
    }
}
