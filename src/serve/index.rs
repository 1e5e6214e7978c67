//! The index page of `livestream serve`: the live streams and their playback URLs.

use std::fmt::Write;

/// One stream on the index page.
#[derive(Clone, Debug, PartialEq)]
pub struct Listing {
    /// `APP/NAME`.
    pub path: String,
    /// Live, Reconnecting, Ended, ...
    pub phase: String,
    /// Incoming bitrate while live.
    pub bitrate_kbps: Option<u64>,
}

/// Renders the page. `base` is the origin as the browser reached it, e.g.
/// `http://localhost:8080`; `ingest` the URLs encoders publish to (RTMP, and RTMPS when
/// configured).
pub fn render(base: &str, ingest: &[String], streams: &[Listing]) -> String {
    let mut rows = String::new();
    for stream in streams {
        let url = format!("{base}/{}/master.m3u8", stream.path);
        let bitrate = stream.bitrate_kbps.map(|b| format!("{b} kbit/s")).unwrap_or_default();
        let _ = writeln!(
            rows,
            "<tr><td><a href=\"/watch/{path}\">{path}</a></td><td>{phase}</td><td>{bitrate}</td><td><a href=\"{url}\">{url}</a></td></tr>",
            path = escape(&stream.path),
            phase = escape(&stream.phase),
            url = escape(&url),
        );
    }
    let table = if streams.is_empty() {
        "<p>No stream yet.</p>".to_string()
    } else {
        format!("<table>\n<tr><th>Stream</th><th>State</th><th>Ingest</th><th>Playback</th></tr>\n{rows}</table>")
    };
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>livestream</title>\n\
         <meta http-equiv=\"refresh\" content=\"5\">\n\
         <style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:.3em 1em;text-align:left}}</style>\n\
         </head><body>\n<h1>Live streams</h1>\n{table}\n\
         <p>Publish to {hint}.</p>\n</body></html>\n",
        hint = ingest.iter().map(|url| format!("<code>{}</code>", escape(url))).collect::<Vec<_>>().join(" or "),
    )
}

/// Text for HTML element content and double- or single-quoted attribute values.
pub(super) fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_streams_with_their_playback_urls() {
        let page = render(
            "http://localhost:8080",
            &["rtmp://localhost:1935/live/STREAM".into(), "rtmps://localhost:1936/live/STREAM".into()],
            &[Listing { path: "live/demo".into(), phase: "Live".into(), bitrate_kbps: Some(2500) }],
        );
        assert!(page.contains("<a href=\"http://localhost:8080/live/demo/master.m3u8\">"), "{page}");
        assert!(page.contains("<a href=\"/watch/live/demo\">live/demo</a>"), "a watch page per stream: {page}");
        assert!(page.contains("2500 kbit/s"));
        assert!(
            page.contains(
                "<code>rtmp://localhost:1935/live/STREAM</code> or <code>rtmps://localhost:1936/live/STREAM</code>"
            ),
            "{page}"
        );
    }

    #[test]
    fn names_are_escaped() {
        let page = render(
            "http://h",
            &["rtmp://h/live/X".into()],
            &[Listing { path: "<b>".into(), phase: "Live".into(), bitrate_kbps: None }],
        );
        assert!(!page.contains("<b>"));
        assert!(page.contains("&lt;b&gt;"));
    }

    #[test]
    fn empty_index_says_so() {
        assert!(render("http://h", &["rtmp://h/live/X".into()], &[]).contains("No stream yet."));
    }
}
