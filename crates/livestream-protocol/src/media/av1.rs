//! AV1: the AV1CodecConfigurationRecord (`av1C`) that Enhanced RTMP sequence starts and
//! MP4 sample entries carry, its RFC 6381 codec string (`av01.0.04M.08`, as the AV1
//! ISO BMFF binding spells it), and the picture size from the sequence header OBU that
//! follows the record's fixed part.

use thiserror::Error;

use super::bits::{BitReader, BitsError};

/// Length of the record's fixed part, before the configuration OBUs.
const RECORD_HEADER_LEN: usize = 4;
/// `obu_type` of a sequence header.
const OBU_SEQUENCE_HEADER: u8 = 1;

/// Errors from parsing an AV1 configuration record.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum Av1Error {
    /// Shorter than the fixed part.
    #[error("AV1CodecConfigurationRecord truncated")]
    Truncated,
    /// The marker bit is clear or the version is not 1.
    #[error("AV1CodecConfigurationRecord marker or version {0:#04x} is not 0x81")]
    BadVersion(u8),
    /// The record carries no sequence header OBU.
    #[error("AV1CodecConfigurationRecord holds no sequence header")]
    NoSequenceHeader,
    /// An OBU or the sequence header ends early or holds a value out of range.
    #[error("AV1 {0}")]
    Bits(#[from] BitsError),
}

/// The fields of an AV1CodecConfigurationRecord.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Av1Config {
    pub seq_profile: u8,
    pub seq_level_idx: u8,
    pub tier_high: bool,
    pub bit_depth: u8,
    pub monochrome: bool,
    /// The largest picture of the sequence (`max_frame_width_minus_1 + 1` and its height),
    /// when the record carries the sequence header.
    pub max_size: Option<(u32, u32)>,
}

impl Av1Config {
    /// Parses a record (the `av1C` box body, or an Enhanced RTMP sequence start).
    pub fn parse(record: &[u8]) -> Result<Self, Av1Error> {
        let [marker, profile_level, flags, _] = record.get(..RECORD_HEADER_LEN).ok_or(Av1Error::Truncated)? else {
            return Err(Av1Error::Truncated);
        };
        if *marker != 0x81 {
            return Err(Av1Error::BadVersion(*marker));
        }
        let seq_profile = profile_level >> 5;
        let high_bitdepth = flags & 0x40 != 0;
        let twelve_bit = flags & 0x20 != 0;
        let bit_depth = match (seq_profile, high_bitdepth, twelve_bit) {
            (2, true, true) => 12,
            (_, true, _) => 10,
            _ => 8,
        };
        Ok(Self {
            seq_profile,
            seq_level_idx: profile_level & 0x1F,
            tier_high: flags & 0x80 != 0,
            bit_depth,
            monochrome: flags & 0x10 != 0,
            max_size: sequence_header(&record[RECORD_HEADER_LEN..])?.map(max_frame_size).transpose()?,
        })
    }

    /// The picture size from the sequence header.
    pub fn picture_size(&self) -> Result<(u32, u32), Av1Error> {
        self.max_size.ok_or(Av1Error::NoSequenceHeader)
    }

    /// The codec string: `av01.{profile}.{level:02}{M|H}.{bit depth:02}`.
    pub fn codec_string(&self) -> String {
        let tier = if self.tier_high { 'H' } else { 'M' };
        format!("av01.{}.{:02}{tier}.{:02}", self.seq_profile, self.seq_level_idx, self.bit_depth)
    }
}

/// The payload of the first sequence header OBU among `obus` (low overhead bitstream
/// format: each OBU with its size field, or the last one without).
fn sequence_header(mut obus: &[u8]) -> Result<Option<&[u8]>, Av1Error> {
    while let [header, rest @ ..] = obus {
        let obu_type = (header >> 3) & 0x0F;
        let has_extension = header & 0x04 != 0;
        let has_size = header & 0x02 != 0;
        let mut rest =
            if has_extension { rest.get(1..).ok_or(BitsError::Truncated("obu_extension_header"))? } else { rest };
        let size = if has_size {
            let (size, length) = leb128(rest)?;
            rest = &rest[length..];
            usize::try_from(size).map_err(|_| BitsError::OutOfRange { field: "obu_size", value: size })?
        } else {
            rest.len()
        };
        let payload = rest.get(..size).ok_or(BitsError::Truncated("OBU payload"))?;
        if obu_type == OBU_SEQUENCE_HEADER {
            return Ok(Some(payload));
        }
        obus = &rest[size..];
    }
    Ok(None)
}

/// An unsigned LEB128 number of at most 8 bytes, and its length.
fn leb128(data: &[u8]) -> Result<(u64, usize), BitsError> {
    let mut value = 0u64;
    for (index, byte) in data.iter().take(8).enumerate() {
        value |= u64::from(byte & 0x7F) << (7 * index);
        if byte & 0x80 == 0 {
            return Ok((value, index + 1));
        }
    }
    Err(BitsError::Truncated("obu_size"))
}

