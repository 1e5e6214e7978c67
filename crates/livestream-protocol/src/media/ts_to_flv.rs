//! A live MPEG-TS of H.264 and AAC (as SRT carries it) turned into the FLV tags that an
//! RTMP publish of the same media would give, so that both feed one pipeline.
//!
//! - The PMT's first H.264 stream is the video and its first ADTS AAC stream the audio;
//!   other streams (data, subtitles, a second program) are ignored.
//! - An `onMetaData` tag comes first, as RTMP encoders send it: the picture size and frame
//!   rate of the SPS, and whether the program has audio at all.
//! - Video: one access unit per PES packet (as encoders packetize live video), Annex B NAL
//!   units become four-byte length-prefixed ones; the SPS and PPS go into an AVC sequence
//!   header (AVCDecoderConfigurationRecord), sent again when they change; access unit
//!   delimiters and filler go. The tag's timestamp is the DTS, its composition time
//!   PTS - DTS, and an IDR slice makes it a keyframe. Frames before the first SPS and PPS
//!   cannot be decoded and are dropped.
//! - Audio: each ADTS frame of a PES packet becomes a raw AAC frame, 1024 samples after the
//!   one before it; its header gives the AAC sequence header (AudioSpecificConfig), sent
//!   again when it changes.
//! - Time: the 33-bit 90 kHz clock is unwrapped (it wraps every 26.5 hours) and counted in
//!   milliseconds from a second before the first time stamp, so that a stream starting a
//!   little earlier than the first PES packet still starts after zero; anything earlier is
//!   dropped.
//!
//! Malformed input is an error of the stream (the connection ends), never a panic; memory
//! is bounded by the demuxer's bounds and the tags of one [`TsToFlv::push`].

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

use super::adts::{self, AdtsError, AudioConfig};
use super::amf0::{self, Amf0Value};
use super::codecs::annex_b_nal_units;
use super::flv::{FlvTag, FlvTagKind, MAX_TAG_BODY_LEN};
use super::h264::{self, H264Error, nal_type};
use super::mpegts::{
    Pes, ProgramStream, STREAM_TYPE_AAC_ADTS, STREAM_TYPE_H264, STREAM_TYPE_HEVC, TsDemuxer, TsError, TsEvent,
};

/// Ticks of the MPEG-TS clock per millisecond.
const TICKS_PER_MS: i64 = 90;
/// The MPEG-TS time stamps' range: 33 bits.
const TIMESTAMP_MODULUS: i64 = 1 << 33;
/// How far before the first time stamp the FLV timeline starts.
const ORIGIN_LEAD_TICKS: i64 = 90_000;
/// Composition times beyond FLV's signed 24 bits are clamped.
const MAX_COMPOSITION_MS: i64 = (1 << 23) - 1;

const FLV_AVC_KEYFRAME: u8 = 0x17;
const FLV_AVC_INTER: u8 = 0x27;
const FLV_AVC_SEQUENCE_HEADER: u8 = 0;
const FLV_AVC_NALU: u8 = 1;
/// AAC, with the rate, size and channel bits FLV requires for AAC (44 kHz, 16-bit, stereo).
const FLV_AAC: u8 = 0xaf;
const FLV_AAC_SEQUENCE_HEADER: u8 = 0;
const FLV_AAC_RAW: u8 = 1;
/// FLV's codec ids, for `onMetaData`.
const FLV_CODEC_AVC: f64 = 7.0;
const FLV_CODEC_AAC: f64 = 10.0;

