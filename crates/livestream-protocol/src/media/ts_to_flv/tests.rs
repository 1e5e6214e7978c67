//! The fixtures are ffmpeg's own output (`-f lavfi -i testsrc2=size=64x36:rate=10 -f lavfi
//! -i sine=frequency=440:sample_rate=44100 -t 1 -c:v libx264 -profile:v high -bf 2 -g 5
//! -c:a aac -b:a 32k -ac 1 -f mpegts`, bit-exact), the second with `-output_ts_offset
//! 95442.5`, so that its 33-bit clock wraps within the first frames, the third with
//! `-c:v libx265 -x265-params bframes=2:keyint=5:min-keyint=5:scenecut=0`.

use super::*;
use crate::media::adts::tests::adts_frame;
use crate::media::flv::{AacPacket, aac_packet};
use crate::media::h264::AvcDecoderConfig;
use crate::media::hevc::HevcDecoderConfig;
use crate::media::mpegts::TS_PACKET_SIZE;
use crate::media::mpegts::tests::{number, packetize, pes_with_times, section};
use crate::media::video_tag::{VideoCodec, VideoPacket, VideoPacketKind};

const FFMPEG_TS: &[u8] = include_bytes!("h264-aac.ts");
const FFMPEG_TS_WRAPPING: &[u8] = include_bytes!("h264-aac-wrap.ts");
const FFMPEG_HEVC_TS: &[u8] = include_bytes!("hevc-aac.ts");

fn convert(ts: &[u8], chunk: usize) -> Result<Vec<FlvTag>, TsToFlvError> {
    let mut converter = TsToFlv::new();
    let mut tags = Vec::new();
    for piece in ts.chunks(chunk.max(1)) {
        converter.push(piece)?;
        tags.extend(std::iter::from_fn(|| converter.next_tag()));
    }
    converter.finish()?;
    tags.extend(std::iter::from_fn(|| converter.next_tag()));
    Ok(tags)
}

fn of_kind(tags: &[FlvTag], kind: FlvTagKind) -> Vec<&FlvTag> {
    tags.iter().filter(|tag| tag.kind == kind).collect()
}

#[test]
fn ffmpeg_output_becomes_the_tags_of_an_rtmp_publish() {
    let tags = convert(FFMPEG_TS, 1316).unwrap();
    let first_video = tags.iter().position(|tag| tag.kind == FlvTagKind::Video).unwrap();
    let metadata = tags.iter().position(|tag| tag.kind == FlvTagKind::Script).expect("onMetaData");
    assert!(metadata < first_video, "the metadata comes before the video");
    let audio_config = tags.iter().position(|tag| tag.kind == FlvTagKind::Audio && tag.is_sequence_header());
    let first_frame = tags.iter().position(|tag| tag.kind == FlvTagKind::Video && !tag.is_sequence_header());
    assert!(audio_config < first_frame, "every configuration before the first frame, as RTMP encoders send them");
    let values = amf0::decode_all(&tags[metadata].data).unwrap();
    assert_eq!(values[0].as_str(), Some("onMetaData"));
    let number = |key: &str| values[1].property(key).and_then(Amf0Value::as_number);
    assert_eq!((number("width"), number("height"), number("framerate")), (Some(64.0), Some(36.0), Some(10.0)));
    assert_eq!(number("audiocodecid"), Some(10.0));

    let video = of_kind(&tags, FlvTagKind::Video);
    let header = VideoPacket::parse(&video[0].data).unwrap();
    assert_eq!(header.kind, VideoPacketKind::SequenceStart, "the AVC sequence header first");
    let config = AvcDecoderConfig::parse(header.payload).unwrap();
    let sps = config.sps_info().unwrap();
    assert_eq!((sps.width, sps.height, config.nal_length_size, sps.profile_idc), (64, 36, 4, 100));
    let frames = &video[1..];
    assert_eq!(frames.len(), 10, "one tag per frame");
    let keyframes: Vec<bool> = frames.iter().map(|tag| tag.is_video_keyframe()).collect();
    assert_eq!(keyframes.iter().filter(|k| **k).count(), 2, "an IDR every 5 frames: {keyframes:?}");
    assert!(keyframes[0] && keyframes[5]);
    let mut composition_times = Vec::new();
    for pair in frames.windows(2) {
        assert_eq!(pair[1].timestamp_ms - pair[0].timestamp_ms, 100, "DTS steps of a 10 fps source");
    }
    for frame in frames {
        let packet = VideoPacket::parse(&frame.data).unwrap();
        assert_eq!(packet.kind, VideoPacketKind::CodedFrames);
        composition_times.push(packet.composition_time_ms);
        // Length-prefixed NAL units that fill the body exactly, none of them a parameter
        // set or delimiter.
        let mut rest = packet.payload;
        while !rest.is_empty() {
            let length = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            let nal_type = rest[4] & 0x1f;
            assert!(!(7..=9).contains(&nal_type), "NAL unit type {nal_type} left in a frame");
            rest = &rest[4 + length..];
        }
    }
    assert!(composition_times.iter().all(|cts| *cts >= 0), "{composition_times:?}");
    assert!(composition_times.iter().any(|cts| *cts > 0), "B-frames are shown later than decoded");

    let audio = of_kind(&tags, FlvTagKind::Audio);
    assert_eq!(aac_packet(&audio[0].data), Some(AacPacket::Config(&[0x12, 0x08])), "AAC LC, 44.1 kHz, mono");
    let raw: Vec<&FlvTag> = audio[1..].to_vec();
    assert_eq!(raw.len(), 45, "every AAC frame");
    assert!(raw.iter().all(|tag| matches!(aac_packet(&tag.data), Some(AacPacket::Frame(frame)) if !frame.is_empty())));
    for pair in raw.windows(2) {
        let step = pair[1].timestamp_ms - pair[0].timestamp_ms;
        assert!((22..=24).contains(&step), "1024 samples at 44.1 kHz: {step} ms");
    }
    // The audio starts 14318 - 16408 = -21 ms before the first picture is shown.
    let first_shown = frames[0].timestamp_ms as i64 + i64::from(composition_times[0]);
    assert!((first_shown - raw[0].timestamp_ms as i64 - 23).abs() <= 1, "{first_shown} {}", raw[0].timestamp_ms);
}

