//! The database schema, its versioned migrations (`PRAGMA user_version`), and the connection
//! settings every connection uses.
//!
//! Tables:
//!
//! * `runs`: one row per `milo run`: pipeline name, definition JSON and hash, wall-clock start,
//!   end and last write, status (`running`, `completed`, `failed`, `cancelled`,
//!   `interrupted`), exit code, recording process (pid and its start time), the run it
//!   resumes, the journal's length and head hash, its chain (`hmac-sha256:<key id>`; NULL
//!   for the unkeyed chain of milo before schema version 4) and the seal (a MAC of how the
//!   run ended, see [`key`](crate::key)), and why the recording stopped before the run
//!   ended (`recording_error`: a write failed, or the recording process went away); its
//!   parameter values (`params`, since version 6) and what started it (`trigger`: a watch
//!   cycle and its changed paths, since version 8; see [`trigger`](crate::trigger)).
//! * `phases`: one row per phase of a run: status, attempts, timings (seconds since the run
//!   started), error, result JSON, the run it was reused from, log line count, phase hash,
//!   and for an incremental phase its decision (`@@PHASE_DECISION`, since schema version 5):
//!   `decision_key` (the digest it was decided under), `verdict` (`run`, `up_to_date` or
//!   `restored`) and `reason`; all three NULL for a phase that is not incremental, or in a
//!   run recorded before version 5; and for a phase run by a batch scheduler (Slurm) the job
//!   ids of its attempts (`job_ids`, comma-separated, since version 7).
//! * `logs`: every captured line, in chunks of consecutive lines of one phase (see
//!   [`chunk`](crate::chunk)), each line with its journal sequence number and tag; `last_seq`
//!   is the journal length when the chunk was written and `hash` the chain head then.
//! * `journal`: every other dispatched action as JSON. Together with the log chunks it is
//!   the whole journal, in order, each entry with `hash = HMAC-SHA256(key, previous head ‖
//!   JSON)`; the first one chains from a MAC of the run row's fixed facts, and the lines in
//!   between are folded into the head as [`chunk`](crate::chunk) describes. (Before schema
//!   version 4: plain SHA-256 from 32 zero bytes.)

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use crate::error::HistoryError;

/// `PRAGMA application_id` of a milo history ("milo" in ASCII).
pub const APPLICATION_ID: i64 = 0x6d69_6c6f;

