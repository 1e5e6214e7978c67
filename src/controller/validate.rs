//! Reading a stream's references: which Secrets and keys it needs, and whether what the
//! API server returned holds them. Pure: the Secrets are fetched by the caller.

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;

use super::children::{GENERATED_STREAM_KEY_KEY, MAX_STREAM_NAME_LEN, generated_secret_name};
use crate::api::{CredentialsSecretRef, LiveStream, SecretKeyRef};

/// Why a stream cannot run, as a condition reason and a message naming what to fix.
/// Messages name Secrets and keys, never their values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    /// CamelCase reason for conditions and events.
    pub reason: &'static str,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// The references of a stream, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    /// Where the worker reads its stream key.
    pub stream_key: SecretKeyRef,
    /// Where the worker reads its storage credentials, if anywhere.
    pub credentials: Option<CredentialsSecretRef>,
}

/// Whether the stream uses the generated stream-key Secret.
pub fn uses_generated_stream_key(stream: &LiveStream) -> bool {
    stream.spec.ingest.stream_key_secret_ref.is_none()
}

/// The Secret key the stream key is read from: the given reference, else the generated one.
pub fn stream_key_ref(stream: &LiveStream) -> SecretKeyRef {
    match &stream.spec.ingest.stream_key_secret_ref {
        Some(reference) => reference.clone(),
        None => {
            SecretKeyRef { name: generated_secret_name(&stream.name_any()), key: GENERATED_STREAM_KEY_KEY.to_string() }
        }
    }
}

/// Checks what the schema cannot: limits that come from the names of children.
pub fn check_spec(stream: &LiveStream) -> Result<(), Invalid> {
    let name = stream.name_any();
    if name.len() > MAX_STREAM_NAME_LEN {
        return Err(Invalid {
            reason: "NameTooLong",
            message: format!(
                "the LiveStream name has {} characters; at most {MAX_STREAM_NAME_LEN} fit the names of its Service and labels",
                name.len()
            ),
        });
    }
    Ok(())
}

/// Checks the fetched Secrets against the stream's references. `stream_key_secret` is the
/// Secret named by [`stream_key_ref`]; `credentials_secret` the one named by
/// `spec.storage.credentialsSecretRef` (ignored when there is none).
pub fn resolve(
    stream: &LiveStream,
    stream_key_secret: Option<&Secret>,
    credentials_secret: Option<&Secret>,
) -> Result<Resolved, Invalid> {
    check_spec(stream)?;
    let stream_key = stream_key_ref(stream);
    let Some(secret) = stream_key_secret else {
        return Err(Invalid {
            reason: "StreamKeySecretNotFound",
            message: format!("Secret {:?} (spec.ingest.streamKeySecretRef) does not exist", stream_key.name),
        });
    };
    if !has_value(secret, &stream_key.key) {
        return Err(Invalid {
            reason: "StreamKeyMissing",
            message: format!(
                "Secret {:?} has no non-empty key {:?} for the stream key",
                stream_key.name, stream_key.key
            ),
        });
    }
    let credentials = stream.spec.storage.credentials_secret_ref.clone();
    if let Some(reference) = &credentials {
        let Some(secret) = credentials_secret else {
            return Err(Invalid {
                reason: "CredentialsSecretNotFound",
                message: format!("Secret {:?} (spec.storage.credentialsSecretRef) does not exist", reference.name),
            });
        };
        for key in [&reference.access_key_id_key, &reference.secret_access_key_key] {
            if !has_value(secret, key) {
                return Err(Invalid {
                    reason: "CredentialsKeyMissing",
                    message: format!(
                        "Secret {:?} has no non-empty key {key:?} for the storage credentials",
                        reference.name
                    ),
                });
            }
        }
    }
    Ok(Resolved { stream_key, credentials })
}

/// Whether `secret` holds a non-empty value under `key`.
pub fn has_value(secret: &Secret, key: &str) -> bool {
    let in_data = secret.data.as_ref().and_then(|d| d.get(key)).is_some_and(|v| !v.0.is_empty());
    let in_string_data = secret.string_data.as_ref().and_then(|d| d.get(key)).is_some_and(|v| !v.is_empty());
    in_data || in_string_data
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::ByteString;

    use super::super::children::fixtures;
    use super::*;

    fn secret(entries: &[(&str, &str)]) -> Secret {
        Secret {
            data: Some(
                entries
                    .iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..Secret::default()
        }
    }

    #[test]
    fn generated_key_is_used_when_no_reference_is_given() {
        let stream = fixtures::stream("media", "demo");
        assert!(uses_generated_stream_key(&stream));
        let resolved = resolve(&stream, Some(&secret(&[("streamKey", "abc")])), None).unwrap();
        assert_eq!(resolved.stream_key, SecretKeyRef { name: "demo-stream-key".into(), key: "streamKey".into() });
        assert_eq!(resolved.credentials, None);
    }

    #[test]
    fn missing_secret_and_missing_key_have_clear_reasons_without_values() {
        let mut stream = fixtures::stream("media", "demo");
        stream.spec.ingest.stream_key_secret_ref = Some(SecretKeyRef { name: "keys".into(), key: "demo".into() });
        let err = resolve(&stream, None, None).unwrap_err();
        assert_eq!(err.reason, "StreamKeySecretNotFound");
        assert!(err.message.contains("\"keys\""), "{}", err.message);
        let err = resolve(&stream, Some(&secret(&[("other", "hunter2")])), None).unwrap_err();
        assert_eq!(err.reason, "StreamKeyMissing");
        assert!(err.message.contains("\"demo\"") && !err.message.contains("hunter2"), "{}", err.message);
        let err = resolve(&stream, Some(&secret(&[("demo", "")])), None).unwrap_err();
        assert_eq!(err.reason, "StreamKeyMissing");
    }

    #[test]
    fn credentials_need_both_keys() {
        let mut stream = fixtures::stream("media", "demo");
        stream.spec.storage.credentials_secret_ref = Some(CredentialsSecretRef {
            name: "s3".into(),
            access_key_id_key: "accessKeyId".into(),
            secret_access_key_key: "secretAccessKey".into(),
        });
        let key = secret(&[("streamKey", "abc")]);
        assert_eq!(resolve(&stream, Some(&key), None).unwrap_err().reason, "CredentialsSecretNotFound");
        let half = secret(&[("accessKeyId", "AKIA")]);
        let err = resolve(&stream, Some(&key), Some(&half)).unwrap_err();
        assert_eq!(err.reason, "CredentialsKeyMissing");
        assert!(err.message.contains("secretAccessKey"));
        let full = secret(&[("accessKeyId", "AKIA"), ("secretAccessKey", "s")]);
        assert!(resolve(&stream, Some(&key), Some(&full)).unwrap().credentials.is_some());
    }

    #[test]
    fn overlong_names_are_refused() {
        let stream = fixtures::stream("media", &"a".repeat(57));
        assert_eq!(check_spec(&stream).unwrap_err().reason, "NameTooLong");
        assert!(check_spec(&fixtures::stream("media", &"a".repeat(56))).is_ok());
    }
}
