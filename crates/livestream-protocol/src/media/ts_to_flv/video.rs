//! What differs between the video codecs that MPEG-TS carries to us: which NAL units are
//! parameter sets, which start a keyframe, the configuration record built from them, and
//! the FLV video tag around each (legacy for H.264, Enhanced RTMP `hvc1` for HEVC, as OBS
//! and ffmpeg 6.1 send HEVC over RTMP).

use super::TsToFlvError;
use crate::media::video_tag::enhanced_body;
use crate::media::{h264, hevc};

const FLV_AVC_KEYFRAME: u8 = 0x17;
const FLV_AVC_INTER: u8 = 0x27;
const FLV_AVC_SEQUENCE_HEADER: u8 = 0;
const FLV_AVC_NALU: u8 = 1;
const HEVC_FOURCC: &[u8; 4] = b"hvc1";
const ENHANCED_SEQUENCE_START: u8 = 0;
const ENHANCED_CODED_FRAMES: u8 = 1;
/// `nal_unit_type` of H.264 filler data, which carries nothing for a decoder.
const H264_FILLER_DATA: u8 = 12;

/// The video codec of the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum VideoFormat {
    H264,
    Hevc,
}

/// What a NAL unit of an access unit is to the conversion.
pub(super) enum NalRole {
    /// A parameter set: into the configuration record.
    ParameterSet,
    /// An access unit delimiter or filler: dropped.
    Dropped,
    /// Anything else goes into the frame; a keyframe when it is an IDR or IRAP slice.
    Frame { keyframe: bool },
}

/// A configuration record and what the metadata says of the picture.
pub(super) struct VideoConfiguration {
    pub record: Vec<u8>,
    pub width: u32,
    pub height: u32,
    pub frame_rate: Option<f64>,
}

impl VideoFormat {
    pub fn role(self, nal: &[u8]) -> NalRole {
        match self {
            VideoFormat::H264 => match h264::nal_unit_type(nal) {
                Some(h264::nal_type::SPS | h264::nal_type::PPS) => NalRole::ParameterSet,
                Some(h264::nal_type::AUD | H264_FILLER_DATA) | None => NalRole::Dropped,
                Some(kind) => NalRole::Frame { keyframe: kind == h264::nal_type::IDR },
            },
            VideoFormat::Hevc => match hevc::nal_unit_type(nal) {
                Some(hevc::nal_type::VPS | hevc::nal_type::SPS | hevc::nal_type::PPS) => NalRole::ParameterSet,
                Some(hevc::nal_type::AUD | hevc::nal_type::FILLER) | None => NalRole::Dropped,
                Some(kind) => NalRole::Frame {
                    keyframe: (hevc::nal_type::IRAP_FIRST..=hevc::nal_type::IRAP_LAST).contains(&kind),
                },
            },
        }
    }

    /// The record of an access unit's parameter sets; `None` until it has them all.
    pub fn configuration(self, sets: &[&[u8]]) -> Result<Option<VideoConfiguration>, TsToFlvError> {
        match self {
            VideoFormat::H264 => {
                let of = |kind| sets.iter().copied().filter(move |nal| h264::nal_unit_type(nal) == Some(kind));
                let (Some(sps), pps) = (of(h264::nal_type::SPS).next(), of(h264::nal_type::PPS).collect::<Vec<_>>())
                else {
                    return Ok(None);
                };
                if pps.is_empty() {
                    return Ok(None);
                }
                let info = h264::parse_sps(sps)?;
                Ok(Some(VideoConfiguration {
                    record: h264::decoder_configuration_record(sps, &pps)?,
                    width: info.width,
                    height: info.height,
                    frame_rate: info.timing.and_then(|timing| timing.frame_rate()),
                }))
            }
            VideoFormat::Hevc => {
                let of = |kind| sets.iter().copied().filter(move |nal| hevc::nal_unit_type(nal) == Some(kind));
                let vps: Vec<&[u8]> = of(hevc::nal_type::VPS).collect();
                let pps: Vec<&[u8]> = of(hevc::nal_type::PPS).collect();
                let Some(sps) = of(hevc::nal_type::SPS).next() else { return Ok(None) };
                if vps.is_empty() || pps.is_empty() {
                    return Ok(None);
                }
                let info = hevc::parse_sps(sps)?;
                Ok(Some(VideoConfiguration {
                    record: hevc::decoder_configuration_record(&vps, sps, &pps)?,
                    width: info.width,
                    height: info.height,
                    frame_rate: None,
                }))
            }
        }
    }

    /// `videocodecid` of `onMetaData`: FLV's id, or Enhanced RTMP's FourCC as a number.
    pub fn codec_id(self) -> f64 {
        match self {
            VideoFormat::H264 => 7.0,
            VideoFormat::Hevc => f64::from(u32::from_be_bytes(*HEVC_FOURCC)),
        }
    }

    /// The body of a sequence header tag around `record`.
    pub fn sequence_header(self, record: &[u8]) -> Vec<u8> {
        match self {
            VideoFormat::H264 => [&[FLV_AVC_KEYFRAME, FLV_AVC_SEQUENCE_HEADER, 0, 0, 0][..], record].concat(),
            VideoFormat::Hevc => enhanced_body(HEVC_FOURCC, true, ENHANCED_SEQUENCE_START, 0, record),
        }
    }

    /// The body of a frame's tag: length-prefixed NAL units and their composition time.
    pub fn frame(self, keyframe: bool, composition_ms: i32, units: &[u8]) -> Vec<u8> {
        match self {
            VideoFormat::H264 => {
                let [_, high, middle, low] = composition_ms.to_be_bytes();
                let kind = if keyframe { FLV_AVC_KEYFRAME } else { FLV_AVC_INTER };
                [&[kind, FLV_AVC_NALU, high, middle, low][..], units].concat()
            }
            VideoFormat::Hevc => enhanced_body(HEVC_FOURCC, keyframe, ENHANCED_CODED_FRAMES, composition_ms, units),
        }
    }
}
