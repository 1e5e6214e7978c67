//! What reaches ffmpeg's stdin, run by run (sans IO).
//!
//! Every run of ffmpeg gets a complete FLV stream: the file header, then, at the first
//! video keyframe, the cached `onMetaData` and AVC/AAC sequence headers (restamped to the
//! keyframe's time) followed by the keyframe and everything after it. Tags before that
//! keyframe are dropped, so a restarted ffmpeg starts decoding cleanly. Without any video
//! sequence header (audio only) media flows at once.

use bytes::Bytes;

use crate::media::flv::{FILE_HEADER, FlvError, FlvTag, FlvTagKind};

/// Caches stream headers and gates media for the current run.
#[derive(Debug, Default)]
pub struct InputGate {
    metadata: Option<FlvTag>,
    video_header: Option<FlvTag>,
    audio_header: Option<FlvTag>,
    /// Media flows to the current run, which started at this input timestamp.
    flowing_since: Option<u32>,
    dropped: u64,
}

impl InputGate {
    /// A gate with nothing cached.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a run: returns the FLV file header to write first.
    pub fn start_run(&mut self) -> Bytes {
        self.flowing_since = None;
        Bytes::from_static(&FILE_HEADER)
    }

    /// Takes one input tag, returning the bytes to write to the current run (possibly
    /// none, or the cached headers before a keyframe).
    pub fn accept(&mut self, tag: &FlvTag) -> Result<Vec<Bytes>, FlvError> {
        let is_header = self.observe(tag);
        if self.flowing_since.is_some() {
            return Ok(vec![tag.encode()?]);
        }
        if is_header {
            // Sent with the first keyframe, from the cache.
            return Ok(Vec::new());
        }
        let starts = tag.is_video_keyframe() || (self.video_header.is_none() && tag.kind == FlvTagKind::Audio);
        if !starts {
            self.dropped += 1;
            return Ok(Vec::new());
        }
        self.flowing_since = Some(tag.timestamp_ms);
        let mut out = Vec::with_capacity(4);
        for header in [&self.metadata, &self.video_header, &self.audio_header].into_iter().flatten() {
            out.push(header.with_timestamp(tag.timestamp_ms).encode()?);
        }
        out.push(tag.encode()?);
        Ok(out)
    }

    /// Updates the cache from a tag without writing anything (while no ffmpeg runs);
    /// returns whether the tag is a header.
    pub fn observe(&mut self, tag: &FlvTag) -> bool {
        if tag.kind == FlvTagKind::Script {
            self.metadata = Some(tag.clone());
            return true;
        }
        if !tag.is_sequence_header() {
            return false;
        }
        match tag.kind {
            FlvTagKind::Video => self.video_header = Some(tag.clone()),
            _ => self.audio_header = Some(tag.clone()),
        }
        true
    }

    /// The input timestamp at which media started flowing to the current run: the output
    /// of the run starts at this instant of the input.
    pub fn run_start(&self) -> Option<u32> {
        self.flowing_since
    }

    /// Media tags dropped while waiting for a keyframe, over all runs.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(kind: FlvTagKind, timestamp_ms: u32, data: &'static [u8]) -> FlvTag {
        FlvTag { kind, timestamp_ms, data: Bytes::from_static(data) }
    }

    #[test]
    fn first_run_waits_for_keyframe_and_sends_headers() {
        let mut gate = InputGate::new();
        assert_eq!(&gate.start_run()[..3], b"FLV");
        let meta = tag(FlvTagKind::Script, 0, b"\x02\x00\x0aonMetaData");
        let avc = tag(FlvTagKind::Video, 0, &[0x17, 0, 0, 0, 0, 1]);
        let aac = tag(FlvTagKind::Audio, 0, &[0xaf, 0, 0x11, 0x90]);
        for header in [&meta, &avc, &aac] {
            assert!(gate.accept(header).unwrap().is_empty());
        }
        assert!(gate.accept(&tag(FlvTagKind::Audio, 10, &[0xaf, 1, 1])).unwrap().is_empty());
        assert!(gate.accept(&tag(FlvTagKind::Video, 20, &[0x27, 1, 0, 0, 0])).unwrap().is_empty());
        let keyframe = tag(FlvTagKind::Video, 40, &[0x17, 1, 0, 0, 0]);
        let out = gate.accept(&keyframe).unwrap();
        let expected: Vec<Bytes> = [meta, avc, aac]
            .iter()
            .map(|header| header.with_timestamp(40).encode().unwrap())
            .chain([keyframe.encode().unwrap()])
            .collect();
        assert_eq!(out, expected);
        assert_eq!(gate.run_start(), Some(40));
        let audio = tag(FlvTagKind::Audio, 45, &[0xaf, 1, 2]);
        assert_eq!(gate.accept(&audio).unwrap(), vec![audio.encode().unwrap()]);
        assert_eq!(gate.dropped(), 2);
    }

    #[test]
    fn restart_resends_cached_headers() {
        let mut gate = InputGate::new();
        gate.start_run();
        let avc = tag(FlvTagKind::Video, 0, &[0x17, 0, 0, 0, 0, 1]);
        gate.accept(&avc).unwrap();
        gate.accept(&tag(FlvTagKind::Video, 0, &[0x17, 1, 0, 0, 0])).unwrap();
        gate.start_run();
        assert!(gate.observe(&tag(FlvTagKind::Audio, 900, &[0xaf, 0, 0x12, 0x10])));
        assert!(gate.accept(&tag(FlvTagKind::Video, 1000, &[0x27, 1, 0, 0, 0])).unwrap().is_empty());
        let out = gate.accept(&tag(FlvTagKind::Video, 2000, &[0x17, 1, 0, 0, 0])).unwrap();
        assert_eq!(out.len(), 3, "video header, new audio header, keyframe");
        assert_eq!(out[0], avc.with_timestamp(2000).encode().unwrap());
    }

    #[test]
    fn audio_only_flows_at_once() {
        let mut gate = InputGate::new();
        gate.start_run();
        let out = gate.accept(&tag(FlvTagKind::Audio, 0, &[0xaf, 1, 1])).unwrap();
        assert_eq!(out.len(), 1);
    }
}
