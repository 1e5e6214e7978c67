//! AMF0 (Action Message Format, version 0): the value encoding RTMP commands and data
//! messages use.
//!
//! Supported: number, boolean, string, long string, object, null, undefined, ECMA array,
//! strict array and the object-end marker that terminates objects and ECMA arrays.
//! References, dates, typed objects, XML, movie clips and the AMF3 switch are rejected with
//! [`Amf0Error::UnsupportedMarker`]. Nesting is bounded by [`MAX_NESTING_DEPTH`].

use bytes::{BufMut, BytesMut};

/// Deepest nesting of objects and arrays the decoder accepts.
pub const MAX_NESTING_DEPTH: usize = 32;

/// AMF0 type markers.
mod marker {
    pub const NUMBER: u8 = 0x00;
    pub const BOOLEAN: u8 = 0x01;
    pub const STRING: u8 = 0x02;
    pub const OBJECT: u8 = 0x03;
    pub const NULL: u8 = 0x05;
    pub const UNDEFINED: u8 = 0x06;
    pub const ECMA_ARRAY: u8 = 0x08;
    pub const OBJECT_END: u8 = 0x09;
    pub const STRICT_ARRAY: u8 = 0x0A;
    pub const LONG_STRING: u8 = 0x0C;
}

/// One decoded AMF0 value. Object and ECMA-array properties keep their wire order.
#[derive(Debug, Clone, PartialEq)]
pub enum Amf0Value {
    /// IEEE 754 double.
    Number(f64),
    /// Boolean.
    Boolean(bool),
    /// UTF-8 string (short or long form on the wire).
    String(String),
    /// Anonymous object: ordered key/value pairs.
    Object(Vec<(String, Amf0Value)>),
    /// Null.
    Null,
    /// Undefined.
    Undefined,
    /// ECMA (associative) array: ordered key/value pairs.
    EcmaArray(Vec<(String, Amf0Value)>),
    /// Strict (dense) array.
    StrictArray(Vec<Amf0Value>),
}

impl Amf0Value {
    /// The string, if this is a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Amf0Value::String(text) => Some(text),
            _ => None,
        }
    }

    /// The number, if this is a number value.
    pub fn as_number(&self) -> Option<f64> {
        match self {
            Amf0Value::Number(number) => Some(*number),
            _ => None,
        }
    }

    /// The value of property `key`, if this is an object or ECMA array that has it.
    pub fn property(&self, key: &str) -> Option<&Amf0Value> {
        match self {
            Amf0Value::Object(properties) | Amf0Value::EcmaArray(properties) => {
                properties.iter().find(|(name, _)| name == key).map(|(_, value)| value)
            }
            _ => None,
        }
    }

    /// Shorthand for an object built from `(&str, value)` pairs.
    pub fn object<'a>(properties: impl IntoIterator<Item = (&'a str, Amf0Value)>) -> Amf0Value {
        Amf0Value::Object(properties.into_iter().map(|(key, value)| (key.to_owned(), value)).collect())
    }

    /// Shorthand for a string value.
    pub fn string(text: impl Into<String>) -> Amf0Value {
        Amf0Value::String(text.into())
    }
}

/// Why AMF0 bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Amf0Error {
    /// The input ended inside a value.
    #[error("AMF0 input ends inside a value")]
    Truncated,
    /// A marker this decoder does not support (reference, date, typed object, ...).
    #[error("unsupported AMF0 type marker 0x{0:02x}")]
    UnsupportedMarker(u8),
    /// An object-end marker where a value was expected.
    #[error("unexpected AMF0 object-end marker")]
    UnexpectedObjectEnd,
    /// Objects or arrays nested deeper than [`MAX_NESTING_DEPTH`].
    #[error("AMF0 values nested deeper than {MAX_NESTING_DEPTH}")]
    TooDeep,
}

/// Decodes AMF0 values one after another from a byte slice.
#[derive(Debug, Clone)]
pub struct Amf0Reader<'a> {
    input: &'a [u8],
    position: usize,
}

impl<'a> Amf0Reader<'a> {
    /// A reader positioned at the start of `input`.
    pub fn new(input: &'a [u8]) -> Self {
        Self { input, position: 0 }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.position
    }

    /// True once every byte has been consumed.
    pub fn is_empty(&self) -> bool {
        self.position >= self.input.len()
    }

