//! FLV files and tags: never a panic; every tag read encodes back, and the sequence
//! header checks accept any body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livestream_protocol::media::flv::{self, FlvReader, FlvTagKind};

fuzz_target!(|data: &[u8]| {
    let Some((&step, data)) = data.split_first() else { return };
    let mut reader = FlvReader::new();
    for piece in data.chunks(usize::from(step).max(1) * 8) {
        reader.push(piece);
        loop {
            match reader.next_tag() {
                Ok(Some(tag)) => {
                    let _ = tag.encode();
                    let _ = tag.is_sequence_header();
                    let _ = tag.avc_decoder_configuration();
                    match tag.kind {
                        FlvTagKind::Video => {
                            let _ = flv::is_keyframe(&tag.data);
                            let _ = flv::is_video_sequence_header(&tag.data);
                        }
                        FlvTagKind::Audio => {
                            let _ = flv::is_aac_sequence_header(&tag.data);
                        }
                        _ => {}
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
