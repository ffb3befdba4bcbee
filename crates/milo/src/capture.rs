//! Output capture: the stream a line came from and turning a byte stream into lines.

use serde::{Deserialize, Serialize};

/// Which output stream a captured line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Standard output.
    #[default]
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    /// `"stdout"` or `"stderr"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// The longest line kept, in bytes. A longer line is cut at this length (on a character
/// boundary), a [truncation marker](LineBuffer) is appended and the rest of it is dropped, so
/// memory stays bounded whatever a command prints.
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// Turns a byte stream, fed in arbitrary chunks, into complete lines.
///
/// * Lines end at `\n`; a `\r` right before it (`\r\n`) is stripped. A lone `\r` is kept.
/// * Invalid UTF-8 is decoded lossily (`U+FFFD`).
/// * A line longer than the limit ([`MAX_LINE_BYTES`] by default) keeps its first bytes,
///   followed by ` … [line truncated: N bytes omitted]`; the omitted bytes are counted, never
///   stored.
/// * [`finish`](Self::finish) emits a final line that had no newline.
///
/// ```
/// use milo::capture::LineBuffer;
///
/// let mut lines = Vec::new();
/// let mut buf = LineBuffer::new();
/// buf.push(b"hel", |l| lines.push(l));
/// buf.push(b"lo\r\nwor", |l| lines.push(l));
/// buf.finish(|l| lines.push(l));
/// assert_eq!(lines, ["hello", "wor"]);
/// ```
#[derive(Debug)]
pub struct LineBuffer {
    buf: Vec<u8>,
    max: usize,
    /// Bytes of the current line that did not fit and were dropped.
    omitted: usize,
    /// Whether the last byte of the current line (kept or omitted) is `\r`.
    last_cr: bool,
    /// Whether the current line has any byte at all.
    pending: bool,
}

impl Default for LineBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl LineBuffer {
    /// A buffer keeping lines of up to [`MAX_LINE_BYTES`].
    pub fn new() -> Self {
        Self::with_max_line(MAX_LINE_BYTES)
    }

    /// A buffer keeping lines of up to `max` bytes (at least 4, room for one character).
    pub fn with_max_line(max: usize) -> Self {
        Self {
            buf: Vec::new(),
            max: max.max(4),
            omitted: 0,
            last_cr: false,
            pending: false,
        }
    }

    /// Feeds a chunk; `emit` is called once per line completed by it.
    pub fn push(&mut self, mut chunk: &[u8], mut emit: impl FnMut(String)) {
        while let Some(i) = chunk.iter().position(|&b| b == b'\n') {
            self.append(&chunk[..i]);
            emit(self.take_line());
            chunk = &chunk[i + 1..];
        }
        self.append(chunk);
    }

    /// Emits the last line if it had no newline, and resets the buffer.
    pub fn finish(&mut self, mut emit: impl FnMut(String)) {
        if self.pending {
            emit(self.take_line());
        }
    }

    /// Whether part of a line is waiting for its newline.
    pub fn has_partial_line(&self) -> bool {
        self.pending
    }

    fn append(&mut self, bytes: &[u8]) {
        let Some(&last) = bytes.last() else { return };
        self.pending = true;
        self.last_cr = last == b'\r';
        if self.omitted > 0 {
            self.omitted += bytes.len();
            return;
        }
        let room = self.max - self.buf.len();
        if bytes.len() <= room {
            self.buf.extend_from_slice(bytes);
            return;
        }
        self.buf.extend_from_slice(&bytes[..room]);
        self.omitted = bytes.len() - room;
        // Cut on a character boundary: if the first omitted byte continues a UTF-8 sequence,
        // omit that sequence's leading bytes too.
        let mut first_omitted = bytes[room];
        let mut backed = 0;
        while is_continuation(first_omitted) && backed < 3 {
            let Some(b) = self.buf.pop() else { break };
            first_omitted = b;
            self.omitted += 1;
            backed += 1;
        }
    }

    fn take_line(&mut self) -> String {
        if self.last_cr {
            if self.omitted > 0 {
                self.omitted -= 1;
            } else {
                self.buf.pop();
            }
        }
        let mut line = String::from_utf8_lossy(&self.buf).into_owned();
        if self.omitted > 0 {
            line.push_str(&format!(" … [line truncated: {} bytes omitted]", self.omitted));
        }
        self.buf.clear();
        if self.buf.capacity() > self.max * 2 {
            self.buf.shrink_to(self.max);
        }
        self.omitted = 0;
        self.last_cr = false;
        self.pending = false;
        line
    }
}

fn is_continuation(b: u8) -> bool {
    b & 0xC0 == 0x80
}

/// A [`std::io::Write`] that splits what is written into lines (like [`LineBuffer`]) and hands
/// each complete line to a callback — for in-process handlers that write output.
///
/// [`flush`](std::io::Write::flush) does not emit a partial line; [`finish`](Self::finish) or
/// dropping the writer does.
///
/// ```
/// use std::io::Write;
/// use milo::capture::LineWriter;
///
/// let mut lines = Vec::new();
/// {
///     let mut w = LineWriter::new(|l| lines.push(l));
///     write!(w, "one\ntw")?;
///     w.flush()?;
///     write!(w, "o")?;
/// } // dropping emits "two"
/// assert_eq!(lines, ["one", "two"]);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct LineWriter<F: FnMut(String)> {
    buf: LineBuffer,
    emit: F,
}

impl<F: FnMut(String)> LineWriter<F> {
    /// A writer calling `emit` with each line.
    pub fn new(emit: F) -> Self {
        Self {
            buf: LineBuffer::new(),
            emit,
        }
    }