    /// Decodes the next value.
    pub fn read_value(&mut self) -> Result<Amf0Value, Amf0Error> {
        self.read_value_at_depth(0)
    }

    /// Decodes every remaining value.
    pub fn read_all(&mut self) -> Result<Vec<Amf0Value>, Amf0Error> {
        let mut values = Vec::new();
        while !self.is_empty() {
            values.push(self.read_value()?);
        }
        Ok(values)
    }

    fn read_value_at_depth(&mut self, depth: usize) -> Result<Amf0Value, Amf0Error> {
        if depth > MAX_NESTING_DEPTH {
            return Err(Amf0Error::TooDeep);
        }
        let type_marker = self.read_u8()?;
        match type_marker {
            marker::NUMBER => Ok(Amf0Value::Number(f64::from_be_bytes(self.read_array::<8>()?))),
            marker::BOOLEAN => Ok(Amf0Value::Boolean(self.read_u8()? != 0)),
            marker::STRING => {
                let length = usize::from(u16::from_be_bytes(self.read_array::<2>()?));
                Ok(Amf0Value::String(self.read_utf8(length)?))
            }
            marker::LONG_STRING => {
                let length = self.read_u32_length()?;
                Ok(Amf0Value::String(self.read_utf8(length)?))
            }
            marker::OBJECT => Ok(Amf0Value::Object(self.read_properties(depth)?)),
            marker::NULL => Ok(Amf0Value::Null),
            marker::UNDEFINED => Ok(Amf0Value::Undefined),
            marker::ECMA_ARRAY => {
                // The count is only a hint; the array ends at the object-end marker.
                let _count_hint = self.read_array::<4>()?;
                Ok(Amf0Value::EcmaArray(self.read_properties(depth)?))
            }
            marker::STRICT_ARRAY => {
                let count = self.read_u32_length()?;
                // Every value takes at least one byte, which bounds the allocation.
                let mut items = Vec::with_capacity(count.min(self.remaining()));
                for _ in 0..count {
                    items.push(self.read_value_at_depth(depth + 1)?);
                }
                Ok(Amf0Value::StrictArray(items))
            }
            marker::OBJECT_END => Err(Amf0Error::UnexpectedObjectEnd),
            other => Err(Amf0Error::UnsupportedMarker(other)),
        }
    }

    fn read_properties(&mut self, depth: usize) -> Result<Vec<(String, Amf0Value)>, Amf0Error> {
        let mut properties = Vec::new();
        loop {
            let key_length = usize::from(u16::from_be_bytes(self.read_array::<2>()?));
            if key_length == 0 && self.peek_u8() == Some(marker::OBJECT_END) {
                self.position += 1;
                return Ok(properties);
            }
            let key = self.read_utf8(key_length)?;
            let value = self.read_value_at_depth(depth + 1)?;
            properties.push((key, value));
        }
    }

    fn remaining(&self) -> usize {
        self.input.len().saturating_sub(self.position)
    }

    fn peek_u8(&self) -> Option<u8> {
        self.input.get(self.position).copied()
    }

    fn read_u8(&mut self) -> Result<u8, Amf0Error> {
        let byte = self.peek_u8().ok_or(Amf0Error::Truncated)?;
        self.position += 1;
        Ok(byte)
    }

    fn read_slice(&mut self, length: usize) -> Result<&'a [u8], Amf0Error> {
        let end = self.position.checked_add(length).ok_or(Amf0Error::Truncated)?;
        let slice = self.input.get(self.position..end).ok_or(Amf0Error::Truncated)?;
        self.position = end;
        Ok(slice)
    }

    fn read_array<const N: usize>(&mut self) -> Result<[u8; N], Amf0Error> {
        let slice = self.read_slice(N)?;
        let mut array = [0u8; N];
        array.copy_from_slice(slice);
        Ok(array)
    }

    fn read_u32_length(&mut self) -> Result<usize, Amf0Error> {
        let length = u32::from_be_bytes(self.read_array::<4>()?);
        usize::try_from(length).map_err(|_| Amf0Error::Truncated)
    }

    fn read_utf8(&mut self, length: usize) -> Result<String, Amf0Error> {
        let bytes = self.read_slice(length)?;
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }
}

