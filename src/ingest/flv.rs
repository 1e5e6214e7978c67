//! FLV writing: the file header and tags built from RTMP message payloads (which are FLV
//! tag bodies), plus small inspections of audio and video tag bodies.

use bytes::{BufMut, Bytes, BytesMut};

/// Length of the FLV file header plus the first (zero) previous-tag-size field.
pub const FILE_HEADER_LEN: usize = 13;
/// Length of an FLV tag header.
pub const TAG_HEADER_LEN: usize = 11;
/// Largest tag body the 24-bit data size field can express.
pub const MAX_TAG_BODY_LEN: usize = 0xFF_FFFF;

const AUDIO_PRESENT_FLAG: u8 = 0x04;
const VIDEO_PRESENT_FLAG: u8 = 0x01;
const CODEC_ID_AVC: u8 = 7;
const SOUND_FORMAT_AAC: u8 = 10;
const FRAME_TYPE_KEYFRAME: u8 = 1;
/// Enhanced RTMP: the video tag uses an extended header (FourCC codecs).
const VIDEO_EX_HEADER_FLAG: u8 = 0x80;
const EX_PACKET_TYPE_SEQUENCE_START: u8 = 0;

/// The kind of an FLV tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagKind {
    /// Audio tag (type 8).
    Audio,
    /// Video tag (type 9).
    Video,
    /// Script data tag (type 18), for example onMetaData.
    Script,
}

impl TagKind {
    /// The FLV tag type byte.
    pub fn type_byte(self) -> u8 {
        match self {
            TagKind::Audio => 8,
            TagKind::Video => 9,
            TagKind::Script => 18,
        }
    }
}

/// A tag body too long for FLV.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("FLV tag body of {0} bytes exceeds the 24-bit size field")]
pub struct TagTooLong(pub usize);

/// The 9-byte FLV header followed by PreviousTagSize0 (zero).
pub fn file_header(has_audio: bool, has_video: bool) -> Bytes {
    let mut header = BytesMut::with_capacity(FILE_HEADER_LEN);
    header.put_slice(b"FLV");
    header.put_u8(1);
    let mut flags = 0;
    if has_audio {
        flags |= AUDIO_PRESENT_FLAG;
    }
    if has_video {
        flags |= VIDEO_PRESENT_FLAG;
    }
    header.put_u8(flags);
    header.put_u32(9);
    header.put_u32(0);
    header.freeze()
}

/// One FLV tag: 11-byte header (type, size, 24+8-bit timestamp, stream id 0), the body,
/// and the 4-byte previous tag size.
pub fn tag(kind: TagKind, timestamp_ms: u32, body: &[u8]) -> Result<Bytes, TagTooLong> {
    let size = u32::try_from(body.len())
        .ok()
        .filter(|size| *size as usize <= MAX_TAG_BODY_LEN)
        .ok_or(TagTooLong(body.len()))?;
    let mut tag = BytesMut::with_capacity(TAG_HEADER_LEN + body.len() + 4);
    let [_, size_high, size_middle, size_low] = size.to_be_bytes();
    let [timestamp_extended, timestamp_high, timestamp_middle, timestamp_low] = timestamp_ms.to_be_bytes();
    tag.put_u8(kind.type_byte());
    tag.put_slice(&[size_high, size_middle, size_low]);
    tag.put_slice(&[timestamp_high, timestamp_middle, timestamp_low, timestamp_extended]);
    tag.put_slice(&[0, 0, 0]);
    tag.put_slice(body);
    tag.put_u32(size + TAG_HEADER_LEN as u32);
    Ok(tag.freeze())
}

/// True if the video tag body is a keyframe (legacy or enhanced RTMP header).
pub fn is_keyframe(video_body: &[u8]) -> bool {
    video_body.first().is_some_and(|first| (first >> 4) & 0x07 == FRAME_TYPE_KEYFRAME)
}

