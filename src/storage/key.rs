//! Object keys: which strings may name an object, and which prefixes may name a group of
//! them. The same rules hold on every backend, so a key that works on local disk works on
//! S3 and cannot escape the root directory of the local backend.

/// The longest key S3 accepts, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// Why a key or prefix is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("it is empty")]
    Empty,
    #[error("it is longer than {MAX_KEY_BYTES} bytes")]
    TooLong,
    #[error("it starts with '/'")]
    Absolute,
    #[error("it has an empty path segment")]
    EmptySegment,
    #[error("it has a '.' or '..' path segment")]
    DotSegment,
    #[error("it contains a backslash or a control character")]
    ForbiddenCharacter,
}

/// Checks that `key` is relative, made of non-empty segments separated by `/`, none of them
/// `.` or `..`, without backslashes or control characters, and at most [`MAX_KEY_BYTES`].
pub fn validate_key(key: &str) -> Result<(), KeyError> {
    if key.is_empty() {
        return Err(KeyError::Empty);
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(KeyError::TooLong);
    }
    if key.starts_with('/') {
        return Err(KeyError::Absolute);
    }
    if key.chars().any(|c| c == '\\' || c.is_control()) {
        return Err(KeyError::ForbiddenCharacter);
    }
    for segment in key.split('/') {
        match segment {
            "" => return Err(KeyError::EmptySegment),
            "." | ".." => return Err(KeyError::DotSegment),
            _ => {}
        }
    }
    Ok(())
}

/// Checks a prefix by the rules of [`validate_key`] (a trailing `/` is allowed) and returns
/// it with exactly one trailing `/`, so that `live/demo` covers `live/demo/...` but not
/// `live/demo2/...`. The empty prefix is refused: it would cover the whole store.
pub fn directory_prefix(prefix: &str) -> Result<String, KeyError> {
    let trimmed = prefix.strip_suffix('/').unwrap_or(prefix);
    validate_key(trimmed)?;
    Ok(format!("{trimmed}/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_keys_are_accepted() {
        assert_eq!(validate_key("live/demo/720p/seg_00001.m4s"), Ok(()));
        assert_eq!(validate_key("master.m3u8"), Ok(()));
        assert_eq!(validate_key("a/.hidden/b..c/x"), Ok(()));
    }

    #[test]
    fn keys_that_could_escape_or_confuse_are_refused() {
        assert_eq!(validate_key(""), Err(KeyError::Empty));
        assert_eq!(validate_key("/etc/passwd"), Err(KeyError::Absolute));
        assert_eq!(validate_key("../etc/passwd"), Err(KeyError::DotSegment));
        assert_eq!(validate_key("live/../../x"), Err(KeyError::DotSegment));
        assert_eq!(validate_key("live/./x"), Err(KeyError::DotSegment));
        assert_eq!(validate_key("live//x"), Err(KeyError::EmptySegment));
        assert_eq!(validate_key("live/x/"), Err(KeyError::EmptySegment));
        assert_eq!(validate_key("live\\..\\x"), Err(KeyError::ForbiddenCharacter));
        assert_eq!(validate_key("live/x\0y"), Err(KeyError::ForbiddenCharacter));
        assert_eq!(validate_key("live/x\ny"), Err(KeyError::ForbiddenCharacter));
        assert_eq!(validate_key(&"a".repeat(MAX_KEY_BYTES + 1)), Err(KeyError::TooLong));
        assert_eq!(validate_key(&"a".repeat(MAX_KEY_BYTES)), Ok(()));
    }

    #[test]
    fn prefixes_end_with_one_slash() {
        assert_eq!(directory_prefix("live/demo").as_deref(), Ok("live/demo/"));
        assert_eq!(directory_prefix("live/demo/").as_deref(), Ok("live/demo/"));
        assert_eq!(directory_prefix(""), Err(KeyError::Empty));
        assert_eq!(directory_prefix("/"), Err(KeyError::Empty));
        assert_eq!(directory_prefix("live/demo//"), Err(KeyError::EmptySegment));
        assert_eq!(directory_prefix("../live"), Err(KeyError::DotSegment));
    }
}
