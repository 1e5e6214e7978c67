//! Byte-level chunk decoding tests.

use bytes::BytesMut;

use super::*;
use crate::rtmp::chunk::ChunkError;

fn decoder() -> ChunkDecoder {
    ChunkDecoder::new(ChunkLimits::default())
}

/// Decodes every complete message in `bytes`, asserting that nothing is left over.
fn decode_all(decoder: &mut ChunkDecoder, bytes: &[u8]) -> Vec<RtmpMessage> {
    let mut input = BytesMut::from(bytes);
    let mut messages = Vec::new();
    while let Some(message) = decoder.decode(&mut input).unwrap() {
        messages.push(message);
    }
    assert!(input.is_empty(), "unconsumed bytes: {:?}", &input[..]);
    messages
}

fn timestamps(messages: &[RtmpMessage]) -> Vec<u32> {
    messages.iter().map(|message| message.timestamp).collect()
}

#[test]
fn type0_single_chunk_message() {
    let bytes = [0x03, 0x00, 0x00, 0x64, 0x00, 0x00, 0x03, 0x14, 0x01, 0x00, 0x00, 0x00, b'a', b'b', b'c'];
    let messages = decode_all(&mut decoder(), &bytes);
    assert_eq!(
        messages,
        vec![RtmpMessage {
            chunk_stream_id: 3,
            timestamp: 100,
            type_id: 20,
            stream_id: 1,
            payload: bytes::Bytes::from_static(b"abc")
        }]
    );
}

#[test]
fn type3_continuation_reassembles_a_long_message() {
    let payload: Vec<u8> = (0..200u8).collect();
    let mut bytes = vec![0x04, 0x00, 0x00, 0x05, 0x00, 0x00, 200, 0x09, 0x01, 0x00, 0x00, 0x00];
    bytes.extend_from_slice(&payload[..128]);
    bytes.push(0xC4);
    bytes.extend_from_slice(&payload[128..]);
    let messages = decode_all(&mut decoder(), &bytes);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].timestamp, 5, "a continuation chunk does not advance the timestamp");
    assert_eq!(&messages[0].payload[..], &payload[..]);
}

#[test]
fn type1_and_type2_headers_add_deltas() {
    let bytes = [
        0x06, 0x00, 0x03, 0xE8, 0x00, 0x00, 0x01, 0x08, 0x01, 0x00, 0x00, 0x00, 0xAA, // type 0, ts 1000, audio
        0x46, 0x00, 0x00, 0x17, 0x00, 0x00, 0x02, 0x09, 0xBB, 0xBB, // type 1, delta 23, 2 bytes, video
        0x86, 0x00, 0x00, 0x15, 0xCC, 0xCC, // type 2, delta 21, same length and type
    ];
    let messages = decode_all(&mut decoder(), &bytes);
    assert_eq!(timestamps(&messages), vec![1000, 1023, 1044]);
    assert_eq!(messages.iter().map(|m| m.type_id).collect::<Vec<_>>(), vec![8, 9, 9]);
    assert!(messages.iter().all(|m| m.stream_id == 1), "types 1 and 2 keep the message stream id");
    assert_eq!(&messages[2].payload[..], &[0xCC, 0xCC]);
}

#[test]
fn type3_starting_a_new_message_advances_by_the_previous_delta() {
    let bytes = [
        0x04, 0x00, 0x00, 0x0A, 0x00, 0x00, 0x02, 0x09, 0x01, 0x00, 0x00, 0x00, 0xAA, 0xAA, // type 0, ts 10
        0x44, 0x00, 0x00, 0x28, 0x00, 0x00, 0x02, 0x09, 0xBB, 0xBB, // type 1, delta 40
        0xC4, 0xCC, 0xCC, // type 3, new message
        0xC4, 0xDD, 0xDD, // type 3, new message
    ];
    let messages = decode_all(&mut decoder(), &bytes);
    assert_eq!(timestamps(&messages), vec![10, 50, 90, 130]);
    assert_eq!(&messages[3].payload[..], &[0xDD, 0xDD]);
}

