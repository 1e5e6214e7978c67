//! What reaches ffmpeg's stdin, run by run (sans IO).
//!
//! Every run of ffmpeg gets a complete stream, FLV for H.264 sources and Matroska for
//! the Enhanced RTMP codecs (HEVC, AV1) that the FLV demuxer of Debian's ffmpeg 5.1 does
//! not know:
//! - FLV: the file header, then, at the first video keyframe, the cached `onMetaData` and
//!   AVC/AAC sequence headers (restamped to the keyframe's time) followed by the keyframe
//!   and everything after it.
//! - Matroska: at the first video keyframe, the header with the cached configuration
//!   records as the tracks' CodecPrivate, then a block per coded frame (presentation
//!   time: the tag's time plus its composition offset) and per AAC frame. Audio other
//!   than AAC, metadata and mid-stream configuration changes are not carried.
//!
//! Tags before that keyframe are dropped, so a restarted ffmpeg starts decoding cleanly.
//! Without any video sequence header (audio only) media flows at once.
//!
//! A Matroska header cannot add a track later, and encoders may send the AAC
//! configuration just after the first keyframe: when the source has audio and its
//! configuration has not come yet, the keyframe and what follows it are held until it
//! comes, for at most [`AUDIO_CONFIG_WAIT_MS`] of input, and the run starts without
//! audio after that.

use bytes::Bytes;

use crate::media::flv::{AacPacket, FILE_HEADER, FlvError, FlvTag, FlvTagKind, aac_packet};
use crate::media::matroska::{AUDIO_TRACK, AudioTrack, MatroskaWriter, VIDEO_TRACK, VideoTrack};
use crate::media::video_tag::{VideoCodec, VideoPacket, VideoPacketKind};

use super::plan::SourceFormat;

/// The container ffmpeg reads on stdin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InputFormat {
    /// FLV, tags as received: H.264 with the legacy header, and audio-only sources.
    #[default]
    Flv,
    /// Matroska: HEVC, AV1, and H.264 sent with the Enhanced RTMP header (a FourCC, or
    /// one track of a multitrack packet), none of which the FLV demuxer of ffmpeg 5.1 reads.
    Matroska,
}

impl InputFormat {
    /// The container for `source`.
    pub fn for_source(source: &SourceFormat) -> Self {
        match source.codec {
            VideoCodec::Avc if !source.enhanced => InputFormat::Flv,
            _ => InputFormat::Matroska,
        }
    }

    /// ffmpeg's name of the demuxer (`-f`).
    pub fn demuxer(self) -> &'static str {
        match self {
            InputFormat::Flv => "flv",
            InputFormat::Matroska => "matroska",
        }
    }
}

/// How long, in input time, a Matroska run waits after its keyframe for the AAC
/// configuration of a source that has audio.
pub const AUDIO_CONFIG_WAIT_MS: u32 = 1_000;

/// Tags held at most while waiting for the AAC configuration (a bound on memory whatever
/// the timestamps say).
const MAX_HELD_TAGS: usize = 512;

/// Matroska's codec id for a video codec ffmpeg is given in Matroska.
fn matroska_codec_id(codec: VideoCodec) -> Option<&'static str> {
    match codec {
        VideoCodec::Hevc => Some("V_MPEGH/ISO/HEVC"),
        VideoCodec::Av1 => Some("V_AV1"),
        VideoCodec::Avc => Some("V_MPEG4/ISO/AVC"),
        _ => None,
    }
}

/// A coded video keyframe, where decoding can start.
fn starts_decoding(tag: &FlvTag) -> bool {
    tag.kind == FlvTagKind::Video
        && VideoPacket::parse(&tag.data).is_ok_and(|p| p.keyframe && p.kind == VideoPacketKind::CodedFrames)
}

