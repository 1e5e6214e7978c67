//! RTMP, server side, as sans-IO pieces: the handshake, the chunk stream, control
//! messages, commands, the publish session that ties them together, and the filter of a
//! relay that hands a publish on to another server. The tokio
//! listener that carries bytes between a socket and a [`session::Session`] lives in the
//! worker.

pub mod chunk;
pub mod command;
pub mod control;
pub mod handshake;
pub mod relay;
pub mod session;
