//! What an SRT caller asks for in its stream ID (the handshake's `SRTO_STREAMID`), sans
//! IO. Two forms are understood:
//!
//! - The SRT Access Control syntax (Haivision's `docs/features/access-control.md`):
//!   `#!::r=live/KEY,m=publish`, comma-separated `key=value` pairs in any order. `r` is the
//!   resource, `APP/KEY` or `KEY`; `m` the mode, of which only `publish` is taken (an
//!   absent `m` is taken as publish too: this server only ingests); `t`, when given, must
//!   be `stream`; `u` (user), `h` (host), `s` (session) and keys of other applications are
//!   ignored.
//! - The plain form that encoders without that syntax send: `live/KEY` or `KEY`.
//!
//! The key is the resource's last path segment, the application what is before it; a
//! resource of one segment names no application.

use std::fmt;

use thiserror::Error;

use crate::rtmp::session::StreamKey;

/// The Access Control syntax's marker.
const ACCESS_CONTROL_PREFIX: &str = "#!::";
/// libsrt's limit of a stream ID's length.
pub const MAX_STREAM_ID_LEN: usize = 512;

/// A publish request read from a stream ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamIdPublish {
    /// The application, when the resource names one.
    pub app: Option<String>,
    /// The stream key (never log it; use [`StreamKey::fingerprint`]).
    pub stream_key: StreamKey,
}

/// Why a stream ID is refused. Never holds the key.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum StreamIdError {
    /// No resource, or an empty key.
    #[error("the stream ID names no stream key")]
    NoKey,
    /// Longer than SRT allows.
    #[error("the stream ID is longer than {MAX_STREAM_ID_LEN} bytes")]
    TooLong,
    /// An Access Control pair without `=`, or a key given twice.
    #[error("the stream ID is not valid Access Control syntax: {0}")]
    Malformed(&'static str),
    /// A mode other than publish (`request` is playback).
    #[error("mode {0:?} is not taken: this server only accepts m=publish")]
    Mode(Clipped),
    /// A type other than a live stream.
    #[error("type {0:?} is not taken: this server only accepts live streams (t=stream)")]
    Type(Clipped),
}

/// A value of the caller's, cut short for error messages.
#[derive(Clone, PartialEq, Eq)]
pub struct Clipped(String);

impl Clipped {
    fn new(value: &str) -> Self {
        Self(value.chars().take(16).collect())
    }
}

impl fmt::Debug for Clipped {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, formatter)
    }
}

/// Reads a caller's stream ID.
pub fn parse_stream_id(stream_id: &str) -> Result<StreamIdPublish, StreamIdError> {
    if stream_id.len() > MAX_STREAM_ID_LEN {
        return Err(StreamIdError::TooLong);
    }
    let resource = match stream_id.strip_prefix(ACCESS_CONTROL_PREFIX) {
        Some(pairs) => access_control_resource(pairs)?,
        None => stream_id,
    };
    // A leading slash is a path's; a trailing one leaves the key empty, as in RTMP.
    let resource = resource.trim_start_matches('/');
    let (app, key) = match resource.rsplit_once('/') {
        Some((app, key)) => (Some(app.trim_matches('/').to_string()).filter(|app| !app.is_empty()), key),
        None => (None, resource),
    };
    if key.is_empty() {
        return Err(StreamIdError::NoKey);
    }
    Ok(StreamIdPublish { app, stream_key: StreamKey::new(key) })
}

/// The resource of an Access Control stream ID, once its mode and type are checked.
fn access_control_resource(pairs: &str) -> Result<&str, StreamIdError> {
    let (mut resource, mut mode, mut kind) = (None, None, None);
    for pair in pairs.split(',').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').ok_or(StreamIdError::Malformed("a pair without '='"))?;
        let slot = match key.trim() {
            "r" => &mut resource,
            "m" => &mut mode,
            "t" => &mut kind,
            _ => continue,
        };
        if slot.replace(value.trim()).is_some() {
            return Err(StreamIdError::Malformed("a key given twice"));
        }
    }
    if let Some(mode) = mode.filter(|mode| *mode != "publish") {
        return Err(StreamIdError::Mode(Clipped::new(mode)));
    }
    if let Some(kind) = kind.filter(|kind| *kind != "stream") {
        return Err(StreamIdError::Type(Clipped::new(kind)));
    }
    resource.ok_or(StreamIdError::NoKey)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish(stream_id: &str) -> (Option<String>, String) {
        let parsed = parse_stream_id(stream_id).unwrap_or_else(|e| panic!("{stream_id}: {e}"));
        (parsed.app, parsed.stream_key.expose().to_string())
    }

    #[test]
    fn access_control_form_in_any_order() {
        let expected = (Some("live".to_string()), "KEY".to_string());
        assert_eq!(publish("#!::r=live/KEY,m=publish"), expected);
        assert_eq!(publish("#!::m=publish,r=live/KEY"), expected);
        assert_eq!(publish("#!::u=studio,r=live/KEY,m=publish,t=stream,s=abc,x-custom=1"), expected);
        assert_eq!(publish("#!::r=live/KEY"), expected, "publish unless another mode is asked for");
        assert_eq!(publish("#!::r=KEY,m=publish"), (None, "KEY".to_string()), "no application");
        assert_eq!(publish("#!::r=/a/b/KEY,m=publish"), (Some("a/b".to_string()), "KEY".to_string()));
    }

    #[test]
    fn plain_form() {
        assert_eq!(publish("live/KEY"), (Some("live".to_string()), "KEY".to_string()));
        assert_eq!(publish("KEY"), (None, "KEY".to_string()));
        assert_eq!(publish("/live/KEY"), (Some("live".to_string()), "KEY".to_string()));
    }

    #[test]
    fn refused_stream_ids() {
        assert_eq!(parse_stream_id("#!::r=live/KEY,m=request"), Err(StreamIdError::Mode(Clipped::new("request"))));
        assert!(matches!(parse_stream_id("#!::r=live/KEY,m=bidirectional"), Err(StreamIdError::Mode(_))));
        assert!(matches!(parse_stream_id("#!::r=live/KEY,t=file,m=publish"), Err(StreamIdError::Type(_))));
        assert_eq!(parse_stream_id(""), Err(StreamIdError::NoKey));
        assert_eq!(parse_stream_id("live/"), Err(StreamIdError::NoKey));
        assert_eq!(parse_stream_id("#!::m=publish"), Err(StreamIdError::NoKey));
        assert_eq!(parse_stream_id("#!::r=live/,m=publish"), Err(StreamIdError::NoKey));
        assert_eq!(parse_stream_id("#!::r=a,r=b"), Err(StreamIdError::Malformed("a key given twice")));
        assert_eq!(parse_stream_id("#!::live/KEY"), Err(StreamIdError::Malformed("a pair without '='")));
        assert_eq!(parse_stream_id(&"k".repeat(513)), Err(StreamIdError::TooLong));
    }

    #[test]
    fn errors_never_show_the_key() {
        let error = parse_stream_id("#!::r=live/s3cret-key,m=request").unwrap_err();
        assert!(!error.to_string().contains("s3cret"), "{error}");
        let parsed = parse_stream_id("#!::r=live/s3cret-key,m=publish").unwrap();
        assert!(!format!("{parsed:?}").contains("s3cret"));
    }
}
