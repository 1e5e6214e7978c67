//! Chunk stream decoder: basic and message headers, extended timestamps, per-chunk-stream
//! state and message reassembly, within [`ChunkLimits`].

use std::collections::HashMap;

use bytes::{Buf, BytesMut};

use super::{
    ChunkError, ChunkLimits, DEFAULT_CHUNK_SIZE, EXTENDED_TIMESTAMP_MARKER, MAX_CHUNK_SIZE_FIELD, RtmpMessage,
};

/// What the latest type 0, 1 or 2 header of a chunk stream established.
#[derive(Debug, Default)]
struct ChunkStreamState {
    /// Timestamp of the current (or last) message.
    timestamp: u32,
    /// Delta a type 3 header that starts a new message adds. After a type 0 header this is
    /// that header's timestamp, as the specification says.
    timestamp_delta: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
    /// The extended timestamp value, when the latest type 0/1/2 header carried one; type 3
    /// chunks of this chunk stream then repeat it.
    extended_timestamp: Option<u32>,
    /// Payload of the message being reassembled.
    partial: Option<BytesMut>,
}

/// The header fields of one chunk, parsed without consuming input.
#[derive(Debug, Clone, Copy)]
enum MessageHeader {
    /// Type 0: absolute timestamp and everything else.
    Full { timestamp: u32, extended: bool, length: u32, type_id: u8, stream_id: u32 },
    /// Type 1: timestamp delta, length and type; same message stream.
    SameStream { delta: u32, extended: bool, length: u32, type_id: u8 },
    /// Type 2: timestamp delta only.
    DeltaOnly { delta: u32, extended: bool },
    /// Type 3: nothing; continues the current message or repeats the last header.
    Continuation,
}

/// A chunk whose header has been parsed and whose payload is available in full.
#[derive(Debug)]
struct PeekedChunk {
    chunk_stream_id: u32,
    header: MessageHeader,
    header_len: usize,
    payload_len: usize,
    message_length: u32,
}

/// Reassembles RTMP messages from chunk stream bytes.
#[derive(Debug)]
pub struct ChunkDecoder {
    chunk_size: u32,
    limits: ChunkLimits,
    streams: HashMap<u32, ChunkStreamState>,
    pending_bytes: usize,
}

impl ChunkDecoder {
    /// A decoder at the default chunk size of 128 bytes.
    pub fn new(limits: ChunkLimits) -> Self {
        Self { chunk_size: DEFAULT_CHUNK_SIZE, limits, streams: HashMap::new(), pending_bytes: 0 }
    }

    /// The incoming chunk size in force.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Applies a Set Chunk Size from the peer.
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkError> {
        if size == 0 || size > MAX_CHUNK_SIZE_FIELD {
            return Err(ChunkError::InvalidChunkSize(size));
        }
        if size > self.limits.max_chunk_size {
            return Err(ChunkError::ChunkSizeTooLarge { requested: size, max: self.limits.max_chunk_size });
        }
        self.chunk_size = size;
        Ok(())
    }

    /// Applies an Abort Message: drops the incomplete message on `chunk_stream_id`.
    pub fn abort(&mut self, chunk_stream_id: u32) {
        if let Some(partial) = self.streams.get_mut(&chunk_stream_id).and_then(|state| state.partial.take()) {
            self.pending_bytes = self.pending_bytes.saturating_sub(partial.len());
        }
    }

    /// Consumes whole chunks from `input` until a message completes (returned) or `input`
    /// holds no complete chunk (returns `None`, leaving the partial chunk in `input`).
    pub fn decode(&mut self, input: &mut BytesMut) -> Result<Option<RtmpMessage>, ChunkError> {
        loop {
            let Some(chunk) = self.peek_chunk(input)? else {
                return Ok(None);
            };
            if let Some(message) = self.commit_chunk(&chunk, input) {
                return Ok(Some(message));
            }
        }
    }

