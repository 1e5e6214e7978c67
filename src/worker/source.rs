//! What the worker learns of a publish before it starts ffmpeg: the codec configuration
//! (AVC and AAC sequence headers), the metadata, and the source's size and frame rate,
//! from the SPS first and `onMetaData` second. Sans IO: messages are fed in order.

use bytes::Bytes;

use crate::media::amf0::{self, Amf0Value};
use crate::media::flv::{FlvTag, FlvTagKind};
use crate::media::h264::AvcDecoderConfig;

/// Most messages held while waiting for the video configuration (about 10 s of audio);
/// past it the publish is refused as having no usable video.
pub const MAX_HELD_MESSAGES: usize = 2_000;

/// Facts of the source.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SourceInfo {
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub frame_rate: Option<f64>,
    pub has_audio: bool,
    pub has_video: bool,
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
}

/// What feeding a message did.
#[derive(Debug, PartialEq, Eq)]
pub enum ProbeStatus {
    /// Keep feeding.
    NeedMore,
    /// The first keyframe arrived: the transcoder can start.
    Ready,
    /// No keyframe within [`MAX_HELD_MESSAGES`].
    NoVideo,
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
                }
            }
            FlvTagKind::Video => {}
        }
        self.held.push(tag);
        if self.video_config.is_some() || self.keyframe_seen {
            ProbeStatus::Ready
        } else if self.held.len() >= MAX_HELD_MESSAGES {
            ProbeStatus::NoVideo
        } else {
            ProbeStatus::NeedMore
        }
    }

    /// The source's facts, from what was collected.
    pub fn info(&self) -> SourceInfo {
        // Audio counts as present unless metadata says otherwise: the first audio
        // message may come just after the video configuration that ends the probe.
        let mut info = SourceInfo {
            has_audio: self.audio_seen || self.audio_config.is_some() || self.metadata.is_none(),
            has_video: true,
            ..Default::default()
        };
        if let Some(sps) = self
            .video_config
            .as_ref()
            .and_then(|body| body.get(5..))
            .and_then(|record| AvcDecoderConfig::parse(record).ok())
            .and_then(|config| config.sps_info().ok())
        {
            info.width = Some(sps.width);
            info.height = Some(sps.height);
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
    fn gives_up_without_video() {
        let mut probe = SourceProbe::new();
        let mut status = ProbeStatus::NeedMore;
        for _ in 0..=MAX_HELD_MESSAGES {
            status = probe.feed(FlvTag::new(FlvTagKind::Audio, 0, Bytes::from_static(&[0xaf, 1, 0])));
            if status != ProbeStatus::NeedMore {
                break;
            }
        }
        assert_eq!(status, ProbeStatus::NoVideo);
    }
}
