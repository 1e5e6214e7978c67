//! What the worker learns of a publish before it starts ffmpeg: the codec configuration
//! (AVC, HEVC or AV1 sequence headers, legacy or Enhanced RTMP, and AAC), the metadata,
//! and the source's size and frame rate, from the SPS first and `onMetaData` second; or
//! that the source has no video: its metadata names audio only, or audio has flowed for
//! [`AUDIO_ONLY_AFTER_MS`] without a video message. Sans IO: messages are fed in order.

use bytes::Bytes;

use crate::media::amf0::{self, Amf0Value};
use crate::media::av1::Av1Config;
use crate::media::flv::{FlvTag, FlvTagKind};
use crate::media::h264::AvcDecoderConfig;
use crate::media::hevc::HevcDecoderConfig;
use crate::media::video_tag::{VideoCodec, VideoPacket, VideoPacketKind};

/// Most messages held while waiting to learn what the source is (about 10 s of audio);
/// past it the publish is refused as carrying no usable media.
pub const MAX_HELD_MESSAGES: usize = 2_000;
/// Audio time without any video message, when the metadata does not say, after which the
/// source counts as audio only: encoders send their first video frame with the first
/// audio, so three seconds are plenty, and they delay the start of such a stream only.
pub const AUDIO_ONLY_AFTER_MS: u32 = 3_000;

/// Facts of the source.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SourceInfo {
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub frame_rate: Option<f64>,
    pub has_audio: bool,
    pub has_video: bool,
    /// The video codec (H.264 when the source never said).
    pub video_codec: VideoCodec,
    /// The video came with Enhanced RTMP headers (FourCC codecs, multitrack).
    pub video_enhanced: bool,
}

/// Collects the start of a publish until the first video keyframe.
#[derive(Debug, Default)]
pub struct SourceProbe {
    pub metadata: Option<Bytes>,
    pub video_config: Option<Bytes>,
    pub audio_config: Option<Bytes>,
    /// Everything received so far, in order, to hand to the transcoder.
    pub held: Vec<FlvTag>,
    keyframe_seen: bool,
    audio_seen: bool,
    video_seen: bool,
    /// Timestamps of the first and the last audio message.
    audio_span: Option<(u32, u32)>,
    codec: Option<VideoCodec>,
    enhanced: bool,
}

/// What feeding a message did.
#[derive(Debug, PartialEq, Eq)]
pub enum ProbeStatus {
    /// Keep feeding.
    NeedMore,
    /// The first keyframe arrived, or the source turned out to be audio only: the
    /// transcoder can start.
    Ready,
    /// Neither a video keyframe nor audio within [`MAX_HELD_MESSAGES`].
    NoMedia,
    /// The video is of a codec the worker cannot decode (named).
    UnsupportedVideo(String),
}

/// Whether ffmpeg is given this codec (see `transcode::gate`).
fn supported(codec: VideoCodec) -> bool {
    matches!(codec, VideoCodec::Avc | VideoCodec::Hevc | VideoCodec::Av1)
}

impl SourceProbe {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one message (not End). Everything is held, in order, until the video
    /// configuration (or a keyframe) shows what the source is; the transcoder's input
    /// gate drops what cannot be decoded before the first keyframe.
    pub fn feed(&mut self, tag: FlvTag) -> ProbeStatus {
        match tag.kind {
            FlvTagKind::Script => self.metadata = Some(tag.data.clone()),
            FlvTagKind::Video if tag.is_sequence_header() => self.video_config = Some(tag.data.clone()),
            FlvTagKind::Video if tag.is_video_keyframe() => self.keyframe_seen = true,
            FlvTagKind::Audio => {
                self.audio_seen = true;
                if tag.is_sequence_header() {
                    self.audio_config = Some(tag.data.clone());
                } else {
                    let (first, _) = self.audio_span.unwrap_or((tag.timestamp_ms, tag.timestamp_ms));
                    self.audio_span = Some((first, tag.timestamp_ms));
                }
            }
            FlvTagKind::Video => {}
        }
        self.video_seen |= tag.kind == FlvTagKind::Video;
        let codec = (tag.kind == FlvTagKind::Video)
            .then(|| VideoPacket::parse(&tag.data).ok())
            .flatten()
            .filter(|packet| packet.kind != VideoPacketKind::Other || !packet.enhanced)
            .map(|packet| (packet.codec, packet.enhanced));
        self.held.push(tag);
        if let Some((codec, enhanced)) = codec {
            if !supported(codec) {
                return ProbeStatus::UnsupportedVideo(codec.name());
            }
            self.codec = Some(codec);
            self.enhanced = enhanced;
        }
        if self.video_config.is_some() || self.keyframe_seen || self.audio_only() {
            ProbeStatus::Ready
        } else if self.held.len() >= MAX_HELD_MESSAGES {
            ProbeStatus::NoMedia
        } else {
            ProbeStatus::NeedMore
        }
    }

