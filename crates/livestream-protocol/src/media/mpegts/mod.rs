//! MPEG-TS (ISO/IEC 13818-1) demultiplexing: [`elementary_streams`] reads just enough of a
//! segment to learn its codecs (the PAT and PMT give the elementary streams, and the first
//! PES packet of each gives its payload start: the SPS of H.264 video, the ADTS header of
//! AAC audio); [`TsDemuxer`] reads a live transport stream fed in pieces, PES after PES.

mod demux;

pub use demux::{MAX_PES_BYTES, Pes, ProgramStream, TsDemuxer, TsEvent};

use std::collections::HashMap;

use thiserror::Error;

/// Size of a transport stream packet.
pub const TS_PACKET_SIZE: usize = 188;
/// Stream type of H.264 video in a PMT.
pub const STREAM_TYPE_H264: u8 = 0x1b;
/// Stream type of HEVC video in a PMT.
pub const STREAM_TYPE_HEVC: u8 = 0x24;
/// Stream type of AAC audio in ADTS framing in a PMT.
pub const STREAM_TYPE_AAC_ADTS: u8 = 0x0f;
/// Most bytes gathered from one elementary stream's first PES packet.
const MAX_FIRST_PES_BYTES: usize = 2 * 1024 * 1024;

/// Errors from demultiplexing a transport stream.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TsError {
    /// A packet does not start with the sync byte 0x47.
    #[error("MPEG-TS packet {0} has no sync byte")]
    NoSync(usize),
    /// No PAT, or a PAT without programs.
    #[error("MPEG-TS has no program association table")]
    NoPat,
    /// No PMT for the first program.
    #[error("MPEG-TS has no program map table")]
    NoPmt,
    /// A PSI section or PES header is cut short.
    #[error("MPEG-TS {0} truncated")]
    Truncated(&'static str),
    /// A PES packet larger than [`MAX_PES_BYTES`].
    #[error("MPEG-TS PES packet on PID {pid} exceeds {MAX_PES_BYTES} bytes")]
    PesTooLarge { pid: u16 },
    /// A PES header that breaks the standard.
    #[error("MPEG-TS PES header invalid: {0}")]
    BadPes(&'static str),
}

/// One elementary stream and the start of its first PES packet's payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElementaryStream {
    /// `stream_type` from the PMT.
    pub stream_type: u8,
    /// PID carrying the stream.
    pub pid: u16,
    /// Payload of the first PES packet (after the PES header); may be empty when the
    /// segment holds no PES for this stream.
    pub first_payload: Vec<u8>,
}

/// Reads the PAT, the first program's PMT and the first PES payload of every elementary
/// stream listed there, in PMT order.
pub fn elementary_streams(data: &[u8]) -> Result<Vec<ElementaryStream>, TsError> {
    let packets: Vec<TsPacket<'_>> = data
        .chunks(TS_PACKET_SIZE)
        .enumerate()
        .filter(|(_, chunk)| chunk.len() == TS_PACKET_SIZE)
        .map(|(index, chunk)| TsPacket::parse(index, chunk))
        .collect::<Result<_, _>>()?;

    let pat = packets.iter().find(|packet| packet.pid == 0 && packet.unit_start).ok_or(TsError::NoPat)?;
    let pmt_pid = parse_pat(psi_section(pat.payload)?)?;
    let pmt = packets.iter().find(|packet| packet.pid == pmt_pid && packet.unit_start).ok_or(TsError::NoPmt)?;
    let mut streams = parse_pmt(psi_section(pmt.payload)?)?;

    let mut gathered: HashMap<u16, (Vec<u8>, bool)> = HashMap::new();
    for packet in &packets {
        if !streams.iter().any(|stream| stream.pid == packet.pid) {
            continue;
        }
        let (buffer, done) = gathered.entry(packet.pid).or_default();
        if *done {
            continue;
        }
        if packet.unit_start {
            if !buffer.is_empty() {
                *done = true;
                continue;
            }
        } else if buffer.is_empty() {
            continue;
        }
        buffer.extend_from_slice(packet.payload);
        if buffer.len() >= MAX_FIRST_PES_BYTES {
            *done = true;
        }
    }
    for stream in &mut streams {
        if let Some((pes, _)) = gathered.remove(&stream.pid) {
            stream.first_payload = pes_payload(&pes)?.to_vec();
        }
    }
    Ok(streams)
}

