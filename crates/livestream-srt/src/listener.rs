//! A listening SRT socket in live mode, with a gate that decides on callers during the
//! handshake, before a connection exists: a refused caller is told why (an SRT reject
//! reason that ffmpeg and OBS show) and costs nothing more.

use std::ffi::{CStr, c_char, c_int, c_void};
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use crate::connection::Connection;
use crate::{SrtError, address, ffi, set_bool, set_int, set_string, startup};

/// Settings of a listener, which its connections inherit.
#[derive(Clone)]
pub struct ListenerOptions {
    /// The receiver's latency (`SRTO_RCVLATENCY`): how long it holds packets to recover
    /// losses. The connection's is the larger of this and the caller's.
    pub latency: Duration,
    /// A peer silent this long is taken as gone (`SRTO_PEERIDLETIMEO`).
    pub peer_idle_timeout: Duration,
    /// AES encryption with a key derived from this passphrase (10 to 79 characters);
    /// callers without it, or with another, are refused.
    pub passphrase: Option<String>,
    /// Connections accepted by libsrt that the application has not taken yet.
    pub backlog: u16,
}

impl std::fmt::Debug for ListenerOptions {
    // Never prints the passphrase.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ListenerOptions")
            .field("latency", &self.latency)
            .field("peer_idle_timeout", &self.peer_idle_timeout)
            .field("encrypted", &self.passphrase.is_some())
            .field("backlog", &self.backlog)
            .finish()
    }
}

/// A caller in the handshake, as the gate sees it.
#[derive(Debug)]
pub struct Caller<'a> {
    /// The socket libsrt will hand to [`Listener::accept`] if the gate accepts.
    pub socket: i32,
    pub peer: SocketAddr,
    /// The caller's stream ID (empty when it sent none). May hold secrets: never log it.
    pub stream_id: &'a str,
}

/// The gate's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Reject(Rejection),
}

/// Reasons to refuse a caller, from SRT's Access Control codes (`srt/access_control.h`),
/// which callers show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// 1400: the stream ID cannot be read.
    BadRequest,
    /// 1401: a wrong stream key.
    Unauthorized,
    /// 1402: too many connections.
    Overload,
    /// 1403: not allowed for another reason (an unknown application).
    Forbidden,
    /// 1405: a mode other than publish.
    BadMode,
    /// 1409: the stream is live from another publisher.
    Conflict,
    /// 1415: a type other than a live stream.
    UnsupportedMedia,
}

impl Rejection {
    /// The code sent to the caller.
    pub fn code(self) -> i32 {
        match self {
            Rejection::BadRequest => 1400,
            Rejection::Unauthorized => 1401,
            Rejection::Overload => 1402,
            Rejection::Forbidden => 1403,
            Rejection::BadMode => 1405,
            Rejection::Conflict => 1409,
            Rejection::UnsupportedMedia => 1415,
        }
    }
}

/// Decides on each caller; runs on libsrt's receiving thread, so it must be quick.
pub type Gate = dyn Fn(&Caller<'_>) -> Verdict + Send + Sync;

/// What the listen callback reaches through libsrt's opaque pointer: a thin pointer to a
/// boxed gate.
struct GateHolder(Box<Gate>);

/// A listening SRT socket.
pub struct Listener {
    socket: ffi::SrtSocket,
    epoll: c_int,
    /// Read by the listen callback until the socket is closed: libsrt calls the callback
    /// under the listener's lock that `srt_close` takes, so dropping it after the close
    /// in [`Drop`] is safe.
    _gate: Box<GateHolder>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Listener").field("socket", &self.socket).finish_non_exhaustive()
    }
}

impl Listener {
    /// Binds `addr` and listens for live-mode callers.
    pub fn bind(addr: SocketAddr, options: &ListenerOptions, gate: Box<Gate>) -> Result<Self, SrtError> {
        startup()?;
        if let Some(passphrase) = &options.passphrase
            && !(10..=79).contains(&passphrase.chars().count())
        {
            return Err(SrtError::Passphrase);
        }
        // SAFETY: creates a socket that this Listener owns from here on.
        let socket = unsafe { ffi::srt_create_socket() };
        if socket == ffi::SRT_INVALID_SOCK {
            return Err(SrtError::last("create socket"));
        }
        let mut listener = Listener { socket, epoll: -1, _gate: Box::new(GateHolder(gate)) };
        listener.configure(addr, options)?;
        Ok(listener)
    }

