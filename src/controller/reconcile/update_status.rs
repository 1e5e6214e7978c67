//! Stage 5, update the status: server-side apply of the whole typed status, written only
//! when it changed, and the events of its transitions.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::{Context, ReconcileError, stream_key};
use crate::api::{LiveStream, LiveStreamStatus};
use crate::controller::children::FIELD_MANAGER;
use crate::controller::events::{publish, transitions};

/// The resourceVersion each stream had when this controller last patched its status. A
/// reconcile that still sees that version works on a copy from before the patch (the
/// cache has not caught up); the patch's own watch event brings a fresh reconcile, so
/// that one writes nothing.
#[derive(Debug, Default)]
pub struct StatusWrites {
    patched_from: Mutex<HashMap<String, String>>,
}

impl StatusWrites {
    fn is_stale(&self, key: &str, resource_version: Option<&String>) -> bool {
        let patched = self.patched_from.lock().unwrap_or_else(PoisonError::into_inner);
        resource_version.is_some() && patched.get(key) == resource_version
    }

    fn record(&self, key: String, resource_version: Option<String>) {
        let mut patched = self.patched_from.lock().unwrap_or_else(PoisonError::into_inner);
        match resource_version {
            Some(version) => patched.insert(key, version),
            None => patched.remove(&key),
        };
    }

    pub(super) fn forget(&self, key: &str) {
        self.patched_from.lock().unwrap_or_else(PoisonError::into_inner).remove(key);
    }
}

/// The current time in whole seconds, as the API server stores condition times: a
/// finer time would never compare equal to the stored status, and every reconcile would
/// send a patch.
pub(super) fn now_in_seconds() -> Timestamp {
    let now = Timestamp::now();
    Timestamp::from_second(now.as_second()).unwrap_or(now)
}

/// Writes `status` if it differs from the stream's, and emits events for transitions.
pub(super) async fn write(
    stream: &LiveStream,
    namespace: &str,
    status: LiveStreamStatus,
    ctx: &Context,
) -> Result<(), ReconcileError> {
    let key = stream_key(stream);
    ctx.metrics.set_phase(&key, status.phase);
    let old = stream.status.as_ref();
    if old == Some(&status) || ctx.status_writes.is_stale(&key, stream.metadata.resource_version.as_ref()) {
        return Ok(());
    }
    let api: Api<LiveStream> = Api::namespaced(ctx.client.clone(), namespace);
    // Server-side apply of the whole typed status: every field is written (a new one cannot
    // be forgotten), and one that is now empty is removed, since this manager owned it.
    let patch = json!({
        "apiVersion": LiveStream::api_version(&()),
        "kind": LiveStream::kind(&()),
        "status": status,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let patched = api
        .patch_status(&stream.name_any(), &params, &Patch::Apply(&patch))
        .await
        .map_err(|source| ReconcileError::WriteStatus { source })?;
    // Only a patch that changed the object brings a watch event (and a fresh reconcile);
    // after a patch that changed nothing, the cached copy is as good as any.
    if patched.metadata.resource_version != stream.metadata.resource_version {
        ctx.status_writes.record(key, stream.metadata.resource_version.clone());
    } else {
        ctx.status_writes.forget(&key);
    }
    ctx.metrics.observe_write("LiveStreamStatus");
    for notice in transitions(old, &status) {
        publish(&ctx.recorder, stream, "Reconcile", &notice).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_copy_from_before_a_patch_is_stale() {
        let writes = StatusWrites::default();
        let v = |s: &str| Some(s.to_string());
        assert!(!writes.is_stale("ns/a", v("5").as_ref()), "nothing patched yet");
        writes.record("ns/a".into(), v("5"));
        assert!(writes.is_stale("ns/a", v("5").as_ref()), "the copy the patch was computed from");
        assert!(!writes.is_stale("ns/a", v("6").as_ref()), "the copy after the patch");
        assert!(!writes.is_stale("ns/b", v("5").as_ref()), "another stream");
        assert!(!writes.is_stale("ns/a", None));
        writes.forget("ns/a");
        assert!(!writes.is_stale("ns/a", v("5").as_ref()), "a patch that changed nothing leaves nothing stale");
    }

    #[test]
    fn condition_times_have_whole_seconds() {
        assert_eq!(now_in_seconds().subsec_nanosecond(), 0);
    }
}
