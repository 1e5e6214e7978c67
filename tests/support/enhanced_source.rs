//! Enhanced RTMP sources for the tests. Debian's ffmpeg 5.1 cannot send HEVC or AV1 over
//! RTMP, so ffmpeg encodes them (libx265, libsvtav1) with AAC into an MP4 file, and this
//! module turns the file's samples into the FLV tags that an Enhanced RTMP encoder (OBS 30
//! and later, ffmpeg 6.1 and later) sends (and H.264 in multitrack packets, as OBS's
//! Enhanced Broadcasting sends it): `onMetaData` with the codec's FourCC, a
//! SequenceStart with the `hvcC` or `av1C` record, then CodedFrames (with the composition
//! time for HEVC), interleaved with AAC by decode time. The MP4 reader walks the sample
//! tables of a plain (not fragmented) file, as ffmpeg's muxer writes it.

use std::path::Path;
use std::process::Command;

use bytes::{Bytes, BytesMut};
use livestream::media::amf0::{self, Amf0Value};
use livestream::media::flv::{FlvTag, FlvTagKind};
use livestream::media::mp4::{self, Mp4Box};
use livestream::media::video_tag::enhanced_body;

use super::process::testenv_bin;

/// The codecs an Enhanced RTMP test source is encoded with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnhancedCodec {
    /// libx265 with B-frames, so coded frames carry composition offsets.
    Hevc,
    /// libsvtav1.
    Av1,
    /// libx264 with B-frames, sent as track 0 of multitrack packets whose track 1 repeats
    /// it, as OBS's Enhanced Broadcasting sends a ladder of H.264 tracks.
    MultitrackAvc,
}

impl EnhancedCodec {
    fn encoder_args(self) -> &'static [&'static str] {
        match self {
            EnhancedCodec::Hevc => &[
                "-c:v",
                "libx265",
                "-preset",
                "ultrafast",
                "-tag:v",
                "hvc1",
                "-x265-params",
                "keyint=25:min-keyint=25:bframes=2:log-level=error",
            ],
            EnhancedCodec::Av1 => &["-c:v", "libsvtav1", "-preset", "12", "-g", "25"],
            EnhancedCodec::MultitrackAvc => &["-c:v", "libx264", "-preset", "veryfast", "-bf", "2", "-g", "25"],
        }
    }

    /// The FourCC of the sample entry, of the Enhanced RTMP header, and of `videocodecid`.
    pub fn fourcc(self) -> &'static [u8; 4] {
        match self {
            EnhancedCodec::Hevc => b"hvc1",
            EnhancedCodec::Av1 => b"av01",
            EnhancedCodec::MultitrackAvc => b"avc1",
        }
    }

    /// The body of a video packet of this source.
    fn body(self, keyframe: bool, packet_type: u8, composition_ms: i32, payload: &[u8]) -> Vec<u8> {
        if self != EnhancedCodec::MultitrackAvc {
            return enhanced_body(self.fourcc(), keyframe, packet_type, composition_ms, payload);
        }
        // The same track twice: IsExHeader, frame type and PacketType Multitrack (6), then
        // AvMultitrackType ManyTracks (1) with the packet type, the shared FourCC, and each
        // track as its id, a 24-bit size and its body.
        let single = enhanced_body(self.fourcc(), keyframe, packet_type, composition_ms, payload);
        let track_body = &single[5..];
        let mut body = vec![(single[0] & 0xF0) | 6, 0x10 | packet_type];
        body.extend_from_slice(self.fourcc());
        for track in [1u8, 0] {
            body.push(track);
            body.extend_from_slice(&(track_body.len() as u32).to_be_bytes()[1..]);
            body.extend_from_slice(track_body);
        }
        body
    }
}

