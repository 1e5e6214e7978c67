//! MPEG-TS: the demultiplexer and the codec strings read from a segment: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livestream_protocol::media::{codecs, mpegts};

fuzz_target!(|data: &[u8]| {
    let _ = mpegts::elementary_streams(data);
    if let Ok(found) = codecs::codecs_from_ts_segment(data) {
        let _ = found.to_string();
    }
});
