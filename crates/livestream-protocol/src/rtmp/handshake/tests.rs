//! Byte-level handshake tests. The expected digests were computed independently with
//! HMAC-SHA256 over the same deterministic packets.

use super::*;

fn deterministic_fill(buffer: &mut [u8]) {
    for (index, byte) in buffer.iter_mut().enumerate() {
        *byte = (index * 7 + 3) as u8;
    }
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
}

/// A C1 in the style ffmpeg sends: version 9.0.124.2 and a patterned body.
fn client_c1_template() -> [u8; HANDSHAKE_PACKET_SIZE] {
    let mut c1 = [0u8; HANDSHAKE_PACKET_SIZE];
    c1[4..8].copy_from_slice(&[9, 0, 124, 2]);
    for (index, byte) in c1.iter_mut().enumerate().skip(8) {
        *byte = (index * 13 + 1) as u8;
    }
    c1
}

fn run_handshake(c0c1: &[u8]) -> (ServerHandshake, BytesMut) {
    let mut handshake = ServerHandshake::with_random_source(deterministic_fill);
    let mut input = BytesMut::from(c0c1);
    let mut output = BytesMut::new();
    assert_eq!(handshake.process(&mut input, &mut output).unwrap(), HandshakeStatus::InProgress);
    assert!(input.is_empty());
    (handshake, output)
}

#[test]
fn plain_form_echoes_c1_in_s2() {
    let mut c0c1 = vec![3u8];
    let mut c1: Vec<u8> = (0..HANDSHAKE_PACKET_SIZE).map(|i| (i % 251) as u8).collect();
    c1[4..8].copy_from_slice(&[0, 0, 0, 0]);
    c0c1.extend_from_slice(&c1);

    let (mut handshake, output) = run_handshake(&c0c1);
    assert_eq!(handshake.form(), Some(HandshakeForm::Plain));
    assert_eq!(output.len(), 1 + 2 * HANDSHAKE_PACKET_SIZE);
    assert_eq!(output[0], 3);
    let s1 = &output[1..1 + HANDSHAKE_PACKET_SIZE];
    assert_eq!(&s1[..8], &[0u8; 8], "S1 time and zero fields");
    let mut expected_random = [0u8; HANDSHAKE_PACKET_SIZE - 8];
    deterministic_fill(&mut expected_random);
    assert_eq!(&s1[8..], &expected_random[..]);
    assert_eq!(&output[1 + HANDSHAKE_PACKET_SIZE..], &c1[..], "S2 echoes C1");

    // C2 arrives in two pieces, followed by the first chunk-stream byte.
    let mut input = BytesMut::from(&[0u8; 1000][..]);
    let mut more_output = BytesMut::new();
    assert_eq!(handshake.process(&mut input, &mut more_output).unwrap(), HandshakeStatus::InProgress);
    input.extend_from_slice(&[0u8; HANDSHAKE_PACKET_SIZE - 1000]);
    input.extend_from_slice(&[0x02]);
    assert_eq!(handshake.process(&mut input, &mut more_output).unwrap(), HandshakeStatus::Done);
    assert!(more_output.is_empty());
    assert_eq!(&input[..], &[0x02], "bytes after C2 are left for the chunk decoder");
}

#[test]
fn c0_c1_may_arrive_byte_by_byte() {
    let mut handshake = ServerHandshake::with_random_source(deterministic_fill);
    let mut input = BytesMut::new();
    let mut output = BytesMut::new();
    input.extend_from_slice(&[3]);
    assert_eq!(handshake.process(&mut input, &mut output).unwrap(), HandshakeStatus::InProgress);
    input.extend_from_slice(&[0u8; HANDSHAKE_PACKET_SIZE - 1]);
    assert_eq!(handshake.process(&mut input, &mut output).unwrap(), HandshakeStatus::InProgress);
    assert!(output.is_empty(), "nothing is sent before C1 is complete");
    input.extend_from_slice(&[0u8]);
    assert_eq!(handshake.process(&mut input, &mut output).unwrap(), HandshakeStatus::InProgress);
    assert_eq!(output.len(), 1 + 2 * HANDSHAKE_PACKET_SIZE);
}

#[test]
fn wrong_version_is_rejected() {
    let mut handshake = ServerHandshake::with_random_source(deterministic_fill);
    let mut input = BytesMut::from(&b"GET / HTTP/1.1\r\n"[..]);
    let mut output = BytesMut::new();
    assert_eq!(handshake.process(&mut input, &mut output), Err(HandshakeError::UnsupportedVersion(b'G')));
    let mut rtmpe = BytesMut::from(&[6u8][..]);
    let mut handshake = ServerHandshake::with_random_source(deterministic_fill);
    assert_eq!(handshake.process(&mut rtmpe, &mut output), Err(HandshakeError::UnsupportedVersion(6)));
}

