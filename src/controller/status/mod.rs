//! The status of a stream, computed from its spec and what was observed: the worker
//! Deployment, the ingest Service and the worker's own `/status`. Pure: the caller
//! observes, this decides.

mod conditions;
pub(crate) mod urls;

pub use conditions::{Desired, condition, find, sanitize_reason};
pub use urls::{ingest_url, low_latency_playback_url, playback_url, poster_url, secure_ingest_url, srt_ingest_url};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::config::GatewaySettings;
use super::validate::Invalid;
use crate::api::{LiveFigures, LiveStream, LiveStreamStatus, Phase, condition as types};
use crate::worker::status::{StreamPhase, WorkerStatus};

/// What the controller learned from the worker's `GET /status`.
#[derive(Clone, Debug, PartialEq)]
pub enum WorkerObservation {
    /// No running worker pod with an address to ask.
    NotRunning,
    /// The worker did not answer usefully (the reason names no secret).
    Unreachable(String),
    /// The worker's report.
    Reported(WorkerStatus),
}

/// Everything observed about a stream's children.
#[derive(Clone, Debug)]
pub struct Observed<'a> {
    pub deployment: Option<&'a Deployment>,
    pub ingest_service: Option<&'a Service>,
    pub origin_service: Option<&'a Service>,
    /// The address of the node that runs the worker, for NodePort ingest URLs.
    pub node_address: Option<&'a str>,
    /// The ingest gateway, when the operator runs one.
    pub gateway: Option<&'a GatewaySettings>,
    pub worker: WorkerObservation,
}

/// Computes the status of `stream`. `invalid` is set when its references are broken.
/// Conditions keep their transition time while their status holds, so equal inputs give
/// an equal status and no write.
pub fn compute(
    stream: &LiveStream,
    observed: &Observed<'_>,
    invalid: Option<&Invalid>,
    now: Timestamp,
) -> LiveStreamStatus {
    let previous = stream.status.clone().unwrap_or_default();
    let generation = stream.metadata.generation;
    let now = Time(Timestamp::from_second(now.as_second()).unwrap_or(now));
    let verdict = decide(stream, observed, invalid, &previous);
    let conditions = [verdict.ready, verdict.live, verdict.degraded]
        .into_iter()
        .map(|desired| condition(&previous.conditions, desired, generation, now.clone()))
        .collect();
    LiveStreamStatus {
        phase: Some(verdict.phase),
        conditions,
        observed_generation: generation,
        ingest_url: ingest_url(stream, observed.ingest_service, observed.node_address, observed.gateway),
        secure_ingest_url: secure_ingest_url(stream, observed.ingest_service, observed.node_address, observed.gateway),
        srt_ingest_url: srt_ingest_url(stream, observed.ingest_service, observed.node_address),
        playback_url: Some(playback_url(stream)),
        poster_url: Some(poster_url(stream)),
        low_latency_playback_url: low_latency_playback_url(stream, observed.origin_service, observed.node_address),
        live: verdict.live_figures,
    }
}

struct Verdict {
    phase: Phase,
    ready: Desired,
    live: Desired,
    degraded: Desired,
    live_figures: Option<LiveFigures>,
}

