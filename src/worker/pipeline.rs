//! The media work of one stream, publish after publish: probe the source, plan the ladder,
//! run ffmpeg, place its output into parts and segments, and hand them to the stream's
//! publisher; and the end of the stream.
//!
//! A [`Pipeline`] owns what lasts across publishes: the ladder of the first publish (a
//! reconnect continues the same renditions), the number of the last ffmpeg run (each run
//! starts a discontinuity), and the publisher task with the queue that feeds it. It reports
//! through the narrow [`PipelineObserver`].

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::api::{BehindPolicy, EncoderPreset, H264Profile, LadderSpec, SegmentContainer};
use crate::ingest::listener::{EndReason, MediaMessage};
use crate::media::flv::FlvTag;
use crate::media::video_tag::VideoCodec;
use crate::origin::{IndexOptions, LiveIndex};
use crate::package::cutter::{Cut, Cutter};
use crate::package::{BandwidthFloor, SegmentFormat};
use crate::storage::{AnyStore, InstrumentedStore};
use crate::transcode::cost::faster_preset;
use crate::transcode::plan::{
    AudioPlan, Container, PlannedRendition, Profile, RenditionRequest, SourceFormat, SourceSize, TranscodePlan,
    select_ladder,
};
use crate::transcode::{SupervisorConfig, TranscodeEvent, Transcoder};

use super::ingest_clock::IngestClock;
use super::outputs::{Output, OutputQueue, QueueBounds, ReadyPart, ReadySegment};
use super::publisher::{PublishError, PublishObserver, PublishSettings, Publisher, RenditionOutput};
use super::real_time::{RealTimeChange, RealTimeWatch};
use super::source::{ProbeStatus, SourceInfo, SourceProbe};
use super::source_timeline::SourceTimeline;
use super::status::ProblemKind;
use super::stream::{Publication, StreamSettings};

/// After a preset change, how long the input's waits are not judged: ffmpeg flushes,
/// restarts and waits for a keyframe meanwhile.
const PRESET_CHANGE_SETTLE: Duration = Duration::from_secs(3);
/// The name (and folder) of the one rendition of a source without video.
pub const AUDIO_RENDITION: &str = "audio";
/// How long a publish may take to show what it carries.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// Media waiting for storage before the oldest is dropped: about ten minutes of parts of
/// a four-rung ladder, and at most this many bytes in memory.
const QUEUE_BOUNDS: QueueBounds = QueueBounds { items: 4800, bytes: 256 * 1024 * 1024 };

/// What the pipeline reports besides publishing.
pub trait PipelineObserver: PublishObserver {
    /// A media message of the publish arrived (for the live figures).
    fn media_received(&self, tag: &FlvTag);
    /// ffmpeg's speed against real time.
    fn transcode_speed(&self, speed: f64);
    /// ffmpeg died and is restarted.
    fn transcoder_restarted(&self);
    /// The source's timestamps leapt and the timeline closed the leap.
    fn timestamps_leapt(&self);
    /// ffmpeg fell behind the source (why, in words), or keeps up again (`None`).
    fn transcoder_behind(&self, behind: Option<String>);
    /// ffmpeg is restarted at a faster preset to keep up.
    fn preset_lowered(&self, preset: EncoderPreset);
    /// A segment was cut (before it is uploaded).
    fn segment_produced(&self);
}

/// Errors of a publish.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error("the publish carried neither a video keyframe nor AAC audio within its first seconds")]
    NoMedia,
    #[error("the publish's video is {0}, which the worker does not decode: send H.264, HEVC or AV1")]
    UnsupportedVideo(String),
    #[error("a passthrough of {0} needs hls.container fmp4: players do not take it in MPEG-TS")]
    PassthroughNeedsFmp4(String),
    #[error("transcoding: {0}")]
    Transcode(String),
    #[error("another worker took over the stream")]
    Superseded,
}

/// The publisher task and the queue that feeds it.
struct PublisherTask {
    queue: OutputQueue,
    task: JoinHandle<()>,
}

