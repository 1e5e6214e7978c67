//! Server-side apply that writes only when something changed: each applied child carries
//! a hash of what the operator wants, and is applied only when that hash differs from the
//! one on the live object or the live object drifted from it.

use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::cache::Cached;
use super::children::FIELD_MANAGER;

/// Annotation holding the hash of the applied configuration of a child.
pub const APPLIED_HASH_ANNOTATION: &str = "livestream.dev/applied-hash";

/// Stamps `object` with the hash of its own content.
pub fn stamp<K: Resource + Serialize>(object: &mut K) -> Result<(), serde_json::Error> {
    let meta = object.meta_mut();
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(APPLIED_HASH_ANNOTATION);
        if annotations.is_empty() {
            meta.annotations = None;
        }
    }
    let bytes = serde_json::to_vec(&*object)?;
    let hash: String = Sha256::digest(&bytes).iter().take(16).map(|b| format!("{b:02x}")).collect();
    object.annotations_mut().insert(APPLIED_HASH_ANNOTATION.to_string(), hash);
    Ok(())
}

/// Whether a stamped `desired` object must be applied over `existing`.
pub fn needs_apply(desired: &Value, existing: Option<&Value>) -> bool {
    match existing {
        None => true,
        Some(existing) => !is_subset(desired, existing),
    }
}

/// Whether every field of `desired` is in `actual` with the same value (lists: same
/// length, element by element). Fields the API server adds (defaults, status) are ignored.
pub fn is_subset(desired: &Value, actual: &Value) -> bool {
    match (desired, actual) {
        (Value::Object(want), Value::Object(have)) => {
            want.iter().all(|(k, v)| v.is_null() || have.get(k).is_some_and(|h| is_subset(v, h)))
        }
        (Value::Array(want), Value::Array(have)) => {
            want.len() == have.len() && want.iter().zip(have).all(|(w, h)| is_subset(w, h))
        }
        (want, have) => want == have,
    }
}

/// The path of the first field of `desired` that `actual` lacks or holds differently, for
/// logs that say why an apply was sent.
pub fn first_difference(desired: &Value, actual: &Value) -> Option<String> {
    match (desired, actual) {
        (Value::Object(want), Value::Object(have)) => {
            want.iter().filter(|(_, v)| !v.is_null()).find_map(|(k, v)| match have.get(k) {
                None => Some(k.clone()),
                Some(h) => {
                    first_difference(v, h).map(|rest| if rest.is_empty() { k.clone() } else { format!("{k}.{rest}") })
                }
            })
        }
        (Value::Array(want), Value::Array(have)) if want.len() == have.len() => {
            want.iter().zip(have).enumerate().find_map(|(i, (w, h))| {
                first_difference(w, h)
                    .map(|rest| format!("[{i}]{}", if rest.is_empty() { String::new() } else { format!(".{rest}") }))
            })
        }
        (want, have) if want == have => None,
        _ => Some(String::new()),
    }
}

/// Applies `desired` (stamped here) unless the cached `existing` already matches it.
/// Returns the object as it now is, and whether a write was sent.
pub async fn apply_if_changed<K>(
    api: &Api<K>,
    mut desired: K,
    existing: Option<&Cached<K>>,
) -> Result<(K, bool), kube::Error>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + Serialize + DeserializeOwned + Debug,
{
    stamp(&mut desired).map_err(kube::Error::SerdeError)?;
    let desired_value = serde_json::to_value(&desired).map_err(kube::Error::SerdeError)?;
    let existing_value = existing.map(Cached::value).transpose().map_err(kube::Error::SerdeError)?;
    if let Some(existing) = existing_value.as_ref().filter(|existing| !needs_apply(&desired_value, Some(existing))) {
        return Ok((K::deserialize(existing).map_err(kube::Error::SerdeError)?, false));
    }
    let name = desired.name_any();
    if let Some(existing) = &existing_value {
        let field = first_difference(&desired_value, existing).unwrap_or_default();
        tracing::debug!(%name, %field, "applying a changed child");
    }
    let applied = api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&desired)).await?;
    Ok((applied, true))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use serde_json::json;

    use super::*;

    #[test]
    fn server_defaults_do_not_count_as_changes() {
        let desired = json!({"spec": {"ports": [{"port": 1935, "name": "rtmp"}]}, "metadata": {"labels": {"a": "b"}}});
        let live = json!({
            "spec": {"ports": [{"port": 1935, "name": "rtmp", "protocol": "TCP"}], "clusterIP": "10.0.0.1"},
            "metadata": {"labels": {"a": "b"}, "resourceVersion": "7"},
            "status": {}
        });
        assert!(!needs_apply(&desired, Some(&live)));
        let drifted = json!({"spec": {"ports": [{"port": 1936, "name": "rtmp"}]}, "metadata": {"labels": {"a": "b"}}});
        assert!(needs_apply(&desired, Some(&drifted)));
        let extra_port = json!({"spec": {"ports": [{"port": 1935, "name": "rtmp"}, {"port": 1}]}, "metadata": {"labels": {"a": "b"}}});
        assert!(needs_apply(&desired, Some(&extra_port)));
        assert!(needs_apply(&desired, None));
    }

    #[test]
    fn a_removed_field_changes_the_hash() {
        let mut with: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": "a", "annotations": {"x": "1"}}})).unwrap();
        let mut without: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "a"}})).unwrap();
        stamp(&mut with).unwrap();
        stamp(&mut without).unwrap();
        let hash = |c: &ConfigMap| c.annotations()[APPLIED_HASH_ANNOTATION].clone();
        assert_ne!(hash(&with), hash(&without));
        // The live object still has the old annotation and hash: the new one is not a subset.
        let live = serde_json::to_value(&with).unwrap();
        assert!(needs_apply(&serde_json::to_value(&without).unwrap(), Some(&live)));
        let mut again = without.clone();
        stamp(&mut again).unwrap();
        assert_eq!(hash(&again), hash(&without), "stamping is idempotent");
    }
}
