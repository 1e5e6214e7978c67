//! Sans-IO server side of the RTMP handshake: C0+C1 in, S0+S1+S2 out, then C2 in.
//!
//! Two forms are answered:
//! - plain: C1's version field is zero; S1 is zeros plus random bytes and S2 echoes C1;
//! - digest (the Flash Player 9 scheme OBS, librtmp and ffmpeg use): C1 carries an
//!   HMAC-SHA256 digest keyed with the Flash Player key at one of two offset schemes. S1 then
//!   carries a digest keyed with the Flash Media Server key at the same scheme, and S2 ends
//!   with a signature keyed with HMAC(full server key, client digest).
//!
//! A C1 with a non-zero version but no valid digest is answered in the plain form, as other
//! servers do. C2 is read and not checked.

use bytes::{Buf, BufMut, BytesMut};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Size of C1, C2, S1 and S2.
pub const HANDSHAKE_PACKET_SIZE: usize = 1536;
/// The only protocol version accepted in C0 (plain RTMP; RTMPE is not supported).
pub const RTMP_VERSION: u8 = 3;

const DIGEST_SIZE: usize = 32;
/// The value placed in S1's version field in the digest form.
const SERVER_VERSION: [u8; 4] = [0x04, 0x05, 0x00, 0x01];
/// Length of the public part of the server key (the ASCII name) used to sign S1.
const SERVER_KEY_PUBLIC_LEN: usize = 36;
/// Length of the public part of the client key (the ASCII name) used to sign C1.
const CLIENT_KEY_PUBLIC_LEN: usize = 30;

/// "Genuine Adobe Flash Media Server 001" followed by 32 key bytes.
const SERVER_KEY: [u8; 68] = *b"Genuine Adobe Flash Media Server 001\
\xf0\xee\xc2\x4a\x80\x68\xbe\xe8\x2e\x00\xd0\xd1\x02\x9e\x7e\x57\
\x6e\xec\x5d\x2d\x29\x80\x6f\xab\x93\xb8\xe6\x36\xcf\xeb\x31\xae";

/// "Genuine Adobe Flash Player 001" followed by the same 32 key bytes.
const CLIENT_KEY: [u8; 62] = *b"Genuine Adobe Flash Player 001\
\xf0\xee\xc2\x4a\x80\x68\xbe\xe8\x2e\x00\xd0\xd1\x02\x9e\x7e\x57\
\x6e\xec\x5d\x2d\x29\x80\x6f\xab\x93\xb8\xe6\x36\xcf\xeb\x31\xae";

/// Fills a buffer with random bytes; replaceable so tests are deterministic.
pub type RandomSource = fn(&mut [u8]);

/// Why the handshake failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// C0 named a version other than 3 (for example RTMPE, or not RTMP at all).
    #[error("unsupported RTMP version {0} in C0 (only 3 is supported)")]
    UnsupportedVersion(u8),
}

/// Where the handshake stands after consuming input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeStatus {
    /// More bytes are needed.
    InProgress,
    /// C2 has been received; the bytes that follow are chunk stream.
    Done,
}

/// Which form of handshake the client used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeForm {
    /// Zero version field, or no valid digest: S2 echoes C1.
    Plain,
    /// Flash Player digest at the given offset scheme.
    Digest(DigestScheme),
}

/// The two places a digest can sit in a handshake packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestScheme {
    /// Offset from bytes 8..12, digest in 12..772.
    First,
    /// Offset from bytes 772..776, digest in 776..1536.
    Second,
}

impl DigestScheme {
    /// Byte offset of the digest inside `packet` for this scheme.
    pub fn digest_offset(self, packet: &[u8; HANDSHAKE_PACKET_SIZE]) -> usize {
        let (offset_field, base) = match self {
            DigestScheme::First => (8, 12),
            DigestScheme::Second => (772, 776),
        };
        let sum: usize = packet.iter().skip(offset_field).take(4).map(|byte| usize::from(*byte)).sum();
        sum % 728 + base
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitingC0C1,
    AwaitingC2,
    Done,
}

/// The server side of one handshake.
#[derive(Debug)]
pub struct ServerHandshake {
    state: State,
    form: Option<HandshakeForm>,
    fill_random: RandomSource,
}

impl Default for ServerHandshake {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerHandshake {
    /// A handshake that fills S1 and S2 from the thread-local random generator.
    pub fn new() -> Self {
        Self::with_random_source(fill_from_thread_rng)
    }

    /// A handshake that fills S1 and S2 from `fill_random`.
    pub fn with_random_source(fill_random: RandomSource) -> Self {
        Self { state: State::AwaitingC0C1, form: None, fill_random }
    }

    /// The form the client used, once C1 has been read.
    pub fn form(&self) -> Option<HandshakeForm> {
        self.form
    }