/// One stream's media work.
pub struct Pipeline {
    settings: StreamSettings,
    store: Arc<InstrumentedStore<AnyStore>>,
    index: Arc<LiveIndex>,
    observer: Arc<dyn PipelineObserver>,
    /// The plan of the first publish, kept so that reconnects continue the same renditions.
    plan: Option<(TranscodePlan, Vec<RenditionOutput>)>,
    /// The last transcoder run number: each run's output starts a discontinuity.
    runs: u32,
    publisher: Option<PublisherTask>,
    /// Turns true when another worker took over: the publish ends at once.
    superseded: watch::Receiver<bool>,
}

impl Pipeline {
    pub fn new(
        settings: StreamSettings,
        store: Arc<InstrumentedStore<AnyStore>>,
        index: Arc<LiveIndex>,
        observer: Arc<dyn PipelineObserver>,
        superseded: watch::Receiver<bool>,
    ) -> Self {
        Self { settings, store, index, observer, plan: None, runs: 0, publisher: None, superseded }
    }

    /// Runs one publish to its end: ffmpeg has flushed its output into the queue when it
    /// returns (the publisher uploads it on its own time).
    pub async fn run_publication(
        &mut self,
        publication: Publication,
        shutdown: watch::Receiver<bool>,
    ) -> Result<EndReason, PipelineError> {
        let mut media = publication.media;
        let clock = Arc::new(Mutex::new(IngestClock::new()));
        let mut timeline = SourceTimeline::new();
        let mut probe = SourceProbe::new();
        let deadline = tokio::time::Instant::now() + PROBE_TIMEOUT;
        loop {
            let tag = match tokio::time::timeout_at(deadline, media.recv()).await {
                Err(_) => return Err(self.refused(PipelineError::NoMedia)),
                Ok(None) => return Ok(EndReason::Disconnected),
                Ok(Some(MediaMessage::End(reason))) => return Ok(reason),
                Ok(Some(MediaMessage::Tag(tag))) => tag,
            };
            let tag = self.received(&clock, &mut timeline, tag);
            match probe.feed(tag) {
                ProbeStatus::NeedMore => {}
                ProbeStatus::Ready => break,
                ProbeStatus::NoMedia => return Err(self.refused(PipelineError::NoMedia)),
                ProbeStatus::UnsupportedVideo(codec) => {
                    return Err(self.refused(PipelineError::UnsupportedVideo(codec)));
                }
            }
        }
        let (plan, outputs) = self.plan_for(&probe.info())?;
        let codec = probe.info().video_codec;
        if codec != VideoCodec::Avc && plan.has_passthrough() && plan.container == Container::Ts {
            return Err(self.refused(PipelineError::PassthroughNeedsFmp4(codec.name())));
        }
        self.observer.problem(ProblemKind::SourceUnsupported, None);
        let queue = self.publisher(&plan, &outputs, shutdown).await?;

        let mut config = SupervisorConfig::new(plan.clone());
        config.first_run = self.runs + 1;
        let info = probe.info();
        config.source = SourceFormat { codec, enhanced: info.video_enhanced, frame_rate: info.frame_rate };
        let (transcoder, events) = Transcoder::start(config).map_err(|e| PipelineError::Transcode(e.to_string()))?;
        let names: Vec<String> = plan.renditions.iter().map(|r| r.name().to_string()).collect();
        let segment_duration = Duration::from_secs(u64::from(plan.segment_duration_s));
        let cutters = plan
            .renditions
            .iter()
            .map(|r| Cutter::new(segment_duration, matches!(r, PlannedRendition::Encoded { .. })))
            .collect();
        let (speed_tx, speed) = watch::channel(None);
        let sinks = PumpSinks { queue, observer: self.observer.clone(), speed: speed_tx };
        let pump = tokio::spawn(pump(events, sinks, names, cutters, clock.clone()));

        let mut outcome = Ok(EndReason::Disconnected);
        for tag in probe.held {
            if let Err(e) = forward(&transcoder, tag).await {
                outcome = Err(e);
                break;
            }
        }
        let mut real_time = RealTimeWatch::new();
        // After a preset change, the wait while ffmpeg restarts is not held against it.
        let mut judged_from = tokio::time::Instant::now();
        if outcome.is_ok() {
            let mut superseded = self.superseded.clone();
            outcome = loop {
                let received = tokio::select! {
                    received = media.recv() => received,
                    _ = superseded.wait_for(|s| *s) => break Err(PipelineError::Superseded),
                };
                let tag = match received {
                    None => break Ok(EndReason::Disconnected),
                    Some(MediaMessage::End(reason)) => break Ok(reason),
                    Some(MediaMessage::Tag(tag)) => tag,
                };
                let tag = self.received(&clock, &mut timeline, tag);
                let started = tokio::time::Instant::now();
                if let Err(e) = forward(&transcoder, tag).await {
                    break Err(e);
                }
                if started < judged_from {
                    continue;
                }
                match real_time.record(started, started.elapsed()) {
                    Some(RealTimeChange::Behind { .. }) if speed.borrow().is_some_and(|s| s >= 1.0) => {
                        // Faster than real time: ffmpeg works off a backlog (after a
                        // restart, say); judged again from scratch.
                        real_time = RealTimeWatch::new();
                    }
                    Some(RealTimeChange::Behind { share }) if self.shed(&transcoder, *speed.borrow()) => {
                        tracing::debug!(stream = %self.settings.label, share, "behind; preset lowered");
                        real_time = RealTimeWatch::new();
                        judged_from = tokio::time::Instant::now() + PRESET_CHANGE_SETTLE;
                    }
                    Some(change) => self.real_time_changed(change),
                    None => {}
                }
            };
        }
        if real_time.is_behind() {
            self.observer.transcoder_behind(None);
        }
        // Whatever ended the publish, ffmpeg flushes its last output into the queue.
        drop(media);
        if let Err(e) = transcoder.finish().await {
            tracing::warn!(stream = %self.settings.label, error = %e, "transcoder ended with an error");
        }
        let last_run = pump.await.unwrap_or(self.runs);
        self.runs = self.runs.max(last_run);
        outcome
    }