#[test]
fn type3_right_after_type0_uses_its_timestamp_as_delta() {
    let bytes = [
        0x04, 0x00, 0x00, 0x21, 0x00, 0x00, 0x01, 0x08, 0x01, 0x00, 0x00, 0x00, 0x01, // type 0, ts 33
        0xC4, 0x02, // type 3, new message: delta 33
    ];
    assert_eq!(timestamps(&decode_all(&mut decoder(), &bytes)), vec![33, 66]);
}

#[test]
fn two_and_three_byte_basic_headers() {
    let bytes = [
        0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x01, 0x08, 0x00, 0x00, 0x00, 0x00, 0x11, // csid 64
        0x01, 0xFF, 0xFF, 0x00, 0x00, 0x02, 0x00, 0x00, 0x01, 0x08, 0x00, 0x00, 0x00, 0x00, 0x22, // csid 65599
        0x40, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x01, 0x08, 0x33, // type 1 on csid 64
    ];
    let messages = decode_all(&mut decoder(), &bytes);
    assert_eq!(messages.iter().map(|m| m.chunk_stream_id).collect::<Vec<_>>(), vec![64, 65_599, 64]);
    assert_eq!(timestamps(&messages), vec![1, 2, 6]);
}

#[test]
fn interleaved_chunk_streams_reassemble_independently() {
    let mut decoder = decoder();
    decoder.set_chunk_size(2).unwrap();
    let bytes = [
        0x04, 0, 0, 1, 0, 0, 3, 9, 1, 0, 0, 0, b'v', b'1', // video, first chunk
        0x05, 0, 0, 2, 0, 0, 3, 8, 1, 0, 0, 0, b'a', b'1', // audio, first chunk
        0xC4, b'v', // video complete
        0xC5, b'a', // audio complete
    ];
    let messages = decode_all(&mut decoder, &bytes);
    assert_eq!(messages.len(), 2);
    assert_eq!((&messages[0].payload[..], messages[0].chunk_stream_id), (&b"v1v"[..], 4));
    assert_eq!((&messages[1].payload[..], messages[1].chunk_stream_id), (&b"a1a"[..], 5));
}

#[test]
fn extended_timestamp_in_type0() {
    let bytes = [0x04, 0xFF, 0xFF, 0xFF, 0, 0, 1, 9, 1, 0, 0, 0, 0x01, 0x00, 0x00, 0x00, 0xAB];
    let messages = decode_all(&mut decoder(), &bytes);
    assert_eq!(timestamps(&messages), vec![0x0100_0000]);
    assert_eq!(&messages[0].payload[..], &[0xAB]);
}

#[test]
fn extended_timestamp_repeated_in_type3_continuation() {
    let mut decoder = decoder();
    decoder.set_chunk_size(2).unwrap();
    let bytes = [
        0x04, 0xFF, 0xFF, 0xFF, 0, 0, 4, 9, 1, 0, 0, 0, 0x01, 0x00, 0x00, 0x00, 0x0A, 0x0B, // first chunk
        0xC4, 0x01, 0x00, 0x00, 0x00, 0x0C, 0x0D, // continuation repeats the extended field
    ];
    let messages = decode_all(&mut decoder, &bytes);
    assert_eq!(timestamps(&messages), vec![0x0100_0000]);
    assert_eq!(&messages[0].payload[..], &[0x0A, 0x0B, 0x0C, 0x0D]);
}

#[test]
fn extended_timestamp_omitted_in_type3_continuation_is_tolerated() {
    let mut decoder = decoder();
    decoder.set_chunk_size(4).unwrap();
    let bytes = [
        0x04, 0xFF, 0xFF, 0xFF, 0, 0, 8, 9, 1, 0, 0, 0, 0x01, 0x00, 0x00, 0x00, 1, 2, 3, 4, // first chunk
        0xC4, 5, 6, 7, 8, // continuation without the extended field
    ];
    let messages = decode_all(&mut decoder, &bytes);
    assert_eq!(&messages[0].payload[..], &[1, 2, 3, 4, 5, 6, 7, 8]);
}