    /// Parses the next chunk's headers; `None` when `input` does not yet hold the whole chunk.
    fn peek_chunk(&self, input: &[u8]) -> Result<Option<PeekedChunk>, ChunkError> {
        let mut reader = PeekReader::new(input);
        let Some(first) = reader.u8() else { return Ok(None) };
        let format = first >> 6;
        let chunk_stream_id = match first & 0x3F {
            0 => match reader.u8() {
                Some(byte) => 64 + u32::from(byte),
                None => return Ok(None),
            },
            1 => match (reader.u8(), reader.u8()) {
                (Some(low), Some(high)) => 64 + u32::from(low) + 256 * u32::from(high),
                _ => return Ok(None),
            },
            low => u32::from(low),
        };
        let state = self.streams.get(&chunk_stream_id);
        if state.is_none() {
            if format != 0 {
                return Err(ChunkError::MissingPreviousHeader { chunk_stream_id, format });
            }
            if self.streams.len() >= self.limits.max_chunk_streams {
                return Err(ChunkError::TooManyChunkStreams { max: self.limits.max_chunk_streams });
            }
        }
        let in_progress = state.and_then(|state| state.partial.as_ref()).map(BytesMut::len);
        if format != 3 && in_progress.is_some() {
            return Err(ChunkError::HeaderInsideMessage { chunk_stream_id });
        }

        let Some(header) = read_message_header(&mut reader, format, state) else { return Ok(None) };
        let message_length = match header {
            MessageHeader::Full { length, .. } | MessageHeader::SameStream { length, .. } => length,
            MessageHeader::DeltaOnly { .. } | MessageHeader::Continuation => state.map_or(0, |state| state.length),
        };
        if message_length > self.limits.max_message_size {
            return Err(ChunkError::MessageTooLarge { length: message_length, max: self.limits.max_message_size });
        }

        let already_received = in_progress.unwrap_or(0);
        let remaining = usize::try_from(message_length).unwrap_or(usize::MAX).saturating_sub(already_received);
        let chunk_size = usize::try_from(self.chunk_size).unwrap_or(usize::MAX);
        let payload_len = remaining.min(chunk_size);
        let completes = payload_len == remaining;
        if !completes && self.pending_bytes.saturating_add(payload_len) > self.limits.max_pending_bytes {
            return Err(ChunkError::PendingBytesExceeded { max: self.limits.max_pending_bytes });
        }
        let header_len = reader.position;
        if input.len() < header_len.saturating_add(payload_len) {
            return Ok(None);
        }
        Ok(Some(PeekedChunk { chunk_stream_id, header, header_len, payload_len, message_length }))
    }

    /// Applies a peeked chunk: updates the chunk stream state and consumes its bytes.
    fn commit_chunk(&mut self, chunk: &PeekedChunk, input: &mut BytesMut) -> Option<RtmpMessage> {
        let state = self.streams.entry(chunk.chunk_stream_id).or_default();
        let starts_message = state.partial.is_none();
        match chunk.header {
            MessageHeader::Full { timestamp, extended, length, type_id, stream_id } => {
                state.timestamp = timestamp;
                state.timestamp_delta = timestamp;
                state.length = length;
                state.type_id = type_id;
                state.stream_id = stream_id;
                state.extended_timestamp = extended.then_some(timestamp);
            }
            MessageHeader::SameStream { delta, extended, length, type_id } => {
                state.timestamp = state.timestamp.wrapping_add(delta);
                state.timestamp_delta = delta;
                state.length = length;
                state.type_id = type_id;
                state.extended_timestamp = extended.then_some(delta);
            }
            MessageHeader::DeltaOnly { delta, extended } => {
                state.timestamp = state.timestamp.wrapping_add(delta);
                state.timestamp_delta = delta;
                state.extended_timestamp = extended.then_some(delta);
            }
            MessageHeader::Continuation => {
                if starts_message {
                    state.timestamp = state.timestamp.wrapping_add(state.timestamp_delta);
                }
            }
        }
        input.advance(chunk.header_len);
        let payload = input.split_to(chunk.payload_len);
        let message_length = usize::try_from(chunk.message_length).unwrap_or(usize::MAX);

        let complete_payload = match state.partial.take() {
            None if payload.len() == message_length => payload,
            None => {
                self.pending_bytes += payload.len();
                state.partial = Some(payload);
                return None;
            }
            Some(mut partial) => {
                self.pending_bytes += payload.len();
                partial.unsplit(payload);
                if partial.len() < message_length {
                    state.partial = Some(partial);
                    return None;
                }
                self.pending_bytes = self.pending_bytes.saturating_sub(partial.len());
                partial
            }
        };
        Some(RtmpMessage {
            chunk_stream_id: chunk.chunk_stream_id,
            timestamp: state.timestamp,
            type_id: state.type_id,
            stream_id: state.stream_id,
            payload: complete_payload.freeze(),
        })
    }
}

