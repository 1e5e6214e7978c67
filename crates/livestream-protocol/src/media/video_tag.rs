//! The body of an FLV video tag, in either form an encoder sends it:
//!
//! - legacy: frame type and codec id in the first byte; for AVC (7) and the unofficial
//!   HEVC id (12) a packet type and a 24-bit composition time follow;
//! - Enhanced RTMP (the veovera specification, v1 and v2): the `IsExHeader` bit, a packet
//!   type, ModEx extensions, a FourCC (`avc1`, `hvc1`, `av01`, `vp09`, ...) and, for
//!   multitrack packets, a track id. Only track 0, the default track, is read; other
//!   tracks of a multitrack packet are skipped.
//!
//! [`VideoPacket::parse`] names the codec, the kind of packet, whether it is a keyframe,
//! the composition time offset and the payload: a decoder configuration record (`avcC`,
//! `hvcC`, `av1C`) for a sequence start, or the coded frame in its ISO BMFF sample form
//! (length-prefixed NAL units; AV1 OBUs) otherwise.

use thiserror::Error;

const EX_HEADER_FLAG: u8 = 0x80;
const FRAME_TYPE_KEYFRAME: u8 = 1;
const FRAME_TYPE_COMMAND: u8 = 5;
const LEGACY_AVC: u8 = 7;
const LEGACY_HEVC: u8 = 12;

const PACKET_SEQUENCE_START: u8 = 0;
const PACKET_CODED_FRAMES: u8 = 1;
const PACKET_SEQUENCE_END: u8 = 2;
const PACKET_CODED_FRAMES_X: u8 = 3;
const PACKET_METADATA: u8 = 4;
const PACKET_MULTITRACK: u8 = 6;
const PACKET_MOD_EX: u8 = 7;

const MULTITRACK_ONE_TRACK: u8 = 0;
const MULTITRACK_MANY_TRACKS: u8 = 1;
const MULTITRACK_MANY_CODECS: u8 = 2;
/// ModEx blocks are bounded by the tag; this bounds the loop over them as well.
const MAX_MOD_EX: usize = 16;

/// Errors about a video tag body.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum VideoTagError {
    /// The body ends inside a header field.
    #[error("video tag truncated in its {0}")]
    Truncated(&'static str),
    /// A multitrack packet of an unknown layout.
    #[error("unknown multitrack type {0}")]
    UnknownMultitrack(u8),
    /// A multitrack packet without track 0.
    #[error("multitrack video without the default track")]
    NoDefaultTrack,
    /// More ModEx blocks than any encoder sends.
    #[error("too many ModEx blocks")]
    TooManyModEx,
}

/// A video codec, named by a legacy codec id or an Enhanced RTMP FourCC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum VideoCodec {
    /// H.264 (legacy id 7, FourCC `avc1`), the codec of sources that never say.
    #[default]
    Avc,
    /// H.265 (FourCC `hvc1`, or the unofficial legacy id 12).
    Hevc,
    /// AV1 (FourCC `av01`).
    Av1,
    /// Another FourCC (`vp09`, `vp08`, ...).
    FourCc([u8; 4]),
    /// Another legacy codec id (Sorenson H.263, VP6, screen video, ...).
    Legacy(u8),
}

impl VideoCodec {
    fn from_fourcc(fourcc: [u8; 4]) -> Self {
        match &fourcc {
            b"avc1" => VideoCodec::Avc,
            b"hvc1" => VideoCodec::Hevc,
            b"av01" => VideoCodec::Av1,
            _ => VideoCodec::FourCc(fourcc),
        }
    }

    /// Whether coded frames of this codec carry a composition time offset.
    fn has_composition_time(self) -> bool {
        matches!(self, VideoCodec::Avc | VideoCodec::Hevc)
    }

    /// A short name for messages (`h264`, `hevc`, `av1`, the FourCC, or the codec id).
    pub fn name(self) -> String {
        match self {
            VideoCodec::Avc => "h264".into(),
            VideoCodec::Hevc => "hevc".into(),
            VideoCodec::Av1 => "av1".into(),
            VideoCodec::FourCc(fourcc) => {
                fourcc.iter().map(|b| if b.is_ascii_graphic() { char::from(*b) } else { '?' }).collect()
            }
            VideoCodec::Legacy(id) => format!("FLV codec id {id}"),
        }
    }
}

