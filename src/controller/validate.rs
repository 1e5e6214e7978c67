//! Reading a stream's references: which Secrets and keys it needs, and whether what the
//! API server returned holds them. Pure: the Secrets are fetched by the caller.

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;

use super::children::{GENERATED_STREAM_KEY_KEY, MAX_STREAM_NAME_LEN, generated_secret_name};
use crate::api::{CredentialsSecretRef, LiveStream, SecretKeyRef};
use crate::ingest::listener::check_pem;
use crate::ingest::session::StreamKey;

/// The keys of a `kubernetes.io/tls` Secret.
pub const TLS_CERTIFICATE_KEY: &str = "tls.crt";
pub const TLS_PRIVATE_KEY_KEY: &str = "tls.key";

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
    /// The stream key itself, as the worker reads it (for the ingest gateway's routes;
    /// its `Debug` shows only a fingerprint).
    pub key: StreamKey,
    /// Where the worker reads its storage credentials, if anywhere.
    pub credentials: Option<CredentialsSecretRef>,
    /// The `kubernetes.io/tls` Secret of RTMPS, checked to hold a certificate and its key.
    pub tls_secret: Option<String>,
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

/// The Secrets a stream reads, fetched by the caller.
#[derive(Clone, Copy, Debug, Default)]
pub struct Fetched<'a> {
    /// The Secret named by [`stream_key_ref`].
    pub stream_key: Option<&'a Secret>,
    /// The one named by `spec.storage.credentialsSecretRef` (ignored when there is none).
    pub credentials: Option<&'a Secret>,
    /// The one named by `spec.ingest.tls.secretName` (ignored when there is none).
    pub tls: Option<&'a Secret>,
}

/// The names of the Secrets that `stream` reads (besides the generated stream key).
pub fn referenced_secrets(stream: &LiveStream) -> impl Iterator<Item = &str> {
    let spec = &stream.spec;
    [
        spec.ingest.stream_key_secret_ref.as_ref().map(|r| r.name.as_str()),
        spec.storage.credentials_secret_ref.as_ref().map(|r| r.name.as_str()),
        spec.ingest.tls.as_ref().map(|tls| tls.secret_name.as_str()),
    ]
    .into_iter()
    .flatten()
}

/// Checks the fetched Secrets against the stream's references.
pub fn resolve(stream: &LiveStream, fetched: Fetched<'_>) -> Result<Resolved, Invalid> {
    let Fetched { stream_key: stream_key_secret, credentials: credentials_secret, tls: tls_secret } = fetched;
    check_spec(stream)?;
    let stream_key = stream_key_ref(stream);
    let Some(secret) = stream_key_secret else {
        return Err(Invalid {
            reason: "StreamKeySecretNotFound",
            message: format!("Secret {:?} (spec.ingest.streamKeySecretRef) does not exist", stream_key.name),
        });
    };
    let Some(key) = value(secret, &stream_key.key) else {
        return Err(Invalid {
            reason: "StreamKeyMissing",
            message: format!(
                "Secret {:?} has no non-empty key {:?} for the stream key",
                stream_key.name, stream_key.key
            ),
        });
    };
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
    let tls = stream.spec.ingest.tls.as_ref().map(|tls| tls.secret_name.clone());
    if let Some(name) = &tls {
        check_tls_secret(name, tls_secret)?;
    }
    Ok(Resolved { stream_key, key, credentials, tls_secret: tls })
}

/// A TLS Secret must hold a certificate chain and its private key, PEM, that serve
/// together: a worker started with anything else would stop at once.
fn check_tls_secret(name: &str, secret: Option<&Secret>) -> Result<(), Invalid> {
    let Some(secret) = secret else {
        return Err(Invalid {
            reason: "TlsSecretNotFound",
            message: format!("Secret {name:?} (spec.ingest.tls.secretName) does not exist"),
        });
    };
    let value = |key: &str| secret.data.as_ref().and_then(|data| data.get(key)).map(|v| v.0.as_slice());
    let (Some(certificate), Some(private_key)) = (value(TLS_CERTIFICATE_KEY), value(TLS_PRIVATE_KEY_KEY)) else {
        return Err(Invalid {
            reason: "TlsKeyMissing",
            message: format!(
                "Secret {name:?} needs the keys {TLS_CERTIFICATE_KEY:?} and {TLS_PRIVATE_KEY_KEY:?} (a kubernetes.io/tls Secret)"
            ),
        });
    };
    check_pem(certificate, private_key)
        .map_err(|problem| Invalid { reason: "TlsCertificateInvalid", message: format!("Secret {name:?}: {problem}") })
}

