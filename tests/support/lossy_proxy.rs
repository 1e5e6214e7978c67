//! A TCP proxy in front of an HTTP server that loses the answer to one chosen request: it
//! passes every request on, and when the server answers the chosen one, it closes the
//! client's connection instead of passing the answer back. That is what a client sees when
//! a server dies, or the network breaks, after the server has carried a request out.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The proxy; it stops accepting when dropped.
pub struct LossyProxy {
    pub port: u16,
    shared: Arc<Shared>,
}

struct Shared {
    /// Every marker, lower case, that a request's bytes must hold to count.
    markers: Vec<String>,
    /// Which matching request (1 = the first) loses its answer.
    nth: usize,
    matched: AtomicUsize,
    lost: AtomicUsize,
    stopped: AtomicBool,
}

impl LossyProxy {
    /// Proxies loopback connections to `upstream`. The `nth` request (1 = the first)
    /// whose bytes hold every one of `markers` (compared case-insensitively, within one
    /// read of the request) loses its answer.
    pub fn start(upstream: SocketAddr, markers: &[&str], nth: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("the proxy's address").port();
        let shared = Arc::new(Shared {
            markers: markers.iter().map(|m| m.to_ascii_lowercase()).collect(),
            nth,
            matched: AtomicUsize::new(0),
            lost: AtomicUsize::new(0),
            stopped: AtomicBool::new(false),
        });
        let accepting = Arc::clone(&shared);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if accepting.stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(upstream) else { continue };
                relay(client, server, Arc::clone(&accepting));
            }
        });
        Self { port, shared }
    }

    /// How many answers were lost so far.
    pub fn lost(&self) -> usize {
        self.shared.lost.load(Ordering::SeqCst)
    }

    /// How many requests matched the markers so far.
    pub fn matched(&self) -> usize {
        self.shared.matched.load(Ordering::SeqCst)
    }
}

impl Drop for LossyProxy {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        // Wakes the accepting thread, which then sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Copies one connection both ways on two threads.
fn relay(client: TcpStream, server: TcpStream, shared: Arc<Shared>) {
    let lose_next_answer = Arc::new(AtomicBool::new(false));
    let (Ok(client_reader), Ok(server_writer)) = (client.try_clone(), server.try_clone()) else { return };
    let requests = (Arc::clone(&shared), Arc::clone(&lose_next_answer));
    std::thread::spawn(move || {
        let (shared, lose_next_answer) = requests;
        pump(client_reader, server_writer, |bytes| {
            let text = String::from_utf8_lossy(bytes).to_ascii_lowercase();
            if shared.markers.iter().all(|m| text.contains(m.as_str()))
                && shared.matched.fetch_add(1, Ordering::SeqCst) + 1 == shared.nth
            {
                // Set before the request goes on, so before its answer can come back.
                lose_next_answer.store(true, Ordering::SeqCst);
            }
            true
        });
    });
    std::thread::spawn(move || {
        let (to_close, server_to_close) = (client.try_clone(), server.try_clone());
        pump(server, client, |_| {
            if lose_next_answer.load(Ordering::SeqCst) {
                shared.lost.fetch_add(1, Ordering::SeqCst);
                return false;
            }
            true
        });
        for stream in [to_close, server_to_close].into_iter().flatten() {
            let _ = stream.shutdown(Shutdown::Both);
        }
    });
}

/// Copies `from` into `to` while `pass` lets each read through; then closes both ways.
fn pump(mut from: TcpStream, mut to: TcpStream, mut pass: impl FnMut(&[u8]) -> bool) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if !pass(&buffer[..n]) || to.write_all(&buffer[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
