//! AMF0: never a panic; whatever decodes encodes to bytes that decode to the same bytes
//! again.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use livestream_protocol::media::amf0;

fuzz_target!(|data: &[u8]| {
    let Ok(values) = amf0::decode_all(data) else { return };
    let mut encoded = BytesMut::new();
    amf0::encode_all(&values, &mut encoded);
    let again = amf0::decode_all(&encoded).expect("what we encode decodes");
    let mut reencoded = BytesMut::new();
    amf0::encode_all(&again, &mut reencoded);
    assert_eq!(encoded, reencoded, "encoding is stable");
});
