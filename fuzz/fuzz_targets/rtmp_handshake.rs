//! The server handshake, fed in pieces of any size: never a panic, and once it is
//! complete it has consumed exactly C0, C1 and C2 and answered with S0, S1 and S2.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use livestream_protocol::rtmp::handshake::{HANDSHAKE_PACKET_SIZE, HandshakeStatus, ServerHandshake};

fuzz_target!(|data: &[u8]| {
    let Some((&step, data)) = data.split_first() else { return };
    let step = usize::from(step).max(1) * 32;
    let mut handshake = ServerHandshake::with_random_source(|bytes| bytes.fill(7));
    let mut input = BytesMut::new();
    let mut output = BytesMut::new();
    let mut fed = 0;
    for piece in data.chunks(step) {
        input.extend_from_slice(piece);
        fed += piece.len();
        match handshake.process(&mut input, &mut output) {
            Ok(HandshakeStatus::Done) => {
                assert_eq!(fed - input.len(), 1 + 2 * HANDSHAKE_PACKET_SIZE, "C0, C1 and C2 consumed");
                assert_eq!(output.len(), 1 + 2 * HANDSHAKE_PACKET_SIZE, "S0, S1 and S2 sent");
                return;
            }
            Ok(HandshakeStatus::InProgress) => {}
            Err(_) => return,
        }
    }
});
