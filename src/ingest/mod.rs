//! Ingest: thin listeners that hand each publish's media on as FLV tags through one
//! [`PublishHandler`](listener::PublishHandler).
//!
//! - [`listener`]: RTMP and RTMPS, a tokio listener that drives the sans-IO RTMP session of
//!   `livestream_protocol::rtmp` (handshake, chunk stream, control messages, commands, the
//!   publish session) over each connection.
//! - [`srt`]: SRT on libsrt (`livestream-srt`), its MPEG-TS turned into FLV tags by
//!   `livestream_protocol::media::ts_to_flv`.
//!
//! Both keep the same budget of connections that have not published yet ([`admission`]).

pub use livestream_protocol::rtmp::{chunk, command, control, handshake, relay, session};

mod admission;
pub mod listener;
pub mod srt;
