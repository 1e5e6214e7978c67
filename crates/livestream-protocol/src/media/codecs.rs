//! The `CODECS` attribute of a variant (RFC 6381 strings), read from the streams actually
//! produced: an fMP4 init segment (`avcC`, `hvcC`, `av1C`, `esds`) or an MPEG-TS segment (SPS, ADTS).

use std::fmt;

use thiserror::Error;

use super::av1::{Av1Config, Av1Error};
use super::h264::{self, AvcDecoderConfig, H264Error};
use super::hevc::{HevcDecoderConfig, HevcError};
use super::mp4::{self, Mp4Error};
use super::mpegts::{self, TsError};

/// Errors from reading codecs out of a segment.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CodecsError {
    /// The MP4 structure is malformed.
    #[error(transparent)]
    Mp4(#[from] Mp4Error),
    /// The transport stream is malformed.
    #[error(transparent)]
    Ts(#[from] TsError),
    /// The H.264 configuration is malformed.
    #[error(transparent)]
    H264(#[from] H264Error),
    /// The HEVC configuration is malformed.
    #[error(transparent)]
    Hevc(#[from] HevcError),
    /// The AV1 configuration is malformed.
    #[error(transparent)]
    Av1(#[from] Av1Error),
    /// The `esds` descriptors are malformed.
    #[error("malformed esds: {0}")]
    Esds(&'static str),
    /// The H.264 stream holds no SPS.
    #[error("no SPS found in the video stream")]
    NoSps,
    /// The AAC stream does not start with an ADTS header.
    #[error("no ADTS header at the start of the audio stream")]
    NoAdts,
    /// Neither video nor audio was found.
    #[error("no known video or audio stream found")]
    NoStreams,
}

/// The codecs of one variant.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamCodecs {
    /// Video codec, e.g. `avc1.64001f`.
    pub video: Option<String>,
    /// Audio codec, e.g. `mp4a.40.2`.
    pub audio: Option<String>,
}

impl fmt::Display for StreamCodecs {
    /// The attribute value: video then audio, comma separated.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<&str> = self.video.iter().chain(self.audio.iter()).map(String::as_str).collect();
        formatter.write_str(&parts.join(","))
    }
}

/// Reads the codecs of every track from an fMP4 init segment.
pub fn codecs_from_init_segment(init: &[u8]) -> Result<StreamCodecs, CodecsError> {
    let moov = mp4::descend(init, &[b"moov"])?;
    let mut codecs = StreamCodecs::default();
    for item in mp4::boxes(moov) {
        let trak = item?;
        if &trak.box_type != b"trak" {
            continue;
        }
        let stsd = mp4::descend(trak.body, &[b"mdia", b"minf", b"stbl", b"stsd"])?;
        for entry in mp4::sample_entries(stsd)? {
            let entry = entry?;
            let Some(children) = mp4::sample_entry_children(&entry) else { continue };
            match &entry.box_type {
                b"avc1" | b"avc3" | b"encv" if codecs.video.is_none() => {
                    if let Some(avcc) = mp4::find_box(children, b"avcC")? {
                        let config = AvcDecoderConfig::parse(avcc)?;
                        let prefix = if &entry.box_type == b"avc3" { "avc3" } else { "avc1" };
                        let code =
                            h264::avc1_codec_string(config.profile_idc, config.constraint_flags, config.level_idc);
                        codecs.video = Some(code.replacen("avc1", prefix, 1));
                    }
                }
                b"hvc1" | b"hev1" if codecs.video.is_none() => {
                    if let Some(hvcc) = mp4::find_box(children, b"hvcC")? {
                        let entry = if &entry.box_type == b"hev1" { "hev1" } else { "hvc1" };
                        codecs.video = Some(HevcDecoderConfig::parse(hvcc)?.codec_string(entry));
                    }
                }
                b"av01" if codecs.video.is_none() => {
                    if let Some(av1c) = mp4::find_box(children, b"av1C")? {
                        codecs.video = Some(Av1Config::parse(av1c)?.codec_string());
                    }
                }
                b"mp4a" | b"enca" if codecs.audio.is_none() => {
                    if let Some(esds) = mp4::find_box(children, b"esds")? {
                        codecs.audio = Some(mp4a_from_esds(esds)?);
                    }
                }
                _ => {}
            }
        }
    }
    if codecs.video.is_none() && codecs.audio.is_none() {
        return Err(CodecsError::NoStreams);
    }
    Ok(codecs)
}

/// Reads the codecs of the H.264 and AAC streams of an MPEG-TS segment.
pub fn codecs_from_ts_segment(segment: &[u8]) -> Result<StreamCodecs, CodecsError> {
    let mut codecs = StreamCodecs::default();
    for stream in mpegts::elementary_streams(segment)? {
        match stream.stream_type {
            mpegts::STREAM_TYPE_H264 if codecs.video.is_none() => {
                let sps = annex_b_nal_units(&stream.first_payload)
                    .find(|nal| nal.first().is_some_and(|header| header & 0x1f == 7))
                    .ok_or(CodecsError::NoSps)?;
                codecs.video = Some(h264::parse_sps(sps)?.codec_string());
            }
            mpegts::STREAM_TYPE_AAC_ADTS if codecs.audio.is_none() => {
                codecs.audio = Some(mp4a_from_adts(&stream.first_payload)?);
            }
            _ => {}
        }
    }
    if codecs.video.is_none() && codecs.audio.is_none() {
        return Err(CodecsError::NoStreams);
    }
    Ok(codecs)
}

/// The `mp4a.40.N` string from an ADTS header (N is the audio object type).
fn mp4a_from_adts(data: &[u8]) -> Result<String, CodecsError> {
    let (&first, &second) = data.first().zip(data.get(1)).ok_or(CodecsError::NoAdts)?;
    let third = *data.get(2).ok_or(CodecsError::NoAdts)?;
    if first != 0xff || second & 0xf0 != 0xf0 {
        return Err(CodecsError::NoAdts);
    }
    let object_type = (third >> 6) + 1;
    Ok(format!("mp4a.40.{object_type}"))
}

/// The `mp4a` string from the body of an `esds` box.
fn mp4a_from_esds(esds: &[u8]) -> Result<String, CodecsError> {
    let descriptors = esds.get(4..).ok_or(CodecsError::Esds("no version and flags"))?;
    let (tag, es) = read_descriptor(descriptors)?;
    if tag != 0x03 {
        return Err(CodecsError::Esds("first descriptor is not an ES_Descriptor"));
    }
    let flags = *es.get(2).ok_or(CodecsError::Esds("ES_Descriptor too short"))?;
    let mut at = 3;
    if flags & 0x80 != 0 {
        at += 2;
    }
    if flags & 0x40 != 0 {
        at += 1 + usize::from(*es.get(at).ok_or(CodecsError::Esds("URL length missing"))?);
    }
    if flags & 0x20 != 0 {
        at += 2;
    }
    let (tag, decoder_config) = read_descriptor(es.get(at..).ok_or(CodecsError::Esds("ES_Descriptor too short"))?)?;
    if tag != 0x04 {
        return Err(CodecsError::Esds("no DecoderConfigDescriptor"));
    }
    let object_type_indication = *decoder_config.first().ok_or(CodecsError::Esds("empty DecoderConfigDescriptor"))?;
    if object_type_indication != 0x40 {
        return Ok(format!("mp4a.{object_type_indication:02X}"));
    }
    let specific = decoder_config.get(13..).ok_or(CodecsError::Esds("DecoderConfigDescriptor too short"))?;
    let (tag, audio_specific_config) = read_descriptor(specific)?;
    if tag != 0x05 {
        return Err(CodecsError::Esds("no DecoderSpecificInfo"));
    }
    let first = *audio_specific_config.first().ok_or(CodecsError::Esds("empty AudioSpecificConfig"))?;
    let mut object_type = first >> 3;
    if object_type == 31 {
        let second = *audio_specific_config.get(1).ok_or(CodecsError::Esds("AudioSpecificConfig too short"))?;
        object_type = 32 + (((first & 0x07) << 3) | (second >> 5));
    }
    Ok(format!("mp4a.40.{object_type}"))
}

/// Reads one MPEG-4 descriptor: its tag and body. The length uses up to four bytes of
/// seven bits each.
fn read_descriptor(data: &[u8]) -> Result<(u8, &[u8]), CodecsError> {
    let tag = *data.first().ok_or(CodecsError::Esds("descriptor tag missing"))?;
    let mut length = 0usize;
    let mut at = 1;
    loop {
        let byte = *data.get(at).ok_or(CodecsError::Esds("descriptor length missing"))?;
        length = (length << 7) | usize::from(byte & 0x7f);
        at += 1;
        if byte & 0x80 == 0 {
            break;
        }
        if at > 4 {
            return Err(CodecsError::Esds("descriptor length too long"));
        }
    }
    let body = data.get(at..at + length).ok_or(CodecsError::Esds("descriptor truncated"))?;
    Ok((tag, body))
}

/// Splits an Annex B byte stream into NAL units (start codes removed).
pub fn annex_b_nal_units(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut starts = Vec::new();
    let mut index = 0;
    while index + 3 <= data.len() {
        if data.get(index..index + 3) == Some(&[0, 0, 1]) {
            starts.push(index + 3);
            index += 3;
        } else {
            index += 1;
        }
    }
    let ends: Vec<usize> = starts.iter().skip(1).map(|&start| start - 3).chain(std::iter::once(data.len())).collect();
    starts.into_iter().zip(ends).filter_map(move |(start, end)| {
        let mut end = end;
        // A four-byte start code leaves a zero at the end of the previous unit.
        while end > start && data.get(end - 1) == Some(&0) {
            end -= 1;
        }
        data.get(start..end)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::mpegts::tests::transport_stream;

    const SPS: &[u8] = &[
        0x67, 0x64, 0x00, 0x0c, 0xac, 0xd9, 0x41, 0x41, 0x9f, 0x9f, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00,
        0x00, 0x03, 0x03, 0x20, 0xf1, 0x42, 0x99, 0x60,
    ];

    fn make_box(box_type: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut out = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(box_type);
        out.extend_from_slice(body);
        out
    }

    fn trak(entry: Vec<u8>) -> Vec<u8> {
        let mut stsd = vec![0, 0, 0, 0, 0, 0, 0, 1];
        stsd.extend(entry);
        let stbl = make_box(b"stbl", &make_box(b"stsd", &stsd));
        make_box(b"trak", &make_box(b"mdia", &make_box(b"minf", &stbl)))
    }

    fn avc1_entry() -> Vec<u8> {
        let mut avcc = vec![1, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0, SPS.len() as u8];
        avcc.extend_from_slice(SPS);
        avcc.extend_from_slice(&[1, 0, 4, 0x68, 0xeb, 0xe3, 0xcb]);
        let mut body = vec![0u8; 78];
        body.extend(make_box(b"avcC", &avcc));
        make_box(b"avc1", &body)
    }

    fn mp4a_entry(audio_specific_config: &[u8]) -> Vec<u8> {
        let mut decoder_specific = vec![0x05, audio_specific_config.len() as u8];
        decoder_specific.extend_from_slice(audio_specific_config);
        // DecoderConfigDescriptor with a four-byte (0x80 0x80 0x80 n) length, as ffmpeg writes.
        let mut decoder_config = vec![0x40, 0x15, 0, 0, 0, 0, 1, 0xf4, 0, 0, 1, 0xf4, 0];
        decoder_config.extend(decoder_specific);
        let mut decoder_config_descriptor = vec![0x04, 0x80, 0x80, 0x80, decoder_config.len() as u8];
        decoder_config_descriptor.extend(decoder_config);
        let mut es = vec![0, 1, 0];
        es.extend(decoder_config_descriptor);
        es.extend_from_slice(&[0x06, 1, 2]);
        let mut esds = vec![0, 0, 0, 0, 0x03, es.len() as u8];
        esds.extend(es);
        let mut body = vec![0u8; 28];
        body.extend(make_box(b"esds", &esds));
        make_box(b"mp4a", &body)
    }

    #[test]
    fn reads_codecs_from_init_segment() {
        let mut moov = make_box(b"mvhd", &[0; 100]);
        moov.extend(trak(avc1_entry()));
        moov.extend(trak(mp4a_entry(&[0x11, 0x90])));
        let mut init = make_box(b"ftyp", b"iso5\0\0\0\x01");
        init.extend(make_box(b"moov", &moov));
        let codecs = codecs_from_init_segment(&init).unwrap();
        assert_eq!(codecs.video.as_deref(), Some("avc1.64001f"));
        assert_eq!(codecs.audio.as_deref(), Some("mp4a.40.2"));
        assert_eq!(codecs.to_string(), "avc1.64001f,mp4a.40.2");
    }

    #[test]
    fn reads_extended_audio_object_type() {
        // Object type 31 escapes to 32 + 6 bits: here 42 (USAC).
        let init = make_box(b"moov", &trak(mp4a_entry(&[0xf9, 0x40, 0x00])));
        assert_eq!(codecs_from_init_segment(&init).unwrap().audio.as_deref(), Some("mp4a.40.42"));
    }

    #[test]
    fn init_segment_errors() {
        assert_eq!(codecs_from_init_segment(b""), Err(CodecsError::Mp4(Mp4Error::Missing("moov"))));
        let empty_moov = make_box(b"moov", &[]);
        assert_eq!(codecs_from_init_segment(&empty_moov), Err(CodecsError::NoStreams));
        let mut broken = mp4a_entry(&[0x11, 0x90]);
        broken.truncate(broken.len() - 6);
        let size = (broken.len() as u32).to_be_bytes();
        broken[..4].copy_from_slice(&size);
        let init = make_box(b"moov", &trak(broken));
        assert!(codecs_from_init_segment(&init).is_err());
    }

    #[test]
    fn reads_codecs_from_ts_segment() {
        let mut video = vec![0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1];
        video.extend_from_slice(SPS);
        video.extend_from_slice(&[0, 0, 1, 0x68, 0xeb, 0xe3, 0xcb, 0, 0, 1, 0x65, 0x88]);
        let adts = [0xff, 0xf1, 0x50, 0x80, 0x02, 0x1f, 0xfc];
        let ts = transport_stream(&[(0x1b, 0x100, &video), (0x0f, 0x101, &adts)]);
        let codecs = codecs_from_ts_segment(&ts).unwrap();
        assert_eq!(codecs.to_string(), "avc1.64000c,mp4a.40.2");
    }

    #[test]
    fn ts_segment_errors() {
        let ts = transport_stream(&[(0x1b, 0x100, &[0, 0, 1, 0x65, 0x88])]);
        assert_eq!(codecs_from_ts_segment(&ts), Err(CodecsError::NoSps));
        let ts = transport_stream(&[(0x0f, 0x101, &[0x12, 0x34, 0x56])]);
        assert_eq!(codecs_from_ts_segment(&ts), Err(CodecsError::NoAdts));
    }

    #[test]
    fn splits_annex_b() {
        let data = [0, 0, 0, 1, 9, 0xf0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x68];
        let units: Vec<&[u8]> = annex_b_nal_units(&data).collect();
        assert_eq!(units, vec![&[9, 0xf0][..], &[0x67, 1, 2][..], &[0x68][..]]);
    }
}
