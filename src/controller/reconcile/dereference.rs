//! Stage 1, dereference and validate: read the Secrets a stream names (creating the
//! generated stream key once) and check them with the pure rules of [`validate`].

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use tracing::info;

use super::{Context, ReconcileError, stream_key};
use crate::api::LiveStream;
use crate::controller::children::{generate_stream_key, generated_secret_name, stream_key_secret};
use crate::controller::cleanup::StorageCredentials;
use crate::controller::validate::{self, Invalid, Resolved};

/// The stream's references, checked. The outer error is an API failure; the inner one a
/// problem for the user to fix.
pub(super) async fn resolve(
    stream: &LiveStream,
    namespace: &str,
    ctx: &Context,
) -> Result<Result<Resolved, Invalid>, ReconcileError> {
    if let Err(invalid) = validate::check_spec(stream) {
        return Ok(Err(invalid));
    }
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let key_ref = validate::stream_key_ref(stream);
    let mut key_secret = read_secret(&secrets, &key_ref.name).await?;
    if key_secret.is_none() && validate::uses_generated_stream_key(stream) {
        key_secret = Some(create_stream_key_secret(stream, &secrets, ctx).await?);
    }
    let credentials_secret = match &stream.spec.storage.credentials_secret_ref {
        Some(reference) => read_secret(&secrets, &reference.name).await?,
        None => None,
    };
    let tls_secret = match &stream.spec.ingest.tls {
        Some(tls) => read_secret(&secrets, &tls.secret_name).await?,
        None => None,
    };
    let fetched = validate::Fetched {
        stream_key: key_secret.as_ref(),
        credentials: credentials_secret.as_ref(),
        tls: tls_secret.as_ref(),
    };
    Ok(validate::resolve(stream, fetched))
}

async fn read_secret(secrets: &Api<Secret>, name: &str) -> Result<Option<Secret>, ReconcileError> {
    secrets.get_opt(name).await.map_err(|source| ReconcileError::ReadSecret { name: name.to_string(), source })
}

/// Creates the generated stream-key Secret. Never overwrites: if it appeared meanwhile,
/// the existing one is returned.
async fn create_stream_key_secret(
    stream: &LiveStream,
    secrets: &Api<Secret>,
    ctx: &Context,
) -> Result<Secret, ReconcileError> {
    let name = generated_secret_name(&stream.name_any());
    let secret = stream_key_secret(stream, generate_stream_key(&mut rand::rng()))?;
    let failed = |source| ReconcileError::ApplyChild { kind: "Secret".into(), name: name.clone(), source };
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(created) => {
            ctx.metrics.observe_write("Secret");
            info!(stream = %stream_key(stream), secret = %name, "generated a stream key");
            Ok(created)
        }
        Err(kube::Error::Api(status)) if status.code == 409 => secrets.get(&name).await.map_err(failed),
        Err(e) => Err(failed(e)),
    }
}

/// The storage credentials of a stream being deleted, if its Secret still exists and holds
/// them (the cleanup goes ahead without them otherwise).
pub(super) async fn storage_credentials(
    stream: &LiveStream,
    namespace: &str,
    client: &Client,
) -> Option<StorageCredentials> {
    let reference = stream.spec.storage.credentials_secret_ref.as_ref()?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = secrets.get_opt(&reference.name).await.ok().flatten()?;
    let value = |key: &str| -> Option<String> {
        let data = secret.data.as_ref()?;
        let ByteString(bytes) = data.get(key)?;
        String::from_utf8(bytes.clone()).ok().map(|v| v.trim().to_string())
    };
    Some(StorageCredentials {
        access_key_id: value(&reference.access_key_id_key)?,
        secret_access_key: value(&reference.secret_access_key_key)?,
    })
}
