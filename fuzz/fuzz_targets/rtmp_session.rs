//! A whole publish session, from the handshake through commands to media, fed in pieces:
//! never a panic, whatever the client sends; a requested publish is accepted, so that what
//! follows it is reached too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livestream_protocol::rtmp::handshake::ServerHandshake;
use livestream_protocol::rtmp::session::{Session, SessionConfig, SessionEvent};

fuzz_target!(|data: &[u8]| {
    let Some((&step, data)) = data.split_first() else { return };
    let step = usize::from(step).max(1) * 16;
    let handshake = ServerHandshake::with_random_source(|bytes| bytes.fill(7));
    let mut session = Session::with_handshake(SessionConfig::default(), handshake);
    for piece in data.chunks(step) {
        if session.handle_input(piece).is_err() {
            return;
        }
        while let Some(event) = session.next_event() {
            if let SessionEvent::PublishRequested { .. } = event {
                if session.accept_publish().is_err() {
                    return;
                }
            }
        }
        while session.take_output().is_some() {}
        if session.is_closing() {
            return;
        }
    }
});
