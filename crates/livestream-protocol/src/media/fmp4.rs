//! Fragmented MP4 as an encoder writes it to a stream: `ftyp` and `moov` (the init
//! segment), then fragments, each a `moof` and its `mdat` (with any `styp`, `sidx`, `prft`
//! or `emsg` boxes before the `moof` kept with it). Boxes after the last fragment (`mfra`)
//! are skipped.
//!
//! [`FragmentReader`] is sans IO: bytes in any chunking go in, the init segment and whole
//! fragments come out, each fragment with the timing of its tracks read from the `moof`
//! (base decode time, duration, whether it starts on a sync sample), so that a packager can
//! cut parts and segments without decoding anything. Sizes are bounded; malformed input is
//! an error, never a panic.

use bytes::{Bytes, BytesMut};
use thiserror::Error;

use super::mp4::{self, Mp4Box, Mp4Error};

/// Largest top-level box accepted (a fragment of high-bitrate video is a few megabytes).
pub const MAX_BOX_BYTES: usize = 64 * 1024 * 1024;
/// Most tracks an init segment may declare.
const MAX_TRACKS: usize = 16;
/// Most samples one track run may declare.
const MAX_SAMPLES_PER_RUN: u32 = 1 << 20;

/// `sample_is_non_sync_sample` in ISO/IEC 14496-12 sample flags.
const SAMPLE_IS_NON_SYNC: u32 = 0x0001_0000;

/// Errors of the fragmented MP4 reader.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum Fmp4Error {
    #[error(transparent)]
    Box(#[from] Mp4Error),
    /// A top-level box larger than [`MAX_BOX_BYTES`].
    #[error("MP4 box {box_type} of {size} bytes exceeds the {MAX_BOX_BYTES}-byte limit")]
    TooLarge { box_type: String, size: u64 },
    /// A fragment before the init segment, or a second init segment.
    #[error("unexpected {0} box")]
    Unexpected(String),
    /// A field that cannot be right.
    #[error("malformed {0}")]
    Malformed(&'static str),
}

/// What a track carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackKind {
    Video,
    Audio,
    Other,
}

/// One track of an init segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Track {
    pub id: u32,
    pub kind: TrackKind,
    /// Ticks per second of the track's media time.
    pub timescale: u32,
    /// Defaults from `trex`, used where a fragment gives none.
    default_duration: u32,
    default_flags: u32,
}

/// The init segment (`ftyp` + `moov`) and what it says of the tracks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitSegment {
    pub bytes: Bytes,
    pub tracks: Vec<Track>,
}

impl InitSegment {
    /// Reads the tracks of an init segment.
    pub fn parse(bytes: Bytes) -> Result<Self, Fmp4Error> {
        let moov = mp4::descend(&bytes, &[b"moov"])?;
        let mut defaults = Vec::new();
        if let Some(mvex) = mp4::find_box(moov, b"mvex")? {
            for item in mp4::boxes(mvex) {
                let item = item?;
                if &item.box_type == b"trex" {
                    let body = full_box_body(item.body).ok_or(Fmp4Error::Malformed("trex"))?;
                    let id = read_u32(body, 0).ok_or(Fmp4Error::Malformed("trex"))?;
                    let duration = read_u32(body, 8).ok_or(Fmp4Error::Malformed("trex"))?;
                    let flags = read_u32(body, 16).ok_or(Fmp4Error::Malformed("trex"))?;
                    defaults.push((id, duration, flags));
                }
            }
        }
        let mut tracks = Vec::new();
        for item in mp4::boxes(moov) {
            let item = item?;
            if &item.box_type != b"trak" {
                continue;
            }
            if tracks.len() == MAX_TRACKS {
                return Err(Fmp4Error::Malformed("moov (too many tracks)"));
            }
            let tkhd = mp4::descend(item.body, &[b"tkhd"])?;
            let id = track_id(tkhd).ok_or(Fmp4Error::Malformed("tkhd"))?;
            let mdhd = mp4::descend(item.body, &[b"mdia", b"mdhd"])?;
            let timescale = media_timescale(mdhd).filter(|t| *t > 0).ok_or(Fmp4Error::Malformed("mdhd"))?;
            let hdlr = mp4::descend(item.body, &[b"mdia", b"hdlr"])?;
            let kind = match hdlr.get(8..12) {
                Some(b"vide") => TrackKind::Video,
                Some(b"soun") => TrackKind::Audio,
                Some(_) => TrackKind::Other,
                None => return Err(Fmp4Error::Malformed("hdlr")),
            };
            let (default_duration, default_flags) =
                defaults.iter().find(|(track, _, _)| *track == id).map_or((0, 0), |(_, d, f)| (*d, *f));
            tracks.push(Track { id, kind, timescale, default_duration, default_flags });
        }
        if tracks.is_empty() {
            return Err(Fmp4Error::Malformed("moov (no tracks)"));
        }
        Ok(Self { bytes, tracks })
    }

