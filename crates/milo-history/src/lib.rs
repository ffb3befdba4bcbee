//! Run history for milo in an embedded SQLite database (`.milo/history.db` beside the
//! pipeline file by default).
//!
//! * [`History::open`] opens (creating and migrating) a database; a corrupt file, another
//!   program's database or one from a newer milo is an error, never a panic, so a caller can
//!   warn and run without history.
//! * [`History::recorder`] starts recording one run: subscribe [`Recorder::listener`] to the
//!   store, and call [`Recorder::finish`] at the end. Writes happen on a dedicated thread in
//!   batched transactions (WAL), so they do not slow the pipeline, and a process killed
//!   mid-run (even with SIGKILL) leaves a readable database with everything committed so far;
//!   the next [`History::open`] marks that run `interrupted`.
//! * Queries: [`History::runs`], [`History::show`], [`History::logs`],
//!   [`History::journal`], [`History::verify`], [`History::replay`],
//!   [`History::resume_plan`], [`History::median_durations`] (the core's
//!   [`milo::pipeline::Eta`] turns the medians into an ETA).
//! * Retention: [`History::prune`] deletes old runs by a [`Prune`] policy (newest N per
//!   pipeline, older than a duration); [`Recorder::finish`] keeps the newest
//!   [`RecordOptions::keep_runs`] runs of the pipeline it recorded.
//! * [`cli`] implements `milo history`, `milo show`, `milo logs` and `milo replay` on plain
//!   parameters for the `milo` command to call.
//!
//! ```no_run
//! # async fn demo(pipeline: milo::pipeline::Pipeline) -> Result<(), Box<dyn std::error::Error>> {
//! use milo_history::{History, RecordOptions};
//! let history = History::open(".milo/history.db".as_ref())?;
//! let recorder = history.recorder(&pipeline, RecordOptions::default())?;
//! let store = pipeline.store()?;
//! let _sub = recorder.subscribe(&store);
//! let report = pipeline.run_with(&store, Default::default()).await?;
//! recorder.finish(report.status, 0)?;
//! # Ok(()) }
//! ```

pub mod chunk;
pub mod cli;
pub mod def;
mod error;
pub mod key;
mod private;
mod process;
mod prune;
mod query;
mod recorder;
mod schema;
pub mod trigger;

use std::path::{Path, PathBuf};

use milo::pipeline::Pipeline;
use rusqlite::{Connection, params};
use serde::Serialize;

pub use error::HistoryError;
pub use prune::{DEFAULT_KEEP_RUNS, Prune, Pruned, Vacuumed};
pub use query::{
    JournalEntry, LogEntry, PhaseRecord, Replay, ResumePlan, RunDetail, RunSummary, Verification, parse_run,
};
pub use recorder::{BATCH, COMMIT_EVERY, RecordOptions, Recorder};
pub use schema::SCHEMA_VERSION;
pub use trigger::Trigger;

/// A run's number in the history (1, 2, …).
pub type RunId = i64;

/// How a recorded run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Being recorded by a live process.
    Running,
    /// Every phase completed or was skipped.
    Completed,
    /// A phase failed.
    Failed,
    /// Stopped by Ctrl-C or SIGTERM.
    Cancelled,
    /// The recording process went away mid-run (killed, crashed) or gave up recording.
    Interrupted,
}

impl RunStatus {
    /// The lowercase name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Interrupted => "interrupted",
        }
    }

    /// Parses a stored status; anything unknown reads as `interrupted`.
    pub fn parse(s: &str) -> Self {
        match s {
            "running" => RunStatus::Running,
            "completed" => RunStatus::Completed,
            "failed" => RunStatus::Failed,
            "cancelled" => RunStatus::Cancelled,
            _ => RunStatus::Interrupted,
        }
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The default database of `pipeline_file`: `.milo/history.db` in the file's directory.
pub fn default_db_path(pipeline_file: &Path) -> PathBuf {
    let dir = pipeline_file.parent().unwrap_or(Path::new(""));
    dir.join(".milo").join("history.db")
}

/// Keeps milo's own `.milo` directory out of version control, as pytest and ruff do with
/// their caches: a `.gitignore` of `*` in it, written once (never over the user's own). A
/// directory named otherwise (`--db elsewhere/h.db`) is the user's and is left alone. Best
/// effort: the history (and the cache, which calls it too) works without it.
pub fn ignore_in_git(dir: &Path) {
    if dir.file_name().is_some_and(|n| n == ".milo") {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dir.join(".gitignore"));
        if let Ok(mut file) = file {
            let _ = std::io::Write::write_all(
                &mut file,
                b"# Created by milo: its run history and cache stay out of git.\n*\n",
            );
        }
    }
}