/// What a video packet carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoPacketKind {
    /// The decoder configuration record.
    SequenceStart,
    /// Coded frames.
    CodedFrames,
    /// The end of the sequence.
    SequenceEnd,
    /// Anything else: metadata, commands, MPEG-2 TS sequence starts, unknown types, and
    /// the frames of codecs without packet types (legacy codecs other than AVC and HEVC).
    Other,
}

/// A parsed video tag body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoPacket<'a> {
    pub codec: VideoCodec,
    pub kind: VideoPacketKind,
    /// Frame type 1 (a keyframe; sequence starts are sent with it too).
    pub keyframe: bool,
    /// Presentation time minus decode time, in milliseconds.
    pub composition_time_ms: i32,
    /// The configuration record or the coded frame.
    pub payload: &'a [u8],
    /// Sent with the Enhanced RTMP header.
    pub enhanced: bool,
}

impl<'a> VideoPacket<'a> {
    /// Parses a video tag body.
    pub fn parse(body: &'a [u8]) -> Result<Self, VideoTagError> {
        let mut reader = Reader { data: body };
        let first = reader.u8("frame type")?;
        let frame_type = (first >> 4) & 0x07;
        let keyframe = frame_type == FRAME_TYPE_KEYFRAME;
        if first & EX_HEADER_FLAG == 0 {
            return Self::parse_legacy(first & 0x0F, keyframe, reader);
        }
        let mut packet_type = first & 0x0F;
        let mut mod_ex = 0;
        while packet_type == PACKET_MOD_EX {
            mod_ex += 1;
            if mod_ex > MAX_MOD_EX {
                return Err(VideoTagError::TooManyModEx);
            }
            let mut size = usize::from(reader.u8("ModEx size")?) + 1;
            if size == 256 {
                size = usize::from(reader.u16("ModEx size")?) + 1;
            }
            reader.take(size, "ModEx data")?;
            packet_type = reader.u8("ModEx packet type")? & 0x0F;
        }
        if frame_type == FRAME_TYPE_COMMAND && packet_type != PACKET_METADATA {
            let codec = VideoCodec::FourCc(*b"\0\0\0\0");
            return Ok(Self::other(codec, reader.data));
        }
        let (codec, packet_type, payload) = if packet_type == PACKET_MULTITRACK {
            let layout = reader.u8("multitrack type")?;
            let (multitrack, packet_type) = (layout >> 4, layout & 0x0F);
            let (codec, payload) = default_track(multitrack, reader)?;
            (codec, packet_type, payload)
        } else {
            let codec = VideoCodec::from_fourcc(reader.fourcc()?);
            (codec, packet_type, reader.data)
        };
        let mut reader = Reader { data: payload };
        let (kind, composition_time_ms) = match packet_type {
            PACKET_SEQUENCE_START => (VideoPacketKind::SequenceStart, 0),
            PACKET_CODED_FRAMES if codec.has_composition_time() => {
                (VideoPacketKind::CodedFrames, reader.i24("composition time")?)
            }
            PACKET_CODED_FRAMES | PACKET_CODED_FRAMES_X => (VideoPacketKind::CodedFrames, 0),
            PACKET_SEQUENCE_END => (VideoPacketKind::SequenceEnd, 0),
            _ => (VideoPacketKind::Other, 0),
        };
        Ok(Self { codec, kind, keyframe, composition_time_ms, payload: reader.data, enhanced: true })
    }

    fn parse_legacy(codec_id: u8, keyframe: bool, mut reader: Reader<'a>) -> Result<Self, VideoTagError> {
        let codec = match codec_id {
            LEGACY_AVC => VideoCodec::Avc,
            LEGACY_HEVC => VideoCodec::Hevc,
            other => {
                let packet = Self::other(VideoCodec::Legacy(other), reader.data);
                return Ok(Self { keyframe, enhanced: false, ..packet });
            }
        };
        let kind = match reader.u8("packet type")? {
            0 => VideoPacketKind::SequenceStart,
            1 => VideoPacketKind::CodedFrames,
            2 => VideoPacketKind::SequenceEnd,
            _ => VideoPacketKind::Other,
        };
        let composition_time_ms = reader.i24("composition time")?;
        Ok(Self { codec, kind, keyframe, composition_time_ms, payload: reader.data, enhanced: false })
    }

    fn other(codec: VideoCodec, payload: &'a [u8]) -> Self {
        Self { codec, kind: VideoPacketKind::Other, keyframe: false, composition_time_ms: 0, payload, enhanced: true }
    }
}

