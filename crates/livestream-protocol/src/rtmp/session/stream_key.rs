//! The stream key a publisher presents: a secret that never appears in logs or `Debug`
//! output; only a short salted fingerprint may be logged.

use std::fmt;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// A publisher's stream key (the publish name without any query string).
#[derive(Clone, PartialEq, Eq)]
pub struct StreamKey(String);

impl StreamKey {
    /// Wraps a stream key.
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key itself, for comparing against the expected key. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares with the expected key in time that depends only on the expected key's
    /// length, so response timing does not reveal how much of a guess was right.
    pub fn matches(&self, expected: &str) -> bool {
        let presented = self.0.as_bytes();
        let mut difference = presented.len() ^ expected.len();
        for (index, byte) in expected.bytes().enumerate() {
            difference |= usize::from(byte ^ presented.get(index).copied().unwrap_or(0));
        }
        difference == 0
    }

    /// SHA-256 of `salt` and the key: how an ingest gateway's route table names a key
    /// without holding it.
    pub fn digest(&self, salt: &[u8]) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(salt);
        hasher.update(self.0.as_bytes());
        hasher.finalize().into()
    }

    /// True when the key is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A short, non-reversible fingerprint (8 hex digits of a SHA-256 salted with a random
    /// per-process value), stable within one process, for correlating log lines.
    pub fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(process_salt());
        hasher.update(self.0.as_bytes());
        hasher.finalize().iter().take(4).map(|byte| format!("{byte:02x}")).collect()
    }
}

impl fmt::Debug for StreamKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "StreamKey(fingerprint {})", self.fingerprint())
    }
}

/// Whether `a` and `b` are equal, in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn process_salt() -> &'static [u8; 16] {
    static SALT: OnceLock<[u8; 16]> = OnceLock::new();
    SALT.get_or_init(rand::random)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_contains_the_key() {
        let key = StreamKey::new("super-secret-key");
        let shown = format!("{key:?}");
        assert!(!shown.contains("super-secret-key"), "{shown}");
        assert!(shown.contains(&key.fingerprint()));
    }

    #[test]
    fn matches_only_the_exact_key() {
        let key = StreamKey::new("abc");
        assert!(key.matches("abc"));
        assert!(!key.matches("abd"));
        assert!(!key.matches("ab"));
        assert!(!key.matches("abcd"));
        assert!(!key.matches(""));
        assert!(StreamKey::new("").matches(""));
    }

    #[test]
    fn fingerprint_is_short_stable_and_distinguishes_keys() {
        let key = StreamKey::new("abc");
        assert_eq!(key.fingerprint().len(), 8);
        assert_eq!(key.fingerprint(), StreamKey::new("abc").fingerprint());
        assert_ne!(key.fingerprint(), StreamKey::new("abd").fingerprint());
        assert_eq!(key.expose(), "abc");
    }
}
