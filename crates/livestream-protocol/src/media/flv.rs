//! FLV tags: the unit of media from the RTMP session to ffmpeg's stdin.
//!
//! An RTMP audio (8), video (9) or data (18) message maps one to one onto an FLV tag of the
//! same type, timestamp and payload, so [`FlvTag`] is what ingest hands on and what the
//! transcoder writes. Script data must be an `onMetaData` body as in FLV files (an RTMP
//! `@setDataFrame` wrapper removed). The inspections of tag bodies (keyframe, sequence
//! header) know both the legacy headers and Enhanced RTMP's extended video header.

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

use super::video_tag::{VideoCodec, VideoPacket, VideoPacketKind};

/// Length of the FLV file header plus the first (zero) previous-tag-size field.
pub const FILE_HEADER_LEN: usize = 13;
/// Length of an FLV tag header.
pub const TAG_HEADER_LEN: usize = 11;
/// Largest tag body the 24-bit data size field can express.
pub const MAX_TAG_BODY_LEN: usize = 0xFF_FFFF;

/// The FLV file header announcing audio and video, followed by PreviousTagSize0.
pub const FILE_HEADER: [u8; FILE_HEADER_LEN] = *b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00";

const AUDIO_PRESENT_FLAG: u8 = 0x04;
const VIDEO_PRESENT_FLAG: u8 = 0x01;
const SOUND_FORMAT_AAC: u8 = 10;
const AAC_PACKET_CONFIG: u8 = 0;
const AAC_PACKET_FRAME: u8 = 1;
const FRAME_TYPE_KEYFRAME: u8 = 1;

/// Errors about FLV data.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FlvError {
    /// A payload larger than FLV can carry.
    #[error("FLV tag payload of {0} bytes exceeds the 16 MiB limit")]
    TooLarge(usize),
    /// An unknown tag type in a stream being read.
    #[error("unknown FLV tag type {0}")]
    UnknownTagType(u8),
    /// The stream does not start with an FLV header.
    #[error("not an FLV stream")]
    NotFlv,
}

/// Kind of an FLV tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlvTagKind {
    /// Audio (type 8).
    Audio,
    /// Video (type 9).
    Video,
    /// Script data such as `onMetaData` (type 18).
    Script,
}

impl FlvTagKind {
    /// The FLV tag type byte.
    pub fn type_byte(self) -> u8 {
        match self {
            FlvTagKind::Audio => 8,
            FlvTagKind::Video => 9,
            FlvTagKind::Script => 18,
        }
    }

    /// The kind of a tag type byte.
    pub fn from_type_byte(byte: u8) -> Result<Self, FlvError> {
        match byte & 0x1f {
            8 => Ok(FlvTagKind::Audio),
            9 => Ok(FlvTagKind::Video),
            18 => Ok(FlvTagKind::Script),
            other => Err(FlvError::UnknownTagType(other)),
        }
    }
}

/// One FLV tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlvTag {
    /// Audio, video or script data.
    pub kind: FlvTagKind,
    /// Timestamp in milliseconds (RTMP's extended 32-bit timestamp).
    pub timestamp_ms: u32,
    /// The tag body (RTMP message payload).
    pub data: Bytes,
}

impl FlvTag {
    pub fn new(kind: FlvTagKind, timestamp_ms: u32, data: Bytes) -> Self {
        Self { kind, timestamp_ms, data }
    }

    /// A video tag of a keyframe (frame type 1, legacy or enhanced header), sequence
    /// headers included.
    pub fn is_video_keyframe(&self) -> bool {
        self.kind == FlvTagKind::Video && is_keyframe(&self.data)
    }

    /// A decoder configuration: a video sequence header of any codec, or an AAC sequence
    /// header (AudioSpecificConfig).
    pub fn is_sequence_header(&self) -> bool {
        match self.kind {
            FlvTagKind::Video => is_video_sequence_header(&self.data),
            FlvTagKind::Audio => is_aac_sequence_header(&self.data),
            FlvTagKind::Script => false,
        }
    }

    /// The AVCDecoderConfigurationRecord of an AVC sequence header tag (legacy or
    /// Enhanced RTMP).
    pub fn avc_decoder_configuration(&self) -> Option<&[u8]> {
        if self.kind != FlvTagKind::Video {
            return None;
        }
        let packet = VideoPacket::parse(&self.data).ok()?;
        (packet.codec == VideoCodec::Avc && packet.kind == VideoPacketKind::SequenceStart).then_some(packet.payload)
    }

    /// The same tag with another timestamp.
    pub fn with_timestamp(&self, timestamp_ms: u32) -> Self {
        Self { timestamp_ms, ..self.clone() }
    }

