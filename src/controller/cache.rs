//! The operator's caches of its children: each object as the API server sent it, in
//! compact JSON text, beside its parsed metadata. A thousand streams' Deployments,
//! Services, ConfigMaps and worker pods cost a few kilobytes each so, where the
//! k8s-openapi structs take five times as much (a Deployment with one container is
//! 20 KB of structs and 3 KB of JSON). Reconciles parse the object they read, which
//! takes microseconds.
//!
//! `managedFields` are dropped on the way in: nothing reads them, and they are often the
//! largest part of an object.

use std::borrow::Cow;
use std::marker::PhantomData;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A cached object of kind `K`.
pub struct Cached<K> {
    metadata: ObjectMeta,
    json: Arc<str>,
    kind: PhantomData<fn() -> K>,
}

impl<K> std::fmt::Debug for Cached<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cached").field("name", &self.metadata.name).field("bytes", &self.json.len()).finish()
    }
}

impl<K> Clone for Cached<K> {
    fn clone(&self) -> Self {
        Self { metadata: self.metadata.clone(), json: self.json.clone(), kind: PhantomData }
    }
}

impl<K: DeserializeOwned> Cached<K> {
    /// The object as the API server sent it (without `managedFields`).
    pub fn value(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(&self.json)
    }

    /// The object, typed.
    pub fn object(&self) -> Result<K, serde_json::Error> {
        serde_json::from_str(&self.json)
    }
}

impl<'de, K> Deserialize<'de> for Cached<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut value = Value::deserialize(deserializer)?;
        let metadata = value.get_mut("metadata").ok_or_else(|| D::Error::missing_field("metadata"))?;
        if let Some(metadata) = metadata.as_object_mut() {
            metadata.remove("managedFields");
        }
        let metadata = ObjectMeta::deserialize(metadata.clone()).map_err(D::Error::custom)?;
        let json = serde_json::to_string(&value).map_err(D::Error::custom)?;
        Ok(Self { metadata, json: Arc::from(json), kind: PhantomData })
    }
}

impl<K: Resource> Resource for Cached<K> {
    type DynamicType = K::DynamicType;
    type Scope = K::Scope;

    fn kind(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::kind(dt)
    }

    fn group(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::group(dt)
    }

    fn version(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::version(dt)
    }

    fn plural(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// Resolves once `store` holds its first complete list, or its watch ended for good.
///
/// `Store::wait_until_ready` wakes only the last of several tasks that wait at once (its
/// one-shot channel keeps one waker), and the controller itself waits on its store: so
/// each wait here is short and taken again until the store is ready.
pub async fn until_ready<K>(store: &kube::runtime::reflector::Store<K>)
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    const RECHECK: std::time::Duration = std::time::Duration::from_millis(100);
    while tokio::time::timeout(RECHECK, store.wait_until_ready()).await.is_err() {}
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::Deployment;
    use kube::ResourceExt;
    use serde_json::json;

    use super::*;

    #[test]
    fn keeps_the_object_without_its_managed_fields() {
        let sent = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "demo-worker",
                "namespace": "live",
                "labels": {"app.kubernetes.io/instance": "demo"},
                "managedFields": [{"manager": "livestream-operator", "fieldsV1": {"f:spec": {}}}],
            },
            "spec": {"replicas": 1},
            "status": {"availableReplicas": 1},
        });
        let cached: Cached<Deployment> = serde_json::from_value(sent.clone()).unwrap();
        assert_eq!(cached.name_any(), "demo-worker");
        assert_eq!(cached.labels().get("app.kubernetes.io/instance").map(String::as_str), Some("demo"));
        assert!(cached.managed_fields().is_empty());
        let mut expected = sent;
        expected["metadata"].as_object_mut().unwrap().remove("managedFields");
        assert_eq!(cached.value().unwrap(), expected);
        let deployment = cached.object().unwrap();
        assert_eq!(deployment.status.and_then(|s| s.available_replicas), Some(1));
        assert_eq!(<Cached<Deployment> as Resource>::plural(&()), "deployments");
        assert!(serde_json::from_value::<Cached<Deployment>>(json!({"spec": {}})).is_err(), "no metadata");
    }
}
