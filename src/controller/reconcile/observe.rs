//! Stage 4, observe: the stream's running worker pod, and what the worker says of itself
//! on `GET /status` (the worker has no API rights; the operator reads it).

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};
use std::net::{IpAddr, SocketAddr};

use super::Context;
use crate::controller::cache::Cached;
use crate::controller::children::{HTTP_PORT, INSTANCE_LABEL};
use crate::controller::status::WorkerObservation;

/// The stream's running worker pod with an address, if any (the newest, while a
/// replacement starts).
pub(super) fn running_worker_pod(pods: &Store<Cached<Pod>>, namespace: &str, name: &str) -> Option<Pod> {
    pods.state()
        .into_iter()
        .filter(|pod| pod.namespace().as_deref() == Some(namespace))
        .filter(|pod| pod.labels().get(INSTANCE_LABEL).map(String::as_str) == Some(name))
        .filter(|pod| pod.meta().deletion_timestamp.is_none())
        .filter_map(|pod| pod.object().ok())
        .filter(|pod| pod.status.as_ref().is_some_and(|s| s.phase.as_deref() == Some("Running") && s.pod_ip.is_some()))
        .max_by_key(|pod| pod.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// What the worker in `pod` reports.
pub(super) async fn worker(pod: &Pod, ctx: &Context) -> WorkerObservation {
    let Some(ip) = pod.status.as_ref().and_then(|s| s.pod_ip.as_deref()).and_then(|ip| ip.parse::<IpAddr>().ok())
    else {
        return WorkerObservation::NotRunning;
    };
    let port = u16::try_from(HTTP_PORT).unwrap_or(8080);
    match ctx.worker_status.fetch(SocketAddr::new(ip, port)).await {
        Ok(report) => WorkerObservation::Reported(report),
        Err(error) => WorkerObservation::Unreachable(error.to_string()),
    }
}
