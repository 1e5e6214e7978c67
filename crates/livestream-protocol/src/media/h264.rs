//! H.264 parameter sets: the sequence parameter set (SPS) for picture size, profile and
//! level, and the AVCDecoderConfigurationRecord (ISO/IEC 14496-15) that carries it in FLV
//! sequence headers and MP4 `avcC` boxes.
//!
//! The parser reads only what it needs (up to the frame cropping fields, and the VUI's
//! timing for the frame rate) and returns errors on truncated or out-of-range input, never
//! panics. [`decoder_configuration_record`] builds the record from parameter sets that
//! arrive in the stream (MPEG-TS carries them in-band).

use thiserror::Error;

use super::bits::{BitReader, BitsError};

/// Largest SPS accepted, in bytes; real ones are a few dozen.
const MAX_SPS_BYTES: usize = 4096;

/// Errors from parsing H.264 parameter sets.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum H264Error {
    /// The data ended before a required field.
    #[error("H.264 data truncated while reading {0}")]
    Truncated(&'static str),
    /// A field holds a value the standard does not allow.
    #[error("H.264 field {field} out of range: {value}")]
    OutOfRange {
        /// Field name.
        field: &'static str,
        /// Value found.
        value: u64,
    },
    /// The NAL unit is not a sequence parameter set.
    #[error("NAL unit type {0} is not an SPS (7)")]
    NotSps(u8),
    /// The configuration record has an unsupported version.
    #[error("AVCDecoderConfigurationRecord version {0} is not 1")]
    BadConfigVersion(u8),
    /// The configuration record holds no SPS.
    #[error("AVCDecoderConfigurationRecord holds no SPS")]
    NoSps,
    /// The SPS is larger than accepted.
    #[error("SPS of {0} bytes is too large")]
    TooLarge(usize),
}

impl From<BitsError> for H264Error {
    fn from(error: BitsError) -> Self {
        match error {
            BitsError::Truncated(field) => H264Error::Truncated(field),
            BitsError::OutOfRange { field, value } => H264Error::OutOfRange { field, value },
        }
    }
}

/// What the worker and the packager need from an SPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpsInfo {
    /// `profile_idc`, e.g. 66 (Baseline), 77 (Main), 100 (High).
    pub profile_idc: u8,
    /// The byte of `constraint_set0..5` flags and reserved bits.
    pub constraint_flags: u8,
    /// `level_idc`, e.g. 31 for level 3.1.
    pub level_idc: u8,
    /// Displayed width in pixels, after cropping.
    pub width: u32,
    /// Displayed height in pixels, after cropping.
    pub height: u32,
    /// The VUI's timing information, when present and readable.
    pub timing: Option<SpsTiming>,
}

/// The clock of the VUI's timing information: one frame lasts two ticks (a field each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpsTiming {
    /// `num_units_in_tick`.
    pub num_units_in_tick: u32,
    /// `time_scale`, in units per second.
    pub time_scale: u32,
}

impl SpsTiming {
    /// The frame rate the timing gives: `time_scale / (2 * num_units_in_tick)`, as libx264
    /// and hardware encoders write it; `None` when a field is zero.
    pub fn frame_rate(&self) -> Option<f64> {
        (self.num_units_in_tick > 0 && self.time_scale > 0)
            .then(|| f64::from(self.time_scale) / (2.0 * f64::from(self.num_units_in_tick)))
    }
}

impl SpsInfo {
    /// The RFC 6381 codec string, e.g. `avc1.64001f`.
    pub fn codec_string(&self) -> String {
        avc1_codec_string(self.profile_idc, self.constraint_flags, self.level_idc)
    }
}

/// The RFC 6381 `avc1.PPCCLL` codec string from profile, constraint flags and level.
pub fn avc1_codec_string(profile_idc: u8, constraint_flags: u8, level_idc: u8) -> String {
    format!("avc1.{profile_idc:02x}{constraint_flags:02x}{level_idc:02x}")
}

/// The fields of an AVCDecoderConfigurationRecord that matter here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcDecoderConfig {
    /// `AVCProfileIndication`.
    pub profile_idc: u8,
    /// `profile_compatibility` (the constraint flags).
    pub constraint_flags: u8,
    /// `AVCLevelIndication`.
    pub level_idc: u8,
    /// Length in bytes of the NAL unit size prefix in samples (1, 2 or 4).
    pub nal_length_size: u8,
    /// The first SPS NAL unit (with its one-byte NAL header).
    pub sps: Vec<u8>,
}

