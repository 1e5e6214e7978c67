//! HEVC (H.265) parameter sets: the HEVCDecoderConfigurationRecord (ISO/IEC 14496-15,
//! `hvcC`) that Enhanced RTMP sequence starts and MP4 sample entries carry, its RFC 6381
//! codec string, the picture size from the SPS inside it, and the record built from the
//! parameter sets that arrive in the stream (MPEG-TS carries them in-band).
//!
//! Only the fields needed are read; truncated or out-of-range input is an error, never a
//! panic.

use thiserror::Error;

use super::bits::{BitReader, BitsError};
use super::h264::remove_emulation_prevention;

/// NAL unit types of HEVC that the conversions look for.
pub mod nal_type {
    /// The first and last coded slices of an intra random access point: keyframes.
    pub const IRAP_FIRST: u8 = 16;
    pub const IRAP_LAST: u8 = 23;
    /// Video parameter set.
    pub const VPS: u8 = 32;
    /// Sequence parameter set.
    pub const SPS: u8 = 33;
    /// Picture parameter set.
    pub const PPS: u8 = 34;
    /// Access unit delimiter.
    pub const AUD: u8 = 35;
    /// Filler data.
    pub const FILLER: u8 = 38;
}

/// The `nal_unit_type` of a NAL unit (six bits of its two-byte header).
pub fn nal_unit_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|header| (header >> 1) & 0x3f)
}

const NAL_SPS: u8 = nal_type::SPS;
/// Most parameter sets of one kind that a built record carries.
const MAX_PARAMETER_SETS: usize = 16;
/// Length of the record's fixed part, before the arrays of NAL units.
const RECORD_HEADER_LEN: usize = 23;
/// Largest SPS accepted, in bytes; real ones are a few dozen.
const MAX_SPS_BYTES: usize = 4096;

/// Errors from parsing HEVC parameter sets.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum HevcError {
    /// The data ended before a required field, or a field is out of range.
    #[error("HEVC {0}")]
    Bits(#[from] BitsError),
    /// The configuration record has an unsupported version.
    #[error("HEVCDecoderConfigurationRecord version {0} is not 1")]
    BadConfigVersion(u8),
    /// The configuration record holds no SPS.
    #[error("HEVCDecoderConfigurationRecord holds no SPS")]
    NoSps,
    /// The SPS is larger than accepted.
    #[error("SPS of {0} bytes is too large")]
    TooLarge(usize),
    /// A field holds a value the standard does not allow.
    #[error("HEVC field {field} out of range: {value}")]
    OutOfRange { field: &'static str, value: u64 },
}

/// The HEVCDecoderConfigurationRecord: the profile, tier and level fields and the SPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HevcDecoderConfig {
    pub profile_space: u8,
    pub tier_high: bool,
    pub profile_idc: u8,
    pub compatibility_flags: u32,
    /// The 48 bits of general constraint indicator flags.
    pub constraint_flags: [u8; 6],
    pub level_idc: u8,
    /// Bytes of the NAL unit length prefix of coded frames (1, 2 or 4).
    pub length_size: u8,
    /// The first SPS NAL unit (with its two-byte header).
    pub sps: Option<Vec<u8>>,
}

impl HevcDecoderConfig {
    /// Parses a record (the `hvcC` box body, or an Enhanced RTMP sequence start).
    pub fn parse(record: &[u8]) -> Result<Self, HevcError> {
        let header = record.get(..RECORD_HEADER_LEN).ok_or(BitsError::Truncated("HEVCDecoderConfigurationRecord"))?;
        if header[0] != 1 {
            return Err(HevcError::BadConfigVersion(header[0]));
        }
        let mut constraint_flags = [0; 6];
        constraint_flags.copy_from_slice(&header[6..12]);
        let mut config = Self {
            profile_space: header[1] >> 6,
            tier_high: header[1] & 0x20 != 0,
            profile_idc: header[1] & 0x1F,
            compatibility_flags: u32::from_be_bytes([header[2], header[3], header[4], header[5]]),
            constraint_flags,
            level_idc: header[12],
            length_size: (header[21] & 0x03) + 1,
            sps: None,
        };
        let arrays = header[22];
        let mut rest = &record[RECORD_HEADER_LEN..];
        for _ in 0..arrays {
            let [kind, count_high, count_low, tail @ ..] = rest else {
                return Err(BitsError::Truncated("hvcC array").into());
            };
            let nal_type = kind & 0x3F;
            rest = tail;
            for _ in 0..u16::from_be_bytes([*count_high, *count_low]) {
                let [length_high, length_low, tail @ ..] = rest else {
                    return Err(BitsError::Truncated("hvcC NAL unit length").into());
                };
                let length = usize::from(u16::from_be_bytes([*length_high, *length_low]));
                let nal = tail.get(..length).ok_or(BitsError::Truncated("hvcC NAL unit"))?;
                if nal_type == NAL_SPS && config.sps.is_none() {
                    config.sps = Some(nal.to_vec());
                }
                rest = &tail[length..];
            }
        }
        Ok(config)
    }

