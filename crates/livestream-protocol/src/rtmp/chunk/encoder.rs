//! Chunk stream encoder for outgoing messages: a type 0 header on the first chunk, type 3
//! headers (with the extended timestamp repeated when used) on the rest.

use bytes::{BufMut, BytesMut};

use super::{
    ChunkError, DEFAULT_CHUNK_SIZE, EXTENDED_TIMESTAMP_MARKER, MAX_CHUNK_SIZE_FIELD, MAX_CHUNK_STREAM_ID,
    MAX_MESSAGE_LENGTH_FIELD, MIN_CHUNK_STREAM_ID, RtmpMessage,
};

/// Splits outgoing messages into chunks of the configured size.
#[derive(Debug, Clone)]
pub struct ChunkEncoder {
    chunk_size: u32,
}

impl Default for ChunkEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkEncoder {
    /// An encoder at the default chunk size of 128 bytes.
    pub fn new() -> Self {
        Self { chunk_size: DEFAULT_CHUNK_SIZE }
    }

    /// The outgoing chunk size in force.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Changes the outgoing chunk size. Send a Set Chunk Size message (encoded at the old
    /// size) before encoding anything at the new one.
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkError> {
        if size == 0 || size > MAX_CHUNK_SIZE_FIELD {
            return Err(ChunkError::InvalidChunkSize(size));
        }
        self.chunk_size = size;
        Ok(())
    }

    /// Appends `message` as chunks to `out`.
    pub fn encode(&self, message: &RtmpMessage, out: &mut BytesMut) -> Result<(), ChunkError> {
        let chunk_stream_id = message.chunk_stream_id;
        if !(MIN_CHUNK_STREAM_ID..=MAX_CHUNK_STREAM_ID).contains(&chunk_stream_id) {
            return Err(ChunkError::InvalidChunkStreamId(chunk_stream_id));
        }
        let length = u32::try_from(message.payload.len())
            .ok()
            .filter(|length| *length <= MAX_MESSAGE_LENGTH_FIELD)
            .ok_or(ChunkError::MessageTooLongToEncode(message.payload.len()))?;
        let extended = message.timestamp >= EXTENDED_TIMESTAMP_MARKER;
        let timestamp_field = if extended { EXTENDED_TIMESTAMP_MARKER } else { message.timestamp };
        let chunk_size = usize::try_from(self.chunk_size).unwrap_or(usize::MAX);

        put_basic_header(out, 0, chunk_stream_id);
        put_u24(out, timestamp_field);
        put_u24(out, length);
        out.put_u8(message.type_id);
        out.put_u32_le(message.stream_id);
        if extended {
            out.put_u32(message.timestamp);
        }
        let mut chunks = message.payload.chunks(chunk_size);
        if let Some(first) = chunks.next() {
            out.put_slice(first);
        }
        for chunk in chunks {
            put_basic_header(out, 3, chunk_stream_id);
            if extended {
                out.put_u32(message.timestamp);
            }
            out.put_slice(chunk);
        }
        Ok(())
    }
}

fn put_basic_header(out: &mut BytesMut, format: u8, chunk_stream_id: u32) {
    let format_bits = format << 6;
    match chunk_stream_id {
        0..=63 => out.put_u8(format_bits | chunk_stream_id as u8),
        64..=319 => {
            out.put_u8(format_bits);
            out.put_u8((chunk_stream_id - 64) as u8);
        }
        _ => {
            let offset = chunk_stream_id - 64;
            out.put_u8(format_bits | 1);
            out.put_u8((offset & 0xFF) as u8);
            out.put_u8(((offset >> 8) & 0xFF) as u8);
        }
    }
}

