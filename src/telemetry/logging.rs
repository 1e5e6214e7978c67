//! Structured logging with tracing.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// How log lines are written to standard error.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Installs the global subscriber. The level comes from `RUST_LOG` (default `info`, with
/// rustls at `error`: its warnings are about clients' quirks, such as an IP address sent
/// as the TLS server name, and the listener logs each failed TLS handshake itself).
/// Colours only when standard error is a terminal: a pod's log, a file or a pipe gets plain
/// text. Calling it twice is harmless: the second call keeps the first subscriber.
pub fn init_logging(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rustls=error,aws_config=error"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Text => builder.with_target(false).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Longest client-supplied text a log line carries.
const CLIPPED_CHARS: usize = 64;

/// Client-supplied text as a log line may carry it: at most 64 characters, control
/// characters escaped, and the length of what was cut. A client that sends a 65,000-byte
/// application name gets a short log line.
pub fn clip(text: &str) -> String {
    let mut clipped = String::new();
    for (index, c) in text.chars().enumerate() {
        if index == CLIPPED_CHARS {
            clipped.push_str(&format!("... ({} bytes)", text.len()));
            break;
        }
        if c.is_control() {
            clipped.extend(c.escape_default());
        } else {
            clipped.push(c);
        }
    }
    clipped
}

#[cfg(test)]
mod tests {
    use super::clip;

    #[test]
    fn client_text_is_clipped_and_escaped() {
        assert_eq!(clip("live"), "live");
        assert_eq!(clip("a\nb\x1b[31m"), "a\\nb\\u{1b}[31m");
        let long = "x".repeat(65_000);
        let clipped = clip(&long);
        assert_eq!(clipped, format!("{}... (65000 bytes)", "x".repeat(64)));
        assert_eq!(clip(&"é".repeat(64)), "é".repeat(64), "64 characters, not bytes");
    }
}
