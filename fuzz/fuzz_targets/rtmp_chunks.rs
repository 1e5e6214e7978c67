//! The chunk stream decoder under its limits: never a panic, and no message longer than
//! the limit announces.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use livestream_protocol::rtmp::chunk::{ChunkDecoder, ChunkLimits};

fuzz_target!(|data: &[u8]| {
    let Some((&step, data)) = data.split_first() else { return };
    let limits = ChunkLimits { max_message_size: 64 * 1024, max_pending_bytes: 256 * 1024, ..ChunkLimits::default() };
    let mut decoder = ChunkDecoder::new(limits);
    let mut input = BytesMut::new();
    for piece in data.chunks(usize::from(step).max(1)) {
        input.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut input) {
                Ok(Some(message)) => {
                    assert!(message.payload.len() <= limits.max_message_size as usize);
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
