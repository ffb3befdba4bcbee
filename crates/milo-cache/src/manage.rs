//! Managing a cache directory from the command line: `status` (what is in it), `clean`
//! (remove it all) and `prune` (least-recently-used eviction down to a size, and removal of
//! objects nothing references).

use std::collections::HashSet;
use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::cas::Cas;
use crate::db::Db;
use crate::error::{CacheError, Result};

/// What a cache directory holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheStatus {
    /// Records of successful phases.
    pub entries: u64,
    /// Distinct output files stored.
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Per phase, by name.
    pub phases: Vec<PhaseCount>,
}

/// One phase's records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PhaseCount {
    /// The phase.
    pub phase: String,
    /// Its records.
    pub entries: u64,
    /// Those whose outputs are stored (restorable).
    pub stored: u64,
}

/// What [`prune`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Records whose stored outputs were evicted.
    pub evicted_entries: u64,
    /// Objects removed.
    pub removed_objects: u64,
    /// Bytes freed.
    pub freed_bytes: u64,
    /// Bytes of objects left.
    pub remaining_bytes: u64,
}

/// `1.5 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `1 entry`, `2 entries`.
fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

impl fmt::Display for CacheStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}, {}, {}",
            count(self.entries, "entry", "entries"),
            count(self.objects, "object", "objects"),
            human_bytes(self.bytes)
        )?;
        for p in &self.phases {
            writeln!(
                f,
                "  {}: {} ({} restorable)",
                p.phase,
                count(p.entries, "entry", "entries"),
                p.stored
            )?;
        }
        Ok(())
    }
}

impl fmt::Display for PruneReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "evicted {}, removed {}, freed {}; {} left",
            count(self.evicted_entries, "entry", "entries"),
            count(self.removed_objects, "object", "objects"),
            human_bytes(self.freed_bytes),
            human_bytes(self.remaining_bytes)
        )
    }
}

/// What the cache directory `dir` holds (an absent directory is an empty cache). Writes
/// nothing.
pub fn status(dir: &Path) -> Result<CacheStatus> {
    let db = Db::open(dir, true)?;
    Ok(match db.status()? {
        None => CacheStatus::default(),
        Some((entries, objects, bytes, phases)) => CacheStatus {
            entries,
            objects,
            bytes,
            phases: phases
                .into_iter()
                .map(|(phase, entries, stored)| PhaseCount { phase, entries, stored })
                .collect(),
        },
    })
}

/// Removes the cache directory `dir` and everything in it; the bytes freed.
pub fn clean(dir: &Path) -> Result<u64> {
    if !dir.exists() {
        return Ok(0);
    }
    let bytes = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum();
    std::fs::remove_dir_all(dir).map_err(CacheError::io("remove the cache directory", dir))?;
    Ok(bytes)
}

/// Object or temporary files younger than this are never swept as orphans: a concurrent
/// run may be about to index them.
const ORPHAN_AGE: Duration = Duration::from_secs(3600);

/// Evicts least-recently-used records' outputs until the objects total at most `max_size`
/// bytes, and removes objects nothing references.
pub fn prune(dir: &Path, max_size: u64) -> Result<PruneReport> {
    if !dir.join("index.db").exists() {
        return Ok(PruneReport::default());
    }
    let db = Db::open(dir, false)?;
    let cas = Cas::new(dir);
    let (done, gone) = db.evict(max_size, true)?;
    for d in &gone {
        cas.remove(d)?;
    }
    let mut report = PruneReport {
        evicted_entries: done.records,
        removed_objects: done.objects,
        freed_bytes: done.bytes,
        remaining_bytes: done.remaining,
    };
    // Files on disk the index does not know (a run that died between storing and indexing).
    let known: HashSet<String> = db.object_digests()?.into_iter().collect();
    let old = |m: &std::fs::Metadata| {
        m.modified()
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age > ORPHAN_AGE)
    };
    for root in [cas.objects_dir(), cas.tmp_dir()] {
        for entry in walkdir::WalkDir::new(root)
            .min_depth(1)
            .into_iter()
            .filter_map(|e| e.ok())
        {
            if !entry.file_type().is_file() {
                continue;
            }
            let digest = if root == cas.objects_dir() {
                let rel = entry.path().strip_prefix(root).unwrap_or(entry.path());
                rel.components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<String>()
            } else {
                String::new()
            };
            if known.contains(&digest) {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            if old(&meta) && std::fs::remove_file(entry.path()).is_ok() {
                report.removed_objects += 1;
                report.freed_bytes += meta.len();
            }
        }
    }
    Ok(report)
}
