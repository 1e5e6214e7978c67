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
    /// Media flows to the current run, which started at this input timestamp.
    flowing_since: Option<u32>,
    dropped: u64,
}

impl InputGate {
    /// A gate writing `format`, with nothing cached.
    pub fn new(format: InputFormat) -> Self {
        Self { format, ..Self::default() }
    }

    /// Starts a run: returns what to write first (the FLV file header; nothing for
    /// Matroska, whose header needs the configuration records).
    pub fn start_run(&mut self) -> Bytes {
        self.flowing_since = None;
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
        if is_header {
            // Sent with the first keyframe, from the cache.
            return Ok(Vec::new());
        }
        let starts = starts_decoding(tag) || (self.video_header.is_none() && tag.kind == FlvTagKind::Audio);
        if !starts {
            self.dropped += 1;
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
}
