//! Log chunks: consecutive captured lines of one phase stored as one row.
//!
//! A phase printing a million lines would otherwise cost two B-tree inserts and a JSON
//! encoding per line, which is what makes recording slower than the run. Instead a
//! `@@PHASE_LOG` action is stored once, in its phase's current chunk, and its journal JSON is
//! rebuilt from the stored fields when the journal is read. Its chained hash covers the
//! compact [`hash_input`] of those fields (phase, stream, timestamp bits, line) instead of
//! the JSON, which they determine, so editing a stored line breaks the chain like editing
//! any journal row.
//!
//! Encoding of one entry (little-endian): `seq: u64`, `stream: u8` (1 stdout, 2 stderr),
//! `timestamp: f64`, `hash: [u8; 32]`, `len: u32`, then `len` bytes of UTF-8.

use std::sync::Arc;

use milo::capture::Stream;
use milo::pipeline::PipelineAction;

/// Flush a phase's chunk once its data reaches this size.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// One decoded line.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkEntry {
    /// Its journal sequence number.
    pub seq: i64,
    /// Its stream.
    pub stream: Stream,
    /// Seconds since the run started.
    pub timestamp: f64,
    /// Its chained hash.
    pub hash: [u8; 32],
    /// The line.
    pub line: String,
}

impl ChunkEntry {
    /// The journal action this entry stands for.
    pub fn action(&self, phase: &Arc<str>) -> PipelineAction {
        PipelineAction::PhaseLog {
            name: phase.clone(),
            line: Arc::from(self.line.as_str()),
            stream: self.stream,
            timestamp: self.timestamp,
        }
    }
}

/// What a line's chained hash covers (after the previous hash): `b"L"`, the phase's length
/// (u32) and name, the stream byte, the timestamp's bits, the line's length (u32) and text.
pub fn hash_input(out: &mut Vec<u8>, phase: &str, stream: Stream, timestamp: f64, line: &str) {
    out.clear();
    out.push(b'L');
    out.extend_from_slice(&(phase.len() as u32).to_le_bytes());
    out.extend_from_slice(phase.as_bytes());
    out.push(stream_byte(stream));
    out.extend_from_slice(&timestamp.to_le_bytes());
    out.extend_from_slice(&(line.len() as u32).to_le_bytes());
    out.extend_from_slice(line.as_bytes());
}

fn stream_byte(stream: Stream) -> u8 {
    match stream {
        Stream::Stdout => 1,
        Stream::Stderr => 2,
    }
}

/// Appends one entry to `buf`.
pub fn encode(buf: &mut Vec<u8>, seq: i64, stream: Stream, timestamp: f64, hash: &[u8; 32], line: &str) {
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.push(stream_byte(stream));
    buf.extend_from_slice(&timestamp.to_le_bytes());
    buf.extend_from_slice(hash);
    // Lines are capped at 16 KiB by the capture; saturate anyway.
    let len = u32::try_from(line.len()).unwrap_or(u32::MAX);
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&line.as_bytes()[..len as usize]);
}

fn take<'a>(data: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if data.len() < n {
        return None;
    }
    let (head, rest) = data.split_at(n);
    *data = rest;
    Some(head)
}

fn decode_one(data: &mut &[u8]) -> Option<ChunkEntry> {
    let seq = i64::from_le_bytes(take(data, 8)?.try_into().ok()?);
    let stream = match take(data, 1)?[0] {
        1 => Stream::Stdout,
        2 => Stream::Stderr,
        _ => return None,
    };
    let timestamp = f64::from_le_bytes(take(data, 8)?.try_into().ok()?);
    let hash: [u8; 32] = take(data, 32)?.try_into().ok()?;
    let len = u32::from_le_bytes(take(data, 4)?.try_into().ok()?) as usize;
    let line = std::str::from_utf8(take(data, len)?).ok()?.to_owned();
    Some(ChunkEntry {
        seq,
        stream,
        timestamp,
        hash,
        line,
    })
}

/// Decodes a whole chunk; `Err(n)` when it is damaged after `n` good entries.
pub fn decode(mut data: &[u8]) -> Result<Vec<ChunkEntry>, usize> {
    let mut out = Vec::new();
    while !data.is_empty() {
        match decode_one(&mut data) {
            Some(e) => out.push(e),
            None => return Err(out.len()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_damage_is_detected() {
        let mut buf = Vec::new();
        encode(&mut buf, 7, Stream::Stdout, 0.25, &[1; 32], "héllo");
        encode(&mut buf, 9, Stream::Stderr, 1e-9, &[2; 32], "");
        let entries = decode(&buf).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(
            (
                entries[0].seq,
                entries[0].stream,
                entries[0].timestamp,
                entries[0].line.as_str()
            ),
            (7, Stream::Stdout, 0.25, "héllo")
        );
        assert_eq!(
            (entries[1].seq, entries[1].stream, entries[1].hash),
            (9, Stream::Stderr, [2; 32])
        );
        assert_eq!(decode(&buf[..buf.len() - 1]), Err(1));
    }
}