    /// A publish refused for what it carries: reported until a later publish is taken.
    fn refused(&self, error: PipelineError) -> PipelineError {
        self.observer.problem(ProblemKind::SourceUnsupported, Some(error.to_string()));
        error
    }

    /// Under [`BehindPolicy::FasterPreset`], restarts ffmpeg at a faster preset chosen from
    /// the speed it reached; `false` when the policy is to report, or no preset is faster.
    /// Later publishes of the stream keep the faster preset.
    fn shed(&mut self, transcoder: &Transcoder, speed: Option<f64>) -> bool {
        if self.settings.ladder.when_behind != BehindPolicy::FasterPreset {
            return false;
        }
        let Some((plan, _)) = self.plan.as_mut() else { return false };
        let Some(current) = EncoderPreset::from_name(&plan.preset) else { return false };
        let Some(faster) = faster_preset(current, speed) else { return false };
        tracing::warn!(
            stream = %self.settings.label,
            from = current.as_str(),
            to = faster.as_str(),
            speed = speed.map(|s| format!("{s:.2}x")),
            "ffmpeg does not keep up with the source; restarting it at a faster preset to stay live"
        );
        plan.preset = faster.as_str().to_string();
        transcoder.change_preset(faster.as_str());
        self.observer.preset_lowered(faster);
        // Judged again at the new preset, from scratch.
        self.observer.transcoder_behind(None);
        true
    }

    fn real_time_changed(&self, change: RealTimeChange) {
        match change {
            RealTimeChange::Behind { share } => {
                let message = format!(
                    "ffmpeg does not keep up with the source: its input queue was full {:.0} % of the last {} s, \
                     so the encoder is slowed down and viewers stall; lighten the ladder (fewer or smaller \
                     renditions, a faster preset) or give the worker more CPU",
                    share * 100.0,
                    super::real_time::WINDOW.as_secs()
                );
                tracing::warn!(stream = %self.settings.label, "{message}");
                self.observer.transcoder_behind(Some(message));
            }
            RealTimeChange::CaughtUp { share } => {
                tracing::info!(
                    stream = %self.settings.label,
                    waiting = format!("{:.0} %", share * 100.0),
                    "ffmpeg keeps up with the source again"
                );
                self.observer.transcoder_behind(None);
            }
        }
    }

    /// A tag of the publish, placed on its continuous timeline.
    fn received(&self, clock: &Mutex<IngestClock>, timeline: &mut SourceTimeline, mut tag: FlvTag) -> FlvTag {
        if let Some(leap) = timeline.place(&mut tag) {
            tracing::warn!(
                stream = %self.settings.label,
                kind = ?leap.kind,
                leap_ms = leap.milliseconds(),
                "the source's timestamps leapt; the stream goes on from the frame before the leap"
            );
            self.observer.timestamps_leapt();
        }
        clock.lock().unwrap_or_else(PoisonError::into_inner).record_tag(&tag, Timestamp::now());
        self.observer.media_received(&tag);
        tag
    }

