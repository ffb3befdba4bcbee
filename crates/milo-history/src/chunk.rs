//! Log chunks: consecutive captured lines of one phase stored as one row.
//!
//! A phase printing a million lines would otherwise cost two B-tree inserts and a JSON
//! encoding per line, which is what makes recording slower than the run. Instead a
//! `@@PHASE_LOG` action is stored once, in its phase's current chunk, and its journal JSON is
//! rebuilt from the stored fields when the journal is read.
//!
//! The hash chain covers a line through the compact [`hash_input`] of its fields (phase,
//! stream, timestamp bits, line), which determine its JSON. Two encodings exist:
//!
//! * **Version 2** (written since schema version 2; the chunk row's `hash` column is set):
//!   the lines since the chain's last link are fed, in journal order, into one running
//!   SHA-256 that starts from the chain head, and the chain gets a new link (the digest) when
//!   a chunk is written or a JSON entry follows; the chunk row stores the chain head as of
//!   its writing (its `last_seq`). Each line also carries a 4-byte [`tag`] of its
//!   sequence number and hash input, which names the first changed line when a link does not
//!   match. Entry (integers LEB128 varints): `(seq delta << 1) | stderr` (the first entry's
//!   delta is from 0), the timestamp's bits as a zigzag delta from the previous entry's (the
//!   first from 0), `tag: u32` little-endian, the line's length, then its UTF-8 bytes.
//! * **Version 1** (schema version 1; `hash` is NULL): every line chained on its own,
//!   `hash = SHA-256(previous hash ‖ hash_input)`. Entry (little-endian): `seq: u64`,
//!   `stream: u8` (1 stdout, 2 stderr), `timestamp: f64`, `hash: [u8; 32]`, `len: u32`, then
//!   `len` bytes of UTF-8. Still read and verified.

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
    /// What checks it: its chained hash (version 1) or its tag (version 2).
    pub check: Check,
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

/// How a stored line is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Version 1: its own chained hash.
    Chained([u8; 32]),
    /// Version 2: its [`tag`]; the chain link is at the end of the chunk.
    Tag(u32),
}

impl Check {
    /// The stored bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        match self {
            Check::Chained(h) => h.to_vec(),
            Check::Tag(t) => t.to_le_bytes().to_vec(),
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

/// Appends one version 1 entry to `buf` (only tests write version 1 now).
pub fn encode_v1(buf: &mut Vec<u8>, seq: i64, stream: Stream, timestamp: f64, hash: &[u8; 32], line: &str) {
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

fn decode_one_v1(data: &mut &[u8]) -> Option<ChunkEntry> {
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
        check: Check::Chained(hash),
        line,
    })
}

/// A line's tag: a fast 32-bit checksum of its sequence number and [`hash_input`]. Not a
/// security measure by itself (the chain link at the chunk's end is): it only says which line
/// of a chunk whose link does not match was changed.
pub fn tag(seq: i64, input: &[u8]) -> u32 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mix = |h: u64, w: u64| (h ^ w).wrapping_mul(K).rotate_left(29);
    let mut h = mix(0x6d69_6c6f ^ input.len() as u64, seq as u64);
    let mut words = input.chunks_exact(8);
    for w in &mut words {
        h = mix(h, u64::from_le_bytes(w.try_into().unwrap_or_default()));
    }
    let mut last = [0u8; 8];
    let rest = words.remainder();
    last[..rest.len()].copy_from_slice(rest);
    h = mix(h, u64::from_le_bytes(last));
    h ^= h >> 32;
    h = h.wrapping_mul(K);
    (h >> 32) as u32
}

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn get_varint(data: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = data.split_first()?;
        *data = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Appends version 2 entries to a chunk.
#[derive(Debug, Default)]
pub struct Encoder {
    /// The encoded entries.
    pub buf: Vec<u8>,
    /// How many lines.
    pub lines: i64,
    prev_seq: i64,
    prev_bits: u64,
}

impl Encoder {
    /// Appends one entry.
    pub fn push(&mut self, seq: i64, stream: Stream, timestamp: f64, tag: u32, line: &str) {
        let delta = ((seq.wrapping_sub(self.prev_seq) as u64) << 1) | u64::from(stream == Stream::Stderr);
        put_varint(&mut self.buf, delta);
        let bits = timestamp.to_bits();
        put_varint(&mut self.buf, zigzag(bits.wrapping_sub(self.prev_bits) as i64));
        self.buf.extend_from_slice(&tag.to_le_bytes());
        put_varint(&mut self.buf, line.len() as u64);
        self.buf.extend_from_slice(line.as_bytes());
        self.prev_seq = seq;
        self.prev_bits = bits;
        self.lines += 1;
    }

    /// Empties it for the next chunk.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.lines = 0;
        self.prev_seq = 0;
        self.prev_bits = 0;
    }
}

