//! A live MPEG-TS of H.264 or HEVC and AAC (as SRT carries it) turned into the FLV tags
//! that an RTMP publish of the same media would give, so that both feed one pipeline.
//!
//! - The PMT's first H.264 (else HEVC) stream is the video and its first ADTS AAC stream
//!   the audio; other streams (data, subtitles, a second program) are ignored.
//! - An `onMetaData` tag comes first, as RTMP encoders send it: the picture size (and for
//!   H.264 the frame rate) of the SPS, and whether the program has audio at all.
//! - Video: one access unit per PES packet (as encoders packetize live video), Annex B NAL
//!   units become four-byte length-prefixed ones; the parameter sets go into a sequence
//!   header (AVCDecoderConfigurationRecord, or HEVCDecoderConfigurationRecord in an
//!   Enhanced RTMP `hvc1` tag), sent again when they change; access unit delimiters and
//!   filler go. The tag's timestamp is the DTS, its composition time PTS - DTS, and an IDR
//!   (HEVC: IRAP) slice makes it a keyframe. Frames before the first parameter sets cannot
//!   be decoded and are dropped.
//! - Audio: each ADTS frame of a PES packet becomes a raw AAC frame, 1024 samples after the
//!   one before it; its header gives the AAC sequence header (AudioSpecificConfig), sent
//!   again when it changes.
//! - Order: RTMP encoders send every configuration before the first frame, and
//!   Matroska, which the worker gives ffmpeg for HEVC, needs them so (its tracks are fixed
//!   in its header). In MPEG-TS the first audio often comes after the first pictures, so
//!   while the program has audio whose configuration is not known yet, video is held
//!   back (at most [`MAX_HELD_VIDEO_MS`] of it), then sent after the audio configuration.
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
use super::h264::H264Error;
use super::hevc::HevcError;
use super::mpegts::{
    Pes, ProgramStream, STREAM_TYPE_AAC_ADTS, STREAM_TYPE_H264, STREAM_TYPE_HEVC, TsDemuxer, TsError, TsEvent,
};
use video::{NalRole, VideoConfiguration, VideoFormat};

mod video;

/// Ticks of the MPEG-TS clock per millisecond.
const TICKS_PER_MS: i64 = 90;
/// The MPEG-TS time stamps' range: 33 bits.
const TIMESTAMP_MODULUS: i64 = 1 << 33;
/// How far before the first time stamp the FLV timeline starts.
const ORIGIN_LEAD_TICKS: i64 = 90_000;
/// Composition times beyond FLV's signed 24 bits are clamped.
const MAX_COMPOSITION_MS: i64 = (1 << 23) - 1;

/// The longest stretch of video held back while waiting for the audio configuration.
pub const MAX_HELD_VIDEO_MS: u32 = 1000;
/// The most video tags held back meanwhile.
const MAX_HELD_VIDEO_TAGS: usize = 256;