    /// Emits the last line if it had no newline (what dropping does too).
    pub fn finish(mut self) {
        self.emit_rest();
    }

    fn emit_rest(&mut self) {
        self.buf.finish(&mut self.emit);
    }
}

impl<F: FnMut(String)> std::fmt::Debug for LineWriter<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineWriter")
            .field("buf", &self.buf)
            .finish_non_exhaustive()
    }
}

impl<F: FnMut(String)> std::io::Write for LineWriter<F> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.push(data, &mut self.emit);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<F: FnMut(String)> Drop for LineWriter<F> {
    fn drop(&mut self) {
        self.emit_rest();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn lines_of(chunks: &[&[u8]], max: usize) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = LineBuffer::with_max_line(max);
        for c in chunks {
            buf.push(c, |l| out.push(l));
        }
        buf.finish(|l| out.push(l));
        out
    }

    #[test]
    fn splits_on_lf_and_crlf() {
        assert_eq!(lines_of(&[b"a\nb\r\nc\r\n"], 100), ["a", "b", "c"].map(String::from));
        assert_eq!(lines_of(&[b"\n\n"], 100), ["", ""].map(String::from));
        // A lone CR is not a line end.
        assert_eq!(lines_of(&[b"50%\r100%\n"], 100), ["50%\r100%"]);
    }

    #[test]
    fn lines_span_chunks_including_a_split_crlf() {
        assert_eq!(
            lines_of(&[b"hel", b"lo\r", b"\nwo", b"rld\n"], 100),
            ["hello", "world"].map(String::from)
        );
        // Byte by byte.
        let text = b"x\r\ny\nz";
        let chunks: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(lines_of(&chunks, 100), ["x", "y", "z"].map(String::from));
    }

    #[test]
    fn final_partial_line_is_emitted_on_finish_only() {
        let mut out = Vec::new();
        let mut buf = LineBuffer::new();
        buf.push(b"done\npart", |l| out.push(l));
        assert_eq!(out, ["done"]);
        assert!(buf.has_partial_line());
        buf.finish(|l| out.push(l));
        assert_eq!(out, ["done", "part"]);
        assert!(!buf.has_partial_line());
        // Nothing pending: finish emits nothing.
        buf.finish(|l| out.push(l));
        assert_eq!(out.len(), 2);
        // A trailing CR without LF is stripped too.
        assert_eq!(lines_of(&[b"end\r"], 100), ["end"]);
    }

    #[test]
    fn invalid_utf8_is_decoded_lossily() {
        assert_eq!(lines_of(&[b"a\xffb\n\xc3"], 100), ["a\u{fffd}b", "\u{fffd}"]);
        // A valid multi-byte character split across chunks survives.
        assert_eq!(lines_of(&[b"caf\xc3", b"\xa9\n"], 100), ["café"]);
    }

    #[test]
    fn long_lines_are_truncated_with_a_marker() {
        assert_eq!(
            lines_of(&[b"0123456789\nok\n"], 4),
            ["0123 … [line truncated: 6 bytes omitted]", "ok"]
        );
        // Across chunks, and the CRLF is not counted.
        assert_eq!(
            lines_of(&[b"01", b"2345", b"67\r", b"\n"], 4),
            ["0123 … [line truncated: 4 bytes omitted]"]
        );
        // Exactly the limit (plus CR) is not truncated.
        assert_eq!(lines_of(&[b"0123\r\n"], 4), ["0123"]);
        // Truncated final line without newline.
        assert_eq!(lines_of(&[b"0123456"], 4), ["0123 … [line truncated: 3 bytes omitted]"]);
    }

    #[test]
    fn truncation_cuts_on_a_character_boundary() {
        // "aé" is 3 bytes; cutting at 4 would split "é" of "aéé".
        assert_eq!(
            lines_of(&["aéé\n".as_bytes()], 4),
            ["aé … [line truncated: 2 bytes omitted]"]
        );
    }

    #[test]
    fn a_huge_line_keeps_memory_bounded() {
        let chunk = vec![b'x'; 1024 * 1024];
        let mut buf = LineBuffer::new();
        let mut out = Vec::new();
        for _ in 0..100 {
            buf.push(&chunk, |l| out.push(l));
            assert!(buf.buf.capacity() <= 2 * MAX_LINE_BYTES);
        }
        buf.push(b"\nnext\n", |l| out.push(l));
        assert_eq!(out.len(), 2);
        let omitted = 100 * 1024 * 1024 - MAX_LINE_BYTES;
        assert!(out[0].starts_with("xxxx"));
        assert!(
            out[0].ends_with(&format!(" … [line truncated: {omitted} bytes omitted]")),
            "{}",
            &out[0][MAX_LINE_BYTES..]
        );
        assert_eq!(out[1], "next");
    }

    #[test]
    fn line_writer_emits_lines_and_the_rest_on_drop_or_finish() -> std::io::Result<()> {
        let mut lines = Vec::new();
        {
            let mut w = LineWriter::new(|l| lines.push(l));
            w.write_all(b"a\r\nb")?;
            w.flush()?;
            w.write_all(b"c\n\xffd")?;
        }
        assert_eq!(lines, ["a", "bc", "\u{fffd}d"]);

        let mut lines = Vec::new();
        let mut w = LineWriter::new(|l| lines.push(l));
        writeln!(w, "x")?;
        write!(w, "y")?;
        w.flush()?;
        w.finish();
        assert_eq!(lines, ["x", "y"]);
        Ok(())
    }
}