/// `seconds` of a 25 fps test pattern of `size` (`WIDTHxHEIGHT`) with a 440 Hz tone, as an
/// Enhanced RTMP encoder sends it.
pub fn enhanced_tags(dir: &Path, codec: EnhancedCodec, seconds: u32, size: &str) -> Vec<FlvTag> {
    let path = dir.join(format!("source-{}-{size}.mp4", String::from_utf8_lossy(codec.fourcc())));
    let status = Command::new(testenv_bin("ffmpeg"))
        // SVT-AV1 logs its configuration to stderr unless told to report errors only.
        .env("SVT_LOG", "1")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", &format!("testsrc=size={size}:rate=25")])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &seconds.to_string(), "-pix_fmt", "yuv420p"])
        .args(codec.encoder_args())
        .args(["-c:a", "aac", "-b:a", "64k", "-f", "mp4"])
        .arg(&path)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success(), "ffmpeg could not write {}", path.display());
    let file = std::fs::read(&path).expect("the MP4 ffmpeg wrote");
    let tracks = read_tracks(&file);
    let video = tracks.iter().find(|t| matches!(t.config, TrackConfig::Video { .. })).expect("a video track");
    let audio = tracks.iter().find(|t| matches!(t.config, TrackConfig::Audio { .. })).expect("an audio track");
    let TrackConfig::Video { fourcc, record, width, height } = &video.config else { unreachable!() };
    assert_eq!(fourcc, codec.fourcc(), "ffmpeg wrote the sample entry asked for");
    let TrackConfig::Audio { specific_config } = &audio.config else { unreachable!() };

    let mut tags = vec![
        metadata(fourcc, *width, *height),
        FlvTag::new(FlvTagKind::Video, 0, Bytes::from(codec.body(true, 0, 0, record))),
    ];
    let mut asc = vec![0xAF, 0];
    asc.extend_from_slice(specific_config);
    tags.push(FlvTag::new(FlvTagKind::Audio, 0, Bytes::from(asc)));

    let mut media: Vec<FlvTag> = Vec::new();
    for sample in &video.samples {
        let data = &file[sample.offset..sample.offset + sample.size];
        let composition_ms = video.milliseconds(sample.composition_offset) as i32;
        let body = codec.body(sample.sync, 1, composition_ms, data);
        media.push(FlvTag::new(FlvTagKind::Video, video.milliseconds(sample.decode_time) as u32, Bytes::from(body)));
    }
    for sample in &audio.samples {
        let mut body = vec![0xAF, 1];
        body.extend_from_slice(&file[sample.offset..sample.offset + sample.size]);
        media.push(FlvTag::new(FlvTagKind::Audio, audio.milliseconds(sample.decode_time) as u32, Bytes::from(body)));
    }
    // Decode order across the tracks, video first at equal times (a stable sort keeps it).
    media.sort_by_key(|tag| tag.timestamp_ms);
    tags.extend(media);
    tags
}

/// `onMetaData` as OBS sends it for an Enhanced RTMP codec: `videocodecid` is the FourCC
/// read as a big-endian number.
fn metadata(fourcc: &[u8; 4], width: u32, height: u32) -> FlvTag {
    let properties = Amf0Value::EcmaArray(vec![
        ("width".into(), Amf0Value::Number(f64::from(width))),
        ("height".into(), Amf0Value::Number(f64::from(height))),
        ("framerate".into(), Amf0Value::Number(25.0)),
        ("videocodecid".into(), Amf0Value::Number(f64::from(u32::from_be_bytes(*fourcc)))),
        ("audiocodecid".into(), Amf0Value::Number(10.0)),
    ]);
    let mut body = BytesMut::new();
    amf0::encode_all(&[Amf0Value::string("onMetaData"), properties], &mut body);
    FlvTag::new(FlvTagKind::Script, 0, body.freeze())
}

/// What a track's sample entry says.
#[derive(Debug)]
enum TrackConfig {
    Video { fourcc: [u8; 4], record: Vec<u8>, width: u32, height: u32 },
    Audio { specific_config: Vec<u8> },
}

#[derive(Debug)]
struct Sample {
    decode_time: u64,
    composition_offset: i64,
    sync: bool,
    offset: usize,
    size: usize,
}

#[derive(Debug)]
struct TrackSamples {
    timescale: u32,
    config: TrackConfig,
    samples: Vec<Sample>,
}

impl TrackSamples {
    fn milliseconds(&self, ticks: impl Into<i128>) -> i64 {
        (ticks.into() * 1000 / i128::from(self.timescale)) as i64
    }
}

fn read_tracks(file: &[u8]) -> Vec<TrackSamples> {
    let moov = mp4::find_box(file, b"moov").expect("boxes parse").expect("a moov box");
    mp4::boxes(moov)
        .map(|item| item.expect("moov's boxes parse"))
        .filter(|item| &item.box_type == b"trak")
        .filter_map(|trak| read_track(trak.body))
        .collect()
}

fn read_track(trak: &[u8]) -> Option<TrackSamples> {
    let mdia = mp4::descend(trak, &[b"mdia"]).ok()?;
    let mdhd = mp4::descend(mdia, &[b"mdhd"]).ok()?;
    // After version and flags, creation and modification times: 4 bytes each in version
    // 0, 8 in version 1.
    let timescale = u32_at(mdhd, if mdhd[0] == 1 { 20 } else { 12 });
    let stbl = mp4::descend(mdia, &[b"minf", b"stbl"]).ok()?;
    let stsd = mp4::descend(stbl, &[b"stsd"]).ok()?;
    let entry = mp4::sample_entries(stsd).ok()?.next()?.ok()?;
    let config = sample_entry_config(&entry)?;
    let samples = read_samples(stbl);
    Some(TrackSamples { timescale, config, samples })
}

fn sample_entry_config(entry: &Mp4Box<'_>) -> Option<TrackConfig> {
    let children = mp4::sample_entry_children(entry)?;
    match &entry.box_type {
        b"hvc1" | b"av01" | b"avc1" => {
            let record_box: &'static [u8; 4] = match &entry.box_type {
                b"hvc1" => b"hvcC",
                b"av01" => b"av1C",
                _ => b"avcC",
            };
            let record = mp4::find_box(children, record_box).ok()??.to_vec();
            // VisualSampleEntry: width and height at bytes 24..28 of the body.
            let width = u32::from(u16::from_be_bytes([entry.body[24], entry.body[25]]));
            let height = u32::from(u16::from_be_bytes([entry.body[26], entry.body[27]]));
            Some(TrackConfig::Video { fourcc: entry.box_type, record, width, height })
        }
        b"mp4a" => {
            let esds = full_box_body(mp4::find_box(children, b"esds").ok()??);
            Some(TrackConfig::Audio { specific_config: decoder_specific_info(esds)? })
        }
        _ => None,
    }
}

