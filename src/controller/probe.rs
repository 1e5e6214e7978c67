//! Reading a worker's `GET /status`: a minimal HTTP/1.1 client. The request builder and
//! the response parser are pure and bounded; the shell only moves bytes with a deadline.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::worker::status::WorkerStatus;

/// The largest response accepted, headers and body together.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Why a response could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProbeError {
    #[error("connection failed: {0}")]
    Connect(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("I/O error: {0}")]
    Io(String),
    #[error("response larger than {MAX_RESPONSE_BYTES} bytes")]
    TooLarge,
    #[error("malformed HTTP response: {0}")]
    Malformed(&'static str),
    #[error("connection closed before the response was complete")]
    Truncated,
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("the body is not a worker status: {0}")]
    Body(String),
}

/// A complete HTTP response.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// The bytes of `GET path` to `host`, asking the server to close the connection.
pub fn get_request(host: &str, path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\nConnection: close\r\n\r\n").into_bytes()
}

/// Parses the bytes received so far. `Ok(None)`: more bytes are needed; `closed` says the
/// peer closed the connection (which ends a body without a length).
pub fn parse_response(bytes: &[u8], closed: bool) -> Result<Option<Response>, ProbeError> {
    if bytes.len() > MAX_RESPONSE_BYTES {
        return Err(ProbeError::TooLarge);
    }
    let Some(head_end) = find(bytes, b"\r\n\r\n") else {
        return if closed { Err(ProbeError::Truncated) } else { Ok(None) };
    };
    let (head, rest) = bytes.split_at(head_end);
    let head = std::str::from_utf8(head).map_err(|_| ProbeError::Malformed("head is not UTF-8"))?;
    let body = rest.get(4..).unwrap_or_default();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or(ProbeError::Malformed("no status line"))?;
    let mut parts = status_line.splitn(3, ' ');
    if !parts.next().is_some_and(|v| v.starts_with("HTTP/1.")) {
        return Err(ProbeError::Malformed("not HTTP/1.x"));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .filter(|s| (100..=999).contains(s))
        .ok_or(ProbeError::Malformed("bad status code"))?;
    let mut content_length = None;
    let mut chunked = false;
    for line in lines {
        let (name, value) = line.split_once(':').ok_or(ProbeError::Malformed("header without colon"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = Some(value.parse::<usize>().map_err(|_| ProbeError::Malformed("bad content-length"))?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        }
    }
    let body = if chunked {
        match dechunk(body)? {
            Some(body) => body,
            None if closed => return Err(ProbeError::Truncated),
            None => return Ok(None),
        }
    } else if let Some(length) = content_length {
        if length > MAX_RESPONSE_BYTES {
            return Err(ProbeError::TooLarge);
        }
        match body.get(..length) {
            Some(body) => body.to_vec(),
            None if closed => return Err(ProbeError::Truncated),
            None => return Ok(None),
        }
    } else if closed {
        body.to_vec()
    } else {
        return Ok(None);
    };
    Ok(Some(Response { status, body }))
}

/// Decodes a chunked body: `Ok(None)` until the last chunk arrived.
fn dechunk(mut input: &[u8]) -> Result<Option<Vec<u8>>, ProbeError> {
    let mut body = Vec::new();
    loop {
        let Some(line_end) = find(input, b"\r\n") else { return Ok(None) };
        let (size_line, rest) = input.split_at(line_end);
        let size_text = std::str::from_utf8(size_line).map_err(|_| ProbeError::Malformed("chunk size"))?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| ProbeError::Malformed("chunk size"))?;
        if size > MAX_RESPONSE_BYTES {
            return Err(ProbeError::TooLarge);
        }
        input = rest.get(2..).unwrap_or_default();
        if size == 0 {
            return Ok(Some(body));
        }
        let Some(chunk) = input.get(..size) else { return Ok(None) };
        body.extend_from_slice(chunk);
        match input.get(size..size + 2) {
            Some(b"\r\n") => input = input.get(size + 2..).unwrap_or_default(),
            Some(_) => return Err(ProbeError::Malformed("chunk not followed by CRLF")),
            None => return Ok(None),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Turns a response into a worker status.
pub fn worker_status(response: Response) -> Result<WorkerStatus, ProbeError> {
    if response.status != 200 {
        return Err(ProbeError::Status(response.status));
    }
    serde_json::from_slice(&response.body).map_err(|e| ProbeError::Body(e.to_string()))
}

/// `GET http://ADDR/status` within `timeout`.
pub async fn fetch_worker_status(addr: SocketAddr, timeout: Duration) -> Result<WorkerStatus, ProbeError> {
    let response =
        tokio::time::timeout(timeout, get(addr, "/status")).await.map_err(|_| ProbeError::Timeout(timeout))??;
    worker_status(response)
}

async fn get(addr: SocketAddr, path: &str) -> Result<Response, ProbeError> {
    let mut stream = TcpStream::connect(addr).await.map_err(|e| ProbeError::Connect(e.to_string()))?;
    stream.write_all(&get_request(&addr.to_string(), path)).await.map_err(|e| ProbeError::Io(e.to_string()))?;
    let mut received = Vec::with_capacity(4096);
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await.map_err(|e| ProbeError::Io(e.to_string()))?;
        received.extend_from_slice(buf.get(..n).unwrap_or_default());
        if let Some(response) = parse_response(&received, n == 0)? {
            return Ok(response);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_bytes_are_exact() {
        assert_eq!(
            get_request("10.0.0.7:8080", "/status"),
            b"GET /status HTTP/1.1\r\nHost: 10.0.0.7:8080\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn content_length_bodies_complete_when_all_bytes_arrived() {
        let full =
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{\"phase\":\"Live\"}";
        assert_eq!(parse_response(&full[..40], false), Ok(None));
        assert_eq!(parse_response(&full[..full.len() - 1], false), Ok(None));
        assert_eq!(parse_response(&full[..full.len() - 1], true), Err(ProbeError::Truncated));
        let response = parse_response(full, false).unwrap().unwrap();
        assert_eq!(response.status, 200);
        let status = worker_status(response).unwrap();
        assert_eq!(status.phase, crate::worker::status::StreamPhase::Live);
    }

    #[test]
    fn chunked_and_close_delimited_bodies() {
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n2;x=y\r\nef\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked, false).unwrap().unwrap().body, b"abcdef");
        assert_eq!(parse_response(&chunked[..60], false), Ok(None));
        let closed = b"HTTP/1.0 503 Service Unavailable\r\n\r\nnot ready";
        assert_eq!(parse_response(closed, false), Ok(None));
        let response = parse_response(closed, true).unwrap().unwrap();
        assert_eq!(worker_status(response), Err(ProbeError::Status(503)));
    }

    #[test]
    fn garbage_and_oversized_responses_are_refused() {
        assert_eq!(parse_response(b"SSH-2.0-OpenSSH\r\n\r\n", false), Err(ProbeError::Malformed("not HTTP/1.x")));
        assert_eq!(parse_response(b"HTTP/1.1 abc\r\n\r\n", false), Err(ProbeError::Malformed("bad status code")));
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n", false),
            Err(ProbeError::TooLarge)
        );
        assert_eq!(parse_response(&vec![b'a'; MAX_RESPONSE_BYTES + 1], false), Err(ProbeError::TooLarge));
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", false),
            Err(ProbeError::Malformed("chunk size"))
        );
        let bad_json = Response { status: 200, body: b"{}".to_vec() };
        assert!(matches!(worker_status(bad_json), Err(ProbeError::Body(_))));
    }

    #[tokio::test]
    async fn fetch_times_out_on_a_silent_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _accept = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(socket);
        });
        let err = fetch_worker_status(addr, Duration::from_millis(200)).await.unwrap_err();
        assert_eq!(err, ProbeError::Timeout(Duration::from_millis(200)));
    }
}
