//! The media playlist parser used to resume a stream from storage: never a panic, and
//! sequence numbers that only go up.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livestream_protocol::playlist::parse_media_playlist;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(playlist) = parse_media_playlist(&text) {
        for pair in playlist.segments.windows(2) {
            assert!(pair[0].sequence < pair[1].sequence, "sequence numbers go up");
        }
    }
});