/// Migration `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 0 → 1
    "
    CREATE TABLE runs (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        pipeline      TEXT    NOT NULL,
        def_hash      TEXT    NOT NULL,
        def_json      TEXT    NOT NULL,
        pipeline_file TEXT,
        started_at    REAL    NOT NULL,
        ended_at      REAL,
        last_seen     REAL,
        status        TEXT    NOT NULL,
        exit_code     INTEGER,
        error         TEXT,
        pid           INTEGER NOT NULL,
        pid_start     TEXT,
        resumed_from  INTEGER,
        journal_len   INTEGER NOT NULL DEFAULT 0,
        journal_head  BLOB
    );
    CREATE INDEX runs_by_pipeline ON runs (pipeline, id);
    CREATE INDEX runs_by_status ON runs (status);
    CREATE TABLE phases (
        run_id      INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        idx         INTEGER NOT NULL,
        name        TEXT    NOT NULL,
        phase_hash  TEXT    NOT NULL,
        status      TEXT    NOT NULL,
        attempts    INTEGER NOT NULL DEFAULT 0,
        started_at  REAL,
        finished_at REAL,
        error       TEXT,
        result      TEXT,
        reused_from TEXT,
        log_count   INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (run_id, name)
    ) WITHOUT ROWID;
    CREATE TABLE logs (
        run_id    INTEGER NOT NULL,
        phase     TEXT    NOT NULL,
        first_seq INTEGER NOT NULL,
        last_seq  INTEGER NOT NULL,
        lines     INTEGER NOT NULL,
        data      BLOB    NOT NULL,
        PRIMARY KEY (run_id, phase, first_seq)
    ) WITHOUT ROWID;
    CREATE INDEX logs_by_seq ON logs (run_id, first_seq);
    CREATE TABLE journal (
        run_id INTEGER NOT NULL,
        seq    INTEGER NOT NULL,
        action TEXT    NOT NULL,
        hash   BLOB    NOT NULL,
        PRIMARY KEY (run_id, seq)
    ) WITHOUT ROWID;
    ",
    // 1 → 2: version 2 log chunks (see `chunk`): lines tagged, one chain link per chunk,
    // stored here. NULL for version 1 chunks.
    "ALTER TABLE logs ADD COLUMN hash BLOB;",
    // 2 → 3: pipeline definitions move out of the run row into a table keyed by their hash.
    // In the run row, the definition (100 KiB for 1,000 phases) sat in overflow pages that
    // SQLite rewrote with every progress update of the row; and a pipeline run a hundred
    // times kept a hundred copies.
    "
    CREATE TABLE defs (
        def_hash TEXT PRIMARY KEY,
        def_json TEXT NOT NULL
    ) WITHOUT ROWID;
    INSERT OR IGNORE INTO defs (def_hash, def_json) SELECT def_hash, def_json FROM runs;
    ALTER TABLE runs DROP COLUMN def_json;
    ",
    // 3 → 4: the keyed journal (see `key`): which chain a run uses (NULL: the unkeyed SHA-256
    // chain of earlier versions) and the MAC of how it ended.
    "
    ALTER TABLE runs ADD COLUMN chain TEXT;
    ALTER TABLE runs ADD COLUMN seal BLOB;
    ALTER TABLE runs ADD COLUMN recording_error TEXT;
    ",
    // 4 → 5: incremental runs: each phase's decision (`@@PHASE_DECISION`), NULL for phases
    // that are not incremental and for every phase of the runs recorded before.
    "
    ALTER TABLE phases ADD COLUMN decision_key TEXT;
    ALTER TABLE phases ADD COLUMN verdict TEXT;
    ALTER TABLE phases ADD COLUMN reason TEXT;
    ",
    // 5 → 6: the run's parameter values (`-p NAME=VALUE`), a JSON array of `[name, value]`
    // pairs in declaration order; NULL for runs without parameters and those recorded before.
    "ALTER TABLE runs ADD COLUMN params TEXT;",
    // 6 → 7: phases run by a batch scheduler (Slurm): the job ids of their attempts, oldest
    // first, comma-separated (`@@PHASE_QUEUED`); NULL for a local phase and in runs recorded
    // before.
    "ALTER TABLE phases ADD COLUMN job_ids TEXT;",
    // 7 → 8: what started the run (see `trigger`): for a `milo watch` cycle, its number and
    // the changed paths, as JSON; NULL for a plain `milo run` and the runs recorded before.
    "ALTER TABLE runs ADD COLUMN trigger TEXT;",
];

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Opens `path` with the settings every connection uses (WAL, `synchronous = NORMAL`: a
/// committed transaction survives the process being killed), checks it is a milo history,
/// and migrates it to [`SCHEMA_VERSION`]. Waits at most `wait` for another connection's lock,
/// now and in the connection's statements ([`BUSY_TIMEOUT`] is the usual wait).
pub fn open_waiting(path: &Path, wait: Duration) -> Result<Connection, HistoryError> {
    // Setting up a new file (page size, WAL, migration) takes locks that SQLite reports as
    // busy at once instead of waiting (another process opening it at the same moment, as
    // two `milo run` in one directory do): retry for as long as the busy timeout.
    let deadline = std::time::Instant::now() + wait;
    loop {
        match open_once(path, wait) {
            Err(HistoryError::Sql(e)) if is_busy(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            result => return result,
        }
    }
}

/// How long a connection waits for another one's lock.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

fn open_once(path: &Path, wait: Duration) -> Result<Connection, HistoryError> {
    let conn = Connection::open(path).map_err(|source| HistoryError::Open {
        path: path.to_owned(),
        source,
    })?;
    // A lock held elsewhere, a full disk or an I/O error say nothing about the file's
    // contents: reported as they are, not as corruption.
    let corrupt = |e: rusqlite::Error| match e.sqlite_error_code() {
        Some(
            rusqlite::ErrorCode::DatabaseBusy
            | rusqlite::ErrorCode::DatabaseLocked
            | rusqlite::ErrorCode::DiskFull
            | rusqlite::ErrorCode::SystemIoFailure
            | rusqlite::ErrorCode::ReadOnly
            | rusqlite::ErrorCode::CannotOpen
            | rusqlite::ErrorCode::PermissionDenied
            | rusqlite::ErrorCode::OutOfMemory,
        ) => HistoryError::Sql(e),
        _ => HistoryError::Corrupt {
            path: path.to_owned(),
            reason: e.to_string(),
        },
    };
    conn.busy_timeout(wait).map_err(corrupt)?;
    // The first statement that reads the file: a file that is not SQLite fails here. One
    // statement, so one snapshot: another process may be creating the schema meanwhile.
    let (app_id, version, tables): (i64, i64, i64) = conn
        .query_row(
            "SELECT (SELECT application_id FROM pragma_application_id()),
                    (SELECT user_version FROM pragma_user_version()),
                    (SELECT count(*) FROM sqlite_schema)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .map_err(corrupt)?;
    if app_id != APPLICATION_ID && (app_id != 0 || tables > 0) {
        return Err(HistoryError::Corrupt {
            path: path.to_owned(),
            reason: "it is an SQLite database, but not one milo wrote".into(),
        });
    }
    if version > SCHEMA_VERSION {
        return Err(HistoryError::TooNew {
            path: path.to_owned(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if tables == 0 {
        // Only possible before the first table: bigger pages suit the 64 KiB log chunks.
        conn.pragma_update(None, "page_size", 16 * 1024).map_err(corrupt)?;
    }
    conn.pragma_update(None, "journal_mode", "WAL").map_err(corrupt)?;
    conn.pragma_update(None, "synchronous", "NORMAL").map_err(corrupt)?;
    conn.pragma_update(None, "foreign_keys", "ON").map_err(corrupt)?;
    if version < SCHEMA_VERSION {
        migrate(&conn, version).map_err(corrupt)?;
    }
    Ok(conn)
}

fn migrate(conn: &Connection, from: i64) -> Result<(), rusqlite::Error> {
    // IMMEDIATE: two processes opening a new file at once migrate it once.
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| {
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let start = version.max(from);
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(start as usize) {
            conn.execute_batch(sql)?;
            conn.pragma_update(None, "user_version", (i + 1) as i64)?;
        }
        conn.pragma_update(None, "application_id", APPLICATION_ID)?;
        Ok(())
    })();
    match result {
        Ok(()) => conn.execute_batch("COMMIT"),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}