/// `max_frame_width_minus_1 + 1` and `max_frame_height_minus_1 + 1` of a sequence header
/// OBU (AV1 specification 5.5.1), read past the timing and operating point fields.
fn max_frame_size(payload: &[u8]) -> Result<(u32, u32), Av1Error> {
    let mut bits = BitReader::new(payload);
    bits.bits(3, "seq_profile")?;
    bits.bit("still_picture")?;
    if bits.flag("reduced_still_picture_header")? {
        bits.bits(5, "seq_level_idx")?;
    } else {
        let mut buffer_delay_bits = 0;
        let mut decoder_model_info = false;
        if bits.flag("timing_info_present_flag")? {
            bits.bits(64, "timing_info")?;
            if bits.flag("equal_picture_interval")? {
                bits.ue("num_ticks_per_picture_minus_1")?;
            }
            decoder_model_info = bits.flag("decoder_model_info_present_flag")?;
            if decoder_model_info {
                buffer_delay_bits = bits.bits(5, "buffer_delay_length_minus_1")? as u32 + 1;
                bits.bits(32 + 5 + 5, "decoder_model_info")?;
            }
        }
        let initial_display_delay = bits.flag("initial_display_delay_present_flag")?;
        for _ in 0..=bits.bits(5, "operating_points_cnt_minus_1")? {
            bits.bits(12, "operating_point_idc")?;
            if bits.bits(5, "seq_level_idx")? > 7 {
                bits.bit("seq_tier")?;
            }
            if decoder_model_info && bits.flag("decoder_model_present_for_this_op")? {
                bits.bits(2 * buffer_delay_bits + 1, "operating_parameters_info")?;
            }
            if initial_display_delay && bits.flag("initial_display_delay_present_for_this_op")? {
                bits.bits(4, "initial_display_delay_minus_1")?;
            }
        }
    }
    let width_bits = bits.bits(4, "frame_width_bits_minus_1")? as u32 + 1;
    let height_bits = bits.bits(4, "frame_height_bits_minus_1")? as u32 + 1;
    // At most 16 bits each: the sizes fit in u32.
    let width = bits.bits(width_bits, "max_frame_width_minus_1")? as u32 + 1;
    let height = bits.bits(height_bits, "max_frame_height_minus_1")? as u32 + 1;
    Ok((width, height))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_record_written_by_ffmpeg() {
        // av1C of libsvtav1 at 320x180 (main profile, level 2.0, 8 bits, 4:2:0) as
        // ffmpeg 5.1's MP4 muxer wrote it, with its sequence header OBU.
        let config = Av1Config::parse(&AV1C_320X180).unwrap();
        assert_eq!(config.codec_string(), "av01.0.00M.08");
        assert_eq!(config.picture_size(), Ok((320, 180)));
        let without_obus = Av1Config::parse(&AV1C_320X180[..4]).unwrap();
        assert_eq!(without_obus.picture_size(), Err(Av1Error::NoSequenceHeader));
        let ten_bit_high = Av1Config::parse(&[0x81, 0x2d, 0xcc, 0x00]).unwrap();
        assert_eq!(ten_bit_high.codec_string(), "av01.1.13H.10");
        let twelve = Av1Config::parse(&[0x81, 0x48, 0x60, 0x00]).unwrap();
        assert_eq!(twelve.bit_depth, 12);
    }

    const AV1C_320X180: [u8; 17] =
        [0x81, 0x00, 0x0c, 0x00, 0x0a, 0x0b, 0x00, 0x00, 0x00, 0x04, 0x3c, 0xfe, 0xcc, 0x02, 0xf8, 0x00, 0x40];

    /// Packs `(value, bits)` fields most significant bit first, padded with zeros.
    fn pack(fields: &[(u64, u32)]) -> Vec<u8> {
        let mut bits: Vec<bool> = Vec::new();
        for &(value, count) in fields {
            bits.extend((0..count).rev().map(|bit| value >> bit & 1 == 1));
        }
        bits.chunks(8)
            .map(|byte| byte.iter().enumerate().fold(0u8, |out, (i, bit)| out | (u8::from(*bit) << (7 - i))))
            .collect()
    }

    #[test]
    fn sequence_headers_with_timing_and_operating_points() {
        // seq_profile 0, timing info with an equal picture interval (uvlc 0) and a decoder
        // model (buffer delays of 10 bits), two operating points (the first at level 8 with
        // its tier and decoder model), then 1920x1080 in 11-bit fields.
        #[rustfmt::skip]
        let payload = pack(&[
            (0, 3), (0, 1), (0, 1), (1, 1),
            (1, 32), (60, 32), (1, 1), (1, 1),
            (1, 1), (9, 5), (1, 32), (31, 5), (31, 5),
            (1, 1), (1, 5),
            (0x103, 12), (8, 5), (1, 1), (1, 1), (0, 21), (1, 1), (3, 4),
            (0x101, 12), (4, 5), (0, 1), (0, 1),
            (10, 4), (10, 4), (1919, 11), (1079, 11),
        ]);
        assert_eq!(max_frame_size(&payload), Ok((1920, 1080)));
        // The same as an OBU with a size field, after a temporal delimiter.
        let mut record = vec![0x81, 0x08, 0x0c, 0x00, 0x12, 0x00, 0x0a, payload.len() as u8];
        record.extend_from_slice(&payload);
        assert_eq!(Av1Config::parse(&record).unwrap().picture_size(), Ok((1920, 1080)));
    }

    #[test]
    fn truncated_sequence_headers_are_errors_at_every_length() {
        for length in 5..AV1C_320X180.len() {
            assert!(Av1Config::parse(&AV1C_320X180[..length]).is_err(), "length {length}");
        }
    }

    #[test]
    fn malformed_records_are_errors() {
        assert_eq!(Av1Config::parse(&[0x81, 0, 0]), Err(Av1Error::Truncated));
        assert_eq!(Av1Config::parse(&[0x01, 0, 0, 0]), Err(Av1Error::BadVersion(1)));
    }
}
