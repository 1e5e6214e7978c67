//! ISO base media file format (MP4) boxes: iteration over a run of boxes and the few
//! sample entry layouts needed to reach codec configuration boxes.

use thiserror::Error;

/// Errors from walking MP4 boxes.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum Mp4Error {
    /// A box header or body runs past the end of its parent.
    #[error("MP4 box {box_type} truncated")]
    Truncated {
        /// Four-character type, or `?` when the header itself is cut.
        box_type: String,
    },
    /// A box declares a size smaller than its own header.
    #[error("MP4 box {box_type} declares an impossible size {size}")]
    BadSize {
        /// Four-character type.
        box_type: String,
        /// Declared size.
        size: u64,
    },
    /// A required box is missing.
    #[error("MP4 box {0} not found")]
    Missing(&'static str),
}

/// One box: its type and its body (after the size and type fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mp4Box<'a> {
    /// Four-character type, e.g. `*b"moov"`.
    pub box_type: [u8; 4],
    /// The body.
    pub body: &'a [u8],
}

/// Iterates over consecutive boxes in `data`, yielding an error (and then stopping) on a
/// malformed header.
pub fn boxes(data: &[u8]) -> BoxIter<'_> {
    BoxIter { rest: data }
}

/// Iterator returned by [`boxes`].
#[derive(Debug, Clone)]
pub struct BoxIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for BoxIter<'a> {
    type Item = Result<Mp4Box<'a>, Mp4Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let result = split_box(self.rest);
        match result {
            Ok((item, rest)) => {
                self.rest = rest;
                Some(Ok(item))
            }
            Err(error) => {
                self.rest = &[];
                Some(Err(error))
            }
        }
    }
}

fn split_box(data: &[u8]) -> Result<(Mp4Box<'_>, &[u8]), Mp4Error> {
    let truncated = || Mp4Error::Truncated { box_type: "?".into() };
    let size32 = read_u32(data, 0).ok_or_else(truncated)?;
    let box_type: [u8; 4] = data.get(4..8).and_then(|bytes| bytes.try_into().ok()).ok_or_else(truncated)?;
    let name = || String::from_utf8_lossy(&box_type).into_owned();
    let (header, size) = match size32 {
        0 => (8, data.len() as u64),
        1 => {
            let high = read_u32(data, 8).ok_or_else(truncated)?;
            let low = read_u32(data, 12).ok_or_else(truncated)?;
            (16, (u64::from(high) << 32) | u64::from(low))
        }
        size => (8, u64::from(size)),
    };
    if size < header as u64 {
        return Err(Mp4Error::BadSize { box_type: name(), size });
    }
    let end = usize::try_from(size)
        .ok()
        .filter(|&end| end <= data.len())
        .ok_or_else(|| Mp4Error::Truncated { box_type: name() })?;
    let body = data.get(header..end).ok_or_else(|| Mp4Error::Truncated { box_type: name() })?;
    let rest = data.get(end..).unwrap_or_default();
    Ok((Mp4Box { box_type, body }, rest))
}

/// Finds the first child of `data` with type `wanted`.
pub fn find_box<'a>(data: &'a [u8], wanted: &'static [u8; 4]) -> Result<Option<&'a [u8]>, Mp4Error> {
    for item in boxes(data) {
        let item = item?;
        if &item.box_type == wanted {
            return Ok(Some(item.body));
        }
    }
    Ok(None)
}

/// Follows a path of box types from `data`, e.g. `[b"moov", b"trak"]`, returning the body
/// of the first match at each level.
pub fn descend<'a>(data: &'a [u8], path: &[&'static [u8; 4]]) -> Result<&'a [u8], Mp4Error> {
    let mut current = data;
    for &step in path {
        current = find_box(current, step)?.ok_or(Mp4Error::Missing(static_name(step)))?;
    }
    Ok(current)
}

/// The child boxes of a sample entry, skipping the fixed fields of its layout: 8 bytes of
/// `SampleEntry` plus 70 for visual entries (`avc1`) or 20 for audio entries (`mp4a`).
pub fn sample_entry_children<'a>(entry: &Mp4Box<'a>) -> Option<&'a [u8]> {
    let fixed = match &entry.box_type {
        b"avc1" | b"avc3" | b"hvc1" | b"hev1" | b"av01" | b"encv" => 78,
        b"mp4a" | b"enca" => 28,
        _ => return None,
    };
    entry.body.get(fixed..)
}

/// The sample entries of an `stsd` body (full box header and entry count skipped).
pub fn sample_entries(stsd: &[u8]) -> Result<BoxIter<'_>, Mp4Error> {
    stsd.get(8..).map(boxes).ok_or(Mp4Error::Truncated { box_type: "stsd".into() })
}

fn static_name(name: &'static [u8; 4]) -> &'static str {
    std::str::from_utf8(name).unwrap_or("????")
}

fn read_u32(data: &[u8], at: usize) -> Option<u32> {
    let bytes: [u8; 4] = data.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make_box(box_type: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut out = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(box_type);
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn iterates_and_descends() {
        let inner = make_box(b"mdia", &make_box(b"minf", b"xyz"));
        let mut data = make_box(b"ftyp", b"isom");
        data.extend(make_box(b"moov", &make_box(b"trak", &inner)));
        let types: Vec<_> = boxes(&data).map(|item| item.unwrap().box_type).collect();
        assert_eq!(types, vec![*b"ftyp", *b"moov"]);
        assert_eq!(descend(&data, &[b"moov", b"trak", b"mdia", b"minf"]).unwrap(), b"xyz");
        assert_eq!(descend(&data, &[b"moov", b"mvex"]), Err(Mp4Error::Missing("mvex")));
    }

    #[test]
    fn handles_large_and_to_end_sizes() {
        let mut large = 1u32.to_be_bytes().to_vec();
        large.extend_from_slice(b"mdat");
        large.extend_from_slice(&19u64.to_be_bytes());
        large.extend_from_slice(b"abc");
        let mut to_end = 0u32.to_be_bytes().to_vec();
        to_end.extend_from_slice(b"free");
        to_end.extend_from_slice(b"rest");
        large.extend(to_end);
        let items: Vec<_> = boxes(&large).map(|item| item.unwrap()).collect();
        assert_eq!(items[0].body, b"abc");
        assert_eq!(items[1].body, b"rest");
    }

    #[test]
    fn malformed_sizes_are_errors() {
        let mut data = 4u32.to_be_bytes().to_vec();
        data.extend_from_slice(b"moov");
        assert!(matches!(boxes(&data).next(), Some(Err(Mp4Error::BadSize { .. }))));
        let mut data = 100u32.to_be_bytes().to_vec();
        data.extend_from_slice(b"moov");
        assert!(matches!(boxes(&data).next(), Some(Err(Mp4Error::Truncated { .. }))));
        assert!(matches!(boxes(&[0, 0]).next(), Some(Err(Mp4Error::Truncated { .. }))));
    }
}