    /// The source has AAC audio and no video: its metadata announces no video, or audio
    /// has flowed for [`AUDIO_ONLY_AFTER_MS`] without a video message.
    fn audio_only(&self) -> bool {
        if self.video_seen || self.audio_config.is_none() {
            return false;
        }
        let metadata_without_video =
            self.metadata.as_ref().and_then(|m| amf0::decode_all(m).ok()).is_some_and(|values| {
                let object = values.iter().find(|v| matches!(v, Amf0Value::Object(_) | Amf0Value::EcmaArray(_)));
                object.is_some_and(|object| {
                    ["videocodecid", "width", "height", "videodatarate", "framerate"]
                        .iter()
                        .all(|key| object.property(key).is_none())
                })
            });
        let long_enough =
            self.audio_span.is_some_and(|(first, last)| last.saturating_sub(first) >= AUDIO_ONLY_AFTER_MS);
        metadata_without_video || long_enough
    }

    /// The source's facts, from what was collected.
    pub fn info(&self) -> SourceInfo {
        // Audio counts as present unless metadata says otherwise: the first audio
        // message may come just after the video configuration that ends the probe.
        let mut info = SourceInfo {
            has_audio: self.audio_seen || self.audio_config.is_some() || self.metadata.is_none(),
            has_video: self.video_seen,
            video_codec: self.codec.unwrap_or_default(),
            video_enhanced: self.enhanced,
            ..Default::default()
        };
        let config = self.video_config.as_ref().and_then(|body| VideoPacket::parse(body).ok());
        let size = config.and_then(|packet| match packet.codec {
            VideoCodec::Avc => AvcDecoderConfig::parse(packet.payload)
                .ok()
                .and_then(|config| config.sps_info().ok())
                .map(|sps| (sps.width, sps.height)),
            VideoCodec::Hevc => HevcDecoderConfig::parse(packet.payload).ok().and_then(|c| c.picture_size().ok()),
            VideoCodec::Av1 => Av1Config::parse(packet.payload).ok().and_then(|c| c.picture_size().ok()),
            _ => None,
        });
        if let Some((width, height)) = size {
            info.width = Some(width);
            info.height = Some(height);
        }
        if let Some(metadata) = self.metadata.as_ref().and_then(|m| amf0::decode_all(m).ok()) {
            let object = metadata.iter().find(|v| v.property("width").is_some() || v.property("framerate").is_some());
            if let Some(object) = object {
                let number = |key: &str| {
                    object.property(key).and_then(Amf0Value::as_number).filter(|n| n.is_finite() && *n > 0.0)
                };
                if info.width.is_none() {
                    info.width = number("width").map(|w| w as u32);
                }
                if info.height.is_none() {
                    info.height = number("height").map(|h| h as u32);
                }
                info.frame_rate = number("framerate").or_else(|| number("videoframerate"));
                if object.property("audiocodecid").is_some() || object.property("audiodatarate").is_some() {
                    info.has_audio = true;
                }
            }
        }
        info
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    fn metadata(width: f64, height: f64, fps: f64, audio: bool) -> Bytes {
        let mut out = BytesMut::new();
        let mut fields = vec![
            ("width", Amf0Value::Number(width)),
            ("height", Amf0Value::Number(height)),
            ("framerate", Amf0Value::Number(fps)),
        ];
        if audio {
            fields.push(("audiocodecid", Amf0Value::Number(10.0)));
        }
        amf0::encode_all(&[Amf0Value::string("onMetaData"), Amf0Value::object(fields)], &mut out);
        out.freeze()
    }

    fn video(keyframe: bool, sequence_header: bool) -> FlvTag {
        let frame_type = if keyframe { 0x17 } else { 0x27 };
        let packet_type = if sequence_header { 0 } else { 1 };
        FlvTag::new(FlvTagKind::Video, 0, Bytes::from(vec![frame_type, packet_type, 0, 0, 0, 1, 2, 3]))
    }

    #[test]
    fn ready_at_the_video_configuration_with_everything_held_in_order() {
        let mut probe = SourceProbe::new();
        assert_eq!(
            probe.feed(FlvTag::new(FlvTagKind::Script, 0, metadata(1280.0, 720.0, 30.0, true))),
            ProbeStatus::NeedMore
        );
        assert_eq!(probe.feed(video(false, false)), ProbeStatus::NeedMore, "an inter frame before any configuration");
        assert_eq!(probe.feed(video(true, true)), ProbeStatus::Ready, "the sequence header shows the source");
        assert_eq!(probe.held.len(), 3);
        let info = probe.info();
        assert_eq!((info.width, info.height, info.frame_rate), (Some(1280), Some(720), Some(30.0)));
        assert!(info.has_audio);
    }

    #[test]
    fn audio_is_absent_only_when_the_metadata_says_so() {
        let mut silent = SourceProbe::new();
        silent.feed(FlvTag::new(FlvTagKind::Script, 0, metadata(640.0, 360.0, 30.0, false)));
        silent.feed(video(true, true));
        assert!(!silent.info().has_audio, "metadata without audio fields, and no audio");
        let mut unknown = SourceProbe::new();
        unknown.feed(video(true, true));
        assert!(unknown.info().has_audio, "no metadata: audio may still come");
    }

    #[test]
    fn enhanced_rtmp_codecs_are_recognised_and_others_refused() {
        use crate::media::video_tag::enhanced_body;
        let mut hevc = SourceProbe::new();
        let start = enhanced_body(b"hvc1", true, 0, 0, &[1, 1, 0x60]);
        assert_eq!(hevc.feed(FlvTag::new(FlvTagKind::Video, 0, Bytes::from(start))), ProbeStatus::Ready);
        assert_eq!(hevc.info().video_codec, VideoCodec::Hevc);
        let mut av1 = SourceProbe::new();
        av1.feed(FlvTag::new(
            FlvTagKind::Video,
            0,
            Bytes::from(enhanced_body(b"av01", true, 0, 0, &[0x81, 0, 0x0c, 0])),
        ));
        assert_eq!(av1.info().video_codec, VideoCodec::Av1);
        let mut vp9 = SourceProbe::new();
        let status = vp9.feed(FlvTag::new(FlvTagKind::Video, 0, Bytes::from(enhanced_body(b"vp09", true, 0, 0, &[1]))));
        assert_eq!(status, ProbeStatus::UnsupportedVideo("vp09".into()));
        let mut sorenson = SourceProbe::new();
        let status = sorenson.feed(FlvTag::new(FlvTagKind::Video, 0, Bytes::from_static(&[0x12, 0, 0])));
        assert_eq!(status, ProbeStatus::UnsupportedVideo("FLV codec id 2".into()));
        assert_eq!(SourceProbe::new().info().video_codec, VideoCodec::Avc, "H.264 unless said otherwise");
    }

    fn audio(timestamp_ms: u32, config: bool) -> FlvTag {
        let body: &'static [u8] = if config { &[0xaf, 0, 0x11, 0x90] } else { &[0xaf, 1, 0x21] };
        FlvTag::new(FlvTagKind::Audio, timestamp_ms, Bytes::from_static(body))
    }

    #[test]
    fn gives_up_without_media() {
        let mut probe = SourceProbe::new();
        let mut status = ProbeStatus::NeedMore;
        for _ in 0..=MAX_HELD_MESSAGES {
            // MP3, not AAC: no configuration, never audio only.
            status = probe.feed(FlvTag::new(FlvTagKind::Audio, 0, Bytes::from_static(&[0x2f, 0xff])));
            if status != ProbeStatus::NeedMore {
                break;
            }
        }
        assert_eq!(status, ProbeStatus::NoMedia);
    }

    #[test]
    fn audio_only_when_the_metadata_says_so_or_after_seconds_of_audio() {
        let mut announced = SourceProbe::new();
        let mut out = BytesMut::new();
        let fields = [("audiocodecid", Amf0Value::Number(10.0)), ("audiosamplerate", Amf0Value::Number(48000.0))];
        amf0::encode_all(
            &[Amf0Value::string("onMetaData"), Amf0Value::EcmaArray(fields.map(|(k, v)| (k.into(), v)).to_vec())],
            &mut out,
        );
        assert_eq!(announced.feed(FlvTag::new(FlvTagKind::Script, 0, out.freeze())), ProbeStatus::NeedMore);
        assert_eq!(announced.feed(audio(0, true)), ProbeStatus::Ready, "at the AAC configuration");
        let info = announced.info();
        assert!(info.has_audio && !info.has_video);

        let mut unannounced = SourceProbe::new();
        assert_eq!(unannounced.feed(audio(0, true)), ProbeStatus::NeedMore);
        let mut at = 0;
        while unannounced.feed(audio(at, false)) == ProbeStatus::NeedMore {
            at += 21;
            assert!(at <= AUDIO_ONLY_AFTER_MS + 21, "still waiting at {at} ms");
        }
        assert!(at >= AUDIO_ONLY_AFTER_MS && !unannounced.info().has_video);

        let mut late_video = SourceProbe::new();
        late_video.feed(audio(0, true));
        late_video.feed(video(false, false));
        assert_eq!(late_video.feed(audio(AUDIO_ONLY_AFTER_MS + 100, false)), ProbeStatus::NeedMore, "video is coming");
        let with_video = SourceProbe::new().info();
        assert!(!with_video.has_video, "nothing seen yet");
    }
}
