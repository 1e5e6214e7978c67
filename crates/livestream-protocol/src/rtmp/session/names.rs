//! Application name and stream key from what encoders send: the connect command's `app`
//! and `tcUrl`, and the publish name.
//!
//! `rtmp://HOST:PORT/APP/STREAMKEY` arrives as app "APP" and publish name "STREAMKEY"
//! from ffmpeg and from OBS (server `rtmp://HOST:PORT/APP`, key `STREAMKEY`). When an
//! encoder is given the whole URL as its server and an empty key, the key is the last
//! segment of the app instead.

/// The part of `text` before any `?` query string.
pub fn strip_query(text: &str) -> &str {
    text.split_once('?').map_or(text, |(before, _)| before)
}

/// The application name from the connect command: `app` without query string or
/// surrounding slashes, or else the path of `tc_url`.
pub fn application_name(app: Option<&str>, tc_url: Option<&str>) -> String {
    let from_app = app.map(|app| strip_query(app).trim_matches('/')).unwrap_or_default();
    if !from_app.is_empty() {
        return from_app.to_owned();
    }
    tc_url.map(tc_url_path).unwrap_or_default()
}

/// The path of an `rtmp://host[:port]/path?query` URL, without slashes at either end.
fn tc_url_path(tc_url: &str) -> String {
    let without_scheme = tc_url.split_once("://").map_or(tc_url, |(_, rest)| rest);
    let path = without_scheme.split_once('/').map_or("", |(_, path)| path);
    strip_query(path).trim_matches('/').to_owned()
}

/// Resolves the application and stream key for a publish: the key is the publish name
/// without query string; with an empty publish name, the key is the app's last segment.
pub fn resolve_publish(app: &str, publish_name: &str) -> (String, String) {
    let key = strip_query(publish_name).trim_matches('/');
    if key.is_empty()
        && let Some((app_part, key_part)) = app.rsplit_once('/')
    {
        return (app_part.to_owned(), key_part.to_owned());
    }
    (app.to_owned(), key.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_from_connect_strips_query_and_slashes() {
        assert_eq!(application_name(Some("live"), None), "live");
        assert_eq!(application_name(Some("live?token=x"), Some("rtmp://h/live?token=x")), "live");
        assert_eq!(application_name(Some("/live/"), None), "live");
    }

    #[test]
    fn app_falls_back_to_tc_url_path() {
        assert_eq!(application_name(None, Some("rtmp://127.0.0.1:1935/live")), "live");
        assert_eq!(application_name(Some(""), Some("rtmp://host/live/?a=b")), "live");
        assert_eq!(application_name(None, Some("rtmp://host")), "");
        assert_eq!(application_name(None, None), "");
    }

    #[test]
    fn publish_name_is_the_key_without_query() {
        assert_eq!(resolve_publish("live", "KEY"), ("live".into(), "KEY".into()));
        assert_eq!(resolve_publish("live", "KEY?user=a"), ("live".into(), "KEY".into()));
    }

    #[test]
    fn whole_url_as_server_with_empty_key() {
        assert_eq!(resolve_publish("live/KEY", ""), ("live".into(), "KEY".into()));
        assert_eq!(resolve_publish("live", ""), ("live".into(), "".into()));
    }
}
