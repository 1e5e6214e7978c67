//! The declarations of `srt/srt.h` (libsrt 1.4.2 and later) that this crate calls, written
//! by hand: a handful of functions and constants, checked against the header.

use std::ffi::{c_char, c_int, c_void};

pub type SrtSocket = c_int;

pub const SRT_INVALID_SOCK: SrtSocket = -1;
pub const SRT_ERROR: c_int = -1;

// SRT_SOCKOPT
pub const SRTO_RCVSYN: c_int = 2;
pub const SRTO_RCVTIMEO: c_int = 14;
pub const SRTO_PASSPHRASE: c_int = 26;
pub const SRTO_RCVLATENCY: c_int = 43;
pub const SRTO_STREAMID: c_int = 46;
pub const SRTO_TRANSTYPE: c_int = 50;
pub const SRTO_ENFORCEDENCRYPTION: c_int = 53;
pub const SRTO_IPV6ONLY: c_int = 54;
pub const SRTO_PEERIDLETIMEO: c_int = 55;

// SRT_SOCKSTATUS: from here on a socket is of no more use.
pub const SRTS_BROKEN: c_int = 6;

// SRT_TRANSTYPE
pub const SRTT_LIVE: c_int = 0;

// SRT_ERRNO
pub const SRT_ECONNLOST: c_int = 2001;
pub const SRT_ENOCONN: c_int = 2002;
pub const SRT_EINVSOCK: c_int = 5004;
pub const SRT_EASYNCRCV: c_int = 6002;
pub const SRT_ETIMEOUT: c_int = 6003;

// SRT_EPOLL_OPT
pub const SRT_EPOLL_IN: c_int = 0x1;
pub const SRT_EPOLL_ERR: c_int = 0x8;

// Log levels (syslog's) and flags.
pub const LOG_WARNING: c_int = 4;
pub const SRT_LOGF_DISABLE_ALL: c_int = 0x0f;

#[repr(C)]
pub struct SrtEpollEvent {
    pub fd: SrtSocket,
    pub events: c_int,
}

pub type ListenCallback = unsafe extern "C" fn(
    opaque: *mut c_void,
    new_socket: SrtSocket,
    handshake_version: c_int,
    peer: *const libc::sockaddr,
    stream_id: *const c_char,
) -> c_int;

pub type LogHandler = unsafe extern "C" fn(
    opaque: *mut c_void,
    level: c_int,
    file: *const c_char,
    line: c_int,
    area: *const c_char,
    message: *const c_char,
);

unsafe extern "C" {
    pub fn srt_startup() -> c_int;
    pub fn srt_create_socket() -> SrtSocket;
    pub fn srt_bind(socket: SrtSocket, name: *const libc::sockaddr, length: c_int) -> c_int;
    pub fn srt_listen(socket: SrtSocket, backlog: c_int) -> c_int;
    pub fn srt_listen_callback(socket: SrtSocket, hook: Option<ListenCallback>, opaque: *mut c_void) -> c_int;
    pub fn srt_accept(socket: SrtSocket, address: *mut libc::sockaddr, length: *mut c_int) -> SrtSocket;
    pub fn srt_close(socket: SrtSocket) -> c_int;
    pub fn srt_getsockname(socket: SrtSocket, name: *mut libc::sockaddr, length: *mut c_int) -> c_int;
    pub fn srt_getsockflag(socket: SrtSocket, option: c_int, value: *mut c_void, length: *mut c_int) -> c_int;
    pub fn srt_setsockflag(socket: SrtSocket, option: c_int, value: *const c_void, length: c_int) -> c_int;
    pub fn srt_recvmsg(socket: SrtSocket, buffer: *mut c_char, length: c_int) -> c_int;
    pub fn srt_getlasterror_str() -> *const c_char;
    pub fn srt_getlasterror(errno: *mut c_int) -> c_int;
    pub fn srt_getsockstate(socket: SrtSocket) -> c_int;
    pub fn srt_setrejectreason(socket: SrtSocket, value: c_int) -> c_int;
    pub fn srt_epoll_create() -> c_int;
    pub fn srt_epoll_add_usock(eid: c_int, socket: SrtSocket, events: *const c_int) -> c_int;
    pub fn srt_epoll_uwait(eid: c_int, events: *mut SrtEpollEvent, size: c_int, timeout_ms: i64) -> c_int;
    pub fn srt_epoll_release(eid: c_int) -> c_int;
    pub fn srt_setloglevel(level: c_int);
    pub fn srt_setlogflags(flags: c_int);
    pub fn srt_setloghandler(opaque: *mut c_void, handler: Option<LogHandler>);
    pub fn srt_getversion() -> u32;
}