/// Why a transport stream cannot be converted.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TsToFlvError {
    #[error(transparent)]
    Ts(#[from] TsError),
    #[error("AAC audio: {0}")]
    Adts(#[from] AdtsError),
    #[error("H.264 video: {0}")]
    H264(#[from] H264Error),
    /// The program has no H.264 video; names the video it has, if any.
    #[error("the MPEG-TS program has no H.264 video{0}")]
    NoH264(String),
    /// A PES packet of a listed stream without the PTS that places it in time.
    #[error("a PES packet on PID {0} has no PTS")]
    NoPts(u16),
    /// A frame larger than an FLV tag can carry.
    #[error("a frame of {0} bytes is larger than an FLV tag")]
    FrameTooLarge(usize),
}

/// Converts a live transport stream into FLV tags. Sans IO: [`push`](Self::push) bytes as
/// they arrive, then take [`next_tag`](Self::next_tag) until `None`; [`finish`](Self::finish)
/// at the end gives the last frames.
#[derive(Debug, Default)]
pub struct TsToFlv {
    demuxer: TsDemuxer,
    video_pid: Option<u16>,
    audio_pid: Option<u16>,
    clock: Clock,
    /// The SPS and PPSs of the last AVC sequence header sent.
    video_config: Option<Vec<Vec<u8>>>,
    audio_config: Option<AudioConfig>,
    metadata_sent: bool,
    tags: VecDeque<FlvTag>,
}

impl TsToFlv {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes of the transport stream, cut anywhere.
    pub fn push(&mut self, data: &[u8]) -> Result<(), TsToFlvError> {
        self.demuxer.push(data)?;
        self.drain_demuxer()
    }

    /// The stream ended: converts the frames still held.
    pub fn finish(&mut self) -> Result<(), TsToFlvError> {
        self.demuxer.finish()?;
        self.drain_demuxer()
    }

    /// The next tag, in the order of the stream.
    pub fn next_tag(&mut self) -> Option<FlvTag> {
        self.tags.pop_front()
    }

    fn drain_demuxer(&mut self) -> Result<(), TsToFlvError> {
        while let Some(event) = self.demuxer.next_event() {
            match event {
                TsEvent::Program(streams) => self.program(&streams)?,
                TsEvent::Pes(pes) if Some(pes.pid) == self.video_pid => self.video(&pes)?,
                TsEvent::Pes(pes) if Some(pes.pid) == self.audio_pid => self.audio(&pes)?,
                TsEvent::Pes(_) => {}
            }
        }
        Ok(())
    }

    fn program(&mut self, streams: &[ProgramStream]) -> Result<(), TsToFlvError> {
        let first = |stream_type: u8| streams.iter().find(|stream| stream.stream_type == stream_type);
        let Some(video) = first(STREAM_TYPE_H264) else {
            let named = match first(STREAM_TYPE_HEVC) {
                Some(_) => " (it carries HEVC, which SRT ingest does not take yet: send H.264)".to_string(),
                None => String::new(),
            };
            return Err(TsToFlvError::NoH264(named));
        };
        self.video_pid = Some(video.pid);
        self.audio_pid = first(STREAM_TYPE_AAC_ADTS).map(|stream| stream.pid);
        Ok(())
    }

    fn video(&mut self, pes: &Pes) -> Result<(), TsToFlvError> {
        let pts = pes.pts.ok_or(TsToFlvError::NoPts(pes.pid))?;
        let (dts, pts) = self.clock.place_video(pes.dts.unwrap_or(pts), pts);
        let mut parameter_sets: Vec<&[u8]> = Vec::new();
        let mut keyframe = false;
        let mut body = BytesMut::with_capacity(pes.payload.len() + 5);
        for nal in annex_b_nal_units(&pes.payload) {
            match h264::nal_unit_type(nal) {
                Some(nal_type::SPS | nal_type::PPS) => parameter_sets.push(nal),
                Some(nal_type::AUD | FILLER_DATA) | None => {}
                Some(kind) => {
                    keyframe |= kind == nal_type::IDR;
                    let length = u32::try_from(nal.len()).map_err(|_| TsToFlvError::FrameTooLarge(nal.len()))?;
                    body.put_u32(length);
                    body.put_slice(nal);
                }
            }
        }
        if !parameter_sets.is_empty() {
            self.video_configuration(&parameter_sets, dts)?;
        }
        let (Some(dts_ms), Some(pts_ms)) = (dts, pts) else { return Ok(()) };
        if self.video_config.is_none() || body.is_empty() {
            return Ok(());
        }
        let composition = (pts_ms - dts_ms).clamp(-MAX_COMPOSITION_MS, MAX_COMPOSITION_MS) as i32;
        let [_, high, middle, low] = composition.to_be_bytes();
        let header = [if keyframe { FLV_AVC_KEYFRAME } else { FLV_AVC_INTER }, FLV_AVC_NALU, high, middle, low];
        self.push_tag(FlvTagKind::Video, dts_ms, [&header[..], &body].concat())
    }

    /// Sends an AVC sequence header when the access unit's parameter sets differ from the
    /// last ones sent (the metadata before the first).
    fn video_configuration(&mut self, parameter_sets: &[&[u8]], dts_ms: Option<i64>) -> Result<(), TsToFlvError> {
        let Some(sps) = parameter_sets.iter().find(|nal| h264::nal_unit_type(nal) == Some(nal_type::SPS)) else {
            return Ok(());
        };
        let pps: Vec<&[u8]> =
            parameter_sets.iter().filter(|nal| h264::nal_unit_type(nal) == Some(nal_type::PPS)).copied().collect();
        if pps.is_empty() {
            return Ok(());
        }
        let sets: Vec<Vec<u8>> = std::iter::once(*sps).chain(pps.iter().copied()).map(<[u8]>::to_vec).collect();
        if self.video_config.as_ref() == Some(&sets) {
            return Ok(());
        }
        let record = h264::decoder_configuration_record(sps, &pps)?;
        let at = dts_ms.unwrap_or_default();
        if !self.metadata_sent {
            let info = h264::parse_sps(sps)?;
            self.metadata(info, at)?;
        }
        self.video_config = Some(sets);
        let header = [FLV_AVC_KEYFRAME, FLV_AVC_SEQUENCE_HEADER, 0, 0, 0];
        self.push_tag(FlvTagKind::Video, at, [&header[..], &record].concat())
    }

    /// `onMetaData` as RTMP encoders send it, from the SPS and the program.
    fn metadata(&mut self, sps: h264::SpsInfo, at: i64) -> Result<(), TsToFlvError> {
        let mut fields = vec![
            ("width", Amf0Value::Number(f64::from(sps.width))),
            ("height", Amf0Value::Number(f64::from(sps.height))),
            ("videocodecid", Amf0Value::Number(FLV_CODEC_AVC)),
        ];
        if let Some(rate) = sps.timing.and_then(|timing| timing.frame_rate()).filter(|rate| *rate <= 1000.0) {
            fields.push(("framerate", Amf0Value::Number(rate)));
        }
        if self.audio_pid.is_some() {
            fields.push(("audiocodecid", Amf0Value::Number(FLV_CODEC_AAC)));
        }
        let mut body = BytesMut::new();
        amf0::encode_all(&[Amf0Value::string("onMetaData"), Amf0Value::object(fields)], &mut body);
        self.metadata_sent = true;
        self.push_tag(FlvTagKind::Script, at, body.to_vec())
    }

    fn audio(&mut self, pes: &Pes) -> Result<(), TsToFlvError> {
        let pts = pes.pts.ok_or(TsToFlvError::NoPts(pes.pid))?;
        let start = self.clock.place_audio(pts);
        let mut ticks: i64 = 0;
        for frame in adts::frames(&pes.payload) {
            let frame = frame?;
            let sample_rate = i64::from(frame.config.sample_rate());
            let at = start.map(|start| start + ticks / TICKS_PER_MS);
            ticks += i64::from(adts::SAMPLES_PER_FRAME) * 90_000 / sample_rate;
            let Some(at) = at else { continue };
            if self.audio_config != Some(frame.config) {
                self.audio_config = Some(frame.config);
                let config = frame.config.audio_specific_config();
                self.push_tag(FlvTagKind::Audio, at, [&[FLV_AAC, FLV_AAC_SEQUENCE_HEADER][..], &config].concat())?;
            }
            self.push_tag(FlvTagKind::Audio, at, [&[FLV_AAC, FLV_AAC_RAW][..], frame.raw].concat())?;
        }
        Ok(())
    }

    fn push_tag(&mut self, kind: FlvTagKind, at_ms: i64, body: Vec<u8>) -> Result<(), TsToFlvError> {
        if body.len() > MAX_TAG_BODY_LEN {
            return Err(TsToFlvError::FrameTooLarge(body.len()));
        }
        // FLV's 32-bit milliseconds wrap after 49 days, as RTMP's do.
        let timestamp = at_ms.rem_euclid(1 << 32) as u32;
        self.tags.push_back(FlvTag::new(kind, timestamp, Bytes::from(body)));
        Ok(())
    }
}

/// `nal_unit_type` of filler data, which carries nothing for a decoder.
const FILLER_DATA: u8 = 12;

/// The FLV timeline of one stream: 33-bit time stamps unwrapped, in milliseconds from the
/// origin. `None` for a time before the origin.
#[derive(Debug, Default)]
struct Clock {
    /// In unwrapped ticks.
    origin: Option<i64>,
    /// The last unwrapped time stamp of any stream, the reference of a stream's first.
    last_any: Option<i64>,
    last_video_dts: Option<i64>,
    last_audio_pts: Option<i64>,
}

impl Clock {
    /// Places a video frame's DTS and PTS.
    fn place_video(&mut self, dts: u64, pts: u64) -> (Option<i64>, Option<i64>) {
        let dts = unwrap(self.last_video_dts.or(self.last_any), dts);
        self.last_video_dts = Some(dts);
        let pts = unwrap(Some(dts), pts);
        (self.milliseconds(dts), self.milliseconds(pts))
    }

    /// Places an audio PES packet's PTS.
    fn place_audio(&mut self, pts: u64) -> Option<i64> {
        let pts = unwrap(self.last_audio_pts.or(self.last_any), pts);
        self.last_audio_pts = Some(pts);
        self.milliseconds(pts)
    }

    fn milliseconds(&mut self, ticks: i64) -> Option<i64> {
        self.last_any = Some(ticks);
        let origin = *self.origin.get_or_insert(ticks - ORIGIN_LEAD_TICKS);
        (ticks >= origin).then(|| (ticks - origin) / TICKS_PER_MS)
    }
}

/// The unwrapped time nearest to `reference` whose low 33 bits are `timestamp`.
fn unwrap(reference: Option<i64>, timestamp: u64) -> i64 {
    let timestamp = (timestamp as i64) & (TIMESTAMP_MODULUS - 1);
    let Some(reference) = reference else { return timestamp };
    let mut step = (timestamp - reference).rem_euclid(TIMESTAMP_MODULUS);
    if step >= TIMESTAMP_MODULUS / 2 {
        step -= TIMESTAMP_MODULUS;
    }
    reference + step
}

#[cfg(test)]
mod tests;
