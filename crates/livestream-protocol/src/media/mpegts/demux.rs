//! A live transport stream, fed in pieces of any size: the first program's PMT names the
//! elementary streams, and each stream's PES packets come out whole with their
//! timestamps.
//!
//! A PES packet ends where the next one of its PID starts (video PES packets of live
//! encoders declare no length), or when its declared length is reached. A gap in a PID's
//! continuity counter (a packet lost on the way) drops that PID's PES packet in progress:
//! a frame with a hole would only decode into garbage. Memory is bounded: one PES packet
//! per stream of at most [`MAX_PES_BYTES`], one PSI section, less than one packet of
//! carried-over input, and the events of one [`TsDemuxer::push`] until they are taken.

use std::collections::VecDeque;

use super::{TS_PACKET_SIZE, TsError, TsPacket, parse_pat, parse_pmt, psi_section};

/// Largest PES packet gathered: a keyframe of 4K video at a high bitrate fits.
pub const MAX_PES_BYTES: usize = 8 * 1024 * 1024;
/// Largest PSI section (ISO/IEC 13818-1 limits `section_length` to 1021) plus a packet.
const MAX_SECTION_BYTES: usize = 1024 + TS_PACKET_SIZE;
/// The PID of the program association table.
const PAT_PID: u16 = 0;

/// An elementary stream that the program map table lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgramStream {
    /// `stream_type`, such as [`STREAM_TYPE_H264`](super::STREAM_TYPE_H264).
    pub stream_type: u8,
    pub pid: u16,
}

/// One whole PES packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pes {
    pub pid: u16,
    /// Presentation time stamp, 33 bits of a 90 kHz clock.
    pub pts: Option<u64>,
    /// Decoding time stamp, 33 bits of a 90 kHz clock; absent when it equals the PTS.
    pub dts: Option<u64>,
    /// The elementary stream data after the PES header.
    pub payload: Vec<u8>,
}

/// What the demuxer found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TsEvent {
    /// The program's streams, at the first PMT and whenever they change.
    Program(Vec<ProgramStream>),
    /// A whole PES packet of a listed stream.
    Pes(Pes),
}

/// Reads a transport stream that arrives in pieces. Sans IO: [`push`](Self::push) bytes,
/// then take [`next_event`](Self::next_event) until `None`.
#[derive(Debug, Default)]
pub struct TsDemuxer {
    /// The start of a packet that the last push cut off.
    carry: Vec<u8>,
    packets: usize,
    pmt_pid: Option<u16>,
    section: Option<Section>,
    streams: Vec<StreamState>,
    events: VecDeque<TsEvent>,
}

/// A PSI section being gathered on `pid`.
#[derive(Debug)]
struct Section {
    pid: u16,
    bytes: Vec<u8>,
}

#[derive(Debug)]
struct StreamState {
    stream: ProgramStream,
    last_continuity: Option<u8>,
    /// The PES packet in progress, from its start code on.
    pes: Option<Vec<u8>>,
}

