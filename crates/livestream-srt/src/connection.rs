//! An accepted SRT connection: its stream ID and its messages (in live mode, each the
//! payload of one SRT data packet, usually seven MPEG-TS packets).

use std::ffi::{c_char, c_int};
use std::time::Duration;

use crate::{SrtError, ffi, set_bool, set_int};

/// The largest message of live mode (SRT's maximum payload in a 1500-byte MTU).
pub const MAX_MESSAGE_LEN: usize = 1456;

/// An accepted connection; closed when dropped.
#[derive(Debug)]
pub struct Connection {
    socket: ffi::SrtSocket,
}

/// What [`Connection::recv`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// A message of this many bytes.
    Message(usize),
    /// Nothing within the timeout.
    Nothing,
    /// The connection is gone: the peer closed it, or was silent past the peer idle
    /// timeout (libsrt does not say which).
    Closed,
}

impl Connection {
    pub(crate) fn from_accepted(socket: ffi::SrtSocket) -> Self {
        Self { socket }
    }

    /// The socket's id, as the gate saw it in [`Caller::socket`](crate::Caller::socket).
    pub fn id(&self) -> i32 {
        self.socket
    }

    /// The caller's stream ID. May hold secrets: never log it.
    pub fn stream_id(&self) -> Result<String, SrtError> {
        let mut buffer = [0u8; 513];
        let mut length = buffer.len() as c_int;
        // SAFETY: the buffer has room for `length` bytes, which libsrt fills.
        let result =
            unsafe { ffi::srt_getsockflag(self.socket, ffi::SRTO_STREAMID, buffer.as_mut_ptr().cast(), &mut length) };
        if result == ffi::SRT_ERROR {
            return Err(SrtError::last("get stream ID"));
        }
        let length = usize::try_from(length).unwrap_or_default().min(buffer.len());
        Ok(String::from_utf8_lossy(buffer.get(..length).unwrap_or_default()).into_owned())
    }

    /// Makes [`recv`](Self::recv) wait at most `timeout` for a message.
    pub fn set_receive_timeout(&self, timeout: Duration) -> Result<(), SrtError> {
        set_bool(self.socket, ffi::SRTO_RCVSYN, true, "set blocking receive")?;
        let millis = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX).max(1);
        set_int(self.socket, ffi::SRTO_RCVTIMEO, millis, "set receive timeout")
    }

    /// Receives one message into `buffer` (at least [`MAX_MESSAGE_LEN`] bytes, or longer
    /// messages are cut), waiting up to the receive timeout.
    pub fn recv(&self, buffer: &mut [u8]) -> Result<Received, SrtError> {
        let length = c_int::try_from(buffer.len()).unwrap_or(c_int::MAX);
        // SAFETY: libsrt writes at most `length` bytes into the buffer.
        let count = unsafe { ffi::srt_recvmsg(self.socket, buffer.as_mut_ptr().cast::<c_char>(), length) };
        if count >= 0 {
            return Ok(Received::Message(usize::try_from(count).unwrap_or_default()));
        }
        let error = SrtError::last("receive");
        match error.code() {
            Some(ffi::SRT_ETIMEOUT | ffi::SRT_EASYNCRCV) => Ok(Received::Nothing),
            Some(ffi::SRT_ECONNLOST | ffi::SRT_ENOCONN | ffi::SRT_EINVSOCK) => Ok(Received::Closed),
            _ => Err(error),
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // SAFETY: the socket belongs to this Connection and is closed once.
        unsafe { ffi::srt_close(self.socket) };
    }
}