impl AvcDecoderConfig {
    /// Parses an AVCDecoderConfigurationRecord (the body of an `avcC` box, or an FLV AVC
    /// sequence header after its five-byte video tag header).
    pub fn parse(record: &[u8]) -> Result<Self, H264Error> {
        let field = |index: usize, name: &'static str| record.get(index).copied().ok_or(H264Error::Truncated(name));
        let version = field(0, "configurationVersion")?;
        if version != 1 {
            return Err(H264Error::BadConfigVersion(version));
        }
        let profile_idc = field(1, "AVCProfileIndication")?;
        let constraint_flags = field(2, "profile_compatibility")?;
        let level_idc = field(3, "AVCLevelIndication")?;
        let nal_length_size = (field(4, "lengthSizeMinusOne")? & 0x03) + 1;
        let sps_count = field(5, "numOfSequenceParameterSets")? & 0x1f;
        if sps_count == 0 {
            return Err(H264Error::NoSps);
        }
        let high = usize::from(field(6, "sequenceParameterSetLength")?);
        let low = usize::from(field(7, "sequenceParameterSetLength")?);
        let length = (high << 8) | low;
        let sps = record.get(8..8 + length).ok_or(H264Error::Truncated("sequenceParameterSetNALUnit"))?.to_vec();
        Ok(Self { profile_idc, constraint_flags, level_idc, nal_length_size, sps })
    }

    /// Parses the SPS this record carries.
    pub fn sps_info(&self) -> Result<SpsInfo, H264Error> {
        parse_sps(&self.sps)
    }
}

