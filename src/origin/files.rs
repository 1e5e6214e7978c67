//! Objects of a local storage directory, served with the same Content-Type and
//! Cache-Control that uploads to S3 carry.

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::storage::ObjectKind;

/// Maps a URL path to a file under `root`, refusing anything that could escape it (the
/// same rules as storage keys).
pub fn resolve(root: &Path, url_path: &str) -> Option<PathBuf> {
    crate::storage::key::validate_key(url_path).ok()?;
    Some(root.join(url_path))
}

/// GET or HEAD of one object under `root`; only HLS objects are served. A single byte
/// range (`Range: bytes=...`) is answered with 206, one past the end with 416; several
/// ranges in one request get the whole object, as RFC 9110 allows.
pub async fn serve(root: &Path, method: &Method, path: &str, range: Option<&str>) -> Response {
    let Some(kind) = ObjectKind::from_key(path) else {
        return (StatusCode::NOT_FOUND, "not an HLS object\n").into_response();
    };
    let Some(file) = resolve(root, path) else {
        return (StatusCode::BAD_REQUEST, "invalid path\n").into_response();
    };
    let body = match tokio::fs::read(&file).await {
        Ok(body) => body,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound
                    | std::io::ErrorKind::IsADirectory
                    | std::io::ErrorKind::NotADirectory
                    | std::io::ErrorKind::InvalidFilename
            ) =>
        {
            return not_found();
        }
        Err(e) => {
            tracing::warn!(path = %path, error = %e, "cannot read object");
            return (StatusCode::INTERNAL_SERVER_ERROR, "cannot read object\n").into_response();
        }
    };
    let length = body.len();
    let (status, body, content_range) = match requested_range(range, length) {
        Requested::Whole => (StatusCode::OK, body, None),
        Requested::Bytes { first, last } => {
            let part = body.get(first..=last).map(<[u8]>::to_vec).unwrap_or_default();
            (StatusCode::PARTIAL_CONTENT, part, Some(format!("bytes {first}-{last}/{length}")))
        }
        Requested::Unsatisfiable => (StatusCode::RANGE_NOT_SATISFIABLE, Vec::new(), Some(format!("bytes */{length}"))),
    };
    let sent = body.len();
    let mut response =
        if method == Method::HEAD { Response::new(Body::empty()) } else { Response::new(Body::from(body)) };
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind.content_type()));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(kind.cache_control()));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(sent));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(value) = content_range.and_then(|value| HeaderValue::from_str(&value).ok()) {
        headers.insert(header::CONTENT_RANGE, value);
    }
    response
}

/// What a `Range` header asks of an object of `length` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Requested {
    /// No range, several ranges, or a header that is not a byte range: the whole object.
    Whole,
    /// One range, clamped to the object.
    Bytes { first: usize, last: usize },
    /// A range that starts past the end.
    Unsatisfiable,
}

fn requested_range(header: Option<&str>, length: usize) -> Requested {
    let Some(spec) = header.and_then(|value| value.trim().strip_prefix("bytes=")) else {
        return Requested::Whole;
    };
    if spec.contains(',') {
        return Requested::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Requested::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // bytes=-N: the last N bytes.
        return match last.parse::<usize>() {
            Ok(0) => Requested::Unsatisfiable,
            Ok(_) if length == 0 => Requested::Unsatisfiable,
            Ok(suffix) => Requested::Bytes { first: length.saturating_sub(suffix), last: length - 1 },
            Err(_) => Requested::Whole,
        };
    }
    let Ok(first) = first.parse::<usize>() else {
        return Requested::Whole;
    };
    // bytes=N- runs to the end.
    let last = if last.is_empty() { Some(usize::MAX) } else { last.parse::<usize>().ok() };
    match last {
        Some(last) if last >= first => {
            if first >= length {
                Requested::Unsatisfiable
            } else {
                Requested::Bytes { first, last: last.min(length - 1) }
            }
        }
        _ => Requested::Whole,
    }
}

/// 404 with short negative caching: a playlist that does not exist yet may appear in a
/// moment.
pub fn not_found() -> Response {
    let mut response = (StatusCode::NOT_FOUND, "not found\n").into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_cannot_escape_the_root() {
        let root = Path::new("/data");
        assert_eq!(resolve(root, "live/demo/master.m3u8"), Some(PathBuf::from("/data/live/demo/master.m3u8")));
        assert_eq!(resolve(root, "../etc/passwd"), None);
        assert_eq!(resolve(root, "live/../../etc/passwd"), None);
        assert_eq!(resolve(root, "/etc/passwd"), None);
        assert_eq!(resolve(root, "live/./demo"), None);
        assert_eq!(resolve(root, ""), None);
    }

    #[test]
    fn byte_ranges() {
        use Requested::*;
        assert_eq!(requested_range(None, 100), Whole);
        assert_eq!(requested_range(Some("bytes=0-9"), 100), Bytes { first: 0, last: 9 });
        assert_eq!(requested_range(Some("bytes=90-"), 100), Bytes { first: 90, last: 99 });
        assert_eq!(requested_range(Some("bytes=90-500"), 100), Bytes { first: 90, last: 99 });
        assert_eq!(requested_range(Some("bytes=-10"), 100), Bytes { first: 90, last: 99 });
        assert_eq!(requested_range(Some("bytes=-500"), 100), Bytes { first: 0, last: 99 });
        assert_eq!(requested_range(Some("bytes=100-"), 100), Unsatisfiable);
        assert_eq!(requested_range(Some("bytes=-0"), 100), Unsatisfiable);
        assert_eq!(requested_range(Some("bytes=0-1,5-6"), 100), Whole, "several ranges: the whole object");
        assert_eq!(requested_range(Some("bytes=9-2"), 100), Whole, "an invalid range is ignored");
        assert_eq!(requested_range(Some("items=0-9"), 100), Whole);
        assert_eq!(requested_range(Some("bytes=x-9"), 100), Whole);
    }
}