struct TsPacket<'a> {
    pid: u16,
    unit_start: bool,
    /// The packet carries a payload (adaptation_field_control 1 or 3).
    has_payload: bool,
    /// `continuity_counter`.
    continuity: u8,
    /// The adaptation field's `discontinuity_indicator`.
    discontinuity: bool,
    payload: &'a [u8],
}

impl<'a> TsPacket<'a> {
    fn parse(index: usize, packet: &'a [u8]) -> Result<Self, TsError> {
        let byte = |at: usize| packet.get(at).copied().ok_or(TsError::Truncated("packet header"));
        if byte(0)? != 0x47 {
            return Err(TsError::NoSync(index));
        }
        let unit_start = byte(1)? & 0x40 != 0;
        let pid = (u16::from(byte(1)? & 0x1f) << 8) | u16::from(byte(2)?);
        let adaptation_control = (byte(3)? >> 4) & 0x03;
        let continuity = byte(3)? & 0x0f;
        let discontinuity = adaptation_control & 0x02 != 0 && byte(4)? > 0 && byte(5)? & 0x80 != 0;
        let payload_start = match adaptation_control {
            1 => 4,
            3 => 5 + usize::from(byte(4)?),
            _ => packet.len(),
        };
        let payload = packet.get(payload_start..).unwrap_or_default();
        let has_payload = adaptation_control & 0x01 != 0;
        Ok(Self { pid, unit_start, has_payload, continuity, discontinuity, payload })
    }
}

/// The section of a PSI payload, after its pointer field, cut to `section_length`.
fn psi_section(payload: &[u8]) -> Result<&[u8], TsError> {
    let pointer = usize::from(*payload.first().ok_or(TsError::Truncated("PSI pointer"))?);
    let section = payload.get(1 + pointer..).ok_or(TsError::Truncated("PSI section"))?;
    let high = usize::from(*section.get(1).ok_or(TsError::Truncated("PSI section"))? & 0x0f);
    let low = usize::from(*section.get(2).ok_or(TsError::Truncated("PSI section"))?);
    let length = (high << 8) | low;
    section.get(..3 + length).ok_or(TsError::Truncated("PSI section"))
}

fn parse_pat(section: &[u8]) -> Result<u16, TsError> {
    // Header of 8 bytes, then 4-byte entries, then a 4-byte CRC.
    let entries = section.get(8..section.len().saturating_sub(4)).ok_or(TsError::NoPat)?;
    entries
        .chunks_exact(4)
        .filter(|entry| entry.first().zip(entry.get(1)).is_some_and(|(&high, &low)| high != 0 || low != 0))
        .find_map(|entry| Some((u16::from(*entry.get(2)? & 0x1f) << 8) | u16::from(*entry.get(3)?)))
        .ok_or(TsError::NoPat)
}

fn parse_pmt(section: &[u8]) -> Result<Vec<ElementaryStream>, TsError> {
    let byte = |at: usize| section.get(at).copied().ok_or(TsError::Truncated("PMT"));
    let program_info_length = (usize::from(byte(10)? & 0x0f) << 8) | usize::from(byte(11)?);
    let end = section.len().saturating_sub(4);
    let mut at = 12 + program_info_length;
    let mut streams = Vec::new();
    while at + 5 <= end {
        let stream_type = byte(at)?;
        let pid = (u16::from(byte(at + 1)? & 0x1f) << 8) | u16::from(byte(at + 2)?);
        let info_length = (usize::from(byte(at + 3)? & 0x0f) << 8) | usize::from(byte(at + 4)?);
        streams.push(ElementaryStream { stream_type, pid, first_payload: Vec::new() });
        at += 5 + info_length;
    }
    Ok(streams)
}