fn put_u24(out: &mut BytesMut, value: u32) {
    let [_, high, middle, low] = value.to_be_bytes();
    out.put_slice(&[high, middle, low]);
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::super::{ChunkDecoder, ChunkLimits};
    use super::*;

    fn message(chunk_stream_id: u32, timestamp: u32, payload: &[u8]) -> RtmpMessage {
        RtmpMessage { chunk_stream_id, timestamp, type_id: 9, stream_id: 1, payload: Bytes::copy_from_slice(payload) }
    }

    #[test]
    fn single_chunk_has_type0_header() {
        let mut out = BytesMut::new();
        ChunkEncoder::new().encode(&message(3, 0x01_0203, b"ab"), &mut out).unwrap();
        assert_eq!(&out[..], &[0x03, 0x01, 0x02, 0x03, 0, 0, 2, 9, 1, 0, 0, 0, b'a', b'b']);
    }

    #[test]
    fn long_message_continues_with_type3_chunks() {
        let mut encoder = ChunkEncoder::new();
        encoder.set_chunk_size(4).unwrap();
        let mut out = BytesMut::new();
        encoder.encode(&message(4, 10, b"0123456789"), &mut out).unwrap();
        let expected: Vec<u8> =
            [&[0x04, 0, 0, 10, 0, 0, 10, 9, 1, 0, 0, 0][..], b"0123", &[0xC4], b"4567", &[0xC4], b"89"].concat();
        assert_eq!(&out[..], &expected[..]);
    }

    #[test]
    fn extended_timestamp_is_repeated_on_continuations() {
        let mut encoder = ChunkEncoder::new();
        encoder.set_chunk_size(2).unwrap();
        let mut out = BytesMut::new();
        encoder.encode(&message(5, 0x0100_0000, b"abc"), &mut out).unwrap();
        let expected: Vec<u8> =
            [&[0x05, 0xFF, 0xFF, 0xFF, 0, 0, 3, 9, 1, 0, 0, 0, 0x01, 0, 0, 0][..], b"ab", &[0xC5, 0x01, 0, 0, 0], b"c"]
                .concat();
        assert_eq!(&out[..], &expected[..]);
    }

    #[test]
    fn basic_header_forms() {
        for (chunk_stream_id, expected) in [
            (63u32, vec![0x3F]),
            (64, vec![0x00, 0x00]),
            (319, vec![0x00, 0xFF]),
            (320, vec![0x01, 0x00, 0x01]),
            (65_599, vec![0x01, 0xFF, 0xFF]),
        ] {
            let mut out = BytesMut::new();
            ChunkEncoder::new().encode(&message(chunk_stream_id, 0, b""), &mut out).unwrap();
            assert_eq!(&out[..expected.len()], &expected[..], "chunk stream {chunk_stream_id}");
        }
    }

    #[test]
    fn invalid_ids_and_sizes_are_errors() {
        let mut out = BytesMut::new();
        let encoder = ChunkEncoder::new();
        assert_eq!(encoder.encode(&message(1, 0, b""), &mut out), Err(ChunkError::InvalidChunkStreamId(1)));
        assert_eq!(encoder.encode(&message(65_600, 0, b""), &mut out), Err(ChunkError::InvalidChunkStreamId(65_600)));
        assert_eq!(ChunkEncoder::new().set_chunk_size(0), Err(ChunkError::InvalidChunkSize(0)));
        assert_eq!(ChunkEncoder::new().set_chunk_size(0x8000_0000), Err(ChunkError::InvalidChunkSize(0x8000_0000)));
    }

    #[test]
    fn decoder_reads_what_encoder_writes() {
        let mut encoder = ChunkEncoder::new();
        encoder.set_chunk_size(7).unwrap();
        let mut decoder = ChunkDecoder::new(ChunkLimits::default());
        decoder.set_chunk_size(7).unwrap();
        let originals = [message(6, 5, &[7u8; 30]), message(320, 0x0200_0000, &[1u8; 15]), message(6, 40, b"")];
        let mut wire = BytesMut::new();
        for original in &originals {
            encoder.encode(original, &mut wire).unwrap();
        }
        for original in &originals {
            assert_eq!(decoder.decode(&mut wire).unwrap().as_ref(), Some(original));
        }
        assert!(wire.is_empty());
    }
}
