//! The media work of one publish: probe the source, plan the ladder, run ffmpeg, hand
//! its segments to the publisher; and the end of a stream.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::{mpsc, watch};

use crate::ingest::{self, listener::EndReason, listener::MediaMessage};
use crate::package::SegmentFormat;
use crate::storage::{AnyStore, InstrumentedStore};
use crate::transcode::{FlvTag, FlvTagKind, SupervisorConfig, TranscodeEvent, Transcoder};

use crate::api::{H264Profile, SegmentContainer};
use crate::package::BandwidthFloor;
use crate::transcode::plan::{
    AudioPlan, Container, PlannedRendition, Profile, RenditionRequest, SourceSize, TranscodePlan, select_ladder,
};

use super::publisher::{
    Next, PendingSegments, PublishError, PublishObserver, PublishSettings, Publisher, ReadySegment, RenditionOutput,
};
use super::source::{ProbeStatus, SourceInfo, SourceProbe};
use super::stream::{Publication, Stream, StreamSettings};

/// What a stream keeps across its publishes: the ladder it chose and its publisher (the
/// playlists continue across reconnects).
pub struct PipelineState {
    pub(super) settings: StreamSettings,
    pub(super) store: Arc<InstrumentedStore<AnyStore>>,
    pub(super) publisher: Option<Publisher<AnyStore>>,
    /// The plan of the first publish, kept so that reconnects continue the same renditions.
    pub(super) plan: Option<(TranscodePlan, Vec<RenditionOutput>)>,
    /// The last transcoder run number: each run's segments start a discontinuity.
    pub(super) runs: u32,
}

impl PipelineState {
    pub fn new(settings: StreamSettings, store: Arc<InstrumentedStore<AnyStore>>) -> Self {
        Self { settings, store, publisher: None, plan: None, runs: 0 }
    }

    /// Whether the stream has published anything (and so has playlists to end).
    pub fn has_output(&self) -> bool {
        self.publisher.as_ref().is_some_and(Publisher::has_output)
    }
}

/// Errors of a publish.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error("the publish carried no video keyframe")]
    NoVideo,
    #[error("transcoding: {0}")]
    Transcode(String),
}

/// The transcoding plan and what the master playlist says of each rendition, from the
/// stream's ladder and what the source turned out to be.
pub fn plan(
    settings: &StreamSettings,
    source: &SourceInfo,
) -> Result<(TranscodePlan, Vec<RenditionOutput>), PipelineError> {
    let requests: Vec<RenditionRequest> = settings
        .ladder
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
        .collect();
    let size = match (source.width, source.height) {
        (Some(width), Some(height)) if width > 0 && height > 0 => Some(SourceSize { width, height }),
        _ => None,
    };
    let renditions = select_ladder(&requests, size, settings.ladder.allow_upscale)
        .map_err(|e| PipelineError::Transcode(e.to_string()))?;
    let audio = &settings.ladder.audio;
    let plan = TranscodePlan {
        renditions,
        audio: AudioPlan {
            bitrate_kbps: audio.bitrate_kbps,
            sample_rate: audio.sample_rate.hz(),
            channels: audio.channels,
        },
        preset: serde_json::to_value(settings.ladder.preset)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| "veryfast".into()),
        keyframe_interval_s: settings.ladder.keyframe_interval_seconds,
        segment_duration_s: settings.hls.segment_duration_seconds,
        container: match settings.hls.container {
            SegmentContainer::Fmp4 => Container::Fmp4,
            SegmentContainer::Ts => Container::Ts,
        },
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
                    audio.bitrate_kbps,
                ),
            },
            PlannedRendition::Passthrough { name } => RenditionOutput {
                name: name.clone(),
                resolution: size.map(|s| (s.width, s.height)),
                frame_rate: source.frame_rate,
                floor: BandwidthFloor::default(),
            },
        })
        .collect();
    Ok((plan, outputs))
}

/// How long a publish may take to show its video configuration.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// Segments waiting for upload before the oldest are dropped (minutes of a stream).
const MAX_PENDING_SEGMENTS: usize = 600;

