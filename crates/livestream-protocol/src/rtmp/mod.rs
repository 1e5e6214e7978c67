//! RTMP, server side, as sans-IO pieces: the handshake, the chunk stream, control
//! messages, commands and the publish session that ties them together. The tokio
//! listener that carries bytes between a socket and a [`session::Session`] lives in the
//! worker.

pub mod chunk;
pub mod command;
pub mod control;
pub mod handshake;
pub mod session;