/// Caches stream headers and gates media for the current run.
#[derive(Debug, Default)]
pub struct InputGate {
    format: InputFormat,
    matroska: MatroskaWriter,
    metadata: Option<FlvTag>,
    video_header: Option<FlvTag>,
    audio_header: Option<FlvTag>,
    /// The source has audio (Matroska runs wait a little for its configuration).
    expect_audio: bool,
    /// A Matroska run's keyframe and what followed it, held until the AAC configuration.
    held: Vec<FlvTag>,
    /// The current run's Matroska header has an audio track.
    audio_track: bool,
    /// Media flows to the current run, which started at this input timestamp.
    flowing_since: Option<u32>,
    dropped: u64,
}

impl InputGate {
    /// A gate writing `format`, with nothing cached.
    pub fn new(format: InputFormat) -> Self {
        Self { format, ..Self::default() }
    }

    /// The same gate for a source that has audio (`true`) or not.
    pub fn expecting_audio(self, expect_audio: bool) -> Self {
        Self { expect_audio, ..self }
    }

    /// Starts a run: returns what to write first (the FLV file header; nothing for
    /// Matroska, whose header needs the configuration records).
    pub fn start_run(&mut self) -> Bytes {
        self.flowing_since = None;
        self.held.clear();
        match self.format {
            InputFormat::Flv => Bytes::from_static(&FILE_HEADER),
            InputFormat::Matroska => Bytes::new(),
        }
    }

    /// Takes one input tag, returning the bytes to write to the current run (possibly
    /// none, or the cached headers before a keyframe).
    pub fn accept(&mut self, tag: &FlvTag) -> Result<Vec<Bytes>, FlvError> {
        let is_header = self.observe(tag);
        if self.flowing_since.is_some() {
            return match self.format {
                InputFormat::Flv => Ok(vec![tag.encode()?]),
                InputFormat::Matroska => Ok(self.matroska_block(tag).into_iter().collect()),
            };
        }
        if !self.held.is_empty() {
            return Ok(self.hold_for_audio_config(tag, is_header));
        }
        if is_header {
            // Sent with the first keyframe, from the cache.
            return Ok(Vec::new());
        }
        let starts = starts_decoding(tag) || (self.video_header.is_none() && tag.kind == FlvTagKind::Audio);
        if !starts {
            self.dropped += 1;
            return Ok(Vec::new());
        }
        if self.format == InputFormat::Matroska && self.expect_audio && self.audio_header.is_none() {
            self.held.push(tag.clone());
            return Ok(Vec::new());
        }
        self.flowing_since = Some(tag.timestamp_ms);
        let mut out = Vec::with_capacity(4);
        match self.format {
            InputFormat::Flv => {
                for header in [&self.metadata, &self.video_header, &self.audio_header].into_iter().flatten() {
                    out.push(header.with_timestamp(tag.timestamp_ms).encode()?);
                }
                out.push(tag.encode()?);
            }
            InputFormat::Matroska => {
                out.push(self.matroska_header());
                out.extend(self.matroska_block(tag));
            }
        }
        Ok(out)
    }

    /// Holds `tag` after a Matroska run's keyframe until the AAC configuration comes or
    /// the wait is over; then starts the run with everything held.
    fn hold_for_audio_config(&mut self, tag: &FlvTag, is_header: bool) -> Vec<Bytes> {
        if !is_header {
            self.held.push(tag.clone());
        }
        let first = self.held.first().map_or(tag.timestamp_ms, |held| held.timestamp_ms);
        let waited = tag.timestamp_ms.saturating_sub(first);
        if self.audio_header.is_none() && waited < AUDIO_CONFIG_WAIT_MS && self.held.len() < MAX_HELD_TAGS {
            return Vec::new();
        }
        self.flowing_since = Some(first);
        let held = std::mem::take(&mut self.held);
        let mut out = Vec::with_capacity(held.len() + 1);
        out.push(self.matroska_header());
        out.extend(held.iter().filter_map(|tag| self.matroska_block(tag)));
        out
    }