    /// The tag in FLV form: 11-byte header (type, size, 24+8-bit timestamp, stream id 0),
    /// the body, and the 4-byte previous tag size.
    pub fn encode(&self) -> Result<Bytes, FlvError> {
        let size = u32::try_from(self.data.len())
            .ok()
            .filter(|size| *size as usize <= MAX_TAG_BODY_LEN)
            .ok_or(FlvError::TooLarge(self.data.len()))?;
        let mut tag = BytesMut::with_capacity(TAG_HEADER_LEN + self.data.len() + 4);
        let [_, size_high, size_middle, size_low] = size.to_be_bytes();
        let [timestamp_extended, timestamp_high, timestamp_middle, timestamp_low] = self.timestamp_ms.to_be_bytes();
        tag.put_u8(self.kind.type_byte());
        tag.put_slice(&[size_high, size_middle, size_low]);
        tag.put_slice(&[timestamp_high, timestamp_middle, timestamp_low, timestamp_extended]);
        tag.put_slice(&[0, 0, 0]);
        tag.put_slice(&self.data);
        tag.put_u32(size + TAG_HEADER_LEN as u32);
        Ok(tag.freeze())
    }
}

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

/// True if the video tag body is a keyframe (legacy or enhanced RTMP header).
pub fn is_keyframe(video_body: &[u8]) -> bool {
    video_body.first().is_some_and(|first| (first >> 4) & 0x07 == FRAME_TYPE_KEYFRAME)
}

/// True if the video tag body is a decoder configuration of any codec: a legacy AVC or
/// HEVC sequence header, or an Enhanced RTMP SequenceStart.
pub fn is_video_sequence_header(video_body: &[u8]) -> bool {
    VideoPacket::parse(video_body).is_ok_and(|packet| packet.kind == VideoPacketKind::SequenceStart)
}

/// What an AAC audio tag carries after its two header bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AacPacket<'a> {
    /// The AudioSpecificConfig (AACPacketType 0, the sequence header).
    Config(&'a [u8]),
    /// One raw AAC frame (AACPacketType 1).
    Frame(&'a [u8]),
}

/// The AAC packet of an audio tag body; `None` for other sound formats and packet types.
pub fn aac_packet(audio_body: &[u8]) -> Option<AacPacket<'_>> {
    match audio_body {
        [first, AAC_PACKET_CONFIG, payload @ ..] if first >> 4 == SOUND_FORMAT_AAC => Some(AacPacket::Config(payload)),
        [first, AAC_PACKET_FRAME, payload @ ..] if first >> 4 == SOUND_FORMAT_AAC => Some(AacPacket::Frame(payload)),
        _ => None,
    }
}

/// True if the audio tag body is an AAC sequence header (AudioSpecificConfig).
pub fn is_aac_sequence_header(audio_body: &[u8]) -> bool {
    matches!(aac_packet(audio_body), Some(AacPacket::Config(_)))
}

/// Splits an FLV byte stream into tags; sans IO, fed with any chunking.
#[derive(Debug, Default)]
pub struct FlvReader {
    buffer: BytesMut,
    header_done: bool,
}