    /// The RFC 6381 codec string with the given sample entry name (`hvc1` or `hev1`),
    /// as ISO/IEC 14496-15 Annex E spells it: `hvc1.1.6.L93.B0`.
    pub fn codec_string(&self, entry: &str) -> String {
        let space = ["", "A", "B", "C"][usize::from(self.profile_space & 3)];
        let tier = if self.tier_high { 'H' } else { 'L' };
        let mut code = format!(
            "{entry}.{space}{}.{:X}.{tier}{}",
            self.profile_idc,
            self.compatibility_flags.reverse_bits(),
            self.level_idc
        );
        let kept = self.constraint_flags.iter().rposition(|b| *b != 0).map_or(0, |last| last + 1);
        for byte in &self.constraint_flags[..kept] {
            code.push_str(&format!(".{byte:X}"));
        }
        code
    }

    /// The displayed picture size from the SPS.
    pub fn picture_size(&self) -> Result<(u32, u32), HevcError> {
        sps_picture_size(self.sps.as_deref().ok_or(HevcError::NoSps)?)
    }
}

/// The displayed picture size (after the conformance window) of an SPS NAL unit.
pub fn sps_picture_size(nal: &[u8]) -> Result<(u32, u32), HevcError> {
    parse_sps(nal).map(|sps| (sps.width, sps.height))
}

/// What a configuration record needs from an SPS besides its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpsInfo {
    /// Displayed size, after the conformance window.
    pub width: u32,
    pub height: u32,
    pub chroma_format_idc: u8,
    pub bit_depth_luma_minus8: u8,
    pub bit_depth_chroma_minus8: u8,
    pub max_sub_layers_minus1: u8,
    pub temporal_id_nesting: bool,
}

/// Parses an SPS NAL unit up to its bit depths.
pub fn parse_sps(nal: &[u8]) -> Result<SpsInfo, HevcError> {
    if nal.len() > MAX_SPS_BYTES {
        return Err(HevcError::TooLarge(nal.len()));
    }
    let rbsp = remove_emulation_prevention(nal.get(2..).ok_or(BitsError::Truncated("NAL header"))?);
    let mut bits = BitReader::new(&rbsp);
    bits.bits(4, "sps_video_parameter_set_id")?;
    let sub_layers = bits.bits(3, "sps_max_sub_layers_minus1")? as u32;
    let temporal_id_nesting = bits.flag("sps_temporal_id_nesting_flag")?;
    // profile_tier_level: the general profile, tier and level (96 bits), then the
    // sub-layers' presence flags and whatever they announce.
    bits.bits(64, "general_profile")?;
    bits.bits(32, "general_level")?;
    let mut present = Vec::with_capacity(sub_layers as usize);
    for _ in 0..sub_layers {
        present.push((bits.flag("sub_layer_profile_present_flag")?, bits.flag("sub_layer_level_present_flag")?));
    }
    if sub_layers > 0 {
        bits.bits(2 * (8 - sub_layers), "reserved_zero_2bits")?;
    }
    for (profile, level) in present {
        if profile {
            bits.bits(64, "sub_layer_profile")?;
            bits.bits(24, "sub_layer_profile")?;
        }
        if level {
            bits.bits(8, "sub_layer_level_idc")?;
        }
    }
    bits.ue("sps_seq_parameter_set_id")?;
    let chroma_format = bits.ue("chroma_format_idc")?;
    if chroma_format > 3 {
        return Err(HevcError::OutOfRange { field: "chroma_format_idc", value: chroma_format });
    }
    let separate_planes = chroma_format == 3 && bits.flag("separate_colour_plane_flag")?;
    let width = bits.ue("pic_width_in_luma_samples")?;
    let height = bits.ue("pic_height_in_luma_samples")?;
    let (mut left, mut right, mut top, mut bottom) = (0, 0, 0, 0);
    if bits.flag("conformance_window_flag")? {
        left = bits.ue("conf_win_left_offset")?;
        right = bits.ue("conf_win_right_offset")?;
        top = bits.ue("conf_win_top_offset")?;
        bottom = bits.ue("conf_win_bottom_offset")?;
    }
    let (unit_x, unit_y) = match (chroma_format, separate_planes) {
        (1, _) => (2, 2),
        (2, _) => (2, 1),
        _ => (1, 1),
    };
    let bit_depth_luma_minus8 = bits.ue("bit_depth_luma_minus8")?;
    let bit_depth_chroma_minus8 = bits.ue("bit_depth_chroma_minus8")?;
    for (field, depth) in
        [("bit_depth_luma_minus8", bit_depth_luma_minus8), ("bit_depth_chroma_minus8", bit_depth_chroma_minus8)]
    {
        if depth > 8 {
            return Err(HevcError::OutOfRange { field, value: depth });
        }
    }
    let displayed = |size: u64, start: u64, end: u64, unit: u64, field| {
        start
            .checked_add(end)
            .and_then(|crop| crop.checked_mul(unit))
            .and_then(|crop| size.checked_sub(crop))
            .filter(|shown| *shown > 0 && *shown <= 65_535)
            .map(|shown| shown as u32)
            .ok_or(HevcError::OutOfRange { field, value: size })
    };
    // The ranges were checked above: each fits its byte.
    Ok(SpsInfo {
        width: displayed(width, left, right, unit_x, "pic_width_in_luma_samples")?,
        height: displayed(height, top, bottom, unit_y, "pic_height_in_luma_samples")?,
        chroma_format_idc: chroma_format as u8,
        bit_depth_luma_minus8: bit_depth_luma_minus8 as u8,
        bit_depth_chroma_minus8: bit_depth_chroma_minus8 as u8,
        max_sub_layers_minus1: sub_layers as u8,
        temporal_id_nesting,
    })
}