/// Runs one publish to its end.
pub async fn run_publication(
    stream: &Arc<Stream>,
    state: &mut PipelineState,
    publication: Publication,
    shutdown: watch::Receiver<bool>,
) -> Result<EndReason, PipelineError> {
    let mut media = publication.media;
    let mut probe = SourceProbe::new();
    let deadline = tokio::time::Instant::now() + PROBE_TIMEOUT;
    loop {
        let message = match tokio::time::timeout_at(deadline, media.recv()).await {
            Err(_) => return Err(PipelineError::NoVideo),
            Ok(None) => return Ok(EndReason::Disconnected),
            Ok(Some(MediaMessage::End(reason))) => return Ok(reason),
            Ok(Some(message)) => message,
        };
        record(stream, &message);
        match probe.feed(message) {
            ProbeStatus::NeedMore => {}
            ProbeStatus::Ready => break,
            ProbeStatus::NoVideo => return Err(PipelineError::NoVideo),
        }
    }
    let info = probe.info();
    if state.plan.is_none() {
        let (plan, outputs) = plan(&state.settings, &info)?;
        tracing::info!(
            stream = %state.settings.label,
            source = ?(info.width, info.height, info.frame_rate),
            renditions = ?plan.renditions.iter().map(|r| r.name().to_string()).collect::<Vec<_>>(),
            "ladder chosen"
        );
        state.plan = Some((plan, outputs));
    }
    let Some((plan, outputs)) = state.plan.clone() else {
        return Err(PipelineError::Transcode("no plan".into()));
    };
    let publisher = match state.publisher.take() {
        Some(publisher) => publisher,
        None => {
            let settings = PublishSettings {
                prefix: state.settings.prefix.clone(),
                format: match plan.container {
                    Container::Fmp4 => SegmentFormat::Fmp4,
                    Container::Ts => SegmentFormat::Ts,
                },
                segment_duration_s: plan.segment_duration_s,
                window_segments: state.settings.hls.window_segments as usize,
                recording: state.settings.hls.recording,
                has_passthrough: plan.has_passthrough(),
                max_pending: MAX_PENDING_SEGMENTS,
            };
            let observer: Arc<dyn PublishObserver> = stream.clone();
            Publisher::open(state.store.clone(), settings, outputs.clone(), shutdown.clone(), observer).await?
        }
    };

    let mut config = SupervisorConfig::new(plan);
    config.first_run = state.runs + 1;
    config.source_frame_rate = info.frame_rate;
    let (transcoder, events) = match Transcoder::start(config) {
        Ok(started) => started,
        Err(e) => {
            state.publisher = Some(publisher);
            return Err(PipelineError::Transcode(e.to_string()));
        }
    };

    let pending = PendingSegments::new(MAX_PENDING_SEGMENTS);
    let names: Vec<String> = outputs.iter().map(|o| o.name.clone()).collect();
    let uploader = tokio::spawn(upload(publisher, pending.clone(), stream.clone()));
    let pump = tokio::spawn(pump_events(events, pending.clone(), names, stream.clone()));

    let mut outcome = Ok(EndReason::Disconnected);
    for message in probe.held {
        if let Err(e) = forward(&transcoder, message).await {
            outcome = Err(e);
            break;
        }
    }
    if outcome.is_ok() {
        outcome = loop {
            let message = match media.recv().await {
                None => break Ok(EndReason::Disconnected),
                Some(MediaMessage::End(reason)) => break Ok(reason),
                Some(message) => message,
            };
            record(stream, &message);
            if let Err(e) = forward(&transcoder, message).await {
                break Err(e);
            }
        };
    }
    // Whatever ended the publish, ffmpeg flushes its last segments and they are uploaded.
    drop(media);
    if let Err(e) = transcoder.finish().await {
        tracing::warn!(stream = %state.settings.label, error = %e, "transcoder ended with an error");
    }
    let last_run = pump.await.unwrap_or(state.runs);
    state.runs = state.runs.max(last_run);
    pending.close();
    match uploader.await {
        Ok(publisher) => state.publisher = Some(publisher),
        Err(e) => tracing::error!(stream = %state.settings.label, error = %e, "the uploader failed"),
    }
    outcome
}

fn record(stream: &Stream, message: &MediaMessage) {
    match message {
        MediaMessage::Video { data, .. } => {
            stream.record_media(data.len(), !ingest::flv::is_video_sequence_header(data))
        }
        MediaMessage::Audio { data, .. } => stream.record_media(data.len(), false),
        MediaMessage::Metadata(data) => stream.record_media(data.len(), false),
        MediaMessage::End(_) => {}
    }
}