    /// The plan of the first publish (chosen from what the source turned out to be), kept
    /// for every later one.
    fn plan_for(&mut self, info: &SourceInfo) -> Result<(TranscodePlan, Vec<RenditionOutput>), PipelineError> {
        if let Some(plan) = &self.plan {
            return Ok(plan.clone());
        }
        let (plan, outputs) = plan(&self.settings, info)?;
        tracing::info!(
            stream = %self.settings.label,
            source = ?(info.width, info.height, info.frame_rate),
            renditions = ?plan.renditions.iter().map(|r| r.name().to_string()).collect::<Vec<_>>(),
            "ladder chosen"
        );
        self.plan = Some((plan.clone(), outputs.clone()));
        Ok((plan, outputs))
    }

    /// The queue of the publisher task, which is started at the first publish.
    async fn publisher(
        &mut self,
        plan: &TranscodePlan,
        outputs: &[RenditionOutput],
        shutdown: watch::Receiver<bool>,
    ) -> Result<OutputQueue, PipelineError> {
        if let Some(publisher) = &self.publisher {
            return Ok(publisher.queue.clone());
        }
        let low_latency = self.settings.low_latency.as_ref().filter(|_| plan.container == Container::Fmp4);
        let settings = PublishSettings {
            prefix: self.settings.prefix.clone(),
            format: match plan.container {
                Container::Fmp4 => SegmentFormat::Fmp4,
                Container::Ts => SegmentFormat::Ts,
            },
            segment_duration_s: plan.segment_duration_s,
            window_segments: self.settings.hls.window_segments as usize,
            recording: self.settings.hls.recording,
            has_passthrough: plan.has_passthrough(),
            part_target: low_latency.map(|ll| ll.part_target),
        };
        let index = low_latency.map(|ll| {
            self.index.register(
                &self.settings.prefix,
                outputs.iter().map(|o| o.name.clone()).collect(),
                IndexOptions { part_target: ll.part_target, media_base: ll.media_base.clone() },
            )
        });
        let observer: Arc<dyn PublishObserver> = self.observer.clone();
        let publisher =
            Publisher::open(self.store.clone(), settings, outputs.to_vec(), shutdown, observer, index).await?;
        let queue = OutputQueue::new(QUEUE_BOUNDS);
        let task = tokio::spawn(publisher.run(queue.clone()));
        self.publisher = Some(PublisherTask { queue: queue.clone(), task });
        Ok(queue)
    }

    /// Ends the stream's playlists (ENDLIST, and the recording when on), once everything
    /// before is uploaded.
    pub async fn end_stream(&mut self) -> Result<(), PipelineError> {
        let Some(publisher) = &self.publisher else { return Ok(()) };
        let (reply, ended) = oneshot::channel();
        publisher.queue.push(Output::EndStream(reply));
        ended.await.map_err(|_| PipelineError::Publish(PublishError::Stopped))??;
        Ok(())
    }

    /// Lets the publisher upload what is queued and stop, at most `limit`.
    pub async fn shut_down(&mut self, limit: Duration) {
        if let Some(publisher) = self.publisher.take() {
            publisher.queue.close();
            if tokio::time::timeout(limit, publisher.task).await.is_err() {
                tracing::warn!(stream = %self.settings.label, "media still queued for storage at shutdown");
            }
        }
    }
}

/// The renditions a ladder asks for, as the transcoding plan takes them.
pub fn rendition_requests(ladder: &LadderSpec) -> Vec<RenditionRequest> {
    ladder
        .renditions
        .iter()
        .map(|r| RenditionRequest {
            name: r.name.clone(),
            passthrough: r.passthrough,
            width: r.width,
            height: r.height,
            video_kbps: r.video_bitrate_kbps,
            max_kbps: r.max_bitrate_kbps,
            frame_rate: r.frame_rate,
            profile: r.profile.map(|p| match p {
                H264Profile::Baseline => Profile::Baseline,
                H264Profile::Main => Profile::Main,
                H264Profile::High => Profile::High,
            }),
        })
        .collect()
}