fn pes_payload(pes: &[u8]) -> Result<&[u8], TsError> {
    let header = demux::PesHeader::parse(pes)?;
    pes.get(header.payload_start..).ok_or(TsError::Truncated("PES header"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) use super::demux::tests::{number, pes_with_times};

    /// Packs `payload` into 188-byte packets on `pid`, padding the last one with an
    /// adaptation field of stuffing bytes.
    pub(crate) fn packetize(pid: u16, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for (index, chunk) in payload.chunks(184).enumerate() {
            let start = if index == 0 { 0x40 } else { 0 };
            let header = [0x47, start | (pid >> 8) as u8, pid as u8];
            out.extend_from_slice(&header);
            if chunk.len() == 184 {
                out.push(0x10);
            } else {
                let stuffing = 184 - chunk.len();
                out.push(0x30);
                out.push((stuffing - 1) as u8);
                if stuffing > 1 {
                    out.push(0);
                    out.extend(std::iter::repeat_n(0xff, stuffing - 2));
                }
            }
            out.extend_from_slice(chunk);
        }
        out
    }

    /// A PSI section with a pointer field and a dummy CRC.
    pub(crate) fn section(table_id: u8, body: &[u8]) -> Vec<u8> {
        let length = body.len() + 5 + 4;
        let mut out = vec![0, table_id, 0xb0 | (length >> 8) as u8, length as u8, 0, 1, 0xc1, 0, 0];
        out.extend_from_slice(body);
        out.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        out
    }

    pub(crate) fn pes(stream_id: u8, es: &[u8]) -> Vec<u8> {
        let mut out = vec![0, 0, 1, stream_id, 0, 0, 0x80, 0x80, 5, 0x21, 0, 1, 0, 1];
        out.extend_from_slice(es);
        out
    }

    /// A transport stream with a PAT, a PMT (program 1 on PID 0x1000) and one PES per
    /// stream given as (stream type, PID, elementary stream bytes).
    pub(crate) fn transport_stream(streams: &[(u8, u16, &[u8])]) -> Vec<u8> {
        let mut ts = packetize(0, &section(0x00, &[0, 1, 0xf0, 0x00]));
        let mut pmt_body = vec![0xe1, 0x00, 0xf0, 0x00];
        for (stream_type, pid, _) in streams {
            pmt_body.extend_from_slice(&[*stream_type, 0xe0 | (pid >> 8) as u8, *pid as u8, 0xf0, 0x00]);
        }
        ts.extend(packetize(0x1000, &section(0x02, &pmt_body)));
        for (index, (_, pid, es)) in streams.iter().enumerate() {
            ts.extend(packetize(*pid, &pes(0xe0 + index as u8, es)));
        }
        ts
    }

    #[test]
    fn finds_streams_and_first_payloads() {
        let video = vec![0xaa; 500];
        let ts = transport_stream(&[(STREAM_TYPE_H264, 0x100, &video), (STREAM_TYPE_AAC_ADTS, 0x101, b"adts")]);
        let streams = elementary_streams(&ts).unwrap();
        assert_eq!(streams.len(), 2);
        assert_eq!((streams[0].stream_type, streams[0].pid), (STREAM_TYPE_H264, 0x100));
        assert_eq!(streams[0].first_payload, video);
        assert_eq!(streams[1].first_payload, b"adts");
    }

    #[test]
    fn bad_input_is_an_error() {
        assert_eq!(elementary_streams(&[0u8; 188]), Err(TsError::NoSync(0)));
        assert_eq!(elementary_streams(&[]), Err(TsError::NoPat));
        let pat_only = packetize(0, &section(0x00, &[0, 1, 0xf0, 0x00]));
        assert_eq!(elementary_streams(&pat_only), Err(TsError::NoPmt));
    }
}
