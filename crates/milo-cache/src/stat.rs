//! The stat cache: (size, mtime, inode, ctime) → digest, kept per phase as one compact row,
//! with git's "racy" rule so an edit that leaves the stat unchanged is still noticed.

use std::collections::HashMap;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use rayon::prelude::*;

use crate::error::Result;
use crate::hash::file_digest;

/// How coarse file timestamps may be (FAT: 2 s), plus clock skew between the kernel's coarse
/// file-time clock and `SystemTime::now`. An entry whose file was modified this close to (or
/// after) the moment its digest was taken is "racy" and is hashed again.
pub const RACY_MARGIN_NS: i64 = 2_000_000_000;

/// What is compared to decide whether a file may have changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Bytes.
    pub size: u64,
    /// Modification time, ns since the epoch.
    pub mtime_ns: i64,
    /// Inode number.
    pub ino: u64,
    /// Status change time, ns since the epoch.
    pub ctime_ns: i64,
}

impl Stat {
    /// From a file's metadata.
    pub fn of(meta: &Metadata) -> Stat {
        Stat {
            size: meta.len(),
            mtime_ns: meta
                .mtime()
                .saturating_mul(1_000_000_000)
                .saturating_add(meta.mtime_nsec()),
            ino: meta.ino(),
            ctime_ns: meta
                .ctime()
                .saturating_mul(1_000_000_000)
                .saturating_add(meta.ctime_nsec()),
        }
    }
}

/// A cached digest and the stat it was taken under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The file's stat when it was hashed.
    pub stat: Stat,
    /// When the stat was taken (ns since the epoch), before hashing.
    pub seen_ns: i64,
    /// Its content digest (hex).
    pub digest: String,
}

impl Entry {
    /// Whether the cached digest can be trusted for a file whose stat is `now`.
    pub fn valid_for(&self, now: &Stat) -> bool {
        self.stat == *now && !self.is_racy()
    }

    /// Modified so close to when it was hashed that a later edit could keep the same stat.
    pub fn is_racy(&self) -> bool {
        self.stat.mtime_ns >= self.seen_ns.saturating_sub(RACY_MARGIN_NS)
    }
}

/// The entries of one phase, by path relative to its cwd (hashed with foldhash: the keys are
/// the user's own paths, and a no-op run looks every source file up once).
pub type StatMap = HashMap<String, Entry, foldhash::fast::RandomState>;

/// Now, in ns since the epoch.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A file whose digest is wanted.
pub struct Want<'a> {
    /// Relative to the root (the stat cache's key).
    pub rel: &'a str,
    /// Its stat now.
    pub stat: Stat,
}