impl FlvReader {
    /// A reader expecting the FLV file header first.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete tag, if buffered.
    pub fn next_tag(&mut self) -> Result<Option<FlvTag>, FlvError> {
        if !self.header_done {
            let Some(start) = self.buffer.get(..9) else { return Ok(None) };
            let start: [u8; 9] = start.try_into().map_err(|_| FlvError::NotFlv)?;
            if &start[..3] != b"FLV" {
                return Err(FlvError::NotFlv);
            }
            let offset = u32::from_be_bytes([start[5], start[6], start[7], start[8]]) as usize;
            if offset < 9 {
                return Err(FlvError::NotFlv);
            }
            if self.buffer.len() < offset + 4 {
                return Ok(None);
            }
            let _ = self.buffer.split_to(offset + 4);
            self.header_done = true;
        }
        let Some(header) = self.buffer.get(..TAG_HEADER_LEN) else { return Ok(None) };
        let header: [u8; TAG_HEADER_LEN] = header.try_into().map_err(|_| FlvError::NotFlv)?;
        let size = (usize::from(header[1]) << 16) | (usize::from(header[2]) << 8) | usize::from(header[3]);
        let timestamp = u32::from_be_bytes([header[7], header[4], header[5], header[6]]);
        let kind = FlvTagKind::from_type_byte(header[0])?;
        if self.buffer.len() < TAG_HEADER_LEN + size + 4 {
            return Ok(None);
        }
        let mut tag = self.buffer.split_to(TAG_HEADER_LEN + size + 4);
        let _ = tag.split_to(TAG_HEADER_LEN);
        tag.truncate(size);
        Ok(Some(FlvTag { kind, timestamp_ms: timestamp, data: tag.freeze() }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(kind: FlvTagKind, timestamp_ms: u32, data: &'static [u8]) -> FlvTag {
        FlvTag { kind, timestamp_ms, data: Bytes::from_static(data) }
    }

    #[test]
    fn file_header_bytes() {
        assert_eq!(&file_header(true, true)[..], &FILE_HEADER);
        assert_eq!(file_header(false, true)[4], 0x01);
        assert_eq!(file_header(true, false)[4], 0x04);
        assert_eq!(file_header(false, false).len(), FILE_HEADER_LEN);
    }

    #[test]
    fn tag_bytes_with_extended_timestamp() {
        let encoded = tag(FlvTagKind::Video, 0x0A0B_0C0D, &[0x17, 0x01, 0xEE]).encode().unwrap();
        let expected: &[u8] = &[
            0x09, 0x00, 0x00, 0x03, // type, size 3
            0x0B, 0x0C, 0x0D, 0x0A, // timestamp low 24 bits, then the upper 8
            0x00, 0x00, 0x00, // stream id
            0x17, 0x01, 0xEE, // body
            0x00, 0x00, 0x00, 0x0E, // previous tag size 11 + 3
        ];
        assert_eq!(&encoded[..], expected);
        assert_eq!(tag(FlvTagKind::Script, 0, b"").encode().unwrap().first(), Some(&18));
        assert_eq!(&tag(FlvTagKind::Audio, 1000, &[0xAF]).encode().unwrap()[..8], &[8, 0, 0, 1, 0, 0x03, 0xE8, 0]);
    }

    #[test]
    fn oversized_body_is_refused() {
        let body = Bytes::from(vec![0u8; MAX_TAG_BODY_LEN + 1]);
        assert_eq!(FlvTag::new(FlvTagKind::Video, 0, body).encode(), Err(FlvError::TooLarge(MAX_TAG_BODY_LEN + 1)));
    }

    #[test]
    fn classifies_tags() {
        let avc_header = tag(FlvTagKind::Video, 0, &[0x17, 0, 0, 0, 0, 1, 0x64]);
        assert!(avc_header.is_sequence_header() && avc_header.is_video_keyframe());
        assert_eq!(avc_header.avc_decoder_configuration(), Some(&[1, 0x64][..]));
        let inter = tag(FlvTagKind::Video, 0, &[0x27, 1]);
        assert!(!inter.is_video_keyframe() && !inter.is_sequence_header());
        assert!(tag(FlvTagKind::Audio, 0, &[0xaf, 0, 0x11, 0x90]).is_sequence_header());
        assert!(!tag(FlvTagKind::Audio, 0, &[0xaf, 1, 0x21]).is_sequence_header());
        assert!(!tag(FlvTagKind::Video, 0, &[]).is_video_keyframe());
        let enhanced = tag(FlvTagKind::Video, 0, &[0x90, b'h', b'v', b'c', b'1']);
        assert!(enhanced.is_video_keyframe() && enhanced.is_sequence_header(), "enhanced RTMP SequenceStart");
        assert_eq!(enhanced.avc_decoder_configuration(), None);
    }

    #[test]
    fn video_body_inspection() {
        assert!(is_keyframe(&[0x17, 0x01]));
        assert!(!is_keyframe(&[0x27, 0x01]));
        assert!(!is_keyframe(&[]));
        assert!(is_keyframe(&[0x90 | 0x01, b'h', b'v', b'c', b'1']), "enhanced RTMP keyframe");
        assert!(is_video_sequence_header(&[0x17, 0x00, 0, 0, 0]));
        assert!(!is_video_sequence_header(&[0x17, 0x01, 0, 0, 0]));
        assert!(!is_video_sequence_header(&[0x17, 0x00]), "truncated");
        assert!(is_video_sequence_header(&[0x1C, 0x00, 0, 0, 0]), "legacy HEVC");
        assert!(is_video_sequence_header(&[0x90, b'h', b'v', b'c', b'1']), "enhanced SequenceStart");
        assert!(!is_video_sequence_header(&[0x91, b'h', b'v', b'c', b'1']));
    }

    #[test]
    fn audio_body_inspection() {
        assert!(is_aac_sequence_header(&[0xAF, 0x00, 0x12, 0x10]));
        assert!(!is_aac_sequence_header(&[0xAF, 0x01, 0x21]));
        assert!(!is_aac_sequence_header(&[0x2F, 0x00]), "MP3 is not AAC");
        assert!(!is_aac_sequence_header(&[0xAF]));
        assert_eq!(aac_packet(&[0xAF, 0x01, 0x21]), Some(AacPacket::Frame(&[0x21])));
        assert_eq!(aac_packet(&[0xAF, 0x02]), None, "no such AACPacketType");
    }

    #[test]
    fn reader_round_trips_with_any_chunking() {
        let tags = [
            tag(FlvTagKind::Script, 0, b"meta"),
            tag(FlvTagKind::Video, 40, &[0x17, 1, 0, 0, 0]),
            tag(FlvTagKind::Audio, 0x0100_0000, &[0xaf, 1]),
        ];
        let mut stream = FILE_HEADER.to_vec();
        for item in &tags {
            stream.extend_from_slice(&item.encode().unwrap());
        }
        for chunk_size in [1, 7, stream.len()] {
            let mut reader = FlvReader::new();
            let mut read = Vec::new();
            for chunk in stream.chunks(chunk_size) {
                reader.push(chunk);
                while let Some(item) = reader.next_tag().unwrap() {
                    read.push(item);
                }
            }
            assert_eq!(read, tags);
        }
        let mut reader = FlvReader::new();
        reader.push(b"RIFF0000000000");
        assert_eq!(reader.next_tag(), Err(FlvError::NotFlv));
    }
}