    fn configure(&mut self, addr: SocketAddr, options: &ListenerOptions) -> Result<(), SrtError> {
        let socket = self.socket;
        set_int(socket, ffi::SRTO_TRANSTYPE, ffi::SRTT_LIVE, "set live mode")?;
        set_bool(socket, ffi::SRTO_RCVSYN, false, "set non-blocking accept")?;
        set_int(socket, ffi::SRTO_RCVLATENCY, millis(options.latency), "set latency")?;
        set_int(socket, ffi::SRTO_PEERIDLETIMEO, millis(options.peer_idle_timeout), "set peer idle timeout")?;
        if let Some(passphrase) = &options.passphrase {
            set_string(socket, ffi::SRTO_PASSPHRASE, passphrase, "set passphrase")?;
            set_bool(socket, ffi::SRTO_ENFORCEDENCRYPTION, true, "enforce encryption")?;
        }
        if addr.is_ipv6() {
            // Dual stack for `[::]`; libsrt refuses to bind a wildcard IPv6 address unset.
            set_int(socket, ffi::SRTO_IPV6ONLY, 0, "set dual stack")?;
        }
        let (raw, length) = address::to_raw(addr);
        // SAFETY: raw holds a sockaddr of `length` bytes for the duration of the call.
        if unsafe { ffi::srt_bind(socket, (&raw const raw).cast(), length) } == ffi::SRT_ERROR {
            return Err(SrtError::last("bind"));
        }
        let opaque: *const GateHolder = &*self._gate;
        // SAFETY: the callback only reads the GateHolder, which lives until after the
        // socket is closed (see the field's comment).
        if unsafe { ffi::srt_listen_callback(socket, Some(listen_callback), opaque.cast_mut().cast()) }
            == ffi::SRT_ERROR
        {
            return Err(SrtError::last("set listen callback"));
        }
        // SAFETY: plain calls on the socket and an epoll set this Listener owns.
        unsafe {
            if ffi::srt_listen(socket, c_int::from(options.backlog.max(1))) == ffi::SRT_ERROR {
                return Err(SrtError::last("listen"));
            }
            self.epoll = ffi::srt_epoll_create();
            if self.epoll < 0 {
                return Err(SrtError::last("create epoll"));
            }
            let events = ffi::SRT_EPOLL_IN | ffi::SRT_EPOLL_ERR;
            if ffi::srt_epoll_add_usock(self.epoll, socket, &events) == ffi::SRT_ERROR {
                return Err(SrtError::last("add to epoll"));
            }
        }
        Ok(())
    }

    /// The bound address (with the port the system chose for port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, SrtError> {
        let (mut raw, _) = address::to_raw(SocketAddr::from(([0, 0, 0, 0], 0)));
        let mut length = std::mem::size_of_val(&raw) as c_int;
        // SAFETY: raw has room for `length` bytes, which libsrt fills.
        if unsafe { ffi::srt_getsockname(self.socket, (&raw mut raw).cast(), &mut length) } == ffi::SRT_ERROR {
            return Err(SrtError::last("get socket name"));
        }
        // SAFETY: libsrt wrote a sockaddr of the family it holds.
        unsafe { address::from_raw((&raw const raw).cast()) }.ok_or(SrtError::Call {
            operation: "get socket name",
            code: 0,
            message: "not an IP address".into(),
        })
    }

    /// Waits up to `timeout` for a connection that the gate accepted and whose handshake
    /// completed; `None` when there is none yet.
    pub fn accept(&self, timeout: Duration) -> Result<Option<(Connection, SocketAddr)>, SrtError> {
        let mut ready = [ffi::SrtEpollEvent { fd: 0, events: 0 }];
        let timeout_ms = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
        // SAFETY: `ready` has room for the one event asked for.
        let count = unsafe { ffi::srt_epoll_uwait(self.epoll, ready.as_mut_ptr(), 1, timeout_ms) };
        if count < 0 {
            return Err(SrtError::last("wait for callers"));
        }
        if count == 0 {
            return Ok(None);
        }
        let (mut raw, _) = address::to_raw(SocketAddr::from(([0, 0, 0, 0], 0)));
        let mut length = std::mem::size_of_val(&raw) as c_int;
        // SAFETY: raw has room for `length` bytes; the accepted socket becomes the
        // Connection's to close.
        let socket = unsafe { ffi::srt_accept(self.socket, (&raw mut raw).cast(), &mut length) };
        if socket == ffi::SRT_INVALID_SOCK {
            let error = SrtError::last("accept");
            return if error.code() == Some(ffi::SRT_EASYNCRCV) { Ok(None) } else { Err(error) };
        }
        let connection = Connection::from_accepted(socket);
        // SAFETY: libsrt wrote the peer's sockaddr.
        let peer = unsafe { address::from_raw((&raw const raw).cast()) }
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        Ok(Some((connection, peer)))
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // SAFETY: both belong to this Listener and are released once.
        unsafe {
            ffi::srt_close(self.socket);
            if self.epoll >= 0 {
                ffi::srt_epoll_release(self.epoll);
            }
        }
    }
}

fn millis(duration: Duration) -> i32 {
    i32::try_from(duration.as_millis()).unwrap_or(i32::MAX)
}

/// libsrt's listen callback: asks the gate, and sets the reject reason when it refuses.
unsafe extern "C" fn listen_callback(
    opaque: *mut c_void,
    new_socket: ffi::SrtSocket,
    _handshake_version: c_int,
    peer: *const libc::sockaddr,
    stream_id: *const c_char,
) -> c_int {
    // SAFETY: libsrt passes back the pointer given in `configure`, to a live GateHolder,
    // and a peer address and a NUL-terminated stream ID (or null) valid for the call.
    let (holder, peer, stream_id) = unsafe {
        let holder = &*opaque.cast_const().cast::<GateHolder>();
        let stream_id = if stream_id.is_null() {
            std::borrow::Cow::Borrowed("")
        } else {
            CStr::from_ptr(stream_id).to_string_lossy()
        };
        (holder, address::from_raw(peer), stream_id)
    };
    let Some(peer) = peer else { return -1 };
    let caller = Caller { socket: new_socket, peer, stream_id: &stream_id };
    // A panic must not unwind into C; a gate that panics refuses.
    let verdict = std::panic::catch_unwind(AssertUnwindSafe(|| (holder.0)(&caller)))
        .unwrap_or(Verdict::Reject(Rejection::BadRequest));
    match verdict {
        Verdict::Accept => 0,
        Verdict::Reject(rejection) => {
            // SAFETY: the socket of the handshake in progress, as libsrt asks for.
            unsafe { ffi::srt_setrejectreason(new_socket, rejection.code()) };
            -1
        }
    }
}
