//! RTMP ingest: a thin tokio listener that drives the sans-IO RTMP session of
//! `livestream_protocol::rtmp` (handshake, chunk stream, control messages, commands, the
//! publish session) over each connection and hands on each publish's media as FLV tags.

pub use livestream_protocol::rtmp::{chunk, command, control, handshake, relay, session};

pub mod listener;