    /// The track that times the stream: the video track, else the first audio track,
    /// else the first track.
    pub fn timing_track(&self) -> &Track {
        self.tracks
            .iter()
            .find(|t| t.kind == TrackKind::Video)
            .or_else(|| self.tracks.iter().find(|t| t.kind == TrackKind::Audio))
            .unwrap_or(&self.tracks[0])
    }

    fn track(&self, id: u32) -> Option<&Track> {
        self.tracks.iter().find(|t| t.id == id)
    }
}

/// The timing of one track within a fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackRun {
    pub track_id: u32,
    /// `tfdt`: decode time of the first sample, in the track's timescale.
    pub base_decode_time: u64,
    /// Sum of the sample durations, in the track's timescale.
    pub duration: u64,
    pub samples: u32,
    /// The first sample is a sync sample (a keyframe, for video).
    pub starts_with_sync: bool,
}

/// One fragment: `moof` + `mdat` (and the boxes that came with it), and its timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    pub bytes: Bytes,
    /// `mfhd` sequence number.
    pub sequence: u32,
    pub runs: Vec<TrackRun>,
}

impl Fragment {
    /// The run of the given track, if the fragment has samples of it.
    pub fn run(&self, track_id: u32) -> Option<&TrackRun> {
        self.runs.iter().find(|run| run.track_id == track_id && run.samples > 0)
    }
}

/// What the reader produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Init(InitSegment),
    Fragment(Fragment),
}

/// Splits a fragmented MP4 byte stream into its init segment and fragments.
#[derive(Debug, Default)]
pub struct FragmentReader {
    buffer: BytesMut,
    /// Bytes of the init segment or of the fragment being assembled.
    pending: BytesMut,
    init: Option<InitSegment>,
    /// Where the `moof` in `pending` starts, while it waits for its `mdat`.
    moof_at: Option<usize>,
}

impl FragmentReader {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The init segment, once read.
    pub fn init(&self) -> Option<&InitSegment> {
        self.init.as_ref()
    }

    /// Bytes held that do not yet form a piece.
    pub fn buffered(&self) -> usize {
        self.buffer.len() + self.pending.len()
    }

    /// The next complete piece, if the buffered bytes hold one.
    pub fn next_piece(&mut self) -> Result<Option<Piece>, Fmp4Error> {
        loop {
            let Some((box_type, size)) = self.next_box_header()? else { return Ok(None) };
            if self.buffer.len() < size {
                return Ok(None);
            }
            let whole = self.buffer.split_to(size);
            match (&box_type, self.init.is_some()) {
                (b"ftyp", false) => self.pending.extend_from_slice(&whole),
                (b"moov", false) => {
                    self.pending.extend_from_slice(&whole);
                    let init = InitSegment::parse(self.pending.split().freeze())?;
                    self.init = Some(init.clone());
                    return Ok(Some(Piece::Init(init)));
                }
                (b"styp" | b"sidx" | b"prft" | b"emsg", true) if self.moof_at.is_none() => {
                    self.pending.extend_from_slice(&whole)
                }
                (b"moof", true) if self.moof_at.is_none() => {
                    self.moof_at = Some(self.pending.len());
                    self.pending.extend_from_slice(&whole);
                }
                (b"mdat", true) if self.moof_at.is_some() => {
                    let moof_start = self.moof_at.take().unwrap_or(0);
                    self.pending.extend_from_slice(&whole);
                    let bytes = self.pending.split().freeze();
                    let init = self.init.as_ref().ok_or(Fmp4Error::Unexpected("mdat".into()))?;
                    return Ok(Some(Piece::Fragment(parse_fragment(bytes, moof_start, init)?)));
                }
                (b"mfra" | b"free" | b"skip" | b"udta", _) if self.moof_at.is_none() => {}
                (other, _) => return Err(Fmp4Error::Unexpected(String::from_utf8_lossy(other).into_owned())),
            }
        }
    }