impl TsDemuxer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; the transport stream's 188-byte packets may be cut anywhere. An error
    /// (no sync byte where a packet starts, an oversized or broken PES packet) means the
    /// stream cannot be read on.
    pub fn push(&mut self, mut data: &[u8]) -> Result<(), TsError> {
        if !self.carry.is_empty() {
            let wanted = TS_PACKET_SIZE - self.carry.len();
            let (head, rest) = data.split_at(wanted.min(data.len()));
            self.carry.extend_from_slice(head);
            data = rest;
            if self.carry.len() < TS_PACKET_SIZE {
                return Ok(());
            }
            let packet = std::mem::take(&mut self.carry);
            self.packet(&packet)?;
        }
        let mut packets = data.chunks_exact(TS_PACKET_SIZE);
        for packet in packets.by_ref() {
            self.packet(packet)?;
        }
        self.carry.extend_from_slice(packets.remainder());
        Ok(())
    }

    /// The stream ended: hands out the PES packets still in progress.
    pub fn finish(&mut self) -> Result<(), TsError> {
        for index in 0..self.streams.len() {
            self.complete_pes(index)?;
        }
        Ok(())
    }

    /// The next thing found, in stream order.
    pub fn next_event(&mut self) -> Option<TsEvent> {
        self.events.pop_front()
    }

    fn packet(&mut self, bytes: &[u8]) -> Result<(), TsError> {
        let packet = TsPacket::parse(self.packets, bytes)?;
        self.packets = self.packets.wrapping_add(1);
        if !packet.has_payload {
            return Ok(());
        }
        if packet.pid == PAT_PID || Some(packet.pid) == self.pmt_pid {
            return self.psi(&packet);
        }
        if let Some(index) = self.streams.iter().position(|state| state.stream.pid == packet.pid) {
            return self.stream_packet(index, &packet);
        }
        Ok(())
    }

    fn stream_packet(&mut self, index: usize, packet: &TsPacket<'_>) -> Result<(), TsError> {
        let Some(state) = self.streams.get_mut(index) else { return Ok(()) };
        let expected = state.last_continuity.map(|last| (last + 1) & 0x0f);
        if state.last_continuity == Some(packet.continuity) && !packet.discontinuity {
            // A duplicate packet, which the standard allows once.
            return Ok(());
        }
        state.last_continuity = Some(packet.continuity);
        if expected.is_some_and(|expected| expected != packet.continuity) && !packet.discontinuity {
            tracing::debug!(pid = packet.pid, "MPEG-TS continuity gap; dropping the PES packet in progress");
            state.pes = None;
        }
        if packet.unit_start {
            self.complete_pes(index)?;
            if let Some(state) = self.streams.get_mut(index) {
                state.pes = Some(packet.payload.to_vec());
            }
        } else if let Some(pes) = state.pes.as_mut() {
            if pes.len() + packet.payload.len() > MAX_PES_BYTES {
                return Err(TsError::PesTooLarge { pid: packet.pid });
            }
            pes.extend_from_slice(packet.payload);
        }
        // A PES packet that declares its length is complete as soon as it has it all.
        let declared_complete = self
            .streams
            .get(index)
            .and_then(|state| state.pes.as_deref())
            .and_then(declared_length)
            .zip(self.streams.get(index).and_then(|state| state.pes.as_ref()).map(Vec::len))
            .is_some_and(|(declared, length)| length >= declared);
        if declared_complete {
            self.complete_pes(index)?;
        }
        Ok(())
    }

    /// Hands out stream `index`'s PES packet in progress, if any.
    fn complete_pes(&mut self, index: usize) -> Result<(), TsError> {
        let Some(state) = self.streams.get_mut(index) else { return Ok(()) };
        let Some(mut bytes) = state.pes.take() else { return Ok(()) };
        let header = PesHeader::parse(&bytes)?;
        let end = header.declared_end.map_or(bytes.len(), |end| end.min(bytes.len()));
        bytes.truncate(end);
        let payload = bytes.split_off(header.payload_start.min(bytes.len()));
        let pes = Pes { pid: state.stream.pid, pts: header.pts, dts: header.dts, payload };
        self.events.push_back(TsEvent::Pes(pes));
        Ok(())
    }

    fn psi(&mut self, packet: &TsPacket<'_>) -> Result<(), TsError> {
        if packet.unit_start {
            self.section = Some(Section { pid: packet.pid, bytes: packet.payload.to_vec() });
        } else if let Some(section) = self.section.as_mut().filter(|section| section.pid == packet.pid) {
            section.bytes.extend_from_slice(packet.payload);
        } else {
            return Ok(());
        }
        let Some(section) = self.section.as_ref() else { return Ok(()) };
        let complete = match psi_section(&section.bytes) {
            Ok(complete) => complete,
            Err(TsError::Truncated(_)) if section.bytes.len() < MAX_SECTION_BYTES => return Ok(()),
            Err(_) => {
                // A section that never completes is dropped; the next one may be whole.
                self.section = None;
                return Ok(());
            }
        };
        let table_id = complete.first().copied();
        match (section.pid, table_id) {
            (PAT_PID, Some(0x00)) => {
                if let Ok(pmt_pid) = parse_pat(complete) {
                    self.pmt_pid = Some(pmt_pid);
                }
            }
            (_, Some(0x02)) => {
                let listed: Vec<ProgramStream> = parse_pmt(complete)?
                    .into_iter()
                    .map(|stream| ProgramStream { stream_type: stream.stream_type, pid: stream.pid })
                    .collect();
                self.program(listed)?;
            }
            _ => {}
        }
        self.section = None;
        Ok(())
    }

    /// Takes the PMT's streams, keeping the state of those that stay.
    fn program(&mut self, listed: Vec<ProgramStream>) -> Result<(), TsError> {
        let current: Vec<ProgramStream> = self.streams.iter().map(|state| state.stream).collect();
        if current == listed {
            return Ok(());
        }
        for index in 0..self.streams.len() {
            if !listed.contains(&self.streams[index].stream) {
                self.complete_pes(index)?;
            }
        }
        let mut previous = std::mem::take(&mut self.streams);
        self.streams = listed
            .iter()
            .map(|stream| match previous.iter().position(|state| state.stream == *stream) {
                Some(index) => previous.swap_remove(index),
                None => StreamState { stream: *stream, last_continuity: None, pes: None },
            })
            .collect();
        self.events.push_back(TsEvent::Program(listed));
        Ok(())
    }
}

