//! Names, labels and owner references of children.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};

use super::BuildError;
use crate::api::LiveStream;

/// The field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "livestream-operator";
/// The finalizer that runs storage cleanup.
pub const FINALIZER: &str = "livestream.dev/storage-cleanup";
/// Value of `app.kubernetes.io/name` on every child.
pub const APP_NAME: &str = "livestream";
/// Label selector matching every child the operator manages.
pub const MANAGED_SELECTOR: &str = "app.kubernetes.io/managed-by=livestream-operator";
/// The label naming the stream a child or a worker pod belongs to.
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
/// Selects the worker pods of every stream (pods carry their Deployment's selector
/// labels, not the managed-by label).
pub const WORKER_POD_SELECTOR: &str = "app.kubernetes.io/name=livestream,app.kubernetes.io/component=worker";
/// Longest LiveStream name whose children's names stay within limits: the Service
/// `NAME-ingest` is a DNS label of at most 63 characters.
pub const MAX_STREAM_NAME_LEN: usize = 56;

/// Which part of a stream a child is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    Worker,
    Ingest,
    Origin,
    StreamKey,
}

impl Component {
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Worker => "worker",
            Component::Ingest => "ingest",
            Component::Origin => "origin",
            Component::StreamKey => "stream-key",
        }
    }
}

/// Name of the worker Deployment and its ConfigMap.
pub fn worker_name(stream_name: &str) -> String {
    format!("{stream_name}-worker")
}

/// Name of the ingest Service.
pub fn ingest_service_name(stream_name: &str) -> String {
    format!("{stream_name}-ingest")
}

/// Name of the origin Service.
pub fn origin_service_name(stream_name: &str) -> String {
    format!("{stream_name}-origin")
}

/// Name of the generated stream-key Secret.
pub fn generated_secret_name(stream_name: &str) -> String {
    format!("{stream_name}-stream-key")
}

/// The storage prefix of a stream: `spec.storage.prefix`, else `NAMESPACE/NAME`.
pub fn storage_prefix(stream: &LiveStream) -> String {
    match &stream.spec.storage.prefix {
        Some(prefix) => prefix.trim_matches('/').to_string(),
        None => format!("{}/{}", stream.namespace().unwrap_or_default(), stream.name_any()),
    }
}

/// Labels that select a stream's worker pods (stable for the Deployment's life).
pub fn selector_labels(stream_name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), APP_NAME.to_string()),
        (INSTANCE_LABEL.to_string(), stream_name.to_string()),
        ("app.kubernetes.io/component".to_string(), Component::Worker.as_str().to_string()),
    ])
}

/// The common labels of a child.
pub fn labels(stream_name: &str, component: Component) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), APP_NAME.to_string()),
        (INSTANCE_LABEL.to_string(), stream_name.to_string()),
        ("app.kubernetes.io/managed-by".to_string(), FIELD_MANAGER.to_string()),
        ("app.kubernetes.io/component".to_string(), component.as_str().to_string()),
    ])
}

/// The controller owner reference to `stream`.
pub fn owner_reference(stream: &LiveStream) -> Result<OwnerReference, BuildError> {
    stream.controller_owner_ref(&()).ok_or(BuildError::MissingMetadata("uid or name"))
}

/// Metadata of a child named `name`: namespace, labels and owner reference.
pub fn child_metadata(stream: &LiveStream, name: String, component: Component) -> Result<ObjectMeta, BuildError> {
    let namespace = stream.namespace().ok_or(BuildError::MissingMetadata("namespace"))?;
    Ok(ObjectMeta {
        name: Some(name),
        namespace: Some(namespace),
        labels: Some(labels(&stream.name_any(), component)),
        owner_references: Some(vec![owner_reference(stream)?]),
        ..ObjectMeta::default()
    })
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;
    use super::*;

    #[test]
    fn prefix_defaults_to_namespace_and_name() {
        let mut stream = fixtures::stream("media", "demo");
        assert_eq!(storage_prefix(&stream), "media/demo");
        fixtures::storage(&mut stream).prefix = Some("events/launch".into());
        assert_eq!(storage_prefix(&stream), "events/launch");
    }

    #[test]
    fn child_metadata_has_labels_and_controller_owner() {
        let stream = fixtures::stream("media", "demo");
        let meta = child_metadata(&stream, worker_name("demo"), Component::Worker).unwrap();
        let labels = meta.labels.unwrap();
        assert_eq!(labels["app.kubernetes.io/name"], "livestream");
        assert_eq!(labels["app.kubernetes.io/instance"], "demo");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "livestream-operator");
        assert_eq!(labels["app.kubernetes.io/component"], "worker");
        let owner = &meta.owner_references.unwrap()[0];
        assert_eq!(owner.kind, "LiveStream");
        assert_eq!(owner.api_version, "livestream.dev/v1alpha1");
        assert_eq!(owner.name, "demo");
        assert_eq!(owner.controller, Some(true));
        assert_eq!(meta.namespace.as_deref(), Some("media"));
    }

    #[test]
    fn a_stream_without_uid_cannot_own_children() {
        let mut stream = fixtures::stream("media", "demo");
        stream.metadata.uid = None;
        assert!(matches!(owner_reference(&stream), Err(BuildError::MissingMetadata(_))));
    }
}
