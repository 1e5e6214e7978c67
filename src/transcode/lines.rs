//! Reading text lines of bounded length from a child process's output.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// Reads one line into `line` (without its line break), keeping at most `max_bytes` of it
/// and discarding the rest. Returns `false` at end of stream with nothing read.
pub async fn read_bounded_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
    max_bytes: usize,
) -> std::io::Result<bool> {
    line.clear();
    let mut read_any = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(read_any);
        }
        read_any = true;
        let (chunk, found_end) = match available.iter().position(|&byte| byte == b'\n') {
            Some(end) => (available.get(..end).unwrap_or_default(), true),
            None => (available, false),
        };
        let room = max_bytes.saturating_sub(line.len());
        line.extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or_default());
        let consumed = chunk.len() + usize::from(found_end);
        reader.consume(consumed);
        if found_end {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn splits_and_truncates_lines() {
        let data: &[u8] = b"short\r\na very long line indeed\nlast";
        let mut reader = tokio::io::BufReader::with_capacity(4, data);
        let mut line = Vec::new();
        let mut lines = Vec::new();
        while read_bounded_line(&mut reader, &mut line, 6).await.unwrap() {
            lines.push(String::from_utf8(line.clone()).unwrap());
        }
        assert_eq!(lines, ["short", "a very", "last"]);
    }
}
