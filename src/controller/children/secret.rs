//! The generated stream-key Secret: created once with a random key, never rotated.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use rand::Rng;
use rand::distr::Alphanumeric;

use super::BuildError;
use super::names::{Component, child_metadata, generated_secret_name};
use crate::api::LiveStream;

/// The key under which the generated Secret holds the stream key.
pub const GENERATED_STREAM_KEY_KEY: &str = "streamKey";
const STREAM_KEY_LEN: usize = 32;

/// A random 32-character alphanumeric stream key.
pub fn generate_stream_key(rng: &mut impl Rng) -> String {
    rng.sample_iter(Alphanumeric).take(STREAM_KEY_LEN).map(char::from).collect()
}

/// The generated stream-key Secret of `stream` holding `key`.
pub fn stream_key_secret(stream: &LiveStream, key: String) -> Result<Secret, BuildError> {
    Ok(Secret {
        metadata: child_metadata(stream, generated_secret_name(&stream.name_any()), Component::StreamKey)?,
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(GENERATED_STREAM_KEY_KEY.to_string(), ByteString(key.into_bytes()))])),
        ..Secret::default()
    })
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;
    use super::*;

    #[test]
    fn keys_are_32_alphanumerics_and_differ() {
        let mut rng = rand::rng();
        let a = generate_stream_key(&mut rng);
        let b = generate_stream_key(&mut rng);
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }

    #[test]
    fn secret_holds_the_key_under_stream_key() {
        let secret = stream_key_secret(&fixtures::stream("media", "demo"), "k".repeat(32)).unwrap();
        assert_eq!(secret.metadata.name.as_deref(), Some("demo-stream-key"));
        assert_eq!(secret.data.unwrap()["streamKey"].0, b"k".repeat(32));
    }
}