#[test]
fn ffmpeg_hevc_becomes_enhanced_rtmp_hvc1_tags() {
    let tags = convert(FFMPEG_HEVC_TS, 1316).unwrap();
    let values = amf0::decode_all(&tags.iter().find(|tag| tag.kind == FlvTagKind::Script).unwrap().data).unwrap();
    let number = |key: &str| values[1].property(key).and_then(Amf0Value::as_number);
    assert_eq!((number("width"), number("height")), (Some(64.0), Some(36.0)));
    assert_eq!(number("videocodecid"), Some(f64::from(u32::from_be_bytes(*b"hvc1"))), "the FourCC");
    let video = of_kind(&tags, FlvTagKind::Video);
    let start = VideoPacket::parse(&video[0].data).unwrap();
    assert!(start.enhanced && start.codec == VideoCodec::Hevc && start.kind == VideoPacketKind::SequenceStart);
    let config = HevcDecoderConfig::parse(start.payload).unwrap();
    assert_eq!((config.picture_size().unwrap(), config.length_size), ((64, 36), 4));
    assert!(config.codec_string("hvc1").starts_with("hvc1.1.6.L"), "{}", config.codec_string("hvc1"));
    let frames: Vec<VideoPacket<'_>> = video[1..].iter().map(|tag| VideoPacket::parse(&tag.data).unwrap()).collect();
    assert_eq!(frames.len(), 10, "one tag per frame");
    assert!(frames.iter().all(|frame| frame.kind == VideoPacketKind::CodedFrames && frame.codec == VideoCodec::Hevc));
    assert!(frames[0].keyframe && frames.iter().filter(|frame| frame.keyframe).count() >= 2);
    assert!(frames.iter().any(|frame| frame.composition_time_ms > 0), "B-frames are shown later than decoded");
    assert!(frames.iter().all(|frame| frame.composition_time_ms >= 0));
    assert!(of_kind(&tags, FlvTagKind::Audio).len() > 40, "the audio as with H.264");
}

#[test]
fn any_chunking_gives_the_same_tags() {
    let whole = convert(FFMPEG_TS, FFMPEG_TS.len()).unwrap();
    for chunk in [1, 7, 188, 1000, 1316] {
        assert_eq!(convert(FFMPEG_TS, chunk).unwrap(), whole, "chunk {chunk}");
    }
}

#[test]
fn a_33_bit_clock_that_wraps_gives_an_unbroken_timeline() {
    assert_eq!(convert(FFMPEG_TS_WRAPPING, 1316).unwrap(), convert(FFMPEG_TS, 1316).unwrap());
    assert_eq!(unwrap(Some((1 << 33) - 10), 5), (1 << 33) + 5, "forward over the wrap");
    assert_eq!(unwrap(Some((1 << 33) + 5), (1 << 33) - 10), (1 << 33) - 10, "a step back over the wrap");
    assert_eq!(unwrap(Some(1000), 900), 900);
    assert_eq!(unwrap(None, 1 << 34), 0, "only 33 bits count");
}