/// The codec and body of track 0 of a multitrack packet.
fn default_track(multitrack: u8, mut reader: Reader<'_>) -> Result<(VideoCodec, &[u8]), VideoTagError> {
    let shared = match multitrack {
        MULTITRACK_ONE_TRACK | MULTITRACK_MANY_TRACKS => Some(VideoCodec::from_fourcc(reader.fourcc()?)),
        MULTITRACK_MANY_CODECS => None,
        other => return Err(VideoTagError::UnknownMultitrack(other)),
    };
    loop {
        if reader.data.is_empty() {
            return Err(VideoTagError::NoDefaultTrack);
        }
        let codec = match shared {
            Some(codec) => codec,
            None => VideoCodec::from_fourcc(reader.fourcc()?),
        };
        let track = reader.u8("track id")?;
        let body = if multitrack == MULTITRACK_ONE_TRACK {
            std::mem::take(&mut reader.data)
        } else {
            let size = reader.u24("track size")? as usize;
            reader.take(size, "track body")?
        };
        if track == 0 {
            return Ok((codec, body));
        }
    }
}

struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize, field: &'static str) -> Result<&'a [u8], VideoTagError> {
        if self.data.len() < count {
            return Err(VideoTagError::Truncated(field));
        }
        let (taken, rest) = self.data.split_at(count);
        self.data = rest;
        Ok(taken)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, VideoTagError> {
        Ok(self.take(1, field)?[0])
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, VideoTagError> {
        let bytes = self.take(2, field)?;
        Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
    }

    fn u24(&mut self, field: &'static str) -> Result<u32, VideoTagError> {
        let bytes = self.take(3, field)?;
        Ok(u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]))
    }

    fn i24(&mut self, field: &'static str) -> Result<i32, VideoTagError> {
        let value = self.u24(field)? as i32;
        Ok((value << 8) >> 8)
    }

    fn fourcc(&mut self) -> Result<[u8; 4], VideoTagError> {
        let bytes = self.take(4, "FourCC")?;
        Ok([bytes[0], bytes[1], bytes[2], bytes[3]])
    }
}