#[test]
fn extended_delta_in_type1_and_type2() {
    let bytes = [
        0x04, 0x00, 0x00, 0x0A, 0, 0, 1, 9, 1, 0, 0, 0, 0x01, // type 0, ts 10
        0x44, 0xFF, 0xFF, 0xFF, 0, 0, 1, 9, 0x01, 0x00, 0x00, 0x00, 0x02, // type 1, extended delta 2^24
        0x84, 0xFF, 0xFF, 0xFF, 0x02, 0x00, 0x00, 0x00, 0x03, // type 2, extended delta 2^25
    ];
    let messages = decode_all(&mut decoder(), &bytes);
    assert_eq!(timestamps(&messages), vec![10, 10 + 0x0100_0000, 10 + 0x0100_0000 + 0x0200_0000]);
    assert_eq!(messages.iter().map(|m| m.payload[0]).collect::<Vec<_>>(), vec![1, 2, 3]);
}

#[test]
fn type3_new_message_after_extended_delta_repeats_the_field() {
    let bytes = [
        0x04, 0x00, 0x00, 0x00, 0, 0, 1, 9, 1, 0, 0, 0, 0x01, // type 0, ts 0
        0x84, 0xFF, 0xFF, 0xFF, 0x01, 0x00, 0x00, 0x00, 0x02, // type 2, extended delta 2^24
        0xC4, 0x01, 0x00, 0x00, 0x00, 0x03, // type 3 new message, repeats the extended delta
    ];
    let messages = decode_all(&mut decoder(), &bytes);
    assert_eq!(timestamps(&messages), vec![0, 0x0100_0000, 0x0200_0000]);
    assert_eq!(&messages[2].payload[..], &[0x03]);
}

#[test]
fn timestamps_wrap_around() {
    let bytes = [
        0x04, 0xFF, 0xFF, 0xFF, 0, 0, 1, 9, 1, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xF0, 0x01, // ts 2^32 - 16
        0x84, 0x00, 0x00, 0x20, 0x02, // delta 32
    ];
    assert_eq!(timestamps(&decode_all(&mut decoder(), &bytes)), vec![0xFFFF_FFF0, 16]);
}

#[test]
fn chunk_size_change_between_messages() {
    let mut decoder = decoder();
    let first = decode_all(&mut decoder, &[0x04, 0, 0, 0, 0, 0, 2, 9, 1, 0, 0, 0, 1, 2]);
    assert_eq!(first.len(), 1);
    decoder.set_chunk_size(300).unwrap();
    let mut bytes = vec![0x04, 0, 0, 1, 0, 0x01, 0x2C, 9, 1, 0, 0, 0];
    bytes.extend_from_slice(&[9u8; 300]);
    let second = decode_all(&mut decoder, &bytes);
    assert_eq!(second[0].payload.len(), 300, "300 bytes arrive in one chunk after the change");
}

#[test]
fn byte_by_byte_input_gives_the_same_messages() {
    let bytes = [
        0x04, 0x00, 0x00, 0x0A, 0x00, 0x00, 0x02, 0x09, 0x01, 0x00, 0x00, 0x00, 0xAA, 0xAA, //
        0x44, 0x00, 0x00, 0x28, 0x00, 0x00, 0x02, 0x09, 0xBB, 0xBB, //
        0xC4, 0xCC, 0xCC,
    ];
    let mut decoder = decoder();
    let mut input = BytesMut::new();
    let mut messages = Vec::new();
    for byte in bytes {
        input.extend_from_slice(&[byte]);
        while let Some(message) = decoder.decode(&mut input).unwrap() {
            messages.push(message);
        }
    }
    assert_eq!(timestamps(&messages), vec![10, 50, 90]);
}

#[test]
fn set_chunk_size_limits() {
    let mut decoder = ChunkDecoder::new(ChunkLimits { max_chunk_size: 4096, ..ChunkLimits::default() });
    assert_eq!(decoder.set_chunk_size(4096), Ok(()));
    assert_eq!(decoder.set_chunk_size(4097), Err(ChunkError::ChunkSizeTooLarge { requested: 4097, max: 4096 }));
    assert_eq!(decoder.set_chunk_size(0), Err(ChunkError::InvalidChunkSize(0)));
    assert_eq!(decoder.set_chunk_size(0x8000_0000), Err(ChunkError::InvalidChunkSize(0x8000_0000)));
    assert_eq!(decoder.chunk_size(), 4096);
}

#[test]
fn message_header_above_max_message_size_is_rejected() {
    let mut decoder = ChunkDecoder::new(ChunkLimits { max_message_size: 1000, ..ChunkLimits::default() });
    let mut input = BytesMut::from(&[0x04, 0, 0, 0, 0, 0x03, 0xE9, 9, 1, 0, 0, 0][..]);
    assert_eq!(decoder.decode(&mut input), Err(ChunkError::MessageTooLarge { length: 1001, max: 1000 }));
}