/// Decodes a whole version 2 chunk; `Err(n)` when it is damaged after `n` good entries.
pub fn decode_v2(mut data: &[u8]) -> Result<Vec<ChunkEntry>, usize> {
    let mut out = Vec::new();
    let (mut seq, mut bits) = (0i64, 0u64);
    let mut one = |data: &mut &[u8]| -> Option<ChunkEntry> {
        let head = get_varint(data)?;
        seq = seq.wrapping_add((head >> 1) as i64);
        let stream = if head & 1 == 1 { Stream::Stderr } else { Stream::Stdout };
        bits = bits.wrapping_add(unzigzag(get_varint(data)?) as u64);
        let tag = u32::from_le_bytes(take(data, 4)?.try_into().ok()?);
        let len = usize::try_from(get_varint(data)?).ok()?;
        let line = std::str::from_utf8(take(data, len)?).ok()?.to_owned();
        Some(ChunkEntry {
            seq,
            stream,
            timestamp: f64::from_bits(bits),
            check: Check::Tag(tag),
            line,
        })
    };
    while !data.is_empty() {
        match one(&mut data) {
            Some(e) => out.push(e),
            None => return Err(out.len()),
        }
    }
    Ok(out)
}

/// Decodes a chunk of either version (`v2`: its row has a chain hash).
pub fn decode(data: &[u8], v2: bool) -> Result<Vec<ChunkEntry>, usize> {
    if v2 { decode_v2(data) } else { decode_v1(data) }
}

/// Decodes a whole version 1 chunk; `Err(n)` when it is damaged after `n` good entries.
pub fn decode_v1(mut data: &[u8]) -> Result<Vec<ChunkEntry>, usize> {
    let mut out = Vec::new();
    while !data.is_empty() {
        match decode_one_v1(&mut data) {
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
    fn v1_entries_round_trip_and_damage_is_detected() {
        let mut buf = Vec::new();
        encode_v1(&mut buf, 7, Stream::Stdout, 0.25, &[1; 32], "héllo");
        encode_v1(&mut buf, 9, Stream::Stderr, 1e-9, &[2; 32], "");
        let entries = decode(&buf, false).unwrap();
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
            (entries[1].seq, entries[1].stream, entries[1].check),
            (9, Stream::Stderr, Check::Chained([2; 32]))
        );
        assert_eq!(decode(&buf[..buf.len() - 1], false), Err(1));
    }

    #[test]
    fn v2_entries_round_trip_exactly_and_damage_is_detected() {
        let times = [0.25, 1e-9, 0.0, 3.5e7, 0.1 + 0.2, f64::MIN_POSITIVE, 0.249_999];
        let mut enc = Encoder::default();
        let mut expected = Vec::new();
        for (i, t) in times.iter().enumerate() {
            let seq = [3i64, 4, 9, 1000, 1_000_000, 1_000_001, 1 << 40][i];
            let stream = if i % 3 == 1 { Stream::Stderr } else { Stream::Stdout };
            let line = "x".repeat(i * 50) + "é";
            enc.push(seq, stream, *t, i as u32 * 77, &line);
            expected.push((seq, stream, t.to_bits(), Check::Tag(i as u32 * 77), line));
        }
        let got: Vec<_> = decode(&enc.buf, true)
            .unwrap()
            .into_iter()
            .map(|e| (e.seq, e.stream, e.timestamp.to_bits(), e.check, e.line))
            .collect();
        assert_eq!(got, expected);
        assert_eq!(enc.lines, times.len() as i64);
        assert_eq!(decode(&enc.buf[..enc.buf.len() - 1], true), Err(times.len() - 1));
        enc.clear();
        enc.push(5, Stream::Stdout, 2.0, 1, "a");
        assert_eq!(decode(&enc.buf, true).unwrap()[0].seq, 5);
    }

    #[test]
    fn tags_see_every_byte_and_the_sequence_number() {
        let base = tag(7, b"Lspam line 17");
        assert_ne!(base, tag(8, b"Lspam line 17"));
        assert_ne!(base, tag(7, b"Lspam line 18"));
        assert_ne!(base, tag(7, b"Lspam line 17 "));
        assert_eq!(base, tag(7, b"Lspam line 17"));
    }
}