/// The DecoderSpecificInfo (tag 5) inside an ES_Descriptor (tag 3) and its
/// DecoderConfigDescriptor (tag 4): the AAC AudioSpecificConfig.
fn decoder_specific_info(mut data: &[u8]) -> Option<Vec<u8>> {
    loop {
        let (&tag, rest) = data.split_first()?;
        let mut length = 0usize;
        let mut rest = rest;
        loop {
            let (&byte, tail) = rest.split_first()?;
            rest = tail;
            length = (length << 7) | usize::from(byte & 0x7F);
            if byte & 0x80 == 0 {
                break;
            }
        }
        let body = rest.get(..length)?;
        match tag {
            // ES_ID (2), flags (1); no optional fields in ffmpeg's descriptor.
            3 => data = body.get(3..)?,
            // objectTypeIndication, streamType, bufferSize (3), maxBitrate, avgBitrate.
            4 => data = body.get(13..)?,
            5 => return Some(body.to_vec()),
            _ => data = rest.get(length..)?,
        }
    }
}

/// Every sample of a track, from its sample tables.
fn read_samples(stbl: &[u8]) -> Vec<Sample> {
    let table = |name: &'static [u8; 4]| mp4::find_box(stbl, name).expect("stbl's boxes parse").map(full_box_body);
    let sizes: Vec<usize> = {
        let stsz = table(b"stsz").expect("stsz");
        let (uniform, count) = (u32_at(stsz, 0), u32_at(stsz, 4) as usize);
        (0..count).map(|i| if uniform != 0 { uniform } else { u32_at(stsz, 8 + 4 * i) } as usize).collect()
    };
    let count = sizes.len();
    let mut decode_times = Vec::with_capacity(count);
    let stts = table(b"stts").expect("stts");
    let mut time = 0u64;
    for entry in 0..u32_at(stts, 0) as usize {
        let (samples, delta) = (u32_at(stts, 4 + 8 * entry), u32_at(stts, 8 + 8 * entry));
        for _ in 0..samples {
            decode_times.push(time);
            time += u64::from(delta);
        }
    }
    let mut composition_offsets = vec![0i64; count];
    if let Some(ctts) = table(b"ctts") {
        let mut index = 0;
        for entry in 0..u32_at(ctts, 0) as usize {
            let samples = u32_at(ctts, 4 + 8 * entry);
            // Version 1 offsets are signed; ffmpeg writes version 0 unless they go negative.
            let offset = i64::from(u32_at(ctts, 8 + 8 * entry) as i32);
            for _ in 0..samples {
                if let Some(slot) = composition_offsets.get_mut(index) {
                    *slot = offset;
                }
                index += 1;
            }
        }
    }
    let sync: Option<Vec<usize>> = table(b"stss")
        .map(|stss| (0..u32_at(stss, 0) as usize).map(|i| u32_at(stss, 4 + 4 * i) as usize - 1).collect());
    let chunk_offsets: Vec<usize> = match table(b"stco") {
        Some(stco) => (0..u32_at(stco, 0) as usize).map(|i| u32_at(stco, 4 + 4 * i) as usize).collect(),
        None => {
            let co64 = table(b"co64").expect("stco or co64");
            (0..u32_at(co64, 0) as usize)
                .map(|i| ((u64::from(u32_at(co64, 4 + 8 * i)) << 32) | u64::from(u32_at(co64, 8 + 8 * i))) as usize)
                .collect()
        }
    };
    let stsc = table(b"stsc").expect("stsc");
    let runs: Vec<(usize, usize)> = (0..u32_at(stsc, 0) as usize)
        .map(|i| (u32_at(stsc, 4 + 12 * i) as usize, u32_at(stsc, 8 + 12 * i) as usize))
        .collect();
    let mut offsets = Vec::with_capacity(count);
    for (chunk, chunk_offset) in chunk_offsets.iter().enumerate() {
        let per_chunk = runs.iter().rev().find(|(first, _)| *first <= chunk + 1).map_or(0, |(_, n)| *n);
        let mut offset = *chunk_offset;
        for _ in 0..per_chunk {
            if offsets.len() == count {
                break;
            }
            offsets.push(offset);
            offset += sizes[offsets.len() - 1];
        }
    }
    assert_eq!((offsets.len(), decode_times.len()), (count, count), "the sample tables agree on the count");
    (0..count)
        .map(|i| Sample {
            decode_time: decode_times[i],
            composition_offset: composition_offsets[i],
            sync: sync.as_ref().is_none_or(|sync| sync.contains(&i)),
            offset: offsets[i],
            size: sizes[i],
        })
        .collect()
}

fn full_box_body(full_box: &[u8]) -> &[u8] {
    &full_box[4..]
}

fn u32_at(data: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(data[at..at + 4].try_into().expect("four bytes"))
}
