//! [`LogRing`]: a phase's newest `max_logs` lines as a persistent value whose push costs the
//! same however many lines came before and however many snapshots are alive.
//!
//! Lines are stored in shared append-only chunks of [`CHUNK`] slots; each slot is written once.
//! A ring is a window `[start, end)` over the chunks that cover it, so a push writes one slot
//! and copies nothing but, once per chunk, the short list of chunk pointers. Snapshots never
//! see a slot past their own `end`, so appending to a chunk they share is invisible to them. If
//! two histories diverge from one snapshot (e.g. a state replayed differently), the second
//! writer of a slot finds it taken by a different line and copies the chunk instead.

use std::sync::{Arc, OnceLock};

use super::state::LogLine;

/// Lines per chunk.
pub const CHUNK: usize = 32;

#[derive(Debug)]
struct Chunk {
    /// The global index of slot 0 (a multiple of [`CHUNK`]).
    base: u64,
    slots: [OnceLock<LogLine>; CHUNK],
}

impl Chunk {
    fn new(base: u64) -> Self {
        Self {
            base,
            slots: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// A copy of slots `..len` of `self`.
    fn prefix(&self, len: usize) -> Self {
        let copy = Chunk::new(self.base);
        for (dst, src) in copy.slots.iter().zip(&self.slots).take(len) {
            if let Some(line) = src.get() {
                let _ = dst.set(line.clone());
            }
        }
        copy
    }
}

/// The newest lines of a phase (at most its `max_logs`), oldest first.
#[derive(Clone, Default)]
pub struct LogRing {
    chunks: Arc<[Arc<Chunk>]>,
    start: u64,
    end: u64,
}

impl LogRing {
    /// An empty ring.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many lines the ring holds.
    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    /// Whether it holds no line.
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    /// Line `index` (0 = the oldest kept).
    pub fn get(&self, index: usize) -> Option<&LogLine> {
        let at = self.start.checked_add(index as u64)?;
        if at >= self.end {
            return None;
        }
        let first = self.chunks.first()?.base;
        let chunk = self.chunks.get(((at - first) / CHUNK as u64) as usize)?;
        chunk.slots[(at - chunk.base) as usize].get()
    }

    /// The newest line.
    pub fn last(&self) -> Option<&LogLine> {
        self.len().checked_sub(1).and_then(|i| self.get(i))
    }

    /// The lines, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &LogLine> + '_ {
        // Every slot in [start, end) was written before `end` moved past it.
        (0..self.len()).filter_map(move |i| self.get(i))
    }

    /// A ring with `line` appended, keeping at most `max` lines.
    pub fn pushed(&self, line: LogLine, max: usize) -> LogRing {
        if max == 0 {
            return self.clone();
        }
        let at = self.end;
        let slot = (at % CHUNK as u64) as usize;
        let start = self.start.max((at + 1).saturating_sub(max as u64));
        let tail = self.chunks.last().filter(|c| slot != 0 && c.base + slot as u64 == at);
        let chunks = match tail {
            Some(tail) => match tail.slots[slot].set(line) {
                Ok(()) => self.chunks.clone(),
                Err(line) if tail.slots[slot].get() == Some(&line) => self.chunks.clone(),
                Err(line) => {
                    // Another history wrote this slot: continue on a private copy of the chunk.
                    let copy = tail.prefix(slot);
                    let _ = copy.slots[slot].set(line);
                    let mut list: Vec<Arc<Chunk>> = self.chunks.to_vec();
                    if let Some(last) = list.last_mut() {
                        *last = Arc::new(copy);
                    }
                    list.into()
                }
            },
            None => {
                let chunk = Chunk::new(at - slot as u64);
                let _ = chunk.slots[slot].set(line);
                let keep = self.chunks.iter().filter(|c| c.base + CHUNK as u64 > start).cloned();
                keep.chain(std::iter::once(Arc::new(chunk))).collect()
            }
        };
        LogRing {
            chunks,
            start,
            end: at + 1,
        }
    }
}

impl std::ops::Index<usize> for LogRing {
    type Output = LogLine;
    fn index(&self, index: usize) -> &LogLine {
        match self.get(index) {
            Some(line) => line,
            None => panic!("log line {index} out of range for {} lines", self.len()),
        }
    }
}

impl PartialEq for LogRing {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl std::fmt::Debug for LogRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for &'a LogRing {
    type Item = &'a LogLine;
    type IntoIter = Box<dyn DoubleEndedIterator<Item = &'a LogLine> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::Stream;

    fn line(n: usize) -> LogLine {
        LogLine {
            line: n.to_string().into(),
            stream: Stream::Stdout,
            timestamp: n as f64,
        }
    }

    fn texts(r: &LogRing) -> Vec<String> {
        r.iter().map(|l| l.line.to_string()).collect()
    }

    #[test]
    fn keeps_the_newest_max_lines_across_chunks() {
        let mut r = LogRing::new();
        for n in 0..100 {
            r = r.pushed(line(n), 40);
        }
        assert_eq!(r.len(), 40);
        assert_eq!(texts(&r), (60..100).map(|n| n.to_string()).collect::<Vec<_>>());
        assert_eq!(r.last().map(|l| &*l.line), Some("99"));
        assert_eq!(r[0].line.as_ref(), "60");
        assert_eq!(r.iter().next_back().map(|l| &*l.line), Some("99"));
        // Only the chunks that cover the window (plus at most one partly stale) are kept.
        assert!(r.chunks.len() <= 40 / CHUNK + 2, "{} chunks", r.chunks.len());
    }

    #[test]
    fn old_snapshots_keep_their_lines() {
        let mut snapshots = vec![LogRing::new()];
        for n in 0..80 {
            let next = snapshots[n].pushed(line(n), 50);
            snapshots.push(next);
        }
        for (n, s) in snapshots.iter().enumerate() {
            let expected: Vec<String> = (n.saturating_sub(50)..n).map(|k| k.to_string()).collect();
            assert_eq!(texts(s), expected, "snapshot {n}");
        }
    }

    #[test]
    fn diverging_histories_do_not_see_each_other() {
        let mut base = LogRing::new();
        for n in 0..5 {
            base = base.pushed(line(n), 10);
        }
        let a = base.pushed(line(100), 10);
        let b = base.pushed(line(200), 10);
        let same = base.pushed(line(100), 10);
        assert_eq!(texts(&a).last().map(String::as_str), Some("100"));
        assert_eq!(texts(&b).last().map(String::as_str), Some("200"));
        assert_eq!(a, same);
        assert_ne!(a, b);
        assert_eq!(texts(&base), ["0", "1", "2", "3", "4"]);
    }

    #[test]
    fn max_zero_keeps_nothing() {
        let r = LogRing::new().pushed(line(1), 0);
        assert!(r.is_empty());
        assert!(r.last().is_none());
    }
}
