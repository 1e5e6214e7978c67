//! RTMP ingest: the protocol as sans-IO pieces (handshake, chunk stream, control messages,
//! commands, the publish session) and a thin tokio listener that connects publishers to
//! the rest of the worker, handing on each publish's media as FLV tags.
//!
//! Depends on `media` (AMF0 and FLV) only.

pub mod chunk;
pub mod command;
pub mod control;
pub mod handshake;
pub mod listener;
pub mod session;
