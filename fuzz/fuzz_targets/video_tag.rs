//! Video tag bodies, legacy and Enhanced RTMP (ModEx blocks, multitrack packets), and the
//! configuration records they carry: AVC, HEVC (`hvcC` and the SPS inside it) and AV1
//! (`av1C` and its sequence header OBU), read from a tag body and on their own: never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livestream_protocol::media::av1::Av1Config;
use livestream_protocol::media::h264::AvcDecoderConfig;
use livestream_protocol::media::hevc::{self, HevcDecoderConfig};
use livestream_protocol::media::video_tag::{VideoCodec, VideoPacket, VideoPacketKind};

fn records(codec: VideoCodec, record: &[u8]) {
    match codec {
        VideoCodec::Avc => {
            if let Ok(config) = AvcDecoderConfig::parse(record) {
                let _ = config.sps_info();
            }
        }
        VideoCodec::Hevc => {
            if let Ok(config) = HevcDecoderConfig::parse(record) {
                let _ = config.codec_string("hvc1");
                let _ = config.picture_size();
            }
        }
        VideoCodec::Av1 => {
            if let Ok(config) = Av1Config::parse(record) {
                let _ = config.codec_string();
                let _ = config.picture_size();
            }
        }
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(packet) = VideoPacket::parse(data) {
        assert!(packet.payload.len() <= data.len());
        if packet.kind == VideoPacketKind::SequenceStart {
            records(packet.codec, packet.payload);
        }
        let _ = packet.codec.name();
    }
    for codec in [VideoCodec::Hevc, VideoCodec::Av1] {
        records(codec, data);
    }
    let _ = hevc::sps_picture_size(data);
});
