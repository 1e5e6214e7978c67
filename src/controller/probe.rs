//! Reading a worker's `GET /status` with hyper's HTTP/1.1 client, the one kube's client
//! already runs on: within a deadline, and with a bounded body.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::Request;
use hyper::header::ACCEPT;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::worker::status::WorkerStatus;

/// The largest body accepted: a status is a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Why a worker's status could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProbeError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("request failed: {0}")]
    Request(String),
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("reading the body failed: {0}")]
    Body(String),
    #[error("the body is not a worker status: {0}")]
    NotAStatus(String),
}

/// Reads workers' statuses. Polls repeat every few seconds while a stream is live, so one
/// idle connection per worker is kept for a little longer than that.
#[derive(Clone, Debug)]
pub struct WorkerStatusClient {
    client: Client<HttpConnector, Empty<Bytes>>,
    timeout: Duration,
}

impl WorkerStatusClient {
    /// A client whose requests end after `timeout`, connecting included.
    pub fn new(timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(1)
            .pool_idle_timeout(Duration::from_secs(10))
            .build(connector);
        Self { client, timeout }
    }

    /// `GET http://ADDR/status`.
    pub async fn fetch(&self, addr: SocketAddr) -> Result<WorkerStatus, ProbeError> {
        tokio::time::timeout(self.timeout, self.get(addr)).await.map_err(|_| ProbeError::Timeout(self.timeout))?
    }

    async fn get(&self, addr: SocketAddr) -> Result<WorkerStatus, ProbeError> {
        let request = Request::get(format!("http://{addr}/status"))
            .header(ACCEPT, "application/json")
            .body(Empty::new())
            .map_err(|e| ProbeError::Request(e.to_string()))?;
        let response = self.client.request(request).await.map_err(|e| ProbeError::Request(error_chain(&e)))?;
        if response.status() != hyper::StatusCode::OK {
            return Err(ProbeError::Status(response.status().as_u16()));
        }
        let body = Limited::new(response.into_body(), MAX_BODY_BYTES)
            .collect()
            .await
            .map_err(|e| ProbeError::Body(e.to_string()))?
            .to_bytes();
        serde_json::from_slice(&body).map_err(|e| ProbeError::NotAStatus(e.to_string()))
    }
}

/// An error and its sources, `: `-separated: hyper's client error alone says only
/// "client error (Connect)".
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A server that answers every connection with `response`, or stays silent for `None`.
    async fn server(response: Option<Vec<u8>>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let response = response.clone();
                tokio::spawn(async move {
                    let mut request = [0u8; 1024];
                    let _ = socket.read(&mut request).await;
                    match response {
                        Some(bytes) => {
                            let _ = socket.write_all(&bytes).await;
                        }
                        None => tokio::time::sleep(Duration::from_secs(5)).await,
                    }
                });
            }
        });
        addr
    }

    fn response(status: &str, body: &[u8]) -> Option<Vec<u8>> {
        let mut bytes = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        bytes.extend_from_slice(body);
        Some(bytes)
    }

    #[tokio::test]
    async fn reads_a_status_and_names_what_is_wrong_otherwise() {
        let client = WorkerStatusClient::new(Duration::from_millis(500));
        let live = server(response("200 OK", br#"{"phase":"Live","problems":[]}"#)).await;
        let status = client.fetch(live).await.unwrap();
        assert_eq!(status.phase, crate::worker::status::StreamPhase::Live);

        let unavailable = server(response("503 Service Unavailable", b"not ready")).await;
        assert_eq!(client.fetch(unavailable).await, Err(ProbeError::Status(503)));
        let not_json = server(response("200 OK", b"{}")).await;
        assert!(matches!(client.fetch(not_json).await, Err(ProbeError::NotAStatus(_))));
        let huge = server(response("200 OK", &vec![b' '; MAX_BODY_BYTES + 1])).await;
        assert!(matches!(client.fetch(huge).await, Err(ProbeError::Body(_))));
        let garbage = server(Some(b"SSH-2.0-OpenSSH_9.2\r\n\r\n".to_vec())).await;
        assert!(matches!(client.fetch(garbage).await, Err(ProbeError::Request(_))));
    }

    #[tokio::test]
    async fn a_silent_or_absent_worker_is_an_error_within_the_deadline() {
        let client = WorkerStatusClient::new(Duration::from_millis(200));
        let silent = server(None).await;
        assert_eq!(client.fetch(silent).await, Err(ProbeError::Timeout(Duration::from_millis(200))));
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        let refused = client.fetch(closed).await.unwrap_err();
        assert!(matches!(&refused, ProbeError::Request(text) if text.contains("onnect")), "{refused}");
    }
}