/// Builds the Enhanced RTMP body of a single-track packet: `packet_type` 0 (sequence
/// start), 1 (coded frames, with the composition time for AVC and HEVC) or 3 (coded
/// frames without it).
pub fn enhanced_body(
    fourcc: &[u8; 4],
    keyframe: bool,
    packet_type: u8,
    composition_time_ms: i32,
    payload: &[u8],
) -> Vec<u8> {
    let frame_type = if keyframe { FRAME_TYPE_KEYFRAME } else { 2 };
    let mut body = Vec::with_capacity(payload.len() + 8);
    body.push(EX_HEADER_FLAG | (frame_type << 4) | (packet_type & 0x0F));
    body.extend_from_slice(fourcc);
    if packet_type == PACKET_CODED_FRAMES && VideoCodec::from_fourcc(*fourcc).has_composition_time() {
        body.extend_from_slice(&composition_time_ms.to_be_bytes()[1..]);
    }
    body.extend_from_slice(payload);
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_avc_keyframe_with_composition_time() {
        let body = [0x17, 1, 0xff, 0xff, 0xfe, 0, 0, 0, 2, 0x65, 0x88];
        let packet = VideoPacket::parse(&body).unwrap();
        assert_eq!(packet.codec, VideoCodec::Avc);
        assert_eq!(packet.kind, VideoPacketKind::CodedFrames);
        assert!(packet.keyframe && !packet.enhanced);
        assert_eq!(packet.composition_time_ms, -2, "SI24 is signed");
        assert_eq!(packet.payload, &body[5..]);
    }

    #[test]
    fn legacy_sequence_header_and_other_codecs() {
        let avc = VideoPacket::parse(&[0x17, 0, 0, 0, 0, 1, 0x64]).unwrap();
        assert_eq!((avc.kind, avc.payload), (VideoPacketKind::SequenceStart, &[1, 0x64][..]));
        let hevc = VideoPacket::parse(&[0x1c, 0, 0, 0, 0, 1]).unwrap();
        assert_eq!((hevc.codec, hevc.kind), (VideoCodec::Hevc, VideoPacketKind::SequenceStart));
        let vp6 = VideoPacket::parse(&[0x14, 9, 9]).unwrap();
        assert_eq!((vp6.codec, vp6.kind, vp6.keyframe), (VideoCodec::Legacy(4), VideoPacketKind::Other, true));
        assert!(!vp6.enhanced);
    }

    #[test]
    fn enhanced_packets_of_each_type() {
        let start = enhanced_body(b"hvc1", true, 0, 0, &[1, 2, 3]);
        assert_eq!(start[..5], [0x90, b'h', b'v', b'c', b'1']);
        let packet = VideoPacket::parse(&start).unwrap();
        assert_eq!(
            (packet.codec, packet.kind, packet.payload),
            (VideoCodec::Hevc, VideoPacketKind::SequenceStart, &[1, 2, 3][..])
        );

        let coded = enhanced_body(b"hvc1", false, 1, 80, &[0, 0, 0, 1, 2]);
        let packet = VideoPacket::parse(&coded).unwrap();
        assert_eq!(
            (packet.kind, packet.keyframe, packet.composition_time_ms),
            (VideoPacketKind::CodedFrames, false, 80)
        );
        assert_eq!(packet.payload, &[0, 0, 0, 1, 2]);

        let coded_x = enhanced_body(b"hvc1", true, 3, 0, &[7]);
        let packet = VideoPacket::parse(&coded_x).unwrap();
        assert_eq!(
            (packet.kind, packet.composition_time_ms, packet.payload),
            (VideoPacketKind::CodedFrames, 0, &[7][..])
        );

        let av1 = enhanced_body(b"av01", true, 1, 0, &[0x12, 0]);
        let packet = VideoPacket::parse(&av1).unwrap();
        assert_eq!(
            (packet.codec, packet.payload),
            (VideoCodec::Av1, &[0x12, 0][..]),
            "AV1 frames have no composition time"
        );

        let end = VideoPacket::parse(&[0x82, b'a', b'v', b'0', b'1']).unwrap();
        assert_eq!(end.kind, VideoPacketKind::SequenceEnd);
        let vp9 = enhanced_body(b"vp09", true, 0, 0, &[1]);
        assert_eq!(VideoPacket::parse(&vp9).unwrap().codec.name(), "vp09");
    }

    #[test]
    fn mod_ex_blocks_are_skipped() {
        // ModEx with 2 bytes of data (a timestamp offset in nanoseconds), then CodedFramesX.
        let body = [0x97, 1, 0xaa, 0xbb, 0x03, b'h', b'v', b'c', b'1', 9, 9];
        let packet = VideoPacket::parse(&body).unwrap();
        assert_eq!(
            (packet.codec, packet.kind, packet.payload),
            (VideoCodec::Hevc, VideoPacketKind::CodedFrames, &[9, 9][..])
        );
        let mut endless = vec![0x97];
        for _ in 0..20 {
            endless.extend_from_slice(&[0, 0, 0x07]);
        }
        assert_eq!(VideoPacket::parse(&endless), Err(VideoTagError::TooManyModEx));
    }

    #[test]
    fn multitrack_reads_the_default_track() {
        // One track: type 0, packet type SequenceStart, FourCC, track 0, body.
        let one = [0x96, 0x00, b'a', b'v', b'0', b'1', 0, 0x81, 0x08];
        let packet = VideoPacket::parse(&one).unwrap();
        assert_eq!(
            (packet.codec, packet.kind, packet.payload),
            (VideoCodec::Av1, VideoPacketKind::SequenceStart, &[0x81, 0x08][..])
        );
        // Many tracks, many codecs: track 1 (vp09) first, then track 0 (hvc1, CodedFrames with CTS).
        let mut many = vec![0x96, 0x21];
        many.extend_from_slice(b"vp09");
        many.extend_from_slice(&[1, 0, 0, 2, 0xee, 0xee]);
        many.extend_from_slice(b"hvc1");
        many.extend_from_slice(&[0, 0, 0, 5, 0, 0, 40, 0x26, 0x01]);
        let packet = VideoPacket::parse(&many).unwrap();
        assert_eq!(
            (packet.codec, packet.composition_time_ms, packet.payload),
            (VideoCodec::Hevc, 40, &[0x26, 0x01][..])
        );
        let without_default = [0x96, 0x10, b'h', b'v', b'c', b'1', 1, 0, 0, 1, 0xee];
        assert_eq!(VideoPacket::parse(&without_default), Err(VideoTagError::NoDefaultTrack));
    }

    #[test]
    fn truncated_bodies_are_errors_at_every_length() {
        let body = enhanced_body(b"hvc1", false, 1, 80, &[]);
        for length in 0..body.len() {
            assert!(VideoPacket::parse(&body[..length]).is_err(), "length {length}");
        }
        assert!(VideoPacket::parse(&body).is_ok());
    }
}