#[test]
fn too_many_chunk_streams_is_rejected() {
    let mut decoder = ChunkDecoder::new(ChunkLimits { max_chunk_streams: 2, ..ChunkLimits::default() });
    let mut input = BytesMut::from(
        &[
            0x04, 0, 0, 0, 0, 0, 0, 9, 1, 0, 0, 0, 0x05, 0, 0, 0, 0, 0, 0, 9, 1, 0, 0, 0, 0x06, 0, 0, 0, 0, 0, 0, 9, 1,
            0, 0, 0,
        ][..],
    );
    assert!(decoder.decode(&mut input).unwrap().is_some());
    assert!(decoder.decode(&mut input).unwrap().is_some());
    assert_eq!(decoder.decode(&mut input), Err(ChunkError::TooManyChunkStreams { max: 2 }));
}

#[test]
fn compressed_header_on_unknown_chunk_stream_is_rejected() {
    for format in 1..=3u8 {
        let mut input = BytesMut::from(&[(format << 6) | 7, 0, 0, 0, 0, 0, 1, 9, 0][..]);
        assert_eq!(decoder().decode(&mut input), Err(ChunkError::MissingPreviousHeader { chunk_stream_id: 7, format }));
    }
}

#[test]
fn new_header_inside_an_incomplete_message_is_rejected() {
    let mut decoder = decoder();
    decoder.set_chunk_size(2).unwrap();
    let mut input = BytesMut::from(&[0x04, 0, 0, 0, 0, 0, 4, 9, 1, 0, 0, 0, 1, 2, 0x84, 0, 0, 1, 3, 4][..]);
    assert_eq!(decoder.decode(&mut input), Err(ChunkError::HeaderInsideMessage { chunk_stream_id: 4 }));
}

#[test]
fn pending_bytes_are_bounded() {
    let limits = ChunkLimits { max_pending_bytes: 5, ..ChunkLimits::default() };
    let mut decoder = ChunkDecoder::new(limits);
    decoder.set_chunk_size(4).unwrap();
    let mut input = BytesMut::from(
        &[0x04, 0, 0, 0, 0, 0, 9, 9, 1, 0, 0, 0, 1, 2, 3, 4, 0x05, 0, 0, 0, 0, 0, 9, 9, 1, 0, 0, 0, 1, 2, 3, 4][..],
    );
    assert_eq!(decoder.decode(&mut input), Err(ChunkError::PendingBytesExceeded { max: 5 }));
}

#[test]
fn abort_discards_the_incomplete_message() {
    let mut decoder = decoder();
    decoder.set_chunk_size(2).unwrap();
    let mut input = BytesMut::from(&[0x04, 0, 0, 5, 0, 0, 4, 9, 1, 0, 0, 0, 1, 2][..]);
    assert_eq!(decoder.decode(&mut input).unwrap(), None);
    decoder.abort(4);
    // A type 3 chunk now starts a new message instead of continuing the aborted one.
    let messages = decode_all(&mut decoder, &[0xC4, 7, 8, 0xC4, 9, 10]);
    assert_eq!(messages.len(), 1);
    assert_eq!(&messages[0].payload[..], &[7, 8, 9, 10]);
    assert_eq!(messages[0].timestamp, 10, "the new message advances by the type 0 delta");
}

#[test]
fn arbitrary_bytes_never_panic() {
    let mut seed: u64 = 0x1234_5678_9ABC_DEF0;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut errors = 0;
    for _ in 0..2000 {
        let length = (next() % 64) as usize;
        let bytes: Vec<u8> = (0..length).map(|_| next() as u8).collect();
        let mut decoder = ChunkDecoder::new(ChunkLimits { max_message_size: 4096, ..ChunkLimits::default() });
        let mut input = BytesMut::from(&bytes[..]);
        loop {
            match decoder.decode(&mut input) {
                Ok(Some(_)) => continue,
                Ok(None) => break,
                Err(_) => {
                    errors += 1;
                    break;
                }
            }
        }
    }
    assert!(errors > 0, "random input should hit at least one error path");
}