    /// The type and whole size of the box at the front of the buffer, once its header is in.
    fn next_box_header(&self) -> Result<Option<([u8; 4], usize)>, Fmp4Error> {
        let Some(header) = self.buffer.get(..8) else { return Ok(None) };
        let size32 = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let box_type = [header[4], header[5], header[6], header[7]];
        let name = || String::from_utf8_lossy(&box_type).into_owned();
        let size = match size32 {
            0 => return Err(Fmp4Error::Malformed("box extending to the end of a stream")),
            1 => {
                let Some(large) = self.buffer.get(8..16) else { return Ok(None) };
                u64::from_be_bytes(large.try_into().map_err(|_| Fmp4Error::Malformed("box size"))?)
            }
            size => u64::from(size),
        };
        let header_len = if size32 == 1 { 16 } else { 8 };
        if size < header_len {
            return Err(Mp4Error::BadSize { box_type: name(), size }.into());
        }
        let size = usize::try_from(size)
            .ok()
            .filter(|size| *size <= MAX_BOX_BYTES)
            .ok_or(Fmp4Error::TooLarge { box_type: name(), size })?;
        Ok(Some((box_type, size)))
    }
}

/// Reads the timing of each track run of the `moof` that starts at `moof_start`.
fn parse_fragment(bytes: Bytes, moof_start: usize, init: &InitSegment) -> Result<Fragment, Fmp4Error> {
    let from_moof = bytes.get(moof_start..).ok_or(Fmp4Error::Malformed("fragment"))?;
    let moof = mp4::descend(from_moof, &[b"moof"])?;
    let mut sequence = 0;
    let mut runs = Vec::new();
    for item in mp4::boxes(moof) {
        let item = item?;
        match &item.box_type {
            b"mfhd" => {
                sequence = full_box_body(item.body).and_then(|b| read_u32(b, 0)).ok_or(Fmp4Error::Malformed("mfhd"))?
            }
            b"traf" => runs.push(parse_traf(item, init)?),
            _ => {}
        }
    }
    Ok(Fragment { bytes, sequence, runs })
}

