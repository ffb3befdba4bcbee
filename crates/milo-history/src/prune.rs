//! Retention: deleting old runs so the history does not grow without bound.
//!
//! * [`History::prune`] deletes the runs a [`Prune`] policy selects (beyond the newest N of
//!   each pipeline, and/or started longer ago than a duration) with every row they own
//!   (`phases`, `logs`, `journal`, `runs`), then the pipeline definitions (`defs`) no run
//!   refers to any more. The runs are selected under one write lock, then deleted a chunk
//!   of runs per transaction, so a concurrent recording waits for one chunk at most. A run still `running` in a live process (see
//!   [`process::alive`]) is never deleted. A run that another run resumed (`resumed_from`)
//!   may go: the reference then names a run that is no longer recorded.
//! * Freed pages stay in the file for later runs to reuse; only a database whose
//!   `auto_vacuum` is `incremental` gives them back to the file system at once
//!   (`PRAGMA incremental_vacuum`). [`History::vacuum`] rebuilds the file (slow for big
//!   files, so never done automatically).
//! * [`Recorder::finish`](crate::Recorder::finish) keeps the newest
//!   [`RecordOptions::keep_runs`](crate::RecordOptions::keep_runs) runs of the pipeline it
//!   recorded; [`over_limit`] decides with one indexed query whether there is anything to do.

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use crate::error::HistoryError;
use crate::{History, RunId, now, process};

/// How many runs of each pipeline `milo run` keeps by default.
pub const DEFAULT_KEEP_RUNS: usize = 100;

/// Which runs [`History::prune`] deletes. The limits apply independently: a run goes when it
/// is beyond the newest [`keep`](Self::keep) of its pipeline *or* started longer ago than
/// [`older_than`](Self::older_than). With neither set, nothing is deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prune {
    /// Keep the newest N runs of each pipeline (`Some(0)` deletes them all).
    pub keep: Option<usize>,
    /// Delete runs that started longer ago than this.
    pub older_than: Option<Duration>,
    /// Only runs of this pipeline (default: every pipeline, each counted on its own).
    pub pipeline: Option<String>,
    /// Only say what would be deleted.
    pub dry_run: bool,
}

impl Prune {
    /// Whether the policy sets any limit.
    pub fn is_set(&self) -> bool {
        self.keep.is_some() || self.older_than.is_some()
    }
}

/// What [`History::prune`] deleted (or, for a dry run, would delete).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Whether this was a dry run (nothing was deleted).
    pub dry_run: bool,
    /// The runs deleted, in ascending order.
    pub runs: Vec<RunId>,
    /// Pipeline definitions deleted because no remaining run refers to them.
    pub defs: usize,
    /// Runs the policy selected but that were kept because they are still being recorded by
    /// a live process: (run, pid).
    pub kept_running: Vec<(RunId, i64)>,
    /// The runs left afterwards (of the policy's pipeline, if it names one).
    pub remaining: usize,
    /// Bytes of database pages the deletion freed (reused by later runs; 0 for a dry run).
    pub freed_bytes: u64,
    /// Bytes given back to the file system by `PRAGMA incremental_vacuum` (only when the
    /// database's `auto_vacuum` is `incremental`).
    pub returned_bytes: u64,
}

/// What [`History::vacuum`] did: the database's size before and after, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vacuumed {
    /// Size before.
    pub before: u64,
    /// Size after.
    pub after: u64,
}

impl History {
    /// Deletes the runs `policy` selects, with their phases, log chunks and journal, and the
    /// pipeline definitions no run refers to any more. The runs are selected under one write
    /// lock and deleted 16 at a time, each chunk its own transaction, so a concurrent
    /// recording never waits long. Runs still being
    /// recorded by a live process are kept; a run that another run resumed may go (that run's
    /// `resumed_from` then names a run no longer recorded). Freed pages are reused by later
    /// runs, or given back at once when the database's `auto_vacuum` is `incremental`.
    pub fn prune(&self, policy: &Prune) -> Result<Pruned, HistoryError> {
        prune(&self.conn, policy)
    }

    /// Rebuilds the database file without its free pages (`VACUUM`) and truncates the
    /// write-ahead log. Takes a while for a big file, and waits for concurrent writers.
    pub fn vacuum(&self) -> Result<Vacuumed, HistoryError> {
        let before = size(&self.conn)?;
        self.conn.execute_batch("VACUUM")?;
        // Copies the rebuilt pages from the log into the file and empties the log; best
        // effort (a reader elsewhere may hold it back), the size below is what matters.
        let _: Option<i64> = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
            .optional()?;
        Ok(Vacuumed {
            before,
            after: size(&self.conn)?,
        })
    }
}

/// How many runs one deletion transaction removes.
const DELETE_CHUNK: usize = 16;

/// The newest run of pipeline ?1 beyond the newest ?2, if any.
const OVER_LIMIT: &str = "SELECT id FROM runs WHERE pipeline = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2";

/// Whether `pipeline` has more than `keep` runs: one lookup in the `(pipeline, id)` index.
pub(crate) fn over_limit(conn: &Connection, pipeline: &str, keep: usize) -> Result<bool, HistoryError> {
    let beyond: Option<RunId> = conn
        .query_row(OVER_LIMIT, params![pipeline, to_i64(keep)], |r| r.get(0))
        .optional()?;
    Ok(beyond.is_some())
}

/// Keeps the newest `keep` runs of `pipeline`, if it has more (after a run is recorded).
pub(crate) fn retain(conn: &Connection, pipeline: &str, keep: usize) -> Result<Option<Pruned>, HistoryError> {
    if !over_limit(conn, pipeline, keep)? {
        return Ok(None);
    }
    let policy = Prune {
        keep: Some(keep),
        pipeline: Some(pipeline.to_owned()),
        ..Prune::default()
    };
    prune(conn, &policy).map(Some)
}