    /// The Matroska header from the cached configuration records.
    fn matroska_header(&mut self) -> Bytes {
        let video = self.video_header.as_ref().and_then(|tag| VideoPacket::parse(&tag.data).ok()).and_then(|packet| {
            let codec_id = matroska_codec_id(packet.codec)?;
            Some(VideoTrack { codec_id, codec_private: packet.payload, size: None })
        });
        let audio = self.audio_header.as_ref().and_then(|tag| match aac_packet(&tag.data) {
            Some(AacPacket::Config(config)) => Some(AudioTrack { audio_specific_config: config }),
            _ => None,
        });
        self.audio_track = audio.is_some();
        Bytes::from(self.matroska.header(video.as_ref(), audio.as_ref()))
    }

    /// The Matroska block of a coded frame or an AAC frame; nothing for other tags.
    fn matroska_block(&mut self, tag: &FlvTag) -> Option<Bytes> {
        let timestamp = i64::from(tag.timestamp_ms);
        let block = match tag.kind {
            FlvTagKind::Video => {
                let packet = VideoPacket::parse(&tag.data).ok().filter(|p| p.kind == VideoPacketKind::CodedFrames)?;
                let time = timestamp + i64::from(packet.composition_time_ms);
                self.matroska.block(VIDEO_TRACK, time, packet.keyframe, packet.payload)
            }
            FlvTagKind::Audio if !self.audio_track => return None,
            FlvTagKind::Audio => match aac_packet(&tag.data)? {
                AacPacket::Frame(frame) => self.matroska.block(AUDIO_TRACK, timestamp, true, frame),
                AacPacket::Config(_) => return None,
            },
            FlvTagKind::Script => return None,
        };
        Some(Bytes::from(block))
    }

    /// Updates the cache from a tag without writing anything (while no ffmpeg runs);
    /// returns whether the tag is a header.
    pub fn observe(&mut self, tag: &FlvTag) -> bool {
        if tag.kind == FlvTagKind::Script {
            self.metadata = Some(tag.clone());
            return true;
        }
        if !tag.is_sequence_header() {
            return false;
        }
        match tag.kind {
            FlvTagKind::Video => self.video_header = Some(tag.clone()),
            _ => self.audio_header = Some(tag.clone()),
        }
        true
    }

    /// The input timestamp at which media started flowing to the current run: the output
    /// of the run starts at this instant of the input.
    pub fn run_start(&self) -> Option<u32> {
        self.flowing_since
    }

