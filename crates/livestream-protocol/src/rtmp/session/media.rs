//! Media payloads: metadata from data messages, and aggregate messages split into their
//! audio, video and data sub-messages.

use bytes::Bytes;

use crate::media::amf0::{Amf0Reader, Amf0Value};
use crate::rtmp::chunk::message_type;

const SET_DATA_FRAME: &str = "@setDataFrame";
const ON_METADATA: &str = "onMetaData";
/// FLV tag header length inside an aggregate message.
const TAG_HEADER_LEN: usize = 11;
/// Back-pointer length after each sub-message of an aggregate message.
const BACK_POINTER_LEN: usize = 4;

/// The FLV script tag body in a data message payload: for `@setDataFrame` followed by
/// `onMetaData`, everything after `@setDataFrame`; for a bare `onMetaData`, the whole
/// payload. `None` for any other data message. Malformed AMF0 is `None` as well.
pub fn metadata_body(payload: &Bytes) -> Option<Bytes> {
    let mut reader = Amf0Reader::new(payload);
    match reader.read_value().ok()? {
        Amf0Value::String(name) if name == SET_DATA_FRAME => {
            let body_start = reader.position();
            match reader.read_value().ok()? {
                Amf0Value::String(name) if name == ON_METADATA => Some(payload.slice(body_start..)),
                _ => None,
            }
        }
        Amf0Value::String(name) if name == ON_METADATA => Some(payload.clone()),
        _ => None,
    }
}

/// One sub-message of an aggregate message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubMessage {
    /// Message type (audio, video or data).
    pub type_id: u8,
    /// Absolute timestamp: the aggregate's timestamp plus the offset from its first
    /// sub-message.
    pub timestamp: u32,
    /// The sub-message body.
    pub data: Bytes,
}

/// Splits an aggregate message payload into its sub-messages. `None` if malformed.
pub fn split_aggregate(aggregate_timestamp: u32, payload: &Bytes) -> Option<Vec<SubMessage>> {
    let mut messages = Vec::new();
    let mut offset = 0usize;
    let mut first_timestamp = None;
    while offset < payload.len() {
        let header = payload.get(offset..offset.checked_add(TAG_HEADER_LEN)?)?;
        let [type_id, s0, s1, s2, t0, t1, t2, t_ext, ..] = *header else { return None };
        let size = usize::try_from(u32::from_be_bytes([0, s0, s1, s2])).ok()?;
        let tag_timestamp = u32::from_be_bytes([t_ext, t0, t1, t2]);
        let body_start = offset + TAG_HEADER_LEN;
        let body_end = body_start.checked_add(size)?;
        let next = body_end.checked_add(BACK_POINTER_LEN)?;
        if next > payload.len() {
            return None;
        }
        let base = *first_timestamp.get_or_insert(tag_timestamp);
        if matches!(type_id, message_type::AUDIO | message_type::VIDEO | message_type::DATA_AMF0) {
            messages.push(SubMessage {
                type_id,
                timestamp: aggregate_timestamp.wrapping_add(tag_timestamp.wrapping_sub(base)),
                data: payload.slice(body_start..body_end),
            });
        }
        offset = next;
    }
    Some(messages)
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;
    use crate::media::amf0;

    fn encoded(values: &[Amf0Value]) -> Bytes {
        let mut out = BytesMut::new();
        amf0::encode_all(values, &mut out);
        out.freeze()
    }

    #[test]
    fn set_data_frame_is_stripped() {
        let metadata = Amf0Value::EcmaArray(vec![("width".into(), Amf0Value::Number(160.0))]);
        let payload = encoded(&[Amf0Value::string("@setDataFrame"), Amf0Value::string("onMetaData"), metadata.clone()]);
        let body = metadata_body(&payload).unwrap();
        assert_eq!(body, encoded(&[Amf0Value::string("onMetaData"), metadata]));
    }

    #[test]
    fn bare_on_metadata_is_kept_whole_and_others_ignored() {
        let payload = encoded(&[Amf0Value::string("onMetaData"), Amf0Value::object([])]);
        assert_eq!(metadata_body(&payload), Some(payload.clone()));
        assert_eq!(metadata_body(&encoded(&[Amf0Value::string("onTextData"), Amf0Value::Null])), None);
        assert_eq!(
            metadata_body(&encoded(&[Amf0Value::string("@setDataFrame"), Amf0Value::string("onCuePoint")])),
            None
        );
        assert_eq!(metadata_body(&Bytes::from_static(&[0x07])), None);
    }

    #[test]
    fn aggregate_sub_messages_get_offset_timestamps() {
        let mut payload = Vec::new();
        // video at tag time 1000, 2 bytes
        payload.extend_from_slice(&[9, 0, 0, 2, 0, 0x03, 0xE8, 0, 0, 0, 0, 0x17, 0x01]);
        payload.extend_from_slice(&[0, 0, 0, 13]);
        // audio at tag time 1040, 1 byte
        payload.extend_from_slice(&[8, 0, 0, 1, 0, 0x04, 0x10, 0, 0, 0, 0, 0xAF]);
        payload.extend_from_slice(&[0, 0, 0, 12]);
        let messages = split_aggregate(5000, &Bytes::from(payload)).unwrap();
        assert_eq!(
            messages,
            vec![
                SubMessage { type_id: 9, timestamp: 5000, data: Bytes::from_static(&[0x17, 0x01]) },
                SubMessage { type_id: 8, timestamp: 5040, data: Bytes::from_static(&[0xAF]) },
            ]
        );
    }

    #[test]
    fn truncated_aggregate_is_malformed() {
        assert_eq!(split_aggregate(0, &Bytes::from_static(&[9, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 1])), None);
        assert_eq!(split_aggregate(0, &Bytes::from_static(&[9, 0])), None);
    }
}