fn parse_traf(traf: Mp4Box<'_>, init: &InitSegment) -> Result<TrackRun, Fmp4Error> {
    let tfhd = mp4::find_box(traf.body, b"tfhd")?.ok_or(Mp4Error::Missing("tfhd"))?;
    let (version_flags, body) = split_full_box(tfhd).ok_or(Fmp4Error::Malformed("tfhd"))?;
    let flags = version_flags & 0x00ff_ffff;
    let track_id = read_u32(body, 0).ok_or(Fmp4Error::Malformed("tfhd"))?;
    let track = init.track(track_id).ok_or(Fmp4Error::Malformed("tfhd (unknown track)"))?;
    let mut at = 4;
    let mut take = |present: bool, len: usize| -> Option<usize> {
        if !present {
            return None;
        }
        let field = at;
        at += len;
        Some(field)
    };
    let _base_data_offset = take(flags & 0x01 != 0, 8);
    let _description_index = take(flags & 0x02 != 0, 4);
    let default_duration = take(flags & 0x08 != 0, 4);
    let _default_size = take(flags & 0x10 != 0, 4);
    let default_flags = take(flags & 0x20 != 0, 4);
    let read_field = |field: Option<usize>, fallback: u32| -> Result<u32, Fmp4Error> {
        match field {
            Some(offset) => read_u32(body, offset).ok_or(Fmp4Error::Malformed("tfhd")),
            None => Ok(fallback),
        }
    };
    let default_duration = read_field(default_duration, track.default_duration)?;
    let default_flags = read_field(default_flags, track.default_flags)?;

    let base_decode_time = match mp4::find_box(traf.body, b"tfdt")? {
        Some(tfdt) => {
            let (version_flags, body) = split_full_box(tfdt).ok_or(Fmp4Error::Malformed("tfdt"))?;
            if version_flags >> 24 == 1 {
                read_u64(body, 0).ok_or(Fmp4Error::Malformed("tfdt"))?
            } else {
                u64::from(read_u32(body, 0).ok_or(Fmp4Error::Malformed("tfdt"))?)
            }
        }
        None => return Err(Mp4Error::Missing("tfdt").into()),
    };

    let mut run = TrackRun { track_id, base_decode_time, duration: 0, samples: 0, starts_with_sync: false };
    let mut first = true;
    for item in mp4::boxes(traf.body) {
        let item = item?;
        if &item.box_type != b"trun" {
            continue;
        }
        let (version_flags, body) = split_full_box(item.body).ok_or(Fmp4Error::Malformed("trun"))?;
        let flags = version_flags & 0x00ff_ffff;
        let count = read_u32(body, 0).ok_or(Fmp4Error::Malformed("trun"))?;
        if count > MAX_SAMPLES_PER_RUN {
            return Err(Fmp4Error::Malformed("trun (sample count)"));
        }
        let mut at = 4;
        if flags & 0x01 != 0 {
            at += 4;
        }
        let first_sample_flags = if flags & 0x04 != 0 {
            let value = read_u32(body, at).ok_or(Fmp4Error::Malformed("trun"))?;
            at += 4;
            Some(value)
        } else {
            None
        };
        let has_duration = flags & 0x100 != 0;
        let has_size = flags & 0x200 != 0;
        let has_flags = flags & 0x400 != 0;
        let has_offset = flags & 0x800 != 0;
        let entry_len = 4 * [has_duration, has_size, has_flags, has_offset].iter().filter(|b| **b).count();
        let needed = (count as usize).checked_mul(entry_len).and_then(|n| n.checked_add(at));
        if needed.is_none_or(|needed| needed > body.len()) {
            return Err(Fmp4Error::Malformed("trun (truncated samples)"));
        }
        for index in 0..count as usize {
            let mut field = at + index * entry_len;
            let duration = if has_duration {
                let value = read_u32(body, field).ok_or(Fmp4Error::Malformed("trun"))?;
                field += 4;
                value
            } else {
                default_duration
            };
            if has_size {
                field += 4;
            }
            let sample_flags = if has_flags { read_u32(body, field) } else { None };
            if first {
                let flags = if index == 0 { first_sample_flags.or(sample_flags) } else { sample_flags };
                run.starts_with_sync = flags.unwrap_or(default_flags) & SAMPLE_IS_NON_SYNC == 0;
                first = false;
            }
            run.duration += u64::from(duration);
        }
        run.samples = run.samples.saturating_add(count);
    }
    Ok(run)
}

/// Splits a full box body into its version-and-flags word and the rest.
fn split_full_box(body: &[u8]) -> Option<(u32, &[u8])> {
    Some((read_u32(body, 0)?, body.get(4..)?))
}

fn full_box_body(body: &[u8]) -> Option<&[u8]> {
    split_full_box(body).map(|(_, rest)| rest)
}

fn track_id(tkhd: &[u8]) -> Option<u32> {
    let (version_flags, body) = split_full_box(tkhd)?;
    // creation and modification times come first: 32 or 64 bits each.
    let offset = if version_flags >> 24 == 1 { 16 } else { 8 };
    read_u32(body, offset)
}

