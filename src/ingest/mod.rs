//! RTMP ingest: the protocol as sans-IO pieces (AMF0, handshake, chunk stream, control
//! messages, commands, the publish session), an FLV writer for what comes out, and a thin
//! tokio listener that connects publishers to the rest of the worker.

pub mod amf0;
pub mod chunk;
pub mod command;
pub mod control;
pub mod flv;
pub mod handshake;
pub mod listener;
pub mod session;
