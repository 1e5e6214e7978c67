//! SRT listener sockets on libsrt, Haivision's reference implementation (what ffmpeg, OBS,
//! GStreamer and hardware encoders speak), behind a small safe interface: bind a listener
//! whose [`Gate`] decides on each caller during the handshake from its stream ID and
//! address, accept connections, receive their messages, close.
//!
//! libsrt runs its own threads. [`Listener::accept`] and [`Connection::recv`] block the
//! calling thread up to the timeouts they are given, so callers run them on threads of
//! their own; the gate runs on libsrt's receiving thread and must be quick. libsrt's log
//! goes to `tracing` (target `libsrt`, debug level): its warnings are about its peers.
//!
//! This is the only crate of the workspace with `unsafe` code; each block says why it
//! holds.

#![deny(unsafe_op_in_unsafe_fn)]

mod address;
mod connection;
mod ffi;
mod listener;

pub use connection::{Connection, MAX_MESSAGE_LEN, Received};
pub use listener::{Caller, Gate, Listener, ListenerOptions, Rejection, Verdict};

use std::ffi::{CStr, c_char, c_int, c_void};
use std::sync::OnceLock;

use thiserror::Error;

/// Errors of libsrt calls.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum SrtError {
    /// A call failed; libsrt's error code and message.
    #[error("{operation}: {message} (libsrt error {code})")]
    Call { operation: &'static str, code: i32, message: String },
    /// libsrt could not start.
    #[error("libsrt could not start")]
    Startup,
    /// A passphrase outside SRT's 10 to 79 characters.
    #[error("an SRT passphrase has 10 to 79 characters")]
    Passphrase,
}

impl SrtError {
    /// The error of the last failed call on this thread.
    fn last(operation: &'static str) -> Self {
        // SAFETY: both read libsrt's thread-local error state; the string is owned by
        // libsrt, valid until the next call on this thread, and copied at once.
        let (code, message) = unsafe {
            let code = ffi::srt_getlasterror(std::ptr::null_mut());
            let text = ffi::srt_getlasterror_str();
            let message =
                if text.is_null() { String::new() } else { CStr::from_ptr(text).to_string_lossy().into_owned() };
            (code, message)
        };
        SrtError::Call { operation, code, message }
    }

    /// libsrt's error code, for the calls that failed.
    pub fn code(&self) -> Option<i32> {
        match self {
            SrtError::Call { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// libsrt's version, as `major.minor.patch`.
pub fn version() -> String {
    // SAFETY: a pure function of the library.
    let version = unsafe { ffi::srt_getversion() };
    format!("{}.{}.{}", version >> 16, (version >> 8) & 0xff, version & 0xff)
}

/// Whether the socket `id` is of no more use: broken, closed, or gone, as is a caller's
/// that the gate let through but whose handshake then failed (a wrong passphrase).
pub fn is_gone(id: i32) -> bool {
    // SAFETY: a lookup by id; unknown ids give SRTS_NONEXIST.
    unsafe { ffi::srt_getsockstate(id) >= ffi::SRTS_BROKEN }
}

/// Starts libsrt once per process (it is never stopped: listeners may live as long as the
/// process) and sends its log to `tracing`.
fn startup() -> Result<(), SrtError> {
    static STARTED: OnceLock<bool> = OnceLock::new();
    let started = *STARTED.get_or_init(|| {
        // SAFETY: srt_startup may be called from any thread; the handler is a plain
        // function that lives as long as the program, with no opaque state.
        unsafe {
            ffi::srt_setloglevel(ffi::LOG_WARNING);
            ffi::srt_setlogflags(ffi::SRT_LOGF_DISABLE_ALL);
            ffi::srt_setloghandler(std::ptr::null_mut(), Some(log_handler));
            ffi::srt_startup() >= 0
        }
    });
    if started { Ok(()) } else { Err(SrtError::Startup) }
}

/// libsrt's log lines, at debug level: they describe peers' misbehaviour (or ours), and
/// the listener reports what matters itself.
unsafe extern "C" fn log_handler(
    _opaque: *mut c_void,
    level: c_int,
    _file: *const c_char,
    _line: c_int,
    area: *const c_char,
    message: *const c_char,
) {
    let text = |pointer: *const c_char| {
        if pointer.is_null() {
            String::new()
        } else {
            // SAFETY: libsrt passes NUL-terminated strings valid for the call.
            unsafe { CStr::from_ptr(pointer) }.to_string_lossy().trim_end().to_string()
        }
    };
    tracing::debug!(target: "libsrt", level, area = %text(area), "{}", text(message));
}

/// Sets an integer option.
fn set_int(socket: ffi::SrtSocket, option: c_int, value: i32, operation: &'static str) -> Result<(), SrtError> {
    // SAFETY: the value outlives the call and its size is the option's (int).
    let result =
        unsafe { ffi::srt_setsockflag(socket, option, (&raw const value).cast(), std::mem::size_of::<i32>() as c_int) };
    if result == ffi::SRT_ERROR { Err(SrtError::last(operation)) } else { Ok(()) }
}

/// Sets a boolean option (libsrt's are C `bool`s).
fn set_bool(socket: ffi::SrtSocket, option: c_int, value: bool, operation: &'static str) -> Result<(), SrtError> {
    // SAFETY: as in set_int, with a one-byte bool.
    let result = unsafe { ffi::srt_setsockflag(socket, option, (&raw const value).cast(), 1) };
    if result == ffi::SRT_ERROR { Err(SrtError::last(operation)) } else { Ok(()) }
}

/// Sets a string option.
fn set_string(socket: ffi::SrtSocket, option: c_int, value: &str, operation: &'static str) -> Result<(), SrtError> {
    let length = c_int::try_from(value.len()).map_err(|_| SrtError::Passphrase)?;
    // SAFETY: libsrt copies `length` bytes from the pointer during the call.
    let result = unsafe { ffi::srt_setsockflag(socket, option, value.as_ptr().cast(), length) };
    if result == ffi::SRT_ERROR { Err(SrtError::last(operation)) } else { Ok(()) }
}