#[test]
fn cut_or_damaged_input_is_an_error_or_less_media_never_a_panic() {
    for end in (0..FFMPEG_TS.len()).step_by(97) {
        let _ = convert(&FFMPEG_TS[..end], 1316);
    }
    let mut damaged = FFMPEG_TS.to_vec();
    let mut state = 0x2545_f491_u32;
    for round in 0..200 {
        // A small deterministic generator: damage a few bytes, never the sync bytes.
        for _ in 0..8 {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let at = state as usize % damaged.len();
            if !at.is_multiple_of(TS_PACKET_SIZE) {
                damaged[at] = (state >> 8) as u8;
            }
        }
        let _ = convert(&damaged, 1 + round * 13);
    }
}

const VIDEO_PID: u16 = 0x100;
const AUDIO_PID: u16 = 0x101;

/// A transport stream with a PAT and a PMT of `streams` (stream type, PID).
fn tables(streams: &[(u8, u16)]) -> Vec<u8> {
    let mut ts = packetize(0, &section(0x00, &[0, 1, 0xf0, 0x00]));
    let mut pmt = vec![0xe1, 0x00, 0xf0, 0x00];
    for (stream_type, pid) in streams {
        pmt.extend_from_slice(&[*stream_type, 0xe0 | (pid >> 8) as u8, *pid as u8, 0xf0, 0x00]);
    }
    ts.extend(packetize(0x1000, &section(0x02, &pmt)));
    ts
}

/// Annex B of the given NAL units.
fn annex_b(units: &[&[u8]]) -> Vec<u8> {
    units.iter().flat_map(|unit| [&[0, 0, 0, 1][..], unit].concat()).collect()
}

/// The SPS of a 320x180 High profile stream from libx264.
const SPS: &[u8] = &[
    0x67, 0x64, 0x00, 0x0c, 0xac, 0xd9, 0x41, 0x41, 0x9f, 0x9f, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00,
    0x03, 0x03, 0x20, 0xf1, 0x42, 0x99, 0x60,
];
const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb];

fn video_pes(pts: u64, units: &[&[u8]]) -> Vec<u8> {
    packetize(VIDEO_PID, &pes_with_times(0xe0, pts, None, &annex_b(units), false))
}

#[test]
fn parameter_sets_that_change_are_sent_again_and_frames_before_them_dropped() {
    let mut ts = tables(&[(STREAM_TYPE_H264, VIDEO_PID)]);
    ts.extend(video_pes(0, &[&[0x41, 1]]));
    ts.extend(video_pes(3600, &[&[9, 0xf0], SPS, PPS, &[0x65, 2]]));
    ts.extend(video_pes(7200, &[&[0x41, 3]]));
    let mut other_pps = PPS.to_vec();
    other_pps[1] ^= 0x01;
    ts.extend(video_pes(10800, &[SPS, &other_pps, &[0x65, 4]]));
    ts.extend(video_pes(14400, &[SPS, &other_pps, &[0x65, 5]]));
    number(&mut ts);
    let tags = convert(&ts, 188).unwrap();
    let kinds: Vec<(FlvTagKind, bool, u32)> =
        tags.iter().map(|tag| (tag.kind, tag.is_sequence_header(), tag.timestamp_ms)).collect();
    assert_eq!(
        kinds,
        vec![
            (FlvTagKind::Script, false, 1040),
            (FlvTagKind::Video, true, 1040),
            (FlvTagKind::Video, false, 1040),
            (FlvTagKind::Video, false, 1080),
            (FlvTagKind::Video, true, 1120),
            (FlvTagKind::Video, false, 1120),
            (FlvTagKind::Video, false, 1160),
        ],
        "a second before the first time stamp is zero; the frame before the SPS is dropped"
    );
    assert_eq!(&tags[2].data[..], &[0x17, 1, 0, 0, 0, 0, 0, 0, 2, 0x65, 2], "IDR: keyframe, no AUD, SPS or PPS");
    assert_eq!(&tags[3].data[..], &[0x27, 1, 0, 0, 0, 0, 0, 0, 2, 0x41, 3]);
    let config = VideoPacket::parse(&tags[4].data).unwrap();
    assert!(config.payload.ends_with(&other_pps), "the new PPS");
    let values = amf0::decode_all(&tags[0].data).unwrap();
    assert_eq!(values[1].property("audiocodecid"), None, "no audio in the program");
}

