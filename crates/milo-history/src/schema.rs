//! The database schema, its versioned migrations (`PRAGMA user_version`), and the connection
//! settings every connection uses.
//!
//! Tables:
//!
//! * `runs`: one row per `milo run`: pipeline name, definition JSON and hash, wall-clock start,
//!   end and last write, status (`running`, `completed`, `failed`, `cancelled`,
//!   `interrupted`), exit code, recording process (pid and its start time), the run it
//!   resumes, and the journal's length and head hash.
//! * `phases`: one row per phase of a run: status, attempts, timings (seconds since the run
//!   started), error, result JSON, the run it was reused from, log line count, phase hash.
//! * `logs`: every captured line, in chunks of consecutive lines of one phase (see
//!   [`chunk`](crate::chunk)), each line with its journal sequence number and hash.
//! * `journal`: every other dispatched action as JSON. Together with the log chunks it is
//!   the whole journal, in order, each entry with `hash = SHA-256(previous hash ‖ JSON)`
//!   (the first one chains from 32 zero bytes; a line's hash covers its compact
//!   [`hash_input`](crate::chunk::hash_input) instead of its JSON).

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
];

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Opens `path` with the settings every connection uses (WAL, `synchronous = NORMAL`: a
/// committed transaction survives the process being killed), checks it is a milo history,
/// and migrates it to [`SCHEMA_VERSION`].
pub fn open(path: &Path) -> Result<Connection, HistoryError> {
    let conn = Connection::open(path).map_err(|source| HistoryError::Open {
        path: path.to_owned(),
        source,
    })?;
    let corrupt = |e: rusqlite::Error| HistoryError::Corrupt {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    conn.busy_timeout(Duration::from_secs(10)).map_err(corrupt)?;
    // The first statements that read the file: a file that is not SQLite fails here.
    let app_id: i64 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(corrupt)?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(corrupt)?;
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
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
        migrate(&conn, version).map_err(|e| match e {
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DatabaseBusy => HistoryError::Sql(e),
            e => corrupt(e),
        })?;
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