    /// Media tags dropped while waiting for a keyframe, over all runs.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(kind: FlvTagKind, timestamp_ms: u32, data: &'static [u8]) -> FlvTag {
        FlvTag { kind, timestamp_ms, data: Bytes::from_static(data) }
    }

    #[test]
    fn first_run_waits_for_keyframe_and_sends_headers() {
        let mut gate = InputGate::new(InputFormat::Flv);
        assert_eq!(&gate.start_run()[..3], b"FLV");
        let meta = tag(FlvTagKind::Script, 0, b"\x02\x00\x0aonMetaData");
        let avc = tag(FlvTagKind::Video, 0, &[0x17, 0, 0, 0, 0, 1]);
        let aac = tag(FlvTagKind::Audio, 0, &[0xaf, 0, 0x11, 0x90]);
        for header in [&meta, &avc, &aac] {
            assert!(gate.accept(header).unwrap().is_empty());
        }
        assert!(gate.accept(&tag(FlvTagKind::Audio, 10, &[0xaf, 1, 1])).unwrap().is_empty());
        assert!(gate.accept(&tag(FlvTagKind::Video, 20, &[0x27, 1, 0, 0, 0])).unwrap().is_empty());
        let keyframe = tag(FlvTagKind::Video, 40, &[0x17, 1, 0, 0, 0]);
        let out = gate.accept(&keyframe).unwrap();
        let expected: Vec<Bytes> = [meta, avc, aac]
            .iter()
            .map(|header| header.with_timestamp(40).encode().unwrap())
            .chain([keyframe.encode().unwrap()])
            .collect();
        assert_eq!(out, expected);
        assert_eq!(gate.run_start(), Some(40));
        let audio = tag(FlvTagKind::Audio, 45, &[0xaf, 1, 2]);
        assert_eq!(gate.accept(&audio).unwrap(), vec![audio.encode().unwrap()]);
        assert_eq!(gate.dropped(), 2);
    }

    #[test]
    fn restart_resends_cached_headers() {
        let mut gate = InputGate::new(InputFormat::Flv);
        gate.start_run();
        let avc = tag(FlvTagKind::Video, 0, &[0x17, 0, 0, 0, 0, 1]);
        gate.accept(&avc).unwrap();
        gate.accept(&tag(FlvTagKind::Video, 0, &[0x17, 1, 0, 0, 0])).unwrap();
        gate.start_run();
        assert!(gate.observe(&tag(FlvTagKind::Audio, 900, &[0xaf, 0, 0x12, 0x10])));
        assert!(gate.accept(&tag(FlvTagKind::Video, 1000, &[0x27, 1, 0, 0, 0])).unwrap().is_empty());
        let out = gate.accept(&tag(FlvTagKind::Video, 2000, &[0x17, 1, 0, 0, 0])).unwrap();
        assert_eq!(out.len(), 3, "video header, new audio header, keyframe");
        assert_eq!(out[0], avc.with_timestamp(2000).encode().unwrap());
    }

    #[test]
    fn audio_only_flows_at_once() {
        let mut gate = InputGate::new(InputFormat::Flv);
        gate.start_run();
        let out = gate.accept(&tag(FlvTagKind::Audio, 0, &[0xaf, 1, 1])).unwrap();
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn enhanced_sources_are_given_as_matroska() {
        let source = |codec, enhanced| SourceFormat { codec, enhanced, frame_rate: None };
        assert_eq!(InputFormat::for_source(&source(VideoCodec::Avc, false)), InputFormat::Flv);
        assert_eq!(InputFormat::for_source(&source(VideoCodec::Avc, true)), InputFormat::Matroska);
        assert_eq!(InputFormat::for_source(&source(VideoCodec::Hevc, false)), InputFormat::Matroska, "legacy id 12");
        assert_eq!(InputFormat::for_source(&source(VideoCodec::Av1, true)), InputFormat::Matroska);
    }

    #[test]
    fn matroska_runs_start_at_a_keyframe_with_the_cached_records() {
        use crate::media::video_tag::enhanced_body;
        let mut gate = InputGate::new(InputFormat::Matroska);
        assert!(gate.start_run().is_empty(), "the header waits for the records");
        let start = FlvTag::new(FlvTagKind::Video, 0, Bytes::from(enhanced_body(b"hvc1", true, 0, 0, &[1, 0xAA])));
        assert!(gate.accept(&start).unwrap().is_empty());
        assert!(gate.accept(&tag(FlvTagKind::Audio, 0, &[0xaf, 0, 0x11, 0x90])).unwrap().is_empty());
        let inter = FlvTag::new(FlvTagKind::Video, 40, Bytes::from(enhanced_body(b"hvc1", false, 1, 0, &[7])));
        assert!(gate.accept(&inter).unwrap().is_empty(), "no decoding starts before a keyframe");
        let key = FlvTag::new(FlvTagKind::Video, 80, Bytes::from(enhanced_body(b"hvc1", true, 1, 40, &[9, 9])));
        let out = gate.accept(&key).unwrap();
        assert_eq!(out.len(), 2, "header and block");
        let contains = |data: &[u8], needle: &[u8]| data.windows(needle.len()).any(|w| w == needle);
        assert!(contains(&out[0], b"V_MPEGH/ISO/HEVC") && contains(&out[0], &[0x63, 0xA2, 0x82, 1, 0xAA]));
        assert!(contains(&out[0], b"A_AAC") && contains(&out[0], &[0x63, 0xA2, 0x82, 0x11, 0x90]));
        assert_eq!(out[1][12..15], [0xE7, 0x81, 120], "a cluster at its presentation time, 120 ms");
        assert_eq!(out[1][15..], [0xA3, 0x86, 0x81, 0, 0, 0x80, 9, 9]);
        let audio = gate.accept(&tag(FlvTagKind::Audio, 90, &[0xaf, 1, 5])).unwrap();
        assert_eq!(
            audio,
            vec![Bytes::from_static(&[0xA3, 0x85, 0x82, 0xFF, 0xE2, 0x80, 5])],
            "30 ms before the cluster"
        );
        let metadata = tag(FlvTagKind::Script, 100, b"\x02\x00\x0aonMetaData");
        assert!(gate.accept(&metadata).unwrap().is_empty(), "metadata is not carried");
    }

    #[test]
    fn a_matroska_run_waits_for_a_late_aac_configuration() {
        use crate::media::video_tag::enhanced_body;
        let mut gate = InputGate::new(InputFormat::Matroska).expecting_audio(true);
        gate.start_run();
        let start = FlvTag::new(FlvTagKind::Video, 0, Bytes::from(enhanced_body(b"hvc1", true, 0, 0, &[1, 0xAA])));
        assert!(gate.accept(&start).unwrap().is_empty());
        let key = FlvTag::new(FlvTagKind::Video, 0, Bytes::from(enhanced_body(b"hvc1", true, 1, 0, &[9])));
        assert!(gate.accept(&key).unwrap().is_empty(), "held for the audio configuration");
        let inter = FlvTag::new(FlvTagKind::Video, 33, Bytes::from(enhanced_body(b"hvc1", false, 1, 0, &[7])));
        assert!(gate.accept(&inter).unwrap().is_empty());
        assert!(
            gate.accept(&tag(FlvTagKind::Audio, 20, &[0xaf, 1, 4])).unwrap().is_empty(),
            "a frame before its configuration"
        );
        let out = gate.accept(&tag(FlvTagKind::Audio, 40, &[0xaf, 0, 0x11, 0x90])).unwrap();
        let contains = |data: &[u8], needle: &[u8]| data.windows(needle.len()).any(|w| w == needle);
        assert!(contains(&out[0], b"A_AAC"), "the header has the audio track");
        assert_eq!(out.len(), 4, "header, the keyframe, the inter frame and the early audio frame");
        assert_eq!(gate.run_start(), Some(0), "the run starts at the keyframe");
        assert_eq!(gate.accept(&tag(FlvTagKind::Audio, 60, &[0xaf, 1, 5])).unwrap().len(), 1);
    }

    #[test]
    fn a_matroska_run_starts_without_audio_when_its_configuration_never_comes() {
        use crate::media::video_tag::enhanced_body;
        let mut gate = InputGate::new(InputFormat::Matroska).expecting_audio(true);
        gate.start_run();
        let start = FlvTag::new(FlvTagKind::Video, 0, Bytes::from(enhanced_body(b"av01", true, 0, 0, &[0x81, 0])));
        gate.accept(&start).unwrap();
        for time in (0..AUDIO_CONFIG_WAIT_MS).step_by(100) {
            let frame =
                FlvTag::new(FlvTagKind::Video, time, Bytes::from(enhanced_body(b"av01", time == 0, 1, 0, &[3])));
            assert!(gate.accept(&frame).unwrap().is_empty(), "held at {time} ms");
        }
        let last = FlvTag::new(
            FlvTagKind::Video,
            AUDIO_CONFIG_WAIT_MS,
            Bytes::from(enhanced_body(b"av01", false, 1, 0, &[3])),
        );
        let out = gate.accept(&last).unwrap();
        assert_eq!(out.len(), 12, "header and every frame held");
        assert!(!out[0].windows(5).any(|w| w == b"A_AAC"), "no audio track");
        assert!(
            gate.accept(&tag(FlvTagKind::Audio, 1_100, &[0xaf, 1, 5])).unwrap().is_empty(),
            "no audio block without its track"
        );
        // A source without audio starts at once.
        let mut silent = InputGate::new(InputFormat::Matroska).expecting_audio(false);
        silent.start_run();
        silent.accept(&start).unwrap();
        let key = FlvTag::new(FlvTagKind::Video, 0, Bytes::from(enhanced_body(b"av01", true, 1, 0, &[3])));
        assert_eq!(silent.accept(&key).unwrap().len(), 2);
    }
}