fn decide(
    stream: &LiveStream,
    observed: &Observed<'_>,
    invalid: Option<&Invalid>,
    previous: &LiveStreamStatus,
) -> Verdict {
    let not_live = |reason: &str, message: &str| Desired::new(types::LIVE, false, reason, message);
    let healthy = Desired::new(types::DEGRADED, false, "AsExpected", "no problems reported");
    if let Some(invalid) = invalid {
        return Verdict {
            phase: Phase::Failed,
            ready: Desired::new(types::READY, false, invalid.reason, invalid.message.clone()),
            live: not_live("NotReady", "the stream cannot run until its references are fixed"),
            degraded: Desired::new(types::DEGRADED, true, invalid.reason, invalid.message.clone()),
            live_figures: None,
        };
    }
    if stream.spec.suspend {
        return Verdict {
            phase: Phase::Suspended,
            ready: Desired::new(types::READY, false, "Suspended", "spec.suspend is set: no worker runs"),
            live: not_live("Suspended", "spec.suspend is set: no worker runs"),
            degraded: healthy,
            live_figures: None,
        };
    }
    let degraded = rollout_problem(observed.deployment).unwrap_or(healthy);
    let available = observed.deployment.and_then(|d| d.status.as_ref()).and_then(|s| s.available_replicas).unwrap_or(0);
    if available < 1 {
        return Verdict {
            phase: Phase::Pending,
            ready: Desired::new(
                types::READY,
                false,
                "WorkerNotAvailable",
                "waiting for the worker pod to become ready",
            ),
            live: not_live("WorkerNotAvailable", "no worker is ready to take a publish"),
            degraded,
            live_figures: None,
        };
    }
    let ready = Desired::new(types::READY, true, "WorkerAvailable", "the worker is ready to take a publish");
    match &observed.worker {
        WorkerObservation::Reported(report) => Verdict {
            phase: match report.phase {
                StreamPhase::Idle => Phase::Idle,
                StreamPhase::Live | StreamPhase::Reconnecting => Phase::Live,
                StreamPhase::Ended => Phase::Ended,
            },
            ready,
            live: match report.phase {
                StreamPhase::Idle => not_live("WaitingForEncoder", "no encoder is publishing"),
                StreamPhase::Live => Desired::new(types::LIVE, true, "Publishing", "an encoder is publishing"),
                StreamPhase::Reconnecting => Desired::new(
                    types::LIVE,
                    true,
                    "Reconnecting",
                    "the encoder disconnected; a reconnect continues the stream",
                ),
                StreamPhase::Ended => not_live("StreamEnded", "the last publish ended; the playlists are complete"),
            },
            degraded: worker_problems(report).unwrap_or(degraded),
            live_figures: matches!(report.phase, StreamPhase::Live | StreamPhase::Reconnecting).then(|| LiveFigures {
                ingest_bitrate_kbps: report.ingest_bitrate_kbps,
                frame_rate: report.frame_rate,
                started_at: report.started_at.clone(),
                last_segment_at: report.last_segment_at.clone(),
            }),
        },
        unknown => {
            let phase = match previous.phase {
                Some(phase @ (Phase::Idle | Phase::Live | Phase::Ended)) => phase,
                _ => Phase::Idle,
            };
            let live = match find(&previous.conditions, types::LIVE) {
                Some(c) if phase == previous.phase.unwrap_or(Phase::Idle) => {
                    Desired::new(types::LIVE, c.status == "True", &c.reason, c.message.clone())
                }
                _ => not_live("WaitingForEncoder", "no encoder is publishing"),
            };
            let degraded = match unknown {
                WorkerObservation::Unreachable(reason) => Desired::new(
                    types::DEGRADED,
                    true,
                    "WorkerStatusUnavailable",
                    format!("the worker's /status could not be read: {reason}"),
                ),
                _ => degraded,
            };
            Verdict {
                phase,
                ready,
                live,
                degraded,
                live_figures: previous.live.clone().filter(|_| phase == Phase::Live),
            }
        }
    }
}

fn rollout_problem(deployment: Option<&Deployment>) -> Option<Desired> {
    let conditions = deployment?.status.as_ref()?.conditions.as_ref()?;
    let stuck = conditions
        .iter()
        .find(|c| c.type_.as_deref() == Some("Progressing") && c.status.as_deref() == Some("False"))?;
    Some(Desired::new(
        types::DEGRADED,
        true,
        "WorkerRolloutStuck",
        stuck.message.clone().unwrap_or_else(|| "the worker Deployment is not progressing".into()),
    ))
}

