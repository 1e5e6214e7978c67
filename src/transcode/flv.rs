//! FLV tags: the transcoder's input unit, and the byte stream written to ffmpeg's stdin.
//!
//! An RTMP audio (8), video (9) or data (18) message maps one to one onto an FLV tag of the
//! same type, timestamp and payload. Script data must be an `onMetaData` body as in FLV
//! files (an RTMP `@setDataFrame` wrapper removed).

use crate::ingest::flv::{self, TagKind, TagTooLong};
use bytes::{Bytes, BytesMut};
use thiserror::Error;

/// Largest tag payload FLV can express (24-bit size).
pub const MAX_TAG_DATA: usize = 0xff_ffff;
/// The FLV file header (version 1, audio and video present) with `PreviousTagSize0`.
pub const FILE_HEADER: [u8; 13] = [b'F', b'L', b'V', 1, 0x05, 0, 0, 0, 9, 0, 0, 0, 0];

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

/// One FLV tag: what the transcoder consumes.
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
    /// A video tag of a keyframe (frame type 1), sequence headers included.
    pub fn is_video_keyframe(&self) -> bool {
        self.kind == FlvTagKind::Video && self.data.first().is_some_and(|byte| byte >> 4 == 1)
    }

    /// An AVC sequence header (AVCDecoderConfigurationRecord) or an AAC sequence header
    /// (AudioSpecificConfig).
    pub fn is_sequence_header(&self) -> bool {
        let second_is_zero = self.data.get(1) == Some(&0);
        match self.kind {
            FlvTagKind::Video => self.data.first().is_some_and(|byte| byte & 0x0f == 7) && second_is_zero,
            FlvTagKind::Audio => self.data.first().is_some_and(|byte| byte >> 4 == 10) && second_is_zero,
            FlvTagKind::Script => false,
        }
    }

    /// The AVCDecoderConfigurationRecord of an AVC sequence header tag.
    pub fn avc_decoder_configuration(&self) -> Option<&[u8]> {
        (self.kind == FlvTagKind::Video && self.is_sequence_header()).then(|| self.data.get(5..)).flatten()
    }

    /// The same tag with another timestamp.
    pub fn with_timestamp(&self, timestamp_ms: u32) -> Self {
        Self { timestamp_ms, ..self.clone() }
    }

    /// The tag in FLV form: 11-byte header, body, and the 4-byte previous tag size.
    pub fn encode(&self) -> Result<Bytes, FlvError> {
        let kind = match self.kind {
            FlvTagKind::Audio => TagKind::Audio,
            FlvTagKind::Video => TagKind::Video,
            FlvTagKind::Script => TagKind::Script,
        };
        flv::tag(kind, self.timestamp_ms, &self.data).map_err(|TagTooLong(size)| FlvError::TooLarge(size))
    }
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
        let Some(header) = self.buffer.get(..11) else { return Ok(None) };
        let header: [u8; 11] = header.try_into().map_err(|_| FlvError::NotFlv)?;
        let size = (usize::from(header[1]) << 16) | (usize::from(header[2]) << 8) | usize::from(header[3]);
        let timestamp = u32::from_be_bytes([header[7], header[4], header[5], header[6]]);
        let kind = FlvTagKind::from_type_byte(header[0])?;
        if self.buffer.len() < 11 + size + 4 {
            return Ok(None);
        }
        let mut tag = self.buffer.split_to(11 + size + 4);
        let _ = tag.split_to(11);
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
    fn encodes_tag_bytes() {
        let encoded = tag(FlvTagKind::Video, 0x0123_4567, &[0x17, 1, 0, 0, 0, 0xaa]).encode().unwrap();
        assert_eq!(&encoded[..], &[9, 0, 0, 6, 0x23, 0x45, 0x67, 0x01, 0, 0, 0, 0x17, 1, 0, 0, 0, 0xaa, 0, 0, 0, 17]);
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