/// Reads the message header (and extended timestamp) for `format`; `None` if incomplete.
fn read_message_header(
    reader: &mut PeekReader<'_>,
    format: u8,
    state: Option<&ChunkStreamState>,
) -> Option<MessageHeader> {
    match format {
        0 => {
            let timestamp_field = reader.u24()?;
            let length = reader.u24()?;
            let type_id = reader.u8()?;
            let stream_id = reader.u32_le()?;
            let (timestamp, extended) = read_timestamp(reader, timestamp_field)?;
            Some(MessageHeader::Full { timestamp, extended, length, type_id, stream_id })
        }
        1 => {
            let delta_field = reader.u24()?;
            let length = reader.u24()?;
            let type_id = reader.u8()?;
            let (delta, extended) = read_timestamp(reader, delta_field)?;
            Some(MessageHeader::SameStream { delta, extended, length, type_id })
        }
        2 => {
            let delta_field = reader.u24()?;
            let (delta, extended) = read_timestamp(reader, delta_field)?;
            Some(MessageHeader::DeltaOnly { delta, extended })
        }
        _ => {
            if let Some(state) = state
                && let Some(extended_value) = state.extended_timestamp
            {
                skip_repeated_extended_timestamp(reader, state, extended_value)?;
            }
            Some(MessageHeader::Continuation)
        }
    }
}

/// Type 3 chunks repeat the extended timestamp of the latest type 0/1/2 header. Some
/// senders omit it, so the four bytes are consumed only when they hold a value the
/// repetition can have: the extended field itself or the message's timestamp.
fn skip_repeated_extended_timestamp(
    reader: &mut PeekReader<'_>,
    state: &ChunkStreamState,
    extended_value: u32,
) -> Option<()> {
    let candidate = reader.peek_u32_be()?;
    let message_timestamp =
        if state.partial.is_some() { state.timestamp } else { state.timestamp.wrapping_add(state.timestamp_delta) };
    if candidate == extended_value || candidate == message_timestamp {
        reader.position += 4;
    }
    Some(())
}

/// Resolves a 24-bit timestamp field, reading the extended field when it is the marker.
fn read_timestamp(reader: &mut PeekReader<'_>, field: u32) -> Option<(u32, bool)> {
    if field == EXTENDED_TIMESTAMP_MARKER { Some((reader.u32_be()?, true)) } else { Some((field, false)) }
}

/// Bounds-checked big-endian reads over a byte slice without consuming it.
struct PeekReader<'a> {
    input: &'a [u8],
    position: usize,
}

impl<'a> PeekReader<'a> {
    fn new(input: &'a [u8]) -> Self {
        Self { input, position: 0 }
    }

    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let bytes = self.peek::<N>()?;
        self.position += N;
        Some(bytes)
    }

    fn peek<const N: usize>(&self) -> Option<[u8; N]> {
        let slice = self.input.get(self.position..self.position.checked_add(N)?)?;
        let mut bytes = [0u8; N];
        bytes.copy_from_slice(slice);
        Some(bytes)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|[byte]| byte)
    }

    fn u24(&mut self) -> Option<u32> {
        self.take::<3>().map(|[a, b, c]| u32::from_be_bytes([0, a, b, c]))
    }

    fn u32_be(&mut self) -> Option<u32> {
        self.take::<4>().map(u32::from_be_bytes)
    }

    fn peek_u32_be(&self) -> Option<u32> {
        self.peek::<4>().map(u32::from_be_bytes)
    }

    fn u32_le(&mut self) -> Option<u32> {
        self.take::<4>().map(u32::from_le_bytes)
    }
}

#[cfg(test)]
mod tests;
