//! AAC in ADTS framing (ISO/IEC 13818-7, 6.2), as MPEG-TS carries it: every frame has a
//! header that repeats the audio configuration which FLV and MP4 carry once, as an
//! AudioSpecificConfig (ISO/IEC 14496-3, 1.6.2.1), followed by the raw frame.

use thiserror::Error;

/// Length of an ADTS header without CRC.
const HEADER_LEN: usize = 7;
/// Length of an ADTS header with CRC.
const HEADER_WITH_CRC_LEN: usize = 9;
/// Samples per AAC frame (the 960-sample variant is not signalled by ADTS).
pub const SAMPLES_PER_FRAME: u32 = 1024;
/// Sampling frequencies by `sampling_frequency_index`.
const SAMPLE_RATES: [u32; 13] =
    [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];

/// Errors in ADTS data.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AdtsError {
    /// The data does not start with the ADTS sync word.
    #[error("ADTS sync word missing")]
    NoSync,
    /// Fewer bytes than the header or the frame length need.
    #[error("ADTS frame truncated: {needed} bytes needed, {available} available")]
    Truncated { needed: usize, available: usize },
    /// A frame length shorter than its own header.
    #[error("ADTS frame length {0} is shorter than its header")]
    BadLength(usize),
    /// `sampling_frequency_index` 13 to 15, reserved or not allowed in ADTS.
    #[error("ADTS sampling frequency index {0} is reserved")]
    ReservedFrequency(u8),
    /// Channel configuration 0: the layout is in a program config element, which the
    /// FLV sequence header built here cannot carry.
    #[error("ADTS channel configuration 0 (a program config element) is not supported")]
    ProgramConfigElement,
    /// More than one raw data block in a frame, which encoders do not send for live.
    #[error("ADTS frame with {0} raw data blocks is not supported")]
    MultipleBlocks(u8),
}

/// The audio configuration an ADTS header gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioConfig {
    /// MPEG-4 audio object type (2 for AAC LC).
    pub object_type: u8,
    /// `sampling_frequency_index`, 0 to 12.
    pub frequency_index: u8,
    /// `channel_configuration`, 1 to 7.
    pub channel_configuration: u8,
}

impl AudioConfig {
    /// The two-byte AudioSpecificConfig: object type, frequency index, channel
    /// configuration, and a GASpecificConfig of zero flags (1024-sample frames).
    pub fn audio_specific_config(&self) -> [u8; 2] {
        let bits = (u16::from(self.object_type) << 11)
            | (u16::from(self.frequency_index) << 7)
            | (u16::from(self.channel_configuration) << 3);
        bits.to_be_bytes()
    }

    /// Samples per second.
    pub fn sample_rate(&self) -> u32 {
        SAMPLE_RATES.get(usize::from(self.frequency_index)).copied().unwrap_or(SAMPLE_RATES[3])
    }
}

/// One ADTS frame: its configuration and the raw AAC frame after the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdtsFrame<'a> {
    pub config: AudioConfig,
    pub raw: &'a [u8],
}

/// Reads the frame at the start of `data`; returns it and the length of the whole frame.
pub fn parse_frame(data: &[u8]) -> Result<(AdtsFrame<'_>, usize), AdtsError> {
    let header: [u8; HEADER_LEN] = data
        .get(..HEADER_LEN)
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or(AdtsError::Truncated { needed: HEADER_LEN, available: data.len() })?;
    // Twelve one bits, then layer 0.
    if header[0] != 0xff || header[1] & 0xf6 != 0xf0 {
        return Err(AdtsError::NoSync);
    }
    let protection_absent = header[1] & 0x01 == 1;
    let object_type = (header[2] >> 6) + 1;
    let frequency_index = (header[2] >> 2) & 0x0f;
    if usize::from(frequency_index) >= SAMPLE_RATES.len() {
        return Err(AdtsError::ReservedFrequency(frequency_index));
    }
    let channel_configuration = ((header[2] & 0x01) << 2) | (header[3] >> 6);
    if channel_configuration == 0 {
        return Err(AdtsError::ProgramConfigElement);
    }
    let frame_length =
        (usize::from(header[3] & 0x03) << 11) | (usize::from(header[4]) << 3) | usize::from(header[5] >> 5);
    let blocks = (header[6] & 0x03) + 1;
    if blocks > 1 {
        return Err(AdtsError::MultipleBlocks(blocks));
    }
    let header_len = if protection_absent { HEADER_LEN } else { HEADER_WITH_CRC_LEN };
    if frame_length <= header_len {
        return Err(AdtsError::BadLength(frame_length));
    }
    let raw = data
        .get(header_len..frame_length)
        .ok_or(AdtsError::Truncated { needed: frame_length, available: data.len() })?;
    let config = AudioConfig { object_type, frequency_index, channel_configuration };
    Ok((AdtsFrame { config, raw }, frame_length))
}