/// The end of a PES packet that declares its `PES_packet_length` (from the start code).
fn declared_length(pes: &[u8]) -> Option<usize> {
    let length = usize::from(u16::from_be_bytes([*pes.get(4)?, *pes.get(5)?]));
    (length > 0).then_some(6 + length)
}

/// The fields of a PES header that matter here (ISO/IEC 13818-1, 2.4.3.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PesHeader {
    pub pts: Option<u64>,
    pub dts: Option<u64>,
    /// Where the elementary stream data starts.
    pub payload_start: usize,
    /// Where the packet ends, when it declares its length.
    pub declared_end: Option<usize>,
}

impl PesHeader {
    /// Parses the header of a PES packet of an audio or video stream.
    pub fn parse(pes: &[u8]) -> Result<Self, TsError> {
        if pes.get(..3) != Some(&[0, 0, 1]) {
            return Err(TsError::Truncated("PES start code"));
        }
        let byte = |at: usize| pes.get(at).copied().ok_or(TsError::Truncated("PES header"));
        let declared_end = declared_length(pes);
        if byte(6)? & 0xc0 != 0x80 {
            return Err(TsError::BadPes("no optional header of an audio or video stream"));
        }
        let flags = byte(7)?;
        let header_length = usize::from(byte(8)?);
        let payload_start = 9 + header_length;
        let fields = pes.get(9..payload_start).ok_or(TsError::Truncated("PES header"))?;
        let (pts, dts) = match flags >> 6 {
            0b10 => (Some(timestamp(fields.get(..5))?), None),
            0b11 => (Some(timestamp(fields.get(..5))?), Some(timestamp(fields.get(5..10))?)),
            0b00 => (None, None),
            _ => return Err(TsError::BadPes("PTS_DTS_flags 01 is forbidden")),
        };
        if declared_end.is_some_and(|end| end < payload_start) {
            return Err(TsError::BadPes("PES_packet_length shorter than its header"));
        }
        Ok(Self { pts, dts, payload_start, declared_end })
    }
}