/// Decodes every value in `input`.
pub fn decode_all(input: &[u8]) -> Result<Vec<Amf0Value>, Amf0Error> {
    Amf0Reader::new(input).read_all()
}

/// Appends the AMF0 encoding of `value` to `out`.
///
/// Strings longer than 65535 bytes use the long-string form. Property keys are limited to
/// 65535 bytes by the format; longer keys are cut at the last character boundary that fits.
pub fn encode(value: &Amf0Value, out: &mut BytesMut) {
    match value {
        Amf0Value::Number(number) => {
            out.put_u8(marker::NUMBER);
            out.put_f64(*number);
        }
        Amf0Value::Boolean(flag) => {
            out.put_u8(marker::BOOLEAN);
            out.put_u8(u8::from(*flag));
        }
        Amf0Value::String(text) => match u16::try_from(text.len()) {
            Ok(length) => {
                out.put_u8(marker::STRING);
                out.put_u16(length);
                out.put_slice(text.as_bytes());
            }
            Err(_) => {
                let truncated = truncate_to_boundary(text, u32::MAX as usize);
                out.put_u8(marker::LONG_STRING);
                out.put_u32(u32::try_from(truncated.len()).unwrap_or(u32::MAX));
                out.put_slice(truncated.as_bytes());
            }
        },
        Amf0Value::Object(properties) => {
            out.put_u8(marker::OBJECT);
            encode_properties(properties, out);
        }
        Amf0Value::Null => out.put_u8(marker::NULL),
        Amf0Value::Undefined => out.put_u8(marker::UNDEFINED),
        Amf0Value::EcmaArray(properties) => {
            out.put_u8(marker::ECMA_ARRAY);
            out.put_u32(u32::try_from(properties.len()).unwrap_or(u32::MAX));
            encode_properties(properties, out);
        }
        Amf0Value::StrictArray(items) => {
            out.put_u8(marker::STRICT_ARRAY);
            out.put_u32(u32::try_from(items.len()).unwrap_or(u32::MAX));
            for item in items {
                encode(item, out);
            }
        }
    }
}

/// Appends the AMF0 encoding of each value in order.
pub fn encode_all(values: &[Amf0Value], out: &mut BytesMut) {
    for value in values {
        encode(value, out);
    }
}

fn encode_properties(properties: &[(String, Amf0Value)], out: &mut BytesMut) {
    for (key, value) in properties {
        let key = truncate_to_boundary(key, usize::from(u16::MAX));
        out.put_u16(u16::try_from(key.len()).unwrap_or(u16::MAX));
        out.put_slice(key.as_bytes());
        encode(value, out);
    }
    out.put_u16(0);
    out.put_u8(marker::OBJECT_END);
}