/// Parses an SPS NAL unit (starting with its NAL header byte, emulation prevention bytes
/// still in place).
pub fn parse_sps(nal: &[u8]) -> Result<SpsInfo, H264Error> {
    if nal.len() > MAX_SPS_BYTES {
        return Err(H264Error::TooLarge(nal.len()));
    }
    let header = *nal.first().ok_or(H264Error::Truncated("NAL header"))?;
    let nal_type = header & 0x1f;
    if nal_type != 7 {
        return Err(H264Error::NotSps(nal_type));
    }
    let rbsp = remove_emulation_prevention(nal.get(1..).unwrap_or_default());
    let mut bits = BitReader::new(&rbsp);
    let profile_idc = bits.byte("profile_idc")?;
    let constraint_flags = bits.byte("constraint flags")?;
    let level_idc = bits.byte("level_idc")?;
    let sps_id = bits.ue("seq_parameter_set_id")?;
    check_range("seq_parameter_set_id", sps_id, 31)?;

    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = false;
    if matches!(profile_idc, 100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135) {
        chroma_format_idc = bits.ue("chroma_format_idc")?;
        check_range("chroma_format_idc", chroma_format_idc, 3)?;
        if chroma_format_idc == 3 {
            separate_colour_plane = bits.flag("separate_colour_plane_flag")?;
        }
        check_range("bit_depth_luma_minus8", bits.ue("bit_depth_luma_minus8")?, 6)?;
        check_range("bit_depth_chroma_minus8", bits.ue("bit_depth_chroma_minus8")?, 6)?;
        bits.flag("qpprime_y_zero_transform_bypass_flag")?;
        if bits.flag("seq_scaling_matrix_present_flag")? {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for index in 0..lists {
                if bits.flag("seq_scaling_list_present_flag")? {
                    skip_scaling_list(&mut bits, if index < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    check_range("log2_max_frame_num_minus4", bits.ue("log2_max_frame_num_minus4")?, 12)?;
    let poc_type = bits.ue("pic_order_cnt_type")?;
    match poc_type {
        0 => check_range("log2_max_pic_order_cnt_lsb_minus4", bits.ue("log2_max_pic_order_cnt_lsb_minus4")?, 12)?,
        1 => {
            bits.flag("delta_pic_order_always_zero_flag")?;
            bits.se("offset_for_non_ref_pic")?;
            bits.se("offset_for_top_to_bottom_field")?;
            let cycle = bits.ue("num_ref_frames_in_pic_order_cnt_cycle")?;
            check_range("num_ref_frames_in_pic_order_cnt_cycle", cycle, 255)?;
            for _ in 0..cycle {
                bits.se("offset_for_ref_frame")?;
            }
        }
        2 => {}
        other => return Err(H264Error::OutOfRange { field: "pic_order_cnt_type", value: other }),
    }
    bits.ue("max_num_ref_frames")?;
    bits.flag("gaps_in_frame_num_value_allowed_flag")?;
    let width_in_mbs = bits.ue("pic_width_in_mbs_minus1")? + 1;
    let height_in_map_units = bits.ue("pic_height_in_map_units_minus1")? + 1;
    check_range("pic_width_in_mbs", width_in_mbs, 1024)?;
    check_range("pic_height_in_map_units", height_in_map_units, 1024)?;
    let frame_mbs_only = bits.flag("frame_mbs_only_flag")?;
    if !frame_mbs_only {
        bits.flag("mb_adaptive_frame_field_flag")?;
    }
    bits.flag("direct_8x8_inference_flag")?;
    let field_factor = if frame_mbs_only { 1 } else { 2 };
    let full_width = width_in_mbs * 16;
    let full_height = height_in_map_units * 16 * field_factor;
    let (mut crop_x, mut crop_y) = (0, 0);
    if bits.flag("frame_cropping_flag")? {
        let left = bits.ue("frame_crop_left_offset")?;
        let right = bits.ue("frame_crop_right_offset")?;
        let top = bits.ue("frame_crop_top_offset")?;
        let bottom = bits.ue("frame_crop_bottom_offset")?;
        let chroma_array_type = if separate_colour_plane { 0 } else { chroma_format_idc };
        let (sub_width, sub_height) = match chroma_array_type {
            1 => (2, 2),
            2 => (2, 1),
            _ => (1, 1),
        };
        crop_x = (left + right).saturating_mul(sub_width);
        crop_y = (top + bottom).saturating_mul(sub_height * field_factor);
    }
    if crop_x >= full_width || crop_y >= full_height {
        return Err(H264Error::OutOfRange { field: "frame cropping", value: crop_x.max(crop_y) });
    }
    let to_u32 = |value: u64| u32::try_from(value).map_err(|_| H264Error::OutOfRange { field: "picture size", value });
    // The frame rate is a help, not a requirement: a VUI cut short leaves it unknown.
    let timing = match bits.flag("vui_parameters_present_flag") {
        Ok(true) => vui_timing(&mut bits).ok().flatten(),
        _ => None,
    };
    Ok(SpsInfo {
        profile_idc,
        constraint_flags,
        level_idc,
        width: to_u32(full_width - crop_x)?,
        height: to_u32(full_height - crop_y)?,
        timing,
    })
}

/// Reads the VUI up to its timing information (H.264 Annex E.1.1).
fn vui_timing(bits: &mut BitReader<'_>) -> Result<Option<SpsTiming>, H264Error> {
    const EXTENDED_SAR: u64 = 255;
    if bits.flag("aspect_ratio_info_present_flag")? && bits.bits(8, "aspect_ratio_idc")? == EXTENDED_SAR {
        bits.bits(32, "sar_width and sar_height")?;
    }
    if bits.flag("overscan_info_present_flag")? {
        bits.flag("overscan_appropriate_flag")?;
    }
    if bits.flag("video_signal_type_present_flag")? {
        bits.bits(4, "video_format and video_full_range_flag")?;
        if bits.flag("colour_description_present_flag")? {
            bits.bits(24, "colour description")?;
        }
    }
    if bits.flag("chroma_loc_info_present_flag")? {
        bits.ue("chroma_sample_loc_type_top_field")?;
        bits.ue("chroma_sample_loc_type_bottom_field")?;
    }
    if !bits.flag("timing_info_present_flag")? {
        return Ok(None);
    }
    // 32-bit fields always fit.
    let num_units_in_tick = bits.bits(32, "num_units_in_tick")? as u32;
    let time_scale = bits.bits(32, "time_scale")? as u32;
    Ok(Some(SpsTiming { num_units_in_tick, time_scale }))
}

/// NAL unit types of H.264 that the conversions look for.
pub mod nal_type {
    /// A coded slice of an IDR picture: a keyframe.
    pub const IDR: u8 = 5;
    /// Sequence parameter set.
    pub const SPS: u8 = 7;
    /// Picture parameter set.
    pub const PPS: u8 = 8;
    /// Access unit delimiter.
    pub const AUD: u8 = 9;
}

/// The `nal_unit_type` of a NAL unit (its first byte's low five bits).
pub fn nal_unit_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|header| header & 0x1f)
}

/// Most picture parameter sets one configuration record carries.
const MAX_PPS_COUNT: usize = 32;
/// Largest PPS accepted, in bytes.
const MAX_PPS_BYTES: usize = 4096;

/// An AVCDecoderConfigurationRecord with four-byte NAL unit lengths, built from one SPS and
/// its PPSs (as an FLV AVC sequence header or an `avcC` box carries it).
pub fn decoder_configuration_record(sps: &[u8], pps: &[&[u8]]) -> Result<Vec<u8>, H264Error> {
    if sps.len() > MAX_SPS_BYTES {
        return Err(H264Error::TooLarge(sps.len()));
    }
    let sps_type = nal_unit_type(sps).ok_or(H264Error::NoSps)?;
    if sps_type != nal_type::SPS {
        return Err(H264Error::NotSps(sps_type));
    }
    let profile = sps.get(1..4).ok_or(H264Error::Truncated("SPS profile and level"))?;
    if pps.is_empty() || pps.len() > MAX_PPS_COUNT {
        return Err(H264Error::OutOfRange { field: "numOfPictureParameterSets", value: pps.len() as u64 });
    }
    let mut record = Vec::with_capacity(11 + sps.len() + pps.iter().map(|p| 2 + p.len()).sum::<usize>());
    record.push(1);
    record.extend_from_slice(profile);
    // lengthSizeMinusOne = 3 with its reserved bits; one SPS with its reserved bits.
    record.extend_from_slice(&[0xff, 0xe1]);
    record.extend_from_slice(&(sps.len() as u16).to_be_bytes());
    record.extend_from_slice(sps);
    record.push(pps.len() as u8);
    for unit in pps {
        if unit.len() > MAX_PPS_BYTES || unit.is_empty() {
            return Err(H264Error::OutOfRange { field: "pictureParameterSetLength", value: unit.len() as u64 });
        }
        record.extend_from_slice(&(unit.len() as u16).to_be_bytes());
        record.extend_from_slice(unit);
    }
    Ok(record)
}

fn check_range(field: &'static str, value: u64, max: u64) -> Result<(), H264Error> {
    if value > max { Err(H264Error::OutOfRange { field, value }) } else { Ok(()) }
}

fn skip_scaling_list(bits: &mut BitReader<'_>, size: usize) -> Result<(), H264Error> {
    let mut last_scale: i64 = 8;
    let mut next_scale: i64 = 8;
    for _ in 0..size {
        if next_scale != 0 {
            let delta = bits.se("delta_scale")?;
            next_scale = (last_scale + delta).rem_euclid(256);
        }
        if next_scale != 0 {
            last_scale = next_scale;
        }
    }
    Ok(())
}

/// Removes emulation prevention bytes (`00 00 03` becomes `00 00`), giving the RBSP.
pub fn remove_emulation_prevention(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut zeros = 0;
    for &byte in data {
        if zeros >= 2 && byte == 3 {
            zeros = 0;
            continue;
        }
        zeros = if byte == 0 { zeros + 1 } else { 0 };
        out.push(byte);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SPS from libx264 (veryfast), High profile level 1.2, 320x180 (coded as 320x192, cropped).
    const SPS_HIGH_320X180: &[u8] = &[
        0x67, 0x64, 0x00, 0x0c, 0xac, 0xd9, 0x41, 0x41, 0x9f, 0x9f, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00,
        0x00, 0x03, 0x03, 0x20, 0xf1, 0x42, 0x99, 0x60,
    ];

    /// SPS from libx264 (ultrafast), Constrained Baseline level 3.0, 640x360.
    const SPS_BASELINE_640X360: &[u8] = &[
        0x67, 0x42, 0xc0, 0x1e, 0xda, 0x02, 0x80, 0xbf, 0xe5, 0xc0, 0x44, 0x00, 0x00, 0x03, 0x00, 0x04, 0x00, 0x00,
        0x03, 0x00, 0xf0, 0x3c, 0x58, 0xba, 0x80,
    ];

    /// SPS from libx264, interlaced (field coding) High profile level 2.2, 720x576.
    const SPS_INTERLACED_720X576: &[u8] = &[
        0x67, 0x64, 0x00, 0x16, 0xac, 0xd9, 0x40, 0xb4, 0x24, 0xd8, 0x08, 0x80, 0x00, 0x00, 0x03, 0x01, 0x00, 0x00,
        0x03, 0x00, 0x19, 0x0f, 0x8a, 0x14, 0xcb,
    ];

    #[test]
    fn parses_cropped_high_profile_sps() {
        let info = parse_sps(SPS_HIGH_320X180).unwrap();
        assert_eq!(
            (info.profile_idc, info.constraint_flags, info.level_idc, info.width, info.height),
            (100, 0, 12, 320, 180)
        );
        assert_eq!(info.codec_string(), "avc1.64000c");
    }

    #[test]
    fn parses_baseline_and_interlaced_sps() {
        let baseline = parse_sps(SPS_BASELINE_640X360).unwrap();
        assert_eq!((baseline.width, baseline.height), (640, 360));
        assert_eq!(baseline.codec_string(), "avc1.42c01e");
        let interlaced = parse_sps(SPS_INTERLACED_720X576).unwrap();
        assert_eq!((interlaced.width, interlaced.height, interlaced.level_idc), (720, 576, 22));
    }

    /// Writes bits and Exp-Golomb codes, to build parameter sets field by field.
    #[derive(Default)]
    struct BitWriter {
        bits: Vec<bool>,
    }

    impl BitWriter {
        fn put(&mut self, value: u64, count: u32) {
            for shift in (0..count).rev() {
                self.bits.push((value >> shift) & 1 == 1);
            }
        }
        fn ue(&mut self, value: u64) {
            let code = value + 1;
            let length = 64 - code.leading_zeros();
            self.put(0, length - 1);
            self.put(code, length);
        }
        fn se(&mut self, value: i64) {
            self.ue(if value > 0 { (value as u64) * 2 - 1 } else { value.unsigned_abs() * 2 });
        }
        fn bytes(mut self) -> Vec<u8> {
            self.bits.push(true);
            while !self.bits.len().is_multiple_of(8) {
                self.bits.push(false);
            }
            self.bits.chunks(8).map(|byte| byte.iter().fold(0u8, |acc, &bit| (acc << 1) | u8::from(bit))).collect()
        }
    }

    #[test]
    fn skips_scaling_lists_and_poc_type_one() {
        let mut writer = BitWriter::default();
        writer.put(0x67, 8);
        writer.put(100, 8); // High
        writer.put(0, 8);
        writer.put(40, 8);
        writer.ue(0); // sps id
        writer.ue(1); // 4:2:0
        writer.ue(0);
        writer.ue(0);
        writer.put(0, 1);
        writer.put(1, 1); // scaling matrix present
        for list in 0..8 {
            writer.put(u64::from(list % 2 == 0), 1);
            if list % 2 == 0 {
                let size = if list < 6 { 16 } else { 64 };
                for _ in 0..size {
                    writer.se(-3);
                }
            }
        }
        writer.ue(0); // log2_max_frame_num_minus4
        writer.ue(1); // poc type 1
        writer.put(0, 1);
        writer.se(-2);
        writer.se(5);
        writer.ue(2);
        writer.se(1);
        writer.se(-1);
        writer.ue(4); // max_num_ref_frames
        writer.put(0, 1);
        writer.ue(119); // 1920 wide
        writer.ue(67); // 1088 high
        writer.put(1, 1); // frame_mbs_only
        writer.put(1, 1);
        writer.put(1, 1); // cropping
        writer.ue(0);
        writer.ue(0);
        writer.ue(0);
        writer.ue(4); // 8 lines off the bottom
        writer.put(0, 1); // no VUI
        let info = parse_sps(&writer.bytes()).unwrap();
        assert_eq!((info.width, info.height, info.level_idc), (1920, 1080, 40));
        assert_eq!(info.timing, None);
    }

    /// A Baseline SPS of 640x480 with the VUI given by `vui`.
    fn sps_with_vui(vui: impl FnOnce(&mut BitWriter)) -> Vec<u8> {
        let mut writer = BitWriter::default();
        writer.put(0x67, 8);
        writer.put(66, 8);
        writer.put(0xc0, 8);
        writer.put(30, 8);
        writer.ue(0);
        writer.ue(0);
        writer.ue(2); // poc type 2
        writer.ue(1);
        writer.put(0, 1);
        writer.ue(39);
        writer.ue(29);
        writer.put(1, 1);
        writer.put(1, 1);
        writer.put(0, 1); // no cropping
        writer.put(1, 1); // VUI present
        vui(&mut writer);
        writer.bytes()
    }

    #[test]
    fn reads_the_frame_rate_from_the_vui_timing() {
        let sps = sps_with_vui(|vui| {
            vui.put(1, 1);
            vui.put(255, 8); // extended SAR
            vui.put(1, 16);
            vui.put(1, 16);
            vui.put(0, 1);
            vui.put(1, 1); // video signal type with colour description
            vui.put(5, 4);
            vui.put(1, 1);
            vui.put(0x010101, 24);
            vui.put(1, 1); // chroma location
            vui.ue(0);
            vui.ue(0);
            vui.put(1, 1); // timing: 30000/1001 frames per second
            vui.put(1001, 32);
            vui.put(60000, 32);
            vui.put(0, 1);
        });
        let info = parse_sps(&sps).unwrap();
        assert_eq!((info.width, info.height), (640, 480));
        let timing = info.timing.expect("timing");
        assert!((timing.frame_rate().unwrap() - 29.97).abs() < 0.001, "{timing:?}");
        let cut = sps_with_vui(|vui| vui.put(0, 4));
        assert_eq!(parse_sps(&cut).unwrap().timing, None, "no timing information");
        let zero = SpsTiming { num_units_in_tick: 0, time_scale: 50 };
        assert_eq!(zero.frame_rate(), None);
    }

    #[test]
    fn builds_a_configuration_record_that_parses_back() {
        let pps: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb];
        let record = decoder_configuration_record(SPS_HIGH_320X180, &[pps]).unwrap();
        let config = AvcDecoderConfig::parse(&record).unwrap();
        assert_eq!((config.profile_idc, config.level_idc, config.nal_length_size), (100, 12, 4));
        assert_eq!(config.sps, SPS_HIGH_320X180);
        assert_eq!(&record[record.len() - 7..], &[1, 0, 4, 0x68, 0xeb, 0xe3, 0xcb]);
        assert_eq!(decoder_configuration_record(pps, &[pps]), Err(H264Error::NotSps(8)));
        assert_eq!(
            decoder_configuration_record(&[0x67, 0x64], &[pps]),
            Err(H264Error::Truncated("SPS profile and level"))
        );
        assert!(decoder_configuration_record(SPS_HIGH_320X180, &[]).is_err(), "at least one PPS");
        assert!(decoder_configuration_record(SPS_HIGH_320X180, &[&[]]).is_err(), "an empty PPS");
    }

    #[test]
    fn removes_emulation_prevention_bytes() {
        assert_eq!(remove_emulation_prevention(&[0, 0, 3, 1, 0, 0, 3, 0, 5]), vec![0, 0, 1, 0, 0, 0, 5]);
    }

    #[test]
    fn parses_decoder_configuration_record() {
        let mut record = vec![1, 0x64, 0x00, 0x0c, 0xff, 0xe1, 0, SPS_HIGH_320X180.len() as u8];
        record.extend_from_slice(SPS_HIGH_320X180);
        record.extend_from_slice(&[1, 0, 4, 0x68, 0xeb, 0xe3, 0xcb]);
        let config = AvcDecoderConfig::parse(&record).unwrap();
        assert_eq!(config.nal_length_size, 4);
        assert_eq!(config.sps, SPS_HIGH_320X180);
        assert_eq!(config.sps_info().unwrap().height, 180);
    }

    #[test]
    fn truncated_input_is_an_error_at_every_length() {
        // The fields read end in the tenth byte; the rest is VUI.
        for length in 0..10 {
            assert!(parse_sps(&SPS_HIGH_320X180[..length]).is_err(), "length {length}");
        }
        assert_eq!(
            AvcDecoderConfig::parse(&[1, 0x64, 0, 0x0c, 0xff, 0xe1, 0, 30, 0x67]),
            Err(H264Error::Truncated("sequenceParameterSetNALUnit"))
        );
        assert_eq!(AvcDecoderConfig::parse(&[1, 0x64, 0, 0x0c, 0xff, 0xe0]), Err(H264Error::NoSps));
    }

    #[test]
    fn rejects_non_sps_and_absurd_exp_golomb() {
        assert_eq!(parse_sps(&[0x68, 0xeb]), Err(H264Error::NotSps(8)));
        let all_zero = [0x67, 66, 0, 30, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches!(parse_sps(&all_zero), Err(H264Error::OutOfRange { .. } | H264Error::Truncated(_))));
    }
}