/// A run the policy selected.
struct Candidate {
    id: RunId,
    status: String,
    pid: i64,
    pid_start: Option<String>,
}

pub(crate) fn prune(conn: &Connection, policy: &Prune) -> Result<Pruned, HistoryError> {
    let mut out = Pruned {
        dry_run: policy.dry_run,
        ..Pruned::default()
    };
    // IMMEDIATE: the runs are selected under a write lock, so a run started meanwhile is
    // either seen (and is the newest, never selected) or starts after the selection.
    let behavior = if policy.dry_run {
        TransactionBehavior::Deferred
    } else {
        TransactionBehavior::Immediate
    };
    let tx = Transaction::new_unchecked(conn, behavior)?;
    let pipeline = policy.pipeline.as_deref();
    if policy.is_set() {
        let cutoff = policy.older_than.map(|d| now() - d.as_secs_f64());
        for c in candidates(&tx, pipeline, policy.keep, cutoff)? {
            if c.status == "running" && process::alive(c.pid, c.pid_start.as_deref()) {
                out.kept_running.push((c.id, c.pid));
            } else {
                out.runs.push(c.id);
            }
        }
    }
    let scope: usize = tx.query_row(
        "SELECT count(*) FROM runs WHERE ?1 IS NULL OR pipeline = ?1",
        [pipeline],
        |r| r.get(0),
    )?;
    out.remaining = scope.saturating_sub(out.runs.len());
    if out.runs.is_empty() {
        return Ok(out);
    }
    // The ids as a JSON array, for `json_each`: one statement per table.
    let ids = format!(
        "[{}]",
        out.runs.iter().map(RunId::to_string).collect::<Vec<_>>().join(",")
    );
    if policy.dry_run {
        out.defs = tx.query_row(
            "SELECT count(*) FROM defs WHERE def_hash NOT IN
                (SELECT def_hash FROM runs WHERE id NOT IN (SELECT value FROM json_each(?1)))",
            [&ids],
            |r| r.get(0),
        )?;
        return Ok(out);
    }
    // The selection is settled; the deletion goes in chunks of runs, each its own
    // transaction, so another process recording a run waits for one chunk at most, not for
    // a first prune of a long history (hundreds of megabytes).
    tx.commit()?;
    let page_size = pragma(conn, "page_size")?;
    for chunk in out.runs.chunks(DELETE_CHUNK) {
        let ids = format!("[{}]", chunk.iter().map(RunId::to_string).collect::<Vec<_>>().join(","));
        let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
        let free_before = pragma(&tx, "freelist_count")?;
        for table in ["phases", "logs", "journal"] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE run_id IN (SELECT value FROM json_each(?1))"),
                [&ids],
            )?;
        }
        tx.execute("DELETE FROM runs WHERE id IN (SELECT value FROM json_each(?1))", [&ids])?;
        let free_after = pragma(&tx, "freelist_count")?;
        tx.commit()?;
        out.freed_bytes += free_after.saturating_sub(free_before) * page_size;
    }
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let free_before = pragma(&tx, "freelist_count")?;
    out.defs = tx.execute("DELETE FROM defs WHERE def_hash NOT IN (SELECT def_hash FROM runs)", [])?;
    let free_after = pragma(&tx, "freelist_count")?;
    tx.commit()?;
    out.freed_bytes += free_after.saturating_sub(free_before) * page_size;
    // 2 = incremental. With `none` (the default) a VACUUM would rewrite the whole file:
    // too slow to do unasked.
    if pragma(conn, "auto_vacuum")? == 2 {
        let before = pragma(conn, "page_count")?;
        conn.execute_batch("PRAGMA incremental_vacuum")?;
        out.returned_bytes = before.saturating_sub(pragma(conn, "page_count")?) * page_size;
    }
    Ok(out)
}

/// The runs `keep` and `cutoff` select (of `pipeline`, if given), oldest first.
fn candidates(
    conn: &Connection,
    pipeline: Option<&str>,
    keep: Option<usize>,
    cutoff: Option<f64>,
) -> Result<Vec<Candidate>, HistoryError> {
    let mut stmt = conn.prepare(
        "SELECT id, status, pid, pid_start FROM (
             SELECT id, status, pid, pid_start, started_at,
                    row_number() OVER (PARTITION BY pipeline ORDER BY id DESC) AS newest
             FROM runs WHERE ?1 IS NULL OR pipeline = ?1)
         WHERE (?2 IS NOT NULL AND newest > ?2) OR (?3 IS NOT NULL AND started_at < ?3)
         ORDER BY id",
    )?;
    let rows = stmt.query_map(params![pipeline, keep.map(to_i64), cutoff], |r| {
        Ok(Candidate {
            id: r.get(0)?,
            status: r.get(1)?,
            pid: r.get(2)?,
            pid_start: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn pragma(conn: &Connection, name: &str) -> Result<u64, HistoryError> {
    let n: i64 = conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The database's size in bytes (pages × page size).
fn size(conn: &Connection) -> Result<u64, HistoryError> {
    Ok(pragma(conn, "page_count")? * pragma(conn, "page_size")?)
}

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_check_is_one_lookup_in_the_pipeline_index() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::schema::open_waiting(&dir.path().join("h.db"), crate::schema::BUSY_TIMEOUT).unwrap();
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {OVER_LIMIT}"))
            .unwrap()
            .query_map(params!["p", 100], |r| r.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(plan.len(), 1, "{plan:?}");
        assert!(plan[0].contains("COVERING INDEX runs_by_pipeline"), "{plan:?}");
        assert!(!over_limit(&conn, "p", 0).unwrap());
    }
}