struct DigestVector {
    scheme: DigestScheme,
    client_offset: usize,
    client_digest: &'static str,
    s1_offset: usize,
    s1_digest: &'static str,
    s2_signature: &'static str,
}

const VECTORS: [DigestVector; 2] = [
    DigestVector {
        scheme: DigestScheme::First,
        client_offset: 510,
        client_digest: "487d60b2b5c92c2bb5a7631528f2b2928ff4621c14b540b699d4430d448f8ed9",
        s1_offset: 66,
        s1_digest: "c0d2dd4a3a3a78861d0e0e7279185b9cedadfd93b5b46441b1e5375e620f3a81",
        s2_signature: "71e7add5e2b2c2b5adb40b9b66feac21d3f7e9ce2a2ea82587550fa57636af99",
    },
    DigestVector {
        scheme: DigestScheme::Second,
        client_offset: 1066,
        client_digest: "168d5ba8a3fcbc44b9c7fdea1cdd52b3d9eb92e8998c41c1d7ca02b5929986c8",
        s1_offset: 1014,
        s1_digest: "9079902dba8d06dfdae08c100c6769a04efa26fa396a7ecbb3f775daea3ef615",
        s2_signature: "82bc2e2728ad67e854aea151b3846efeb664f45c269f10032dcc67e008e4eca7",
    },
];

#[test]
fn digest_form_answers_with_signed_s1_and_s2() {
    for vector in VECTORS {
        let mut c1 = client_c1_template();
        assert_eq!(vector.scheme.digest_offset(&c1), vector.client_offset);
        c1[vector.client_offset..vector.client_offset + 32].copy_from_slice(&hex(vector.client_digest));
        let mut c0c1 = vec![3u8];
        c0c1.extend_from_slice(&c1);

        let (_, output) = run_handshake(&c0c1);
        let scheme = vector.scheme;
        assert_eq!(output[0], 3);
        let s1 = &output[1..1 + HANDSHAKE_PACKET_SIZE];
        let s2 = &output[1 + HANDSHAKE_PACKET_SIZE..];

        assert_eq!(&s1[..8], &[0, 0, 0, 0, 4, 5, 0, 1], "{scheme:?}: S1 time and server version");
        let mut expected_s1 = [0u8; HANDSHAKE_PACKET_SIZE];
        deterministic_fill(&mut expected_s1[8..]);
        expected_s1[4..8].copy_from_slice(&[4, 5, 0, 1]);
        expected_s1[vector.s1_offset..vector.s1_offset + 32].copy_from_slice(&hex(vector.s1_digest));
        assert_eq!(s1, &expected_s1[..], "{scheme:?}: S1 bytes with the server digest");

        let mut expected_s2 = [0u8; HANDSHAKE_PACKET_SIZE];
        deterministic_fill(&mut expected_s2);
        expected_s2[1504..].copy_from_slice(&hex(vector.s2_signature));
        assert_eq!(s2, &expected_s2[..], "{scheme:?}: S2 bytes with the signature");
    }
}

#[test]
fn digest_form_is_detected_at_both_schemes() {
    for vector in VECTORS {
        let mut c1 = client_c1_template();
        c1[vector.client_offset..vector.client_offset + 32].copy_from_slice(&hex(vector.client_digest));
        let found = find_client_digest(&c1).expect("digest found");
        assert_eq!(found.0, vector.scheme);
        assert_eq!(found.1.to_vec(), hex(vector.client_digest));
        let mut c0c1 = vec![3u8];
        c0c1.extend_from_slice(&c1);
        let (handshake, _) = run_handshake(&c0c1);
        assert_eq!(handshake.form(), Some(HandshakeForm::Digest(vector.scheme)));
    }
}

#[test]
fn nonzero_version_without_valid_digest_falls_back_to_plain() {
    let c1 = client_c1_template();
    assert_eq!(find_client_digest(&c1), None);
    let mut c0c1 = vec![3u8];
    c0c1.extend_from_slice(&c1);
    let (handshake, output) = run_handshake(&c0c1);
    assert_eq!(handshake.form(), Some(HandshakeForm::Plain));
    assert_eq!(&output[1 + HANDSHAKE_PACKET_SIZE..], &c1[..]);
}