/// The frames of a PES payload of ADTS audio, in order.
pub fn frames(mut data: &[u8]) -> impl Iterator<Item = Result<AdtsFrame<'_>, AdtsError>> {
    let mut failed = false;
    std::iter::from_fn(move || {
        if data.is_empty() || failed {
            return None;
        }
        match parse_frame(data) {
            Ok((frame, length)) => {
                data = data.get(length..).unwrap_or_default();
                Some(Ok(frame))
            }
            Err(error) => {
                failed = true;
                Some(Err(error))
            }
        }
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An ADTS frame of AAC LC, 48 kHz stereo, around `raw`, without CRC.
    pub(crate) fn adts_frame(raw: &[u8]) -> Vec<u8> {
        let length = raw.len() + HEADER_LEN;
        let mut frame = vec![
            0xff,
            0xf1,
            0x40 | (3 << 2),
            0x80 | ((length >> 11) as u8 & 0x03),
            (length >> 3) as u8,
            ((length as u8 & 0x07) << 5) | 0x1f,
            0xfc,
        ];
        frame.extend_from_slice(raw);
        frame
    }

    #[test]
    fn reads_config_and_raw_frame() {
        let data = [adts_frame(&[1, 2, 3]), adts_frame(&[4])].concat();
        let frames: Vec<_> = frames(&data).collect::<Result<_, _>>().unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].raw, &[1, 2, 3]);
        assert_eq!(frames[1].raw, &[4]);
        let config = frames[0].config;
        assert_eq!(config, AudioConfig { object_type: 2, frequency_index: 3, channel_configuration: 2 });
        assert_eq!(config.audio_specific_config(), [0x11, 0x90], "AAC LC, 48 kHz, stereo");
        assert_eq!(config.sample_rate(), 48000);
    }

    #[test]
    fn crc_header_is_skipped() {
        let mut frame = adts_frame(&[0xaa, 0xbb, 9]);
        frame[1] = 0xf0; // protection_absent = 0: two CRC bytes follow the header
        let (parsed, length) = parse_frame(&frame).unwrap();
        assert_eq!((parsed.raw, length), (&[9][..], 10));
    }

    #[test]
    fn bad_frames_are_errors() {
        assert_eq!(parse_frame(&[0xff, 0xf1]), Err(AdtsError::Truncated { needed: 7, available: 2 }));
        assert_eq!(parse_frame(&[0x47; 9]), Err(AdtsError::NoSync));
        let frame = adts_frame(&[1, 2, 3]);
        assert_eq!(parse_frame(&frame[..8]), Err(AdtsError::Truncated { needed: 10, available: 8 }));
        let mut reserved = frame.clone();
        reserved[2] = 0x40 | (13 << 2);
        assert_eq!(parse_frame(&reserved), Err(AdtsError::ReservedFrequency(13)));
        let mut no_channels = frame.clone();
        no_channels[3] &= 0x3f;
        assert_eq!(parse_frame(&no_channels), Err(AdtsError::ProgramConfigElement));
        let mut blocks = frame.clone();
        blocks[6] |= 0x01;
        assert_eq!(parse_frame(&blocks), Err(AdtsError::MultipleBlocks(2)));
        let mut short = frame;
        short[4] = 0;
        short[5] &= 0x1f;
        assert_eq!(parse_frame(&short), Err(AdtsError::BadLength(0)));
        let garbage = [adts_frame(&[1]), vec![0, 1, 2]].concat();
        let results: Vec<_> = frames(&garbage).collect();
        assert_eq!(results.len(), 2, "stops at the first error");
        assert!(results[1].is_err());
    }
}