/// The digests of `files` (relative to `root`), from `cache` where the stat matches and is
/// not racy, hashed in parallel otherwise. Returns them in order, and for each hashed file
/// its new entry (`None` where the cache's entry is still good).
pub fn digests(
    root: &Path,
    files: &[Want<'_>],
    cache: &StatMap,
    seen_ns: i64,
    quick: bool,
) -> Result<(Vec<String>, Vec<Option<Entry>>)> {
    // The no-op case is all hits: no thread pool, no allocation beyond the digests.
    let mut digests: Vec<String> = Vec::with_capacity(files.len());
    let mut fresh: Vec<Option<Entry>> = Vec::with_capacity(files.len());
    let mut misses = Vec::new();
    for (i, f) in files.iter().enumerate() {
        match cache.get(f.rel).filter(|e| e.valid_for(&f.stat)) {
            Some(e) => digests.push(e.digest.clone()),
            None => {
                digests.push(String::new());
                misses.push(i);
            }
        }
        fresh.push(None);
    }
    if quick && !misses.is_empty() {
        return Err(crate::error::CacheError::WouldBlock);
    }
    let hash = |&i: &usize| -> Result<(usize, String)> {
        let f = &files[i];
        Ok((i, file_digest(&root.join(f.rel), f.stat.size)?))
    };
    let hashed: Vec<(usize, String)> = if misses.len() <= 1 {
        misses.iter().map(hash).collect::<Result<_>>()?
    } else {
        misses.par_iter().with_max_len(4).map(hash).collect::<Result<_>>()?
    };
    for (i, digest) in hashed {
        fresh[i] = Some(Entry {
            stat: files[i].stat,
            seen_ns,
            digest: digest.clone(),
        });
        digests[i] = digest;
    }
    Ok((digests, fresh))
}

/// The compact encoding of a [`StatMap`] (one blob per phase).
pub fn encode(entries: &[(&str, &Entry)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * 120);
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for (rel, e) in entries {
        put_str(&mut out, rel);
        out.extend_from_slice(&e.stat.size.to_le_bytes());
        out.extend_from_slice(&e.stat.mtime_ns.to_le_bytes());
        out.extend_from_slice(&e.stat.ino.to_le_bytes());
        out.extend_from_slice(&e.stat.ctime_ns.to_le_bytes());
        out.extend_from_slice(&e.seen_ns.to_le_bytes());
        put_str(&mut out, &e.digest);
    }
    out
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Decodes [`encode`]'s blob; a malformed blob (another version) is an empty cache, which
/// only costs re-hashing.
pub fn decode(blob: &[u8]) -> StatMap {
    decode_inner(blob).unwrap_or_default()
}

fn decode_inner(mut b: &[u8]) -> Option<StatMap> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if b.len() < n {
            return None;
        }
        let (h, t) = b.split_at(n);
        *b = t;
        Some(h)
    }
    fn u32_(b: &mut &[u8]) -> Option<u32> {
        Some(u32::from_le_bytes(take(b, 4)?.try_into().ok()?))
    }
    fn u64_(b: &mut &[u8]) -> Option<u64> {
        Some(u64::from_le_bytes(take(b, 8)?.try_into().ok()?))
    }
    fn i64_(b: &mut &[u8]) -> Option<i64> {
        Some(i64::from_le_bytes(take(b, 8)?.try_into().ok()?))
    }
    fn str_(b: &mut &[u8]) -> Option<String> {
        let n = u32_(b)? as usize;
        String::from_utf8(take(b, n)?.to_vec()).ok()
    }
    let n = u32_(&mut b)? as usize;
    let mut map = StatMap::with_capacity_and_hasher(n.min(1 << 16), Default::default());
    for _ in 0..n {
        let rel = str_(&mut b)?;
        let stat = Stat {
            size: u64_(&mut b)?,
            mtime_ns: i64_(&mut b)?,
            ino: u64_(&mut b)?,
            ctime_ns: i64_(&mut b)?,
        };
        let seen_ns = i64_(&mut b)?;
        let digest = str_(&mut b)?;
        map.insert(rel, Entry { stat, seen_ns, digest });
    }
    b.is_empty().then_some(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(mtime_ns: i64, seen_ns: i64) -> Entry {
        Entry {
            stat: Stat {
                size: 3,
                mtime_ns,
                ino: 7,
                ctime_ns: mtime_ns,
            },
            seen_ns,
            digest: "d".into(),
        }
    }

    #[test]
    fn an_entry_hashed_right_after_its_write_is_racy_until_refreshed() {
        let s = 1_000 * 1_000_000_000;
        // Written at s, hashed 10 ms later: the same stat does not prove the same content.
        let racy = entry(s, s + 10_000_000);
        assert!(racy.is_racy());
        assert!(!racy.valid_for(&racy.stat));
        // Hashed well after the write: trusted while the stat matches.
        let old = entry(s, s + 3 * RACY_MARGIN_NS);
        assert!(old.valid_for(&old.stat));
        let mut touched = old.stat;
        touched.mtime_ns += 1;
        assert!(!old.valid_for(&touched));
    }

    #[test]
    fn encoding_round_trips_and_garbage_is_empty() {
        let a = entry(1, 2);
        let b = entry(3, 4);
        let blob = encode(&[("x/y", &a), ("z", &b)]);
        let map = decode(&blob);
        assert_eq!(map.len(), 2);
        assert_eq!(map["x/y"], a);
        assert_eq!(map["z"], b);
        assert!(decode(&blob[..blob.len() - 1]).is_empty());
        assert!(decode(b"junk").is_empty());
    }
}