/// A 33-bit time stamp from its five bytes (with their marker bits).
fn timestamp(field: Option<&[u8]>) -> Result<u64, TsError> {
    let [a, b, c, d, e] = field.and_then(|bytes| bytes.try_into().ok()).ok_or(TsError::Truncated("PES time stamp"))?;
    Ok((u64::from(a >> 1 & 0x07) << 30)
        | (u64::from(b) << 22)
        | (u64::from(c >> 1) << 15)
        | (u64::from(d) << 7)
        | u64::from(e >> 1))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::tests::{packetize, section};
    use super::super::{STREAM_TYPE_AAC_ADTS, STREAM_TYPE_H264};
    use super::*;

    /// The five bytes of a time stamp with prefix `prefix`.
    pub(crate) fn timestamp_bytes(prefix: u8, value: u64) -> [u8; 5] {
        [
            (prefix << 4) | (((value >> 30) as u8 & 0x07) << 1) | 1,
            (value >> 22) as u8,
            (((value >> 15) as u8) << 1) | 1,
            (value >> 7) as u8,
            ((value as u8) << 1) | 1,
        ]
    }

    /// A PES packet with PTS (and DTS), of unbounded length unless `bounded`.
    pub(crate) fn pes_with_times(stream_id: u8, pts: u64, dts: Option<u64>, es: &[u8], bounded: bool) -> Vec<u8> {
        let mut header = vec![0x80, if dts.is_some() { 0xc0 } else { 0x80 }];
        let mut fields = timestamp_bytes(if dts.is_some() { 3 } else { 2 }, pts).to_vec();
        if let Some(dts) = dts {
            fields.extend(timestamp_bytes(1, dts));
        }
        header.push(fields.len() as u8);
        header.extend(fields);
        let length = if bounded { (header.len() + es.len()) as u16 } else { 0 };
        let mut out = vec![0, 0, 1, stream_id];
        out.extend(length.to_be_bytes());
        out.extend(header);
        out.extend_from_slice(es);
        out
    }

    fn program_tables() -> Vec<u8> {
        let mut ts = packetize(0, &section(0x00, &[0, 1, 0xf0, 0x00]));
        let pmt = [
            0xe1,
            0x00,
            0xf0,
            0x00,
            STREAM_TYPE_H264,
            0xe1,
            0x00,
            0xf0,
            0x00,
            STREAM_TYPE_AAC_ADTS,
            0xe1,
            0x01,
            0xf0,
            0x00,
        ];
        ts.extend(packetize(0x1000, &section(0x02, &pmt)));
        ts
    }

    fn events(demuxer: &mut TsDemuxer) -> Vec<TsEvent> {
        std::iter::from_fn(|| demuxer.next_event()).collect()
    }

    /// Gives each packet of a PID its own continuity counter, counting from 0.
    pub(crate) fn number(ts: &mut [u8]) {
        let mut counters = std::collections::HashMap::<u16, u8>::new();
        for packet in ts.chunks_mut(TS_PACKET_SIZE) {
            let pid = (u16::from(packet[1] & 0x1f) << 8) | u16::from(packet[2]);
            let counter = counters.entry(pid).or_default();
            packet[3] = (packet[3] & 0xf0) | *counter;
            *counter = (*counter + 1) & 0x0f;
        }
    }

    #[test]
    fn reads_the_program_and_whole_pes_packets_with_any_chunking() {
        let video_frames = [vec![0xaa; 400], vec![0xbb; 10]];
        let mut ts = program_tables();
        ts.extend(packetize(0x100, &pes_with_times(0xe0, 9000, Some(6000), &video_frames[0], false)));
        ts.extend(packetize(0x101, &pes_with_times(0xc0, 7000, None, b"audio", true)));
        ts.extend(packetize(0x100, &pes_with_times(0xe0, 12000, Some(9000), &video_frames[1], false)));
        number(&mut ts);
        for chunk in [1, 100, 188, 1316, ts.len()] {
            let mut demuxer = TsDemuxer::new();
            let mut found = Vec::new();
            for piece in ts.chunks(chunk) {
                demuxer.push(piece).unwrap();
                found.extend(events(&mut demuxer));
            }
            demuxer.finish().unwrap();
            found.extend(events(&mut demuxer));
            let program = vec![
                ProgramStream { stream_type: STREAM_TYPE_H264, pid: 0x100 },
                ProgramStream { stream_type: STREAM_TYPE_AAC_ADTS, pid: 0x101 },
            ];
            assert_eq!(found.first(), Some(&TsEvent::Program(program)), "chunk {chunk}");
            let pes: Vec<&Pes> = found
                .iter()
                .filter_map(|event| match event {
                    TsEvent::Pes(pes) => Some(pes),
                    TsEvent::Program(_) => None,
                })
                .collect();
            assert_eq!(pes.len(), 3, "chunk {chunk}");
            assert_eq!((pes[0].pid, pes[0].pts, pes[0].dts), (0x101, Some(7000), None), "bounded audio comes at once");
            assert_eq!(pes[0].payload, b"audio");
            assert_eq!((pes[1].pts, pes[1].dts, &pes[1].payload), (Some(9000), Some(6000), &video_frames[0]));
            assert_eq!(pes[2].payload, video_frames[1], "the last one at finish");
        }
    }

    #[test]
    fn a_continuity_gap_drops_the_frame_in_progress() {
        let mut ts = program_tables();
        ts.extend(packetize(0x100, &pes_with_times(0xe0, 0, None, &[0xaa; 600], false)));
        ts.extend(packetize(0x100, &pes_with_times(0xe0, 3600, None, &[0xbb; 10], false)));
        number(&mut ts);
        // Lose the second packet of the first frame.
        let lost = 2 + 1;
        ts.drain(lost * TS_PACKET_SIZE..(lost + 1) * TS_PACKET_SIZE);
        let mut demuxer = TsDemuxer::new();
        demuxer.push(&ts).unwrap();
        demuxer.finish().unwrap();
        let pes: Vec<TsEvent> = events(&mut demuxer).into_iter().skip(1).collect();
        assert_eq!(pes.len(), 1, "{pes:?}");
        assert!(matches!(&pes[0], TsEvent::Pes(pes) if pes.pts == Some(3600)));
    }

    #[test]
    fn broken_input_is_an_error_not_a_panic() {
        let mut demuxer = TsDemuxer::new();
        assert_eq!(demuxer.push(&[0u8; 188]), Err(TsError::NoSync(0)));
        let mut ts = program_tables();
        ts.extend(packetize(0x100, &[0, 0, 1, 0xe0, 0, 0, 0x80, 0x40, 0]));
        let mut demuxer = TsDemuxer::new();
        demuxer.push(&ts).unwrap();
        assert_eq!(demuxer.finish(), Err(TsError::BadPes("PTS_DTS_flags 01 is forbidden")));
        assert_eq!(PesHeader::parse(&[0, 0, 1, 0xe0, 0, 2, 0x80, 0x80, 5]), Err(TsError::Truncated("PES header")));
        assert_eq!(
            PesHeader::parse(&[0, 0, 1, 0xe0, 0, 1, 0x80, 0, 0]),
            Err(TsError::BadPes("PES_packet_length shorter than its header"))
        );
        assert_eq!(
            PesHeader::parse(&[0, 0, 1, 0xbe, 0, 0, 0xff]),
            Err(TsError::BadPes("no optional header of an audio or video stream"))
        );
    }

    #[test]
    fn an_oversized_pes_packet_is_refused() {
        let mut demuxer = TsDemuxer::new();
        demuxer.push(&program_tables()).unwrap();
        let start = packetize(0x100, &pes_with_times(0xe0, 0, None, &[0; 100], false));
        demuxer.push(&start).unwrap();
        let mut result = Ok(());
        for count in 1..50_000usize {
            let mut packet = vec![0x47, 0x01, 0x00, 0x10 | (count as u8 & 0x0f)];
            packet.resize(TS_PACKET_SIZE, 0);
            result = demuxer.push(&packet);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(TsError::PesTooLarge { pid: 0x100 }));
    }

    #[test]
    fn time_stamps_keep_all_33_bits() {
        let max = (1u64 << 33) - 1;
        assert_eq!(timestamp(Some(&timestamp_bytes(2, max))), Ok(max));
        assert_eq!(timestamp(Some(&timestamp_bytes(2, 1 << 32))), Ok(1 << 32));
        assert_eq!(timestamp(Some(&[0x21, 0, 1])), Err(TsError::Truncated("PES time stamp")));
    }
}