/// An open run history.
#[derive(Debug)]
pub struct History {
    path: PathBuf,
    conn: Connection,
    /// How long opening and starting a recording wait for another process's lock.
    wait: std::time::Duration,
}

impl History {
    /// Opens the history at `path`, creating the file (and its directory) if needed and
    /// migrating it to this version's schema. Runs left `running` by a process that no longer
    /// exists are marked `interrupted`.
    pub fn open(path: &Path) -> Result<Self, HistoryError> {
        Self::open_waiting(path, schema::BUSY_TIMEOUT)
    }

    /// [`open`](Self::open), waiting at most `wait` for another process's lock on the file —
    /// here, in this history's queries and when a [`recorder`](Self::recorder) starts (the
    /// recorder's writer thread then waits the usual 10 s). `milo run` opens with a short
    /// wait: a run does not hold its phases back for long because the history is busy, it
    /// warns and goes on unrecorded.
    pub fn open_waiting(path: &Path, wait: std::time::Duration) -> Result<Self, HistoryError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            private::create_dir(dir).map_err(|source| HistoryError::CreateDir {
                path: dir.to_owned(),
                source,
            })?;
            ignore_in_git(dir);
        }
        // Before SQLite creates the file (and its -wal and -shm, with the same mode).
        private::database_files(path).map_err(|source| HistoryError::Permissions {
            path: path.to_owned(),
            source,
        })?;
        Self::open_file(path, wait)
    }

    /// Opens an existing history (for the read-only commands): a missing file is
    /// [`HistoryError::NotFound`] instead of a new, empty history.
    pub fn open_existing(path: &Path) -> Result<Self, HistoryError> {
        if !path.exists() {
            return Err(HistoryError::NotFound { path: path.to_owned() });
        }
        // Best effort: a history written by an older milo (0644) is made private when its
        // owner reads it; another user's file (shared read-only) still reads.
        let _ = private::database_files(path);
        Self::open_file(path, schema::BUSY_TIMEOUT)
    }

    fn open_file(path: &Path, wait: std::time::Duration) -> Result<Self, HistoryError> {
        let conn = schema::open_waiting(path, wait)?;
        let history = Self {
            path: path.to_owned(),
            conn,
            wait,
        };
        // Best effort: a read-only file still reads, with the stale status shown as is.
        let _ = history.mark_interrupted();
        Ok(history)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Starts recording a run of `pipeline`: inserts the run and its phases, and starts the
    /// writer thread on its own connection.
    pub fn recorder(&self, pipeline: &Pipeline, options: RecordOptions) -> Result<Recorder, HistoryError> {
        let key = key::JournalKey::load_or_create()?;
        let conn = schema::open_waiting(&self.path, self.wait)?;
        Recorder::start(conn, &self.path, key, pipeline, options)
    }

    /// Marks runs left `running` by a process that is gone as `interrupted` (with their
    /// running phases); returns how many.
    pub fn mark_interrupted(&self) -> Result<usize, HistoryError> {
        let stale: Vec<(RunId, i64, Option<String>)> = {
            let mut stmt = self
                .conn
                .prepare("SELECT id, pid, pid_start FROM runs WHERE status = 'running'")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect::<Result<Vec<_>, _>>()?
        };
        let mut n = 0;
        for (id, pid, start) in stale {
            if process::alive(pid, start.as_deref()) {
                continue;
            }
            let tx = self.conn.unchecked_transaction()?;
            tx.execute(
                "UPDATE runs SET status = 'interrupted', ended_at = last_seen,
                        recording_error = coalesce(recording_error, ?2)
                 WHERE id = ?1 AND status = 'running'",
                params![id, GONE],
            )?;
            tx.execute(
                "UPDATE phases SET status = 'interrupted' WHERE run_id = ?1 AND status IN ('running', 'retrying')",
                [id],
            )?;
            tx.commit()?;
            n += 1;
        }
        Ok(n)
    }
}

/// Why a run left `running` by a process that is gone was not recorded to its end.
pub(crate) const GONE: &str =
    "the recording process went away before the run ended (killed, crashed, or its history could not be written)";

/// Seconds since the Unix epoch.
pub(crate) fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A run's parameter values as the `params` column holds them: a JSON array of `[name,
/// value]` pairs; `None` (NULL) when there are none.
pub(crate) fn params_json(params: &[(String, String)]) -> Option<String> {
    if params.is_empty() {
        return None;
    }
    serde_json::to_string(params).ok()
}

/// The `params` column read back; a value that is not such an array reads as none (the audit
/// of the run reports the edit).
pub(crate) fn parse_params(json: Option<&str>) -> Vec<(String, String)> {
    json.and_then(|j| serde_json::from_str(j).ok()).unwrap_or_default()
}