/// True if the video tag body is an AVC sequence header (AVCDecoderConfigurationRecord).
pub fn is_avc_sequence_header(video_body: &[u8]) -> bool {
    matches!(video_body, [first, 0, ..] if first & VIDEO_EX_HEADER_FLAG == 0 && first & 0x0F == CODEC_ID_AVC)
}

/// True if the video tag body is a decoder configuration of any codec: a legacy AVC or
/// HEVC sequence header, or an enhanced-RTMP SequenceStart.
pub fn is_video_sequence_header(video_body: &[u8]) -> bool {
    match video_body.first() {
        Some(first) if first & VIDEO_EX_HEADER_FLAG != 0 => first & 0x0F == EX_PACKET_TYPE_SEQUENCE_START,
        Some(first) => matches!(first & 0x0F, CODEC_ID_AVC | 12) && video_body.get(1) == Some(&0),
        None => false,
    }
}

/// True if the audio tag body is an AAC sequence header (AudioSpecificConfig).
pub fn is_aac_sequence_header(audio_body: &[u8]) -> bool {
    matches!(audio_body, [first, 0, ..] if first >> 4 == SOUND_FORMAT_AAC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_header_bytes() {
        assert_eq!(&file_header(true, true)[..], b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00");
        assert_eq!(file_header(false, true)[4], 0x01);
        assert_eq!(file_header(true, false)[4], 0x04);
        assert_eq!(file_header(false, false).len(), FILE_HEADER_LEN);
    }

    #[test]
    fn tag_bytes_with_extended_timestamp() {
        let tag = tag(TagKind::Video, 0x0A0B_0C0D, &[0x17, 0x01, 0xEE]).unwrap();
        let expected: &[u8] = &[
            0x09, 0x00, 0x00, 0x03, // type, size 3
            0x0B, 0x0C, 0x0D, 0x0A, // timestamp low 24 bits, then the upper 8
            0x00, 0x00, 0x00, // stream id
            0x17, 0x01, 0xEE, // body
            0x00, 0x00, 0x00, 0x0E, // previous tag size 11 + 3
        ];
        assert_eq!(&tag[..], expected);
    }

    #[test]
    fn script_and_audio_tag_types() {
        assert_eq!(tag(TagKind::Script, 0, b"").unwrap().first(), Some(&18));
        assert_eq!(&tag(TagKind::Audio, 1000, &[0xAF]).unwrap()[..8], &[8, 0, 0, 1, 0, 0x03, 0xE8, 0]);
    }

    #[test]
    fn oversized_body_is_refused() {
        let body = vec![0u8; MAX_TAG_BODY_LEN + 1];
        assert_eq!(tag(TagKind::Video, 0, &body), Err(TagTooLong(MAX_TAG_BODY_LEN + 1)));
    }

    #[test]
    fn video_body_inspection() {
        assert!(is_keyframe(&[0x17, 0x01]));
        assert!(!is_keyframe(&[0x27, 0x01]));
        assert!(!is_keyframe(&[]));
        assert!(is_keyframe(&[0x90 | 0x01, b'h', b'v', b'c', b'1']), "enhanced RTMP keyframe");
        assert!(is_avc_sequence_header(&[0x17, 0x00, 0, 0, 0]));
        assert!(!is_avc_sequence_header(&[0x17, 0x01, 0, 0, 0]));
        assert!(!is_avc_sequence_header(&[0x1C, 0x00]));
        assert!(is_video_sequence_header(&[0x1C, 0x00]), "legacy HEVC");
        assert!(is_video_sequence_header(&[0x90, b'h', b'v', b'c', b'1']), "enhanced SequenceStart");
        assert!(!is_video_sequence_header(&[0x91, b'h', b'v', b'c', b'1']));
    }

    #[test]
    fn audio_body_inspection() {
        assert!(is_aac_sequence_header(&[0xAF, 0x00, 0x12, 0x10]));
        assert!(!is_aac_sequence_header(&[0xAF, 0x01, 0x21]));
        assert!(!is_aac_sequence_header(&[0x2F, 0x00]), "MP3 is not AAC");
        assert!(!is_aac_sequence_header(&[0xAF]));
    }
}