/// AAC, with the rate, size and channel bits FLV requires for AAC (44 kHz, 16-bit, stereo).
const FLV_AAC: u8 = 0xaf;
const FLV_AAC_SEQUENCE_HEADER: u8 = 0;
const FLV_AAC_RAW: u8 = 1;
/// FLV's codec id of AAC, for `onMetaData`.
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
    #[error("HEVC video: {0}")]
    Hevc(#[from] HevcError),
    /// The program has neither H.264 nor HEVC video.
    #[error("the MPEG-TS program has no H.264 or HEVC video")]
    NoVideo,
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
    video: Option<(u16, VideoFormat)>,
    audio_pid: Option<u16>,
    clock: Clock,
    /// The parameter sets of the last sequence header sent.
    video_config: Option<Vec<Vec<u8>>>,
    audio_config: Option<AudioConfig>,
    metadata_sent: bool,
    /// Video (and metadata) held back until the audio configuration is known.
    held: Vec<FlvTag>,
    /// Video flows without waiting for audio (which came, or is late).
    video_released: bool,
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
        self.drain_demuxer()?;
        self.release_video(None);
        Ok(())
    }

    /// The next tag, in the order of the stream.
    pub fn next_tag(&mut self) -> Option<FlvTag> {
        self.tags.pop_front()
    }

    fn drain_demuxer(&mut self) -> Result<(), TsToFlvError> {
        while let Some(event) = self.demuxer.next_event() {
            match event {
                TsEvent::Program(streams) => self.program(&streams)?,
                TsEvent::Pes(pes) if Some(pes.pid) == self.video.map(|(pid, _)| pid) => self.video(&pes)?,
                TsEvent::Pes(pes) if Some(pes.pid) == self.audio_pid => self.audio(&pes)?,
                TsEvent::Pes(_) => {}
            }
        }
        Ok(())
    }

    fn program(&mut self, streams: &[ProgramStream]) -> Result<(), TsToFlvError> {
        let first = |stream_type: u8| streams.iter().find(|stream| stream.stream_type == stream_type);
        let video = match (first(STREAM_TYPE_H264), first(STREAM_TYPE_HEVC)) {
            (Some(h264), _) => (h264.pid, VideoFormat::H264),
            (None, Some(hevc)) => (hevc.pid, VideoFormat::Hevc),
            (None, None) => return Err(TsToFlvError::NoVideo),
        };
        if self.video.is_some_and(|(_, format)| format != video.1) {
            // Another codec needs another decoder configuration from scratch.
            self.video_config = None;
        }
        self.video = Some(video);
        self.audio_pid = first(STREAM_TYPE_AAC_ADTS).map(|stream| stream.pid);
        Ok(())
    }

    fn video(&mut self, pes: &Pes) -> Result<(), TsToFlvError> {
        let Some((_, format)) = self.video else { return Ok(()) };
        let pts = pes.pts.ok_or(TsToFlvError::NoPts(pes.pid))?;
        let (dts, pts) = self.clock.place_video(pes.dts.unwrap_or(pts), pts);
        let mut parameter_sets: Vec<&[u8]> = Vec::new();
        let mut keyframe = false;
        let mut units = BytesMut::with_capacity(pes.payload.len());
        for nal in annex_b_nal_units(&pes.payload) {
            match format.role(nal) {
                NalRole::ParameterSet => parameter_sets.push(nal),
                NalRole::Dropped => {}
                NalRole::Frame { keyframe: key } => {
                    keyframe |= key;
                    let length = u32::try_from(nal.len()).map_err(|_| TsToFlvError::FrameTooLarge(nal.len()))?;
                    units.put_u32(length);
                    units.put_slice(nal);
                }
            }
        }
        if !parameter_sets.is_empty() {
            self.video_configuration(format, &parameter_sets, dts)?;
        }
        let (Some(dts_ms), Some(pts_ms)) = (dts, pts) else { return Ok(()) };
        if self.video_config.is_none() || units.is_empty() {
            return Ok(());
        }
        let composition = (pts_ms - dts_ms).clamp(-MAX_COMPOSITION_MS, MAX_COMPOSITION_MS) as i32;
        self.push_tag(FlvTagKind::Video, dts_ms, format.frame(keyframe, composition, &units))
    }

    /// Sends a sequence header when the access unit's parameter sets differ from the last
    /// ones sent (the metadata before the first).
    fn video_configuration(
        &mut self,
        format: VideoFormat,
        parameter_sets: &[&[u8]],
        dts_ms: Option<i64>,
    ) -> Result<(), TsToFlvError> {
        let sets: Vec<Vec<u8>> = parameter_sets.iter().map(|nal| nal.to_vec()).collect();
        if self.video_config.as_ref() == Some(&sets) {
            return Ok(());
        }
        let Some(configuration) = format.configuration(parameter_sets)? else { return Ok(()) };
        let at = dts_ms.unwrap_or_default();
        if !self.metadata_sent {
            self.metadata(format, &configuration, at)?;
        }
        self.video_config = Some(sets);
        self.push_tag(FlvTagKind::Video, at, format.sequence_header(&configuration.record))
    }

    /// `onMetaData` as RTMP encoders send it, from the SPS and the program.
    fn metadata(&mut self, format: VideoFormat, video: &VideoConfiguration, at: i64) -> Result<(), TsToFlvError> {
        let mut fields = vec![
            ("width", Amf0Value::Number(f64::from(video.width))),
            ("height", Amf0Value::Number(f64::from(video.height))),
            ("videocodecid", Amf0Value::Number(format.codec_id())),
        ];
        if let Some(rate) = video.frame_rate.filter(|rate| *rate <= 1000.0) {
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
                let header =
                    self.tag(FlvTagKind::Audio, at, [&[FLV_AAC, FLV_AAC_SEQUENCE_HEADER][..], &config].concat())?;
                self.release_video(Some(header));
            }
            self.push_tag(FlvTagKind::Audio, at, [&[FLV_AAC, FLV_AAC_RAW][..], frame.raw].concat())?;
        }
        Ok(())
    }

    fn tag(&self, kind: FlvTagKind, at_ms: i64, body: Vec<u8>) -> Result<FlvTag, TsToFlvError> {
        if body.len() > MAX_TAG_BODY_LEN {
            return Err(TsToFlvError::FrameTooLarge(body.len()));
        }
        // FLV's 32-bit milliseconds wrap after 49 days, as RTMP's do.
        let timestamp = at_ms.rem_euclid(1 << 32) as u32;
        Ok(FlvTag::new(kind, timestamp, Bytes::from(body)))
    }

    /// Queues a tag, holding video back while the audio configuration is awaited.
    fn push_tag(&mut self, kind: FlvTagKind, at_ms: i64, body: Vec<u8>) -> Result<(), TsToFlvError> {
        let tag = self.tag(kind, at_ms, body)?;
        let awaiting_audio = self.audio_pid.is_some() && self.audio_config.is_none() && !self.video_released;
        if kind == FlvTagKind::Audio || !awaiting_audio {
            self.tags.push_back(tag);
            return Ok(());
        }
        self.held.push(tag);
        let span = match (self.held.first(), self.held.last()) {
            (Some(first), Some(last)) => last.timestamp_ms.wrapping_sub(first.timestamp_ms),
            _ => 0,
        };
        if span > MAX_HELD_VIDEO_MS || self.held.len() > MAX_HELD_VIDEO_TAGS {
            // Audio this late is not waited for any longer.
            self.release_video(None);
        }
        Ok(())
    }

    /// Lets held video flow: its configurations first, then `audio_header`, then its
    /// frames.
    fn release_video(&mut self, audio_header: Option<FlvTag>) {
        self.video_released = true;
        let (headers, frames): (Vec<FlvTag>, Vec<FlvTag>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|tag| tag.kind == FlvTagKind::Script || tag.is_sequence_header());
        self.tags.extend(headers);
        self.tags.extend(audio_header);
        self.tags.extend(frames);
    }
}

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
