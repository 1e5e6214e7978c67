//! A reader of bit fields, most significant bit first, with the Exp-Golomb codes of the
//! H.264 and HEVC parameter sets.

use thiserror::Error;

/// Errors from reading bits.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum BitsError {
    /// The data ended before a required field.
    #[error("data truncated while reading {0}")]
    Truncated(&'static str),
    /// An Exp-Golomb code longer than the standards allow.
    #[error("field {field} out of range: {value}")]
    OutOfRange {
        /// Field name.
        field: &'static str,
        /// Value found.
        value: u64,
    },
}

/// Reads bits most significant first, with Exp-Golomb codes.
pub struct BitReader<'a> {
    data: &'a [u8],
    position: usize,
}

impl<'a> BitReader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, position: 0 }
    }

    pub fn bit(&mut self, field: &'static str) -> Result<u64, BitsError> {
        let byte = self.data.get(self.position / 8).ok_or(BitsError::Truncated(field))?;
        let bit = (byte >> (7 - self.position % 8)) & 1;
        self.position += 1;
        Ok(u64::from(bit))
    }

    pub fn bits(&mut self, count: u32, field: &'static str) -> Result<u64, BitsError> {
        let mut value = 0;
        for _ in 0..count {
            value = (value << 1) | self.bit(field)?;
        }
        Ok(value)
    }

    pub fn byte(&mut self, field: &'static str) -> Result<u8, BitsError> {
        // Eight bits always fit in a u8.
        Ok(self.bits(8, field)? as u8)
    }

    pub fn flag(&mut self, field: &'static str) -> Result<bool, BitsError> {
        Ok(self.bit(field)? == 1)
    }

    /// Unsigned Exp-Golomb, limited to 32 leading zeros as the standard allows.
    pub fn ue(&mut self, field: &'static str) -> Result<u64, BitsError> {
        let mut leading_zeros = 0;
        while self.bit(field)? == 0 {
            leading_zeros += 1;
            if leading_zeros > 32 {
                return Err(BitsError::OutOfRange { field, value: u64::from(leading_zeros) });
            }
        }
        Ok((1u64 << leading_zeros) - 1 + self.bits(leading_zeros, field)?)
    }

    /// Signed Exp-Golomb.
    pub fn se(&mut self, field: &'static str) -> Result<i64, BitsError> {
        let code = self.ue(field)?;
        // code <= 2^33, so the halves fit in i64.
        let magnitude = code.div_ceil(2) as i64;
        Ok(if code % 2 == 1 { magnitude } else { -magnitude })
    }
}