#[test]
fn audio_frames_follow_each_other_and_a_new_config_is_sent_again() {
    let mut ts = tables(&[(STREAM_TYPE_H264, VIDEO_PID), (STREAM_TYPE_AAC_ADTS, AUDIO_PID)]);
    let frames = [adts_frame(&[1]), adts_frame(&[2]), adts_frame(&[3])].concat();
    ts.extend(packetize(AUDIO_PID, &pes_with_times(0xc0, 90_000, None, &frames, true)));
    let mut mono = adts_frame(&[4]);
    // Channel configuration 1: its high bit (in byte 2) clear, its low bits 01.
    mono[2] &= !0x01;
    mono[3] = (mono[3] & 0x3f) | 0x40;
    ts.extend(packetize(AUDIO_PID, &pes_with_times(0xc0, 90_000 + 3 * 1920, None, &mono, true)));
    number(&mut ts);
    let tags = convert(&ts, 1316).unwrap();
    let audio: Vec<(u32, Option<AacPacket<'_>>)> =
        tags.iter().map(|tag| (tag.timestamp_ms, aac_packet(&tag.data))).collect();
    assert_eq!(
        audio,
        vec![
            (1000, Some(AacPacket::Config(&[0x11, 0x90]))),
            (1000, Some(AacPacket::Frame(&[1]))),
            (1021, Some(AacPacket::Frame(&[2]))),
            (1042, Some(AacPacket::Frame(&[3]))),
            (1064, Some(AacPacket::Config(&[0x11, 0x88]))),
            (1064, Some(AacPacket::Frame(&[4]))),
        ],
        "1024 samples at 48 kHz apart; a change to mono sends the config again"
    );
}

#[test]
fn video_waits_for_late_audio_a_second_at_most() {
    let mut ts = tables(&[(STREAM_TYPE_H264, VIDEO_PID), (STREAM_TYPE_AAC_ADTS, AUDIO_PID)]);
    let tables_len = ts.len();
    for frame in 0..30u64 {
        let units: &[&[u8]] = if frame == 0 { &[SPS, PPS, &[0x65, 1]] } else { &[&[0x41, 2]] };
        ts.extend(video_pes(frame * 3600, units));
    }
    number(&mut ts);
    let mut converter = TsToFlv::new();
    // Ten frames of 40 ms: held, since the program has audio not seen yet.
    converter.push(&ts[..tables_len + 10 * TS_PACKET_SIZE]).unwrap();
    assert_eq!(converter.next_tag(), None, "held while the audio configuration is awaited");
    converter.push(&ts[tables_len + 10 * TS_PACKET_SIZE..]).unwrap();
    let tags: Vec<FlvTag> = std::iter::from_fn(|| converter.next_tag()).collect();
    assert_eq!(tags.len(), 2 + 29, "metadata, configuration and every whole frame, once a second is held");
    assert_eq!((tags[2].timestamp_ms, tags[30].timestamp_ms), (1000, 2120), "in order");
}

#[test]
fn programs_and_packets_it_cannot_take_are_errors() {
    assert_eq!(convert(&tables(&[(STREAM_TYPE_AAC_ADTS, AUDIO_PID)]), 188), Err(TsToFlvError::NoVideo));
    assert_eq!(convert(&tables(&[(0x06, VIDEO_PID)]), 188), Err(TsToFlvError::NoVideo), "private data only");

    let mut no_pts = tables(&[(STREAM_TYPE_H264, VIDEO_PID)]);
    no_pts.extend(packetize(VIDEO_PID, &[0, 0, 1, 0xe0, 0, 0, 0x80, 0, 0, 0, 0, 1, 0x65]));
    assert_eq!(convert(&no_pts, 188), Err(TsToFlvError::NoPts(VIDEO_PID)));

    let mut bad_audio = tables(&[(STREAM_TYPE_H264, VIDEO_PID), (STREAM_TYPE_AAC_ADTS, AUDIO_PID)]);
    bad_audio.extend(packetize(AUDIO_PID, &pes_with_times(0xc0, 0, None, b"not adts", true)));
    assert_eq!(convert(&bad_audio, 188), Err(TsToFlvError::Adts(AdtsError::NoSync)));

    let mut bad_sps = tables(&[(STREAM_TYPE_H264, VIDEO_PID)]);
    bad_sps.extend(video_pes(0, &[&[0x67, 0x64], PPS, &[0x65, 1]]));
    assert!(matches!(convert(&bad_sps, 188), Err(TsToFlvError::H264(_))));

    assert!(matches!(convert(b"GET / HTTP/1.1\r\n\r\n", 1316), Ok(tags) if tags.is_empty()), "too short to judge");
    assert!(matches!(convert(&[b'X'; 400], 1316), Err(TsToFlvError::Ts(TsError::NoSync(_)))));
}
