//! Who may publish, and under which stream name: one configured key (a LiveStream's
//! worker), a table of named keys (`livestream serve --stream-key NAME=KEY`), or open
//! (any valid stream name, for trying things out).

use std::collections::BTreeMap;
use std::path::Path;

use crate::ingest::session::constant_time_eq;

/// Errors in key configuration.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyConfigError {
    #[error("stream key entry {0:?} is not NAME=KEY")]
    Malformed(String),
    #[error("stream name {0:?} is invalid: use 1-64 letters, digits, '.', '_' or '-', not starting with '.'")]
    BadName(String),
    #[error("the stream key for {0:?} is empty")]
    EmptyKey(String),
    #[error("the stream key for {0:?} is also given for another stream")]
    DuplicateKey(String),
    #[error("cannot read the keys file {path}: {message}")]
    File { path: String, message: String },
}

/// Whether a name can be a stream name or an application name: it becomes part of
/// object keys and URLs, so it is restricted to a safe alphabet.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The publish policy.
#[derive(Clone)]
pub enum KeyPolicy {
    /// Any valid stream name may publish; the name is the stream key itself.
    Open,
    /// Only these keys, each publishing as its stream name.
    Keys(BTreeMap<String, String>),
}

impl std::fmt::Debug for KeyPolicy {
    // Never prints the keys.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyPolicy::Open => f.write_str("Open"),
            KeyPolicy::Keys(keys) => write!(f, "Keys({} streams)", keys.len()),
        }
    }
}

impl KeyPolicy {
    /// A single stream with one key.
    pub fn single(name: &str, key: String) -> Result<Self, KeyConfigError> {
        Self::from_entries([(name.to_string(), key)])
    }

    /// From `(name, key)` pairs.
    pub fn from_entries(entries: impl IntoIterator<Item = (String, String)>) -> Result<Self, KeyConfigError> {
        let mut keys = BTreeMap::new();
        for (name, key) in entries {
            if !is_valid_name(&name) {
                return Err(KeyConfigError::BadName(name));
            }
            if key.is_empty() {
                return Err(KeyConfigError::EmptyKey(name));
            }
            if keys.insert(key, name.clone()).is_some() {
                return Err(KeyConfigError::DuplicateKey(name));
            }
        }
        Ok(KeyPolicy::Keys(keys))
    }

    /// Parses `NAME=KEY` flags.
    pub fn parse_entries<'a>(
        flags: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<(String, String)>, KeyConfigError> {
        flags
            .into_iter()
            .map(|entry| {
                let (name, key) = entry.split_once('=').ok_or_else(|| KeyConfigError::Malformed(redact(entry)))?;
                Ok((name.trim().to_string(), key.trim().to_string()))
            })
            .collect()
    }

    /// Reads a keys file: one `NAME=KEY` a line; blank lines and `#` comments are skipped.
    pub fn read_entries(path: &Path) -> Result<Vec<(String, String)>, KeyConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| KeyConfigError::File { path: path.display().to_string(), message: e.to_string() })?;
        Self::parse_entries(text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')))
    }

    /// The stream name a publish with `key` gets, or None when it may not publish.
    pub fn resolve(&self, key: &str) -> Option<String> {
        match self {
            KeyPolicy::Open => is_valid_name(key).then(|| key.to_string()),
            KeyPolicy::Keys(keys) => {
                // Compare against every key in constant time per key, so the time taken
                // does not tell how much of a guess was right.
                let mut found = None;
                for (candidate, name) in keys {
                    if constant_time_eq(candidate.as_bytes(), key.as_bytes()) {
                        found = Some(name.clone());
                    }
                }
                found
            }
        }
    }

    pub fn is_open(&self) -> bool {
        matches!(self, KeyPolicy::Open)
    }
}

/// An entry shown in an error without its key.
fn redact(entry: &str) -> String {
    match entry.split_once('=') {
        Some((name, _)) => format!("{name}=…"),
        None if entry.len() > 4 => format!("{}…", &entry[..entry.char_indices().nth(2).map_or(0, |(i, _)| i)]),
        None => "…".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_policy_accepts_valid_names_only() {
        let policy = KeyPolicy::Open;
        assert_eq!(policy.resolve("demo"), Some("demo".into()));
        assert_eq!(policy.resolve("../etc"), None);
        assert_eq!(policy.resolve("a/b"), None);
        assert_eq!(policy.resolve(""), None);
        assert_eq!(policy.resolve(".hidden"), None);
    }

    #[test]
    fn keys_map_to_names_and_wrong_keys_are_refused() {
        let entries = KeyPolicy::parse_entries(["studio=s3cret-1", "backup = s3cret-2"]).unwrap();
        let policy = KeyPolicy::from_entries(entries).unwrap();
        assert_eq!(policy.resolve("s3cret-1"), Some("studio".into()));
        assert_eq!(policy.resolve("s3cret-2"), Some("backup".into()));
        assert_eq!(policy.resolve("studio"), None, "the name is not a key");
        assert_eq!(policy.resolve("s3cret-"), None);
    }

    #[test]
    fn bad_entries_are_explained_without_the_key() {
        let err = KeyPolicy::parse_entries(["justakeywithoutname"]).unwrap_err();
        assert!(!err.to_string().contains("justakeywithoutname"), "{err}");
        assert_eq!(
            KeyPolicy::from_entries([("a/b".to_string(), "k".to_string())]).unwrap_err(),
            KeyConfigError::BadName("a/b".into())
        );
        assert_eq!(
            KeyPolicy::from_entries([("a".to_string(), "k".to_string()), ("b".to_string(), "k".to_string())])
                .unwrap_err(),
            KeyConfigError::DuplicateKey("b".into())
        );
        assert!(!format!("{:?}", KeyPolicy::single("a", "topsecret".into()).unwrap()).contains("topsecret"));
    }

    #[test]
    fn keys_file_skips_comments() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        std::fs::write(&path, "# streams\nstudio=abc\n\nbackup=def\n").unwrap();
        let entries = KeyPolicy::read_entries(&path).unwrap();
        assert_eq!(entries, vec![("studio".into(), "abc".into()), ("backup".into(), "def".into())]);
    }
}
