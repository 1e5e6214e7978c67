//! A live MPEG-TS turned into FLV tags (SRT ingest), fed in pieces of the size the first
//! byte gives: never a panic, and no tag larger than FLV can carry.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livestream_protocol::media::flv::MAX_TAG_BODY_LEN;
use livestream_protocol::media::ts_to_flv::TsToFlv;

fuzz_target!(|data: &[u8]| {
    let Some((&step, data)) = data.split_first() else { return };
    let mut converter = TsToFlv::new();
    for piece in data.chunks(usize::from(step).max(1) * 7) {
        if converter.push(piece).is_err() {
            return;
        }
        while let Some(tag) = converter.next_tag() {
            assert!(tag.data.len() <= MAX_TAG_BODY_LEN);
        }
    }
    if converter.finish().is_ok() {
        while let Some(tag) = converter.next_tag() {
            assert!(tag.data.len() <= MAX_TAG_BODY_LEN);
        }
    }
});