fn truncate_to_boundary(text: &str, max_len: usize) -> &str {
    if text.len() <= max_len {
        return text;
    }
    let mut end = max_len;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(value: &Amf0Value) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode(value, &mut out);
        out.to_vec()
    }

    #[test]
    fn number_is_marker_and_big_endian_double() {
        let bytes = encoded(&Amf0Value::Number(1.0));
        assert_eq!(bytes, [0x00, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(decode_all(&bytes).unwrap(), vec![Amf0Value::Number(1.0)]);
    }

    #[test]
    fn boolean_null_undefined() {
        assert_eq!(encoded(&Amf0Value::Boolean(true)), [0x01, 0x01]);
        assert_eq!(encoded(&Amf0Value::Boolean(false)), [0x01, 0x00]);
        assert_eq!(encoded(&Amf0Value::Null), [0x05]);
        assert_eq!(encoded(&Amf0Value::Undefined), [0x06]);
        assert_eq!(
            decode_all(&[0x01, 0x07, 0x05, 0x06]).unwrap(),
            vec![Amf0Value::Boolean(true), Amf0Value::Null, Amf0Value::Undefined]
        );
    }

    #[test]
    fn short_string() {
        let bytes = encoded(&Amf0Value::string("connect"));
        assert_eq!(bytes, b"\x02\x00\x07connect");
        assert_eq!(decode_all(&bytes).unwrap(), vec![Amf0Value::string("connect")]);
    }

    #[test]
    fn long_string_round_trip_and_decode() {
        let text = "x".repeat(70_000);
        let bytes = encoded(&Amf0Value::string(text.clone()));
        assert_eq!(bytes[..5], [0x0C, 0x00, 0x01, 0x11, 0x70]);
        assert_eq!(bytes.len(), 5 + 70_000);
        assert_eq!(decode_all(&bytes).unwrap(), vec![Amf0Value::String(text)]);
        assert_eq!(decode_all(b"\x0C\x00\x00\x00\x02hi").unwrap(), vec![Amf0Value::string("hi")]);
    }

    #[test]
    fn object_with_end_marker() {
        let value = Amf0Value::object([("app", Amf0Value::string("live")), ("n", Amf0Value::Number(0.0))]);
        let bytes = encoded(&value);
        let expected: Vec<u8> = [
            &[0x03][..],
            b"\x00\x03app\x02\x00\x04live",
            b"\x00\x01n\x00\x00\x00\x00\x00\x00\x00\x00\x00",
            &[0x00, 0x00, 0x09],
        ]
        .concat();
        assert_eq!(bytes, expected);
        let decoded = decode_all(&bytes).unwrap();
        assert_eq!(decoded, vec![value.clone()]);
        assert_eq!(decoded[0].property("app").and_then(Amf0Value::as_str), Some("live"));
    }

    #[test]
    fn ecma_array_ignores_count_hint() {
        let bytes: Vec<u8> = [&[0x08, 0x00, 0x00, 0x00, 0x05][..], b"\x00\x01a\x01\x01", &[0x00, 0x00, 0x09]].concat();
        let decoded = decode_all(&bytes).unwrap();
        assert_eq!(decoded, vec![Amf0Value::EcmaArray(vec![("a".into(), Amf0Value::Boolean(true))])]);
        let reencoded = encoded(&decoded[0]);
        assert_eq!(reencoded[..5], [0x08, 0, 0, 0, 1]);
    }

    #[test]
    fn strict_array() {
        let value = Amf0Value::StrictArray(vec![Amf0Value::Number(2.0), Amf0Value::Null]);
        let bytes = encoded(&value);
        assert_eq!(bytes, [0x0A, 0, 0, 0, 2, 0x00, 0x40, 0, 0, 0, 0, 0, 0, 0, 0x05]);
        assert_eq!(decode_all(&bytes).unwrap(), vec![value]);
    }

    #[test]
    fn strict_array_with_huge_count_is_truncated_not_allocated() {
        assert_eq!(decode_all(&[0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x05]), Err(Amf0Error::Truncated));
    }

    #[test]
    fn references_and_other_markers_are_rejected() {
        assert_eq!(decode_all(&[0x07, 0x00, 0x01]), Err(Amf0Error::UnsupportedMarker(0x07)));
        assert_eq!(decode_all(&[0x11]), Err(Amf0Error::UnsupportedMarker(0x11)));
        assert_eq!(decode_all(&[0x0B, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), Err(Amf0Error::UnsupportedMarker(0x0B)));
        assert_eq!(decode_all(&[0x09]), Err(Amf0Error::UnexpectedObjectEnd));
    }

    #[test]
    fn truncated_inputs_are_errors() {
        for bytes in [&[0x00, 0x3F][..], &[0x02, 0x00, 0x05, b'a'], &[0x03, 0x00, 0x01, b'a'], &[0x01], &[0x08, 0, 0]] {
            assert_eq!(decode_all(bytes), Err(Amf0Error::Truncated), "input {bytes:?}");
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let mut deep = Vec::new();
        for _ in 0..(MAX_NESTING_DEPTH + 2) {
            deep.extend_from_slice(&[0x0A, 0, 0, 0, 1]);
        }
        deep.push(0x05);
        assert_eq!(decode_all(&deep), Err(Amf0Error::TooDeep));

        let mut shallow = Vec::new();
        for _ in 0..MAX_NESTING_DEPTH {
            shallow.extend_from_slice(&[0x0A, 0, 0, 0, 1]);
        }
        shallow.push(0x05);
        assert!(decode_all(&shallow).is_ok());
    }

    #[test]
    fn reader_reports_position_between_values() {
        let mut reader = Amf0Reader::new(b"\x02\x00\x02ab\x05");
        assert_eq!(reader.read_value().unwrap(), Amf0Value::string("ab"));
        assert_eq!(reader.position(), 5);
        assert_eq!(reader.read_value().unwrap(), Amf0Value::Null);
        assert!(reader.is_empty());
    }
}
