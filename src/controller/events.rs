//! Events on status transitions: publish started and stopped, and warnings for problems.
//! Which events to emit is decided purely from the old and new status.

use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder};
use tracing::warn;

use super::status::find;
use crate::api::{LiveStream, LiveStreamStatus, Phase, condition};

/// An event to publish about a stream. Notes never carry secrets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub warning: bool,
    pub reason: String,
    pub note: String,
}

impl Notice {
    pub fn normal(reason: &str, note: impl Into<String>) -> Self {
        Self { warning: false, reason: reason.into(), note: note.into() }
    }
    pub fn warning(reason: &str, note: impl Into<String>) -> Self {
        Self { warning: true, reason: reason.into(), note: note.into() }
    }
}

/// The events a change from `old` to `new` deserves.
pub fn transitions(old: Option<&LiveStreamStatus>, new: &LiveStreamStatus) -> Vec<Notice> {
    let mut notices = Vec::new();
    let old_phase = old.and_then(|s| s.phase);
    if new.phase == Some(Phase::Live) && old_phase != Some(Phase::Live) {
        notices.push(Notice::normal("PublishStarted", "an encoder started publishing"));
    }
    if old_phase == Some(Phase::Live) && new.phase != Some(Phase::Live) {
        let phase = new.phase.map(|p| p.to_string()).unwrap_or_default();
        notices.push(Notice::normal("PublishStopped", format!("publishing stopped; the stream is now {phase}")));
    }
    let old_conditions = old.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let became = |type_: &str, status: &str| {
        let now = find(&new.conditions, type_).filter(|c| c.status == status)?;
        let before = find(old_conditions, type_);
        let unchanged = before.is_some_and(|b| b.status == now.status && b.reason == now.reason);
        (!unchanged).then_some(now)
    };
    if new.phase == Some(Phase::Failed) {
        if let Some(ready) = became(condition::READY, "False") {
            notices.push(Notice::warning(&ready.reason, ready.message.clone()));
        }
    } else if let Some(degraded) = became(condition::DEGRADED, "True") {
        notices.push(Notice::warning(&degraded.reason, degraded.message.clone()));
    }
    notices
}

/// Publishes `notice` about `stream`; a failure is logged, never fatal.
pub async fn publish(recorder: &Recorder, stream: &LiveStream, action: &str, notice: &Notice) {
    let event = Event {
        type_: if notice.warning { EventType::Warning } else { EventType::Normal },
        reason: notice.reason.clone(),
        note: Some(notice.note.chars().take(1000).collect()),
        action: action.into(),
        secondary: None,
    };
    if let Err(error) = recorder.publish(&event, &stream.object_ref(&())).await {
        warn!(reason = %notice.reason, %error, "cannot publish event");
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    use k8s_openapi::jiff::Timestamp;

    use super::*;

    fn status(phase: Phase, conditions: &[(&str, &str, &str)]) -> LiveStreamStatus {
        LiveStreamStatus {
            phase: Some(phase),
            conditions: conditions
                .iter()
                .map(|(t, s, r)| Condition {
                    type_: t.to_string(),
                    status: s.to_string(),
                    reason: r.to_string(),
                    message: format!("{r} happened"),
                    observed_generation: None,
                    last_transition_time: Time(Timestamp::UNIX_EPOCH),
                })
                .collect(),
            ..LiveStreamStatus::default()
        }
    }

    #[test]
    fn publish_start_and_stop() {
        let idle = status(Phase::Idle, &[]);
        let live = status(Phase::Live, &[]);
        assert_eq!(transitions(Some(&idle), &live)[0].reason, "PublishStarted");
        assert_eq!(transitions(Some(&live), &status(Phase::Ended, &[]))[0].reason, "PublishStopped");
        assert!(transitions(Some(&live), &live).is_empty());
    }

    #[test]
    fn warnings_once_per_new_reason() {
        let failed = status(Phase::Failed, &[("Ready", "False", "StreamKeySecretNotFound")]);
        let notices = transitions(None, &failed);
        assert_eq!(notices, vec![Notice::warning("StreamKeySecretNotFound", "StreamKeySecretNotFound happened")]);
        assert!(transitions(Some(&failed), &failed).is_empty());
        let degraded = status(Phase::Live, &[("Degraded", "True", "StorageUnavailable")]);
        let notices = transitions(Some(&status(Phase::Live, &[])), &degraded);
        assert_eq!(notices.len(), 1);
        assert!(notices[0].warning);
        assert!(transitions(Some(&degraded), &degraded).is_empty());
    }
}