    /// Consumes what it can from `input`, appending S0+S1+S2 to `output` once C0+C1 are in.
    /// Leaves any bytes after C2 in `input`.
    pub fn process(&mut self, input: &mut BytesMut, output: &mut BytesMut) -> Result<HandshakeStatus, HandshakeError> {
        if self.state == State::AwaitingC0C1 {
            let Some(&version) = input.first() else {
                return Ok(HandshakeStatus::InProgress);
            };
            if version != RTMP_VERSION {
                return Err(HandshakeError::UnsupportedVersion(version));
            }
            if input.len() < 1 + HANDSHAKE_PACKET_SIZE {
                return Ok(HandshakeStatus::InProgress);
            }
            input.advance(1);
            let mut c1 = [0u8; HANDSHAKE_PACKET_SIZE];
            input.copy_to_slice(&mut c1);
            let form = self.respond(&c1, output);
            self.form = Some(form);
            self.state = State::AwaitingC2;
        }
        if self.state == State::AwaitingC2 {
            if input.len() < HANDSHAKE_PACKET_SIZE {
                return Ok(HandshakeStatus::InProgress);
            }
            input.advance(HANDSHAKE_PACKET_SIZE);
            self.state = State::Done;
        }
        Ok(HandshakeStatus::Done)
    }

    fn respond(&self, c1: &[u8; HANDSHAKE_PACKET_SIZE], output: &mut BytesMut) -> HandshakeForm {
        output.reserve(1 + 2 * HANDSHAKE_PACKET_SIZE);
        output.put_u8(RTMP_VERSION);
        let client_version_is_zero = c1.get(4..8) == Some(&[0, 0, 0, 0][..]);
        let client_digest = if client_version_is_zero { None } else { find_client_digest(c1) };
        match client_digest {
            None => {
                let mut s1 = [0u8; HANDSHAKE_PACKET_SIZE];
                if let Some(random) = s1.get_mut(8..) {
                    (self.fill_random)(random);
                }
                output.put_slice(&s1);
                output.put_slice(c1);
                HandshakeForm::Plain
            }
            Some((scheme, digest)) => {
                output.put_slice(&self.digest_s1(scheme));
                output.put_slice(&self.digest_s2(&digest));
                HandshakeForm::Digest(scheme)
            }
        }
    }

    fn digest_s1(&self, scheme: DigestScheme) -> [u8; HANDSHAKE_PACKET_SIZE] {
        let mut s1 = [0u8; HANDSHAKE_PACKET_SIZE];
        if let Some(random) = s1.get_mut(8..) {
            (self.fill_random)(random);
        }
        if let Some(version) = s1.get_mut(4..8) {
            version.copy_from_slice(&SERVER_VERSION);
        }
        let offset = scheme.digest_offset(&s1);
        let digest = packet_digest(&s1, offset, server_public_key());
        if let Some(slot) = s1.get_mut(offset..offset + DIGEST_SIZE) {
            slot.copy_from_slice(&digest);
        }
        s1
    }

    fn digest_s2(&self, client_digest: &[u8; DIGEST_SIZE]) -> [u8; HANDSHAKE_PACKET_SIZE] {
        let mut s2 = [0u8; HANDSHAKE_PACKET_SIZE];
        (self.fill_random)(&mut s2);
        let signing_key = hmac_sha256(&SERVER_KEY, &[client_digest]);
        let signed_len = HANDSHAKE_PACKET_SIZE - DIGEST_SIZE;
        let (body, signature) = s2.split_at_mut(signed_len);
        signature.copy_from_slice(&hmac_sha256(&signing_key, &[body]));
        s2
    }
}

/// The client's digest and its scheme, if C1 carries a valid one at either scheme.
pub fn find_client_digest(c1: &[u8; HANDSHAKE_PACKET_SIZE]) -> Option<(DigestScheme, [u8; DIGEST_SIZE])> {
    [DigestScheme::First, DigestScheme::Second].into_iter().find_map(|scheme| {
        let offset = scheme.digest_offset(c1);
        let expected = packet_digest(c1, offset, client_public_key());
        let present = c1.get(offset..offset + DIGEST_SIZE)?;
        (present == expected).then_some((scheme, expected))
    })
}

/// HMAC-SHA256 over `packet` without the 32 bytes at `offset`.
fn packet_digest(packet: &[u8; HANDSHAKE_PACKET_SIZE], offset: usize, key: &[u8]) -> [u8; DIGEST_SIZE] {
    let before = packet.get(..offset).unwrap_or_default();
    let after = packet.get(offset + DIGEST_SIZE..).unwrap_or_default();
    hmac_sha256(key, &[before, after])
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; DIGEST_SIZE] {
    // HMAC accepts keys of any length, so construction cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return [0u8; DIGEST_SIZE];
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

fn server_public_key() -> &'static [u8] {
    SERVER_KEY.get(..SERVER_KEY_PUBLIC_LEN).unwrap_or_default()
}

fn client_public_key() -> &'static [u8] {
    CLIENT_KEY.get(..CLIENT_KEY_PUBLIC_LEN).unwrap_or_default()
}

fn fill_from_thread_rng(buffer: &mut [u8]) {
    rand::fill(buffer);
}

#[cfg(test)]
mod tests;