/// An HEVCDecoderConfigurationRecord with four-byte NAL unit lengths, built from the
/// parameter sets of a stream: the general profile, tier and level come from the SPS's
/// profile_tier_level, which starts byte-aligned right after its first byte.
pub fn decoder_configuration_record(vps: &[&[u8]], sps: &[u8], pps: &[&[u8]]) -> Result<Vec<u8>, HevcError> {
    if nal_unit_type(sps) != Some(NAL_SPS) {
        return Err(HevcError::NoSps);
    }
    let info = parse_sps(sps)?;
    let rbsp = remove_emulation_prevention(sps.get(2..).unwrap_or_default());
    // general_profile_space .. general_level_idc: twelve bytes after the first.
    let general = rbsp.get(1..13).ok_or(BitsError::Truncated("profile_tier_level"))?;
    for (field, sets) in [("vps", vps), ("pps", pps)] {
        if sets.is_empty() || sets.len() > MAX_PARAMETER_SETS {
            return Err(HevcError::OutOfRange { field, value: sets.len() as u64 });
        }
    }
    let mut record = Vec::with_capacity(64 + sps.len());
    record.push(1);
    record.extend_from_slice(general);
    // min_spatial_segmentation_idc 0 and parallelismType 0 (unknown), with reserved ones.
    record.extend_from_slice(&[0xf0, 0x00, 0xfc]);
    record.push(0xfc | info.chroma_format_idc);
    record.push(0xf8 | info.bit_depth_luma_minus8);
    record.push(0xf8 | info.bit_depth_chroma_minus8);
    // avgFrameRate 0 (unknown).
    record.extend_from_slice(&[0, 0]);
    // constantFrameRate 0, numTemporalLayers, temporalIdNested, lengthSizeMinusOne 3.
    record.push(((info.max_sub_layers_minus1 + 1) << 3) | (u8::from(info.temporal_id_nesting) << 2) | 0x03);
    record.push(3);
    for (kind, units) in [(nal_type::VPS, vps), (NAL_SPS, &[sps][..]), (nal_type::PPS, pps)] {
        // array_completeness: every parameter set of the kind is in the record.
        record.push(0x80 | kind);
        record.extend_from_slice(&(units.len() as u16).to_be_bytes());
        for unit in units {
            let length = u16::try_from(unit.len())
                .ok()
                .filter(|length| (2..=MAX_SPS_BYTES as u16).contains(length))
                .ok_or(HevcError::OutOfRange { field: "nalUnitLength", value: unit.len() as u64 })?;
            record.extend_from_slice(&length.to_be_bytes());
            record.extend_from_slice(unit);
        }
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hvcC ffmpeg 5.1's MP4 muxer wrote for libx265 (Main, level 2) at 320x180 (184 lines coded, 4 cropped),
    /// from `-f lavfi -i testsrc=size=320x180 -pix_fmt yuv420p -c:v libx265 -tag:v hvc1`; the SEI array left out.
    const HVCC_320X180: &[u8] = &[
        0x01, 0x01, 0x60, 0x00, 0x00, 0x00, 0x90, 0x00, 0x00, 0x00, 0x00, 0x00, 0x3c, 0xf0, 0x00, 0xfc, 0xfd, 0xf8,
        0xf8, 0x00, 0x00, 0x0f, 0x03, 0xa0, 0x00, 0x01, 0x00, 0x18, 0x40, 0x01, 0x0c, 0x01, 0xff, 0xff, 0x01, 0x60,
        0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x95, 0x98, 0x09, 0xa1, 0x00,
        0x01, 0x00, 0x2b, 0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00,
        0x03, 0x00, 0x3c, 0xa0, 0x0a, 0x08, 0x0b, 0x9f, 0x79, 0x65, 0x66, 0x92, 0x4c, 0xaf, 0x01, 0x68, 0x08, 0x00,
        0x00, 0x03, 0x00, 0x08, 0x00, 0x00, 0x03, 0x00, 0xc8, 0x40, 0xa2, 0x00, 0x01, 0x00, 0x07, 0x44, 0x01, 0xc1,
        0x72, 0xb4, 0x62, 0x40,
    ];

    #[test]
    fn reads_the_record_written_by_ffmpeg() {
        let config = HevcDecoderConfig::parse(HVCC_320X180).unwrap();
        assert_eq!((config.profile_idc, config.level_idc, config.length_size), (1, 60, 4));
        assert_eq!(config.codec_string("hvc1"), "hvc1.1.6.L60.90");
        assert_eq!(config.picture_size().unwrap(), (320, 180));
    }

    /// The NAL units of the arrays of a record, by type.
    fn arrays(record: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut rest = &record[RECORD_HEADER_LEN..];
        let mut units = Vec::new();
        for _ in 0..record[22] {
            let (kind, count) = (rest[0] & 0x3f, u16::from_be_bytes([rest[1], rest[2]]));
            rest = &rest[3..];
            for _ in 0..count {
                let length = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                units.push((kind, rest[2..2 + length].to_vec()));
                rest = &rest[2 + length..];
            }
        }
        units
    }

    #[test]
    fn builds_the_record_ffmpeg_writes_from_the_parameter_sets() {
        let units = arrays(HVCC_320X180);
        let unit = |kind: u8| units.iter().find(|(k, _)| *k == kind).map(|(_, unit)| unit.as_slice()).unwrap();
        let built = decoder_configuration_record(&[unit(32)], unit(33), &[unit(34)]).unwrap();
        let mut expected = HVCC_320X180.to_vec();
        expected[22] = 3;
        assert_eq!(built, expected, "byte for byte, but for the SEI array this fixture leaves out");
        let info = parse_sps(unit(33)).unwrap();
        assert_eq!((info.chroma_format_idc, info.bit_depth_luma_minus8, info.width), (1, 0, 320));
        assert_eq!(nal_unit_type(unit(34)), Some(nal_type::PPS));
        assert_eq!(decoder_configuration_record(&[unit(32)], unit(34), &[unit(34)]), Err(HevcError::NoSps));
        assert!(decoder_configuration_record(&[], unit(33), &[unit(34)]).is_err(), "a VPS is needed");
        assert!(decoder_configuration_record(&[unit(32)], &unit(33)[..8], &[unit(34)]).is_err(), "a cut SPS");
    }

    #[test]
    fn codec_strings_follow_annex_e() {
        let mut config = HevcDecoderConfig::parse(HVCC_320X180).unwrap();
        config.level_idc = 93;
        config.constraint_flags = [0xB0, 0, 0, 0, 0, 0];
        assert_eq!(config.codec_string("hvc1"), "hvc1.1.6.L93.B0");
        config.profile_idc = 2;
        config.compatibility_flags = 0x2000_0000;
        config.tier_high = true;
        config.level_idc = 120;
        config.constraint_flags = [0, 0, 0, 0, 0, 0];
        assert_eq!(config.codec_string("hev1"), "hev1.2.4.H120");
    }

    #[test]
    fn truncated_records_are_errors_at_every_length() {
        for length in 0..HVCC_320X180.len() {
            let result = HevcDecoderConfig::parse(&HVCC_320X180[..length]).and_then(|c| c.picture_size());
            assert!(result.is_err(), "length {length}");
        }
        let mut version = HVCC_320X180.to_vec();
        version[0] = 0;
        assert_eq!(HevcDecoderConfig::parse(&version), Err(HevcError::BadConfigVersion(0)));
    }
}