/// The transcoding plan and what the master playlist says of each rendition, from the
/// stream's ladder and what the source turned out to be.
pub fn plan(
    settings: &StreamSettings,
    source: &SourceInfo,
) -> Result<(TranscodePlan, Vec<RenditionOutput>), PipelineError> {
    let requests = rendition_requests(&settings.ladder);
    let size = match (source.width, source.height) {
        (Some(width), Some(height)) if width > 0 && height > 0 => Some(SourceSize { width, height }),
        _ => None,
    };
    let renditions = if source.has_video {
        select_ladder(&requests, size, settings.ladder.allow_upscale)
            .map_err(|e| PipelineError::Transcode(e.to_string()))?
    } else {
        // A source without video gives one AAC rendition, whatever the ladder.
        vec![PlannedRendition::Audio { name: AUDIO_RENDITION.into() }]
    };
    let audio = &settings.ladder.audio;
    let container = match settings.hls.container {
        SegmentContainer::Fmp4 => Container::Fmp4,
        SegmentContainer::Ts => Container::Ts,
    };
    // The bandwidth a rendition announces counts audio only when there is audio.
    let audio_kbps = if source.has_audio { audio.bitrate_kbps } else { 0 };
    let plan = TranscodePlan {
        poster: TranscodePlan::poster_size(&renditions),
        renditions,
        audio: AudioPlan {
            bitrate_kbps: audio.bitrate_kbps,
            sample_rate: audio.sample_rate.hz(),
            channels: audio.channels,
        },
        has_audio: source.has_audio,
        preset: settings.ladder.preset.as_str().into(),
        keyframe_interval_s: settings.ladder.keyframe_interval_seconds,
        segment_duration_s: settings.hls.segment_duration_seconds,
        container,
        fragment_duration: settings.low_latency.as_ref().map(|ll| ll.part_target),
        ffmpeg: settings.ffmpeg.clone(),
        scratch_dir: settings.scratch_dir.clone(),
    };
    let outputs = plan
        .renditions
        .iter()
        .map(|rendition| match rendition {
            PlannedRendition::Encoded { name, width, height, video_kbps, frame_rate, .. } => RenditionOutput {
                name: name.clone(),
                resolution: Some((*width, *height)),
                frame_rate: frame_rate.map(f64::from).or(source.frame_rate),
                floor: BandwidthFloor::from_kbps(
                    *video_kbps,
                    rendition.max_video_kbps().unwrap_or(*video_kbps),
                    audio_kbps,
                ),
            },
            PlannedRendition::Passthrough { name } => RenditionOutput {
                name: name.clone(),
                resolution: size.map(|s| (s.width, s.height)),
                frame_rate: source.frame_rate,
                floor: BandwidthFloor::default(),
            },
            PlannedRendition::Audio { name } => RenditionOutput {
                name: name.clone(),
                resolution: None,
                frame_rate: None,
                floor: BandwidthFloor::from_kbps(0, 0, audio_kbps),
            },
        })
        .collect();
    Ok((plan, outputs))
}

async fn forward(transcoder: &Transcoder, tag: FlvTag) -> Result<(), PipelineError> {
    transcoder.send(tag).await.map_err(|e| PipelineError::Transcode(e.to_string()))
}

/// Where the pump delivers: the publisher's queue, the observer, and ffmpeg's latest speed.
struct PumpSinks {
    queue: OutputQueue,
    observer: Arc<dyn PipelineObserver>,
    speed: watch::Sender<Option<f64>>,
}