async fn forward(transcoder: &Transcoder, message: MediaMessage) -> Result<(), PipelineError> {
    let (kind, timestamp_ms, data) = match message {
        MediaMessage::Metadata(data) => (FlvTagKind::Script, 0, data),
        MediaMessage::Audio { timestamp, data } => (FlvTagKind::Audio, timestamp, data),
        MediaMessage::Video { timestamp, data } => (FlvTagKind::Video, timestamp, data),
        MediaMessage::End(_) => return Ok(()),
    };
    transcoder.send(FlvTag { kind, timestamp_ms, data }).await.map_err(|e| PipelineError::Transcode(e.to_string()))
}

/// Moves the transcoder's events to the upload queue and the stream's status, without
/// ever waiting on storage. Returns the last run number seen.
async fn pump_events(
    mut events: mpsc::Receiver<TranscodeEvent>,
    pending: PendingSegments,
    names: Vec<String>,
    stream: Arc<Stream>,
) -> u32 {
    let label = stream.settings().label.clone();
    let mut last_run = 0;
    while let Some(event) = events.recv().await {
        match event {
            TranscodeEvent::Started { run, pid } => {
                last_run = last_run.max(run);
                tracing::info!(stream = %label, run, pid = ?pid, "ffmpeg started");
            }
            TranscodeEvent::Progress { progress, .. } => {
                if let Some(speed) = progress.speed {
                    stream.metrics().set_transcode_speed(&label, speed);
                }
                stream.set_problem("TranscoderRestarting", None);
            }
            TranscodeEvent::Segment(segment) => {
                last_run = last_run.max(segment.run);
                let Some(rendition) = names.iter().position(|n| *n == segment.rendition) else {
                    tracing::warn!(stream = %label, rendition = %segment.rendition, "segment of an unknown rendition");
                    let _ = std::fs::remove_file(&segment.path);
                    continue;
                };
                stream.metrics().segment_produced(&label);
                if segment.after_gap {
                    stream.metrics().segment_dropped(&label);
                }
                let ready = ReadySegment {
                    rendition,
                    run: segment.run,
                    path: segment.path,
                    init: segment.init,
                    duration: segment.duration,
                    completed_at: Timestamp::now(),
                    after_gap: segment.after_gap,
                };
                if pending.push(ready).is_some() {
                    stream.metrics().segment_dropped(&label);
                    tracing::warn!(stream = %label, "storage is behind: dropped the oldest waiting segment");
                }
            }
            TranscodeEvent::Exited { run, status, will_restart } => {
                if will_restart {
                    stream.metrics().ffmpeg_restarted(&label);
                    stream.set_problem(
                        "TranscoderRestarting",
                        Some(format!("ffmpeg run {run} exited ({status:?}); restarting")),
                    );
                    tracing::warn!(stream = %label, run, status = ?status, "ffmpeg died; restarting it");
                }
            }
            TranscodeEvent::GaveUp { restarts } => {
                stream.set_problem(
                    "TranscoderFailed",
                    Some(format!("ffmpeg died {restarts} times within a minute; the publish is stopped")),
                );
                tracing::error!(stream = %label, restarts, "ffmpeg keeps dying; giving up on this publish");
            }
        }
    }
    last_run
}

/// Uploads queued segments in order until the queue is closed and drained.
async fn upload(
    mut publisher: Publisher<AnyStore>,
    pending: PendingSegments,
    stream: Arc<Stream>,
) -> Publisher<AnyStore> {
    let label = stream.settings().label.clone();
    loop {
        match pending.next().await {
            Next::Segment(segment) => {
                let rendition = segment.rendition;
                if segment.after_gap {
                    publisher.mark_gap(rendition);
                }
                match publisher.publish(segment).await {
                    Ok(()) => {}
                    Err(PublishError::Cancelled) => {
                        tracing::warn!(stream = %label, "shutting down with segments not uploaded");
                        break;
                    }
                    Err(e) => {
                        tracing::error!(stream = %label, error = %e, "cannot publish a segment; skipping it");
                        stream.metrics().segment_dropped(&label);
                        publisher.mark_gap(rendition);
                    }
                }
            }
            Next::Gap(rendition) => publisher.mark_gap(rendition),
            Next::Closed => break,
        }
    }
    publisher
}

/// Ends the stream's playlists (ENDLIST, and the recording when on).
pub async fn end_stream(
    _stream: &Arc<Stream>,
    state: &mut PipelineState,
    _shutdown: watch::Receiver<bool>,
) -> Result<(), PipelineError> {
    if let Some(publisher) = state.publisher.as_mut() {
        publisher.end().await?;
    }
    Ok(())
}
