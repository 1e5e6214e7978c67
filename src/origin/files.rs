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

/// GET or HEAD of one object under `root`; only HLS objects are served.
pub async fn serve(root: &Path, method: &Method, path: &str) -> Response {
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
    let mut response =
        if method == Method::HEAD { Response::new(Body::empty()) } else { Response::new(Body::from(body)) };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind.content_type()));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(kind.cache_control()));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    response
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
}