/// Moves the transcoder's output into the publisher's queue, placing fragments into parts
/// and segments and dating each part by the ingest time of its first frame; never waits on
/// storage. Returns the last run number seen.
async fn pump(
    mut events: mpsc::Receiver<TranscodeEvent>,
    sinks: PumpSinks,
    names: Vec<String>,
    mut cutters: Vec<Cutter>,
    clock: Arc<Mutex<IngestClock>>,
) -> u32 {
    let PumpSinks { queue, observer, speed: speed_sink } = sinks;
    // Fragments that join the next part of their rendition.
    let mut joined: Vec<Vec<bytes::Bytes>> = vec![Vec::new(); names.len()];
    let mut run_starts: Vec<(u32, u32)> = Vec::new();
    let mut last_run = 0;
    let push = |output: Output| {
        let dropped = queue.push(output);
        if !dropped.is_empty() {
            observer.media_dropped();
            tracing::warn!(renditions = ?dropped, "storage is behind: dropped the oldest waiting media");
        }
    };
    while let Some(event) = events.recv().await {
        match event {
            TranscodeEvent::Started { run, .. } => last_run = last_run.max(run),
            TranscodeEvent::InputStarted { run, timestamp_ms } => run_starts.push((run, timestamp_ms)),
            TranscodeEvent::Progress { progress, .. } => {
                if let Some(speed) = progress.speed {
                    observer.transcode_speed(speed);
                    speed_sink.send_replace(Some(speed));
                }
                observer.problem(ProblemKind::TranscoderRestarting, None);
            }
            TranscodeEvent::Init { run, rendition, init } => {
                if let Some(cutter) = cutters.get_mut(rendition) {
                    cutter.start_run(&init);
                    joined[rendition].clear();
                    push(Output::Init { rendition, run, bytes: init.bytes });
                }
            }
            TranscodeEvent::Fragment { run, rendition, fragment } => {
                let placement = match cutters.get_mut(rendition).and_then(|cutter| cutter.place(&fragment)) {
                    Some(Cut::Part(placement)) => placement,
                    Some(Cut::Join) => {
                        joined[rendition].push(fragment.bytes);
                        continue;
                    }
                    None => {
                        tracing::debug!(run, rendition, "audio before the run's first video frame; dropped");
                        continue;
                    }
                };
                let bytes = match std::mem::take(&mut joined[rendition]) {
                    held if held.is_empty() => fragment.bytes,
                    held => held.iter().chain([&fragment.bytes]).flat_map(|b| b.iter().copied()).collect(),
                };
                if placement.opens_segment {
                    observer.segment_produced();
                }
                let input_start = run_starts.iter().rev().find(|(r, _)| *r == run).map(|(_, ts)| *ts);
                let starts_at = input_start
                    .and_then(|start| {
                        let input_ms = u64::from(start) + u64::try_from(placement.offset.as_millis()).ok()?;
                        clock.lock().unwrap_or_else(PoisonError::into_inner).wall_time(input_ms)
                    })
                    .unwrap_or_else(Timestamp::now);
                push(Output::Part(ReadyPart {
                    rendition,
                    run,
                    bytes,
                    duration: placement.duration,
                    independent: placement.independent,
                    opens_segment: placement.opens_segment,
                    completes_segment: placement.completes_segment,
                    starts_at,
                }));
            }
            TranscodeEvent::Poster { jpeg, .. } => push(Output::Poster(jpeg)),
            TranscodeEvent::OutputEnded { run, rendition } => {
                if let Some(held) = joined.get_mut(rendition) {
                    held.clear();
                }
                push(Output::RunEnded { rendition, run });
            }
            TranscodeEvent::Segment(segment) => {
                last_run = last_run.max(segment.run);
                let Some(rendition) = names.iter().position(|n| *n == segment.rendition) else {
                    tracing::warn!(rendition = %segment.rendition, "segment of an unknown rendition");
                    let _ = std::fs::remove_file(&segment.path);
                    continue;
                };
                observer.segment_produced();
                if segment.after_gap {
                    observer.media_dropped();
                }
                push(Output::Segment(ReadySegment {
                    rendition,
                    run: segment.run,
                    path: segment.path,
                    duration: segment.duration,
                    completed_at: Timestamp::now(),
                    after_gap: segment.after_gap,
                }));
            }
            TranscodeEvent::Exited { run, status, will_restart } => {
                if will_restart {
                    observer.transcoder_restarted();
                    observer.problem(
                        ProblemKind::TranscoderRestarting,
                        Some(format!("ffmpeg run {run} exited ({status:?}); restarting")),
                    );
                    tracing::warn!(run, status = ?status, "ffmpeg died; restarting it");
                }
            }
            TranscodeEvent::GaveUp { restarts } => {
                observer.problem(
                    ProblemKind::TranscoderFailed,
                    Some(format!("ffmpeg died {restarts} times within a minute; the publish is stopped")),
                );
                tracing::error!(restarts, "ffmpeg keeps dying; giving up on this publish");
            }
        }
    }
    last_run
}
