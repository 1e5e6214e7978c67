//! Fragmented MP4 as ffmpeg's pipe delivers it, in pieces: the box reader, the init
//! segment and fragments: never a panic, and no more buffered than was pushed.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use livestream_protocol::media::codecs;
use livestream_protocol::media::fmp4::{FragmentReader, InitSegment};

fuzz_target!(|data: &[u8]| {
    let Some((&step, data)) = data.split_first() else { return };
    let _ = InitSegment::parse(Bytes::copy_from_slice(data));
    if let Ok(found) = codecs::codecs_from_init_segment(data) {
        let _ = found.to_string();
    }
    let mut reader = FragmentReader::new();
    let mut pushed = 0;
    for piece in data.chunks(usize::from(step).max(1) * 16) {
        reader.push(piece);
        pushed += piece.len();
        loop {
            match reader.next_piece() {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
        assert!(reader.buffered() <= pushed);
    }
});
