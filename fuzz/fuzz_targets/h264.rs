//! H.264: the AVC decoder configuration record and the SPS inside it, and a bare SPS NAL
//! unit: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livestream_protocol::media::h264::{self, AvcDecoderConfig};

fuzz_target!(|data: &[u8]| {
    if let Ok(config) = AvcDecoderConfig::parse(data) {
        if let Ok(info) = config.sps_info() {
            let _ = info.codec_string();
        }
    }
    if let Ok(info) = h264::parse_sps(data) {
        let _ = info.codec_string();
    }
});