fn media_timescale(mdhd: &[u8]) -> Option<u32> {
    let (version_flags, body) = split_full_box(mdhd)?;
    let offset = if version_flags >> 24 == 1 { 16 } else { 8 };
    read_u32(body, offset)
}

fn read_u32(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(data.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

fn read_u64(data: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(data.get(at..at.checked_add(8)?)?.try_into().ok()?))
}

/// Builders of fMP4 input for tests: boxes, an init segment, fragments.
#[cfg(any(test, feature = "test-support"))]
pub mod testing {

    pub fn make_box(box_type: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut out = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(box_type);
        out.extend_from_slice(body);
        out
    }

    fn full(box_type: &[u8; 4], version: u8, flags: u32, body: &[u8]) -> Vec<u8> {
        let mut content = ((u32::from(version) << 24) | flags).to_be_bytes().to_vec();
        content.extend_from_slice(body);
        make_box(box_type, &content)
    }

    fn trak(id: u32, handler: &[u8; 4], timescale: u32) -> Vec<u8> {
        let mut tkhd = vec![0; 8];
        tkhd.extend_from_slice(&id.to_be_bytes());
        tkhd.extend_from_slice(&[0; 60]);
        let mut mdhd = vec![0; 8];
        mdhd.extend_from_slice(&timescale.to_be_bytes());
        mdhd.extend_from_slice(&[0; 8]);
        let mut hdlr = vec![0; 4];
        hdlr.extend_from_slice(handler);
        hdlr.extend_from_slice(&[0; 13]);
        let mdia = [full(b"mdhd", 0, 0, &mdhd), full(b"hdlr", 0, 0, &hdlr)].concat();
        make_box(b"trak", &[full(b"tkhd", 0, 3, &tkhd), make_box(b"mdia", &mdia)].concat())
    }

    /// An init segment with video track 1 (timescale 15360) and audio track 2 (48000),
    /// audio samples defaulting to 1024 ticks and sync.
    pub fn init_segment() -> Vec<u8> {
        let mut trex_audio = 2u32.to_be_bytes().to_vec();
        trex_audio.extend_from_slice(&1u32.to_be_bytes());
        trex_audio.extend_from_slice(&1024u32.to_be_bytes());
        trex_audio.extend_from_slice(&0u32.to_be_bytes());
        trex_audio.extend_from_slice(&0u32.to_be_bytes());
        let moov =
            [trak(1, b"vide", 15360), trak(2, b"soun", 48000), make_box(b"mvex", &full(b"trex", 0, 0, &trex_audio))]
                .concat();
        [make_box(b"ftyp", b"iso5\0\0\x02\0iso6mp41"), make_box(b"moov", &moov)].concat()
    }

    /// A fragment: `video` samples of 512 ticks (the first a keyframe when `key`) from
    /// `video_time`, and 3 audio samples with default durations.
    pub fn fragment(sequence: u32, video_time: u64, video: u32, key: bool) -> Vec<u8> {
        let video_traf = {
            let tfhd =
                full(b"tfhd", 0, 0x02_0000 | 0x08 | 0x20, &[1u32, 512, 0x0101_0000].map(u32::to_be_bytes).concat());
            let tfdt = full(b"tfdt", 1, 0, &video_time.to_be_bytes());
            let first_flags: u32 = if key { 0x0200_0000 } else { 0x0101_0000 };
            let mut trun = video.to_be_bytes().to_vec();
            trun.extend_from_slice(&0u32.to_be_bytes());
            trun.extend_from_slice(&first_flags.to_be_bytes());
            for _ in 0..video {
                trun.extend_from_slice(&100u32.to_be_bytes());
            }
            make_box(b"traf", &[tfhd, tfdt, full(b"trun", 0, 0x01 | 0x04 | 0x200, &trun)].concat())
        };
        let audio_traf = {
            let tfhd = full(b"tfhd", 0, 0x02_0000, &2u32.to_be_bytes());
            let tfdt = full(b"tfdt", 0, 0, &3072u32.to_be_bytes());
            let mut trun = 3u32.to_be_bytes().to_vec();
            for _ in 0..3 {
                trun.extend_from_slice(&10u32.to_be_bytes());
            }
            make_box(b"traf", &[tfhd, tfdt, full(b"trun", 0, 0x200, &trun)].concat())
        };
        let moof = [full(b"mfhd", 0, 0, &sequence.to_be_bytes()), video_traf, audio_traf].concat();
        [make_box(b"moof", &moof), make_box(b"mdat", &vec![0xab; 100 * video as usize + 30])].concat()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    fn read_all(reader: &mut FragmentReader) -> Vec<Piece> {
        let mut pieces = Vec::new();
        while let Some(piece) = reader.next_piece().unwrap() {
            pieces.push(piece);
        }
        pieces
    }

    #[test]
    fn splits_init_and_fragments_with_any_chunking() {
        let mut stream = init_segment();
        stream.extend(fragment(1, 0, 15, true));
        stream.extend(fragment(2, 15 * 512, 15, false));
        stream.extend(make_box(b"mfra", &[0; 8]));
        for chunk in [1, 13, stream.len()] {
            let mut reader = FragmentReader::new();
            let mut pieces = Vec::new();
            for bytes in stream.chunks(chunk) {
                reader.push(bytes);
                pieces.extend(read_all(&mut reader));
            }
            assert_eq!(pieces.len(), 3, "chunks of {chunk}");
            let Piece::Init(init) = &pieces[0] else { panic!("init first") };
            assert_eq!(init.bytes.len(), init_segment().len());
            assert_eq!(init.timing_track().id, 1);
            assert_eq!(init.tracks[1].kind, TrackKind::Audio);
            let Piece::Fragment(first) = &pieces[1] else { panic!("a fragment") };
            assert_eq!(first.sequence, 1);
            let video = first.run(1).unwrap();
            assert_eq!((video.base_decode_time, video.duration, video.samples), (0, 15 * 512, 15));
            assert!(video.starts_with_sync);
            let audio = first.run(2).unwrap();
            assert_eq!((audio.base_decode_time, audio.duration, audio.samples), (3072, 3 * 1024, 3));
            assert!(audio.starts_with_sync, "trex default flags: sync");
            let Piece::Fragment(second) = &pieces[2] else { panic!("a fragment") };
            assert!(!second.run(1).unwrap().starts_with_sync);
            assert_eq!(second.run(1).unwrap().base_decode_time, 15 * 512);
            assert_eq!(reader.buffered(), 0);
        }
    }

    #[test]
    fn malformed_streams_are_errors() {
        let mut reader = FragmentReader::new();
        reader.push(&fragment(1, 0, 1, true));
        assert_eq!(reader.next_piece(), Err(Fmp4Error::Unexpected("moof".into())), "fragment before init");

        let mut reader = FragmentReader::new();
        let mut huge = ((MAX_BOX_BYTES + 1) as u32).to_be_bytes().to_vec();
        huge.extend_from_slice(b"ftyp");
        reader.push(&huge);
        assert!(matches!(reader.next_piece(), Err(Fmp4Error::TooLarge { .. })));

        let mut reader = FragmentReader::new();
        reader.push(&[0, 0, 0, 4, b'f', b't', b'y', b'p']);
        assert!(matches!(reader.next_piece(), Err(Fmp4Error::Box(Mp4Error::BadSize { .. }))));

        let mut reader = FragmentReader::new();
        let mut stream = init_segment();
        let mut bad = fragment(1, 0, 3, true);
        // Claim a million samples in the video trun: far more than its body holds.
        let at = bad.windows(4).position(|w| w == b"trun").unwrap() + 8;
        bad[at..at + 4].copy_from_slice(&1_000_000u32.to_be_bytes());
        stream.extend(bad);
        reader.push(&stream);
        assert!(matches!(reader.next_piece(), Ok(Some(Piece::Init(_)))));
        assert_eq!(reader.next_piece(), Err(Fmp4Error::Malformed("trun (truncated samples)")));
    }
}
