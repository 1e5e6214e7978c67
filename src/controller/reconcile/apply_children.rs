//! Stage 3, apply: server-side apply of the children built in stage 2 (pure builders in
//! [`crate::controller::children`]), each only when it differs from the cached copy.

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::Api;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Context, ReconcileError};
use crate::controller::apply::apply_if_changed;
use crate::controller::cache::Cached;
use crate::controller::children::Children;

/// The children as the API server holds them after the apply.
pub(super) struct Applied {
    pub deployment: Deployment,
    pub ingest_service: Service,
    pub origin_service: Service,
}

/// Applies every child of `namespace`.
pub(super) async fn apply(children: Children, namespace: &str, ctx: &Context) -> Result<Applied, ReconcileError> {
    // Destructured without `..`: a new kind of child does not compile until it is applied.
    let Children { config_map, deployment, ingest_service, origin_service } = children;
    let stores = &ctx.stores;
    apply_child(ctx, namespace, config_map, &stores.config_maps).await?;
    let deployment = apply_child(ctx, namespace, deployment, &stores.deployments).await?;
    let ingest_service = apply_child(ctx, namespace, ingest_service, &stores.services).await?;
    let origin_service = apply_child(ctx, namespace, origin_service, &stores.services).await?;
    Ok(Applied { deployment, ingest_service, origin_service })
}

async fn apply_child<K>(
    ctx: &Context,
    namespace: &str,
    desired: K,
    cache: &Store<Cached<K>>,
) -> Result<K, ReconcileError>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug,
{
    let name = desired.name_any();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    let existing = cache.get(&ObjectRef::new(&name).within(namespace));
    let kind = K::kind(&());
    let (applied, wrote) = apply_if_changed(&api, desired, existing.as_deref())
        .await
        .map_err(|source| ReconcileError::ApplyChild { kind: kind.to_string(), name: name.clone(), source })?;
    if wrote {
        ctx.metrics.observe_write(&kind);
    }
    Ok(applied)
}