/// The stream key under `key` of `secret`, trimmed as the worker trims it; `None` when
/// empty or absent.
fn value(secret: &Secret, key: &str) -> Option<StreamKey> {
    let data = secret.data.as_ref().and_then(|d| d.get(key)).map(|v| String::from_utf8_lossy(&v.0).into_owned());
    let string_data = || secret.string_data.as_ref().and_then(|d| d.get(key)).cloned();
    data.or_else(string_data).map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).map(StreamKey::new)
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
        let resolved =
            resolve(&stream, Fetched { stream_key: Some(&secret(&[("streamKey", "abc")])), ..Fetched::default() })
                .unwrap();
        assert_eq!(resolved.stream_key, SecretKeyRef { name: "demo-stream-key".into(), key: "streamKey".into() });
        assert_eq!(resolved.credentials, None);
    }

    #[test]
    fn missing_secret_and_missing_key_have_clear_reasons_without_values() {
        let mut stream = fixtures::stream("media", "demo");
        stream.spec.ingest.stream_key_secret_ref = Some(SecretKeyRef { name: "keys".into(), key: "demo".into() });
        let err = resolve(&stream, Fetched::default()).unwrap_err();
        assert_eq!(err.reason, "StreamKeySecretNotFound");
        assert!(err.message.contains("\"keys\""), "{}", err.message);
        let err =
            resolve(&stream, Fetched { stream_key: Some(&secret(&[("other", "hunter2")])), ..Fetched::default() })
                .unwrap_err();
        assert_eq!(err.reason, "StreamKeyMissing");
        assert!(err.message.contains("\"demo\"") && !err.message.contains("hunter2"), "{}", err.message);
        let err =
            resolve(&stream, Fetched { stream_key: Some(&secret(&[("demo", "")])), ..Fetched::default() }).unwrap_err();
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
        assert_eq!(
            resolve(&stream, Fetched { stream_key: Some(&key), ..Fetched::default() }).unwrap_err().reason,
            "CredentialsSecretNotFound"
        );
        let half = secret(&[("accessKeyId", "AKIA")]);
        let err = resolve(&stream, Fetched { stream_key: Some(&key), credentials: Some(&half), ..Fetched::default() })
            .unwrap_err();
        assert_eq!(err.reason, "CredentialsKeyMissing");
        assert!(err.message.contains("secretAccessKey"));
        let full = secret(&[("accessKeyId", "AKIA"), ("secretAccessKey", "s")]);
        assert!(
            resolve(&stream, Fetched { stream_key: Some(&key), credentials: Some(&full), ..Fetched::default() })
                .unwrap()
                .credentials
                .is_some()
        );
    }

    #[test]
    fn a_tls_secret_must_hold_a_certificate_and_its_key() {
        let mut stream = fixtures::stream("media", "demo");
        stream.spec.ingest.tls =
            Some(crate::api::IngestTlsSpec { secret_name: "ingest-tls".into(), port: 1936, node_port: None });
        let key = secret(&[("streamKey", "abc")]);
        let with =
            |tls: Option<&Secret>| resolve(&stream, Fetched { stream_key: Some(&key), tls, ..Fetched::default() });
        assert_eq!(with(None).unwrap_err().reason, "TlsSecretNotFound");
        assert_eq!(with(Some(&secret(&[("tls.crt", "x")]))).unwrap_err().reason, "TlsKeyMissing");
        let err = with(Some(&secret(&[("tls.crt", "x"), ("tls.key", "hunter2")]))).unwrap_err();
        assert_eq!(err.reason, "TlsCertificateInvalid");
        assert!(err.message.contains("\"ingest-tls\"") && !err.message.contains("hunter2"), "{}", err.message);
        let certified = rcgen::generate_simple_self_signed(vec!["ingest.example".into()]).unwrap();
        let (pem, private) = (certified.cert.pem(), certified.signing_key.serialize_pem());
        let good = secret(&[("tls.crt", pem.as_str()), ("tls.key", private.as_str())]);
        assert_eq!(with(Some(&good)).unwrap().tls_secret.as_deref(), Some("ingest-tls"));
        assert_eq!(referenced_secrets(&stream).collect::<Vec<_>>(), vec!["ingest-tls"]);
    }

    #[test]
    fn overlong_names_are_refused() {
        let stream = fixtures::stream("media", &"a".repeat(57));
        assert_eq!(check_spec(&stream).unwrap_err().reason, "NameTooLong");
        assert!(check_spec(&fixtures::stream("media", &"a".repeat(56))).is_ok());
    }
}