fn worker_problems(report: &WorkerStatus) -> Option<Desired> {
    let first = report.problems.first()?;
    let message: Vec<&str> = report.problems.iter().map(|p| p.message.as_str()).collect();
    Some(Desired::new(types::DEGRADED, true, &first.reason, message.join("; ")))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentStatus};

    use super::*;
    use crate::controller::children::fixtures;
    use crate::worker::status::Problem;

    fn available(replicas: i32) -> Deployment {
        Deployment {
            status: Some(DeploymentStatus { available_replicas: Some(replicas), ..DeploymentStatus::default() }),
            ..Deployment::default()
        }
    }

    fn report(phase: StreamPhase) -> WorkerObservation {
        WorkerObservation::Reported(WorkerStatus { phase, ingest_bitrate_kbps: Some(2500), ..WorkerStatus::idle() })
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap()
    }

    fn cond<'a>(
        status: &'a LiveStreamStatus,
        type_: &str,
    ) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
        find(&status.conditions, type_).unwrap()
    }

    #[test]
    fn pending_until_the_worker_is_available_then_idle() {
        let stream = fixtures::stream("media", "demo");
        let d = available(0);
        let observed = Observed {
            deployment: Some(&d),
            ingest_service: None,
            origin_service: None,
            node_address: None,
            gateway: None,
            worker: WorkerObservation::NotRunning,
        };
        let status = compute(&stream, &observed, None, at(100));
        assert_eq!(status.phase, Some(Phase::Pending));
        assert_eq!(cond(&status, "Ready").status, "False");
        assert_eq!(cond(&status, "Ready").reason, "WorkerNotAvailable");
        assert_eq!(status.observed_generation, Some(1));
        assert_eq!(
            status.playback_url.as_deref(),
            Some("https://live-video.s3.us-east-1.amazonaws.com/media/demo/master.m3u8")
        );

        let d = available(1);
        let observed = Observed {
            deployment: Some(&d),
            ingest_service: None,
            origin_service: None,
            node_address: None,
            gateway: None,
            worker: report(StreamPhase::Idle),
        };
        let status = compute(&stream, &observed, None, at(200));
        assert_eq!(status.phase, Some(Phase::Idle));
        assert_eq!(cond(&status, "Ready").status, "True");
        assert_eq!(cond(&status, "Live").status, "False");
        assert_eq!(cond(&status, "Degraded").status, "False");
        assert_eq!(status.live, None);
    }

    #[test]
    fn live_and_ended_follow_the_worker_with_figures() {
        let stream = fixtures::stream("media", "demo");
        let d = available(1);
        let observed = Observed {
            deployment: Some(&d),
            ingest_service: None,
            origin_service: None,
            node_address: None,
            gateway: None,
            worker: report(StreamPhase::Live),
        };
        let status = compute(&stream, &observed, None, at(100));
        assert_eq!(status.phase, Some(Phase::Live));
        assert_eq!(cond(&status, "Live").status, "True");
        assert_eq!(status.live.as_ref().unwrap().ingest_bitrate_kbps, Some(2500));
        let observed = Observed { worker: report(StreamPhase::Ended), ..observed };
        let status = compute(&stream, &observed, None, at(100));
        assert_eq!(status.phase, Some(Phase::Ended));
        assert_eq!(cond(&status, "Live").reason, "StreamEnded");
        assert_eq!(status.live, None);
    }

    #[test]
    fn equal_inputs_give_an_equal_status() {
        let mut stream = fixtures::stream("media", "demo");
        let d = available(1);
        let observed = Observed {
            deployment: Some(&d),
            ingest_service: None,
            origin_service: None,
            node_address: None,
            gateway: None,
            worker: report(StreamPhase::Idle),
        };
        let first = compute(&stream, &observed, None, at(100));
        stream.status = Some(first.clone());
        let second = compute(&stream, &observed, None, at(900));
        assert_eq!(first, second);
    }

    #[test]
    fn invalid_references_fail_the_stream_and_suspend_wins_over_the_worker() {
        let mut stream = fixtures::stream("media", "demo");
        let invalid = Invalid { reason: "StreamKeySecretNotFound", message: "Secret \"k\" does not exist".into() };
        let observed = Observed {
            deployment: None,
            ingest_service: None,
            origin_service: None,
            node_address: None,
            gateway: None,
            worker: WorkerObservation::NotRunning,
        };
        let status = compute(&stream, &observed, Some(&invalid), at(100));
        assert_eq!(status.phase, Some(Phase::Failed));
        assert_eq!(cond(&status, "Ready").reason, "StreamKeySecretNotFound");
        stream.spec.suspend = true;
        let status = compute(&stream, &observed, None, at(100));
        assert_eq!(status.phase, Some(Phase::Suspended));
        assert_eq!(cond(&status, "Ready").reason, "Suspended");
    }

    #[test]
    fn problems_and_unreachable_workers_degrade_the_stream() {
        let mut stream = fixtures::stream("media", "demo");
        let d = available(1);
        let mut ws = WorkerStatus::idle();
        ws.phase = StreamPhase::Live;
        ws.problems.push(Problem { reason: "StorageUnavailable".into(), message: "retrying uploads".into() });
        let observed = Observed {
            deployment: Some(&d),
            ingest_service: None,
            origin_service: None,
            node_address: None,
            gateway: None,
            worker: WorkerObservation::Reported(ws),
        };
        let status = compute(&stream, &observed, None, at(100));
        assert_eq!(cond(&status, "Degraded").status, "True");
        assert_eq!(cond(&status, "Degraded").reason, "StorageUnavailable");
        stream.status = Some(status);
        let observed = Observed { worker: WorkerObservation::Unreachable("timed out".into()), ..observed };
        let status = compute(&stream, &observed, None, at(200));
        assert_eq!(status.phase, Some(Phase::Live), "the last known phase is kept");
        assert_eq!(cond(&status, "Live").status, "True");
        assert_eq!(cond(&status, "Degraded").reason, "WorkerStatusUnavailable");
    }

    #[test]
    fn a_stuck_rollout_degrades() {
        let stream = fixtures::stream("media", "demo");
        let mut d = available(0);
        d.status.as_mut().unwrap().conditions = Some(vec![DeploymentCondition {
            type_: Some("Progressing".into()),
            status: Some("False".into()),
            message: Some("ProgressDeadlineExceeded".into()),
            ..DeploymentCondition::default()
        }]);
        let observed = Observed {
            deployment: Some(&d),
            ingest_service: None,
            origin_service: None,
            node_address: None,
            gateway: None,
            worker: WorkerObservation::NotRunning,
        };
        let status = compute(&stream, &observed, None, at(100));
        assert_eq!(cond(&status, "Degraded").reason, "WorkerRolloutStuck");
    }
}
