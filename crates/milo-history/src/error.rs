//! [`HistoryError`]: every way opening, recording into or reading the run history can fail,
//! each saying what went wrong and how to get past it.

use std::path::PathBuf;

/// A failure of the run history. None of them should stop a pipeline run: the CLI warns once
/// and runs without history.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The directory that should hold the database could not be created.
    #[error(
        "could not create the run history directory `{}`: {source}; check its permissions, pass --db PATH to keep the history elsewhere, or --no-history",
        path.display()
    )]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The database file could not be created or made private (mode 0600).
    #[error(
        "could not make the run history `{}` private to you (mode 0600): {source}; check that you own the file, pass --db PATH to use another file, or --no-history",
        path.display()
    )]
    Permissions {
        /// The database file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The database file could not be opened at all.
    #[error(
        "could not open the run history `{}`: {source}; check its permissions, pass --db PATH to use another file, or --no-history",
        path.display()
    )]
    Open {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The file exists but is not a readable milo history (not SQLite, damaged, or another
    /// program's database).
    #[error(
        "the run history `{}` is unreadable or corrupt ({reason}); move it away (milo starts a new one), pass --db PATH to use another file, or --no-history",
        path.display()
    )]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What was found wrong.
        reason: String,
    },
    /// The database was written by a newer milo whose schema this one does not know.
    #[error(
        "the run history `{}` was written by a newer milo (schema version {found}; this milo reads up to {supported}); upgrade milo, or pass --db PATH to keep this version's history in another file",
        path.display()
    )]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// The schema version in the file.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// A read-only command found no database.
    #[error("no run history at `{}`: `milo run` records one there, or pass --db PATH to read another", path.display())]
    NotFound {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// A statement failed on an otherwise valid database (disk full, locked for too long…).
    #[error("the run history database failed: {0}; if this persists, move the file away or pass --no-history")]
    Sql(#[from] rusqlite::Error),
    /// The run asked for is not recorded.
    #[error("there is no run {0} in the history; `milo history` lists the recorded runs")]
    NoSuchRun(i64),
    /// The history holds no run (of this pipeline).
    #[error("the history has no runs{}; `milo run` records one", pipeline.as_ref().map(|p| format!(" of pipeline `{p}`")).unwrap_or_default())]
    NoRuns {
        /// The pipeline asked about, if any.
        pipeline: Option<String>,
    },
    /// A run selector that is neither a run number nor `last`.
    #[error("`{0}` is not a run: give a run number (see `milo history`) or `last`")]
    BadRunSelector(String),
    /// The run has no phase of that name.
    #[error("run {run} has no phase `{phase}`; its phases are: {available}")]
    NoSuchPhase {
        /// The run.
        run: i64,
        /// The phase asked for.
        phase: String,
        /// The phases it has, comma-separated.
        available: String,
    },
    /// `milo logs PHASE`: no recorded run has a phase of that name.
    #[error("no recorded run has a phase `{phase}`{}; the phases of run {run} are: {available}", suggestion.as_ref().map(|s| format!("; did you mean `{s}`?")).unwrap_or_default())]
    UnknownPhase {
        /// The phase asked for.
        phase: String,
        /// The closest phase name, if one is close enough to be a likely typo.
        suggestion: Option<String>,
        /// The run whose phases are listed (the newest).
        run: i64,
        /// Its phases, comma-separated.
        available: String,
    },
    /// `--resume` of a run that cannot be resumed.
    #[error(
        "run {run} is {status}; only failed, cancelled or interrupted runs can be resumed (`milo history` lists them)"
    )]
    NotResumable {
        /// The run.
        run: i64,
        /// Its status.
        status: String,
    },
    /// `--resume` of a run of another pipeline.
    #[error(
        "run {run} is a run of pipeline `{found}`, not `{expected}`; pick a run of `{expected}` from `milo history`"
    )]
    OtherPipeline {
        /// The run.
        run: i64,
        /// Its pipeline.
        found: String,
        /// The pipeline being run.
        expected: String,
    },
    /// A stored row could not be decoded (edited by hand or damaged).
    #[error("run {run}'s recorded {what} is unreadable ({reason}); the row was damaged or edited by hand")]
    BadRecord {
        /// The run.
        run: i64,
        /// What was being read.
        what: &'static str,
        /// The decoder's error.
        reason: String,
    },
    /// The recorder's writer thread failed or could not be started.
    #[error("the run history writer failed: {0}; the run goes on, but what follows is not recorded")]
    Writer(String),
    /// The run was recorded, but deleting the runs beyond the retention limit failed.
    #[error(
        "run {run} was recorded, but deleting the runs of pipeline `{pipeline}` beyond the newest {keep} failed: {reason}; the next run tries again, `milo history prune --keep {keep}` does it by hand, and `--keep-runs 0` keeps every run"
    )]
    Retention {
        /// The run just recorded.
        run: i64,
        /// Its pipeline.
        pipeline: String,
        /// How many runs were to be kept.
        keep: usize,
        /// What failed.
        reason: String,
    },
    /// The journal key could not be read or created.
    #[error(
        "the journal key `{}` is unusable: {reason}; set {env}=PATH to keep the key elsewhere, or pass --no-history",
        path.display(),
        env = crate::key::KEY_ENV
    )]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Neither `MILO_JOURNAL_KEY`, `XDG_DATA_HOME` nor `HOME` says where the key goes.
    #[error(
        "there is nowhere to keep the journal key: set {env}=PATH (or HOME), or pass --no-history",
        env = crate::key::KEY_ENV
    )]
    NoKeyPath,
    /// `--resume` of a run whose journal does not verify.
    #[error(
        "run {run} cannot be resumed: its results cannot be trusted, {reason}; `milo replay {run}` says more, and a run without --resume runs every phase"
    )]
    NotVerified {
        /// The run.
        run: i64,
        /// Why it does not verify.
        reason: String,
    },
    /// Printing the result of a history command failed.
    #[error("could not write the output: {0}")]
    Output(#[from] std::io::Error),
}

impl HistoryError {
    /// The exit status a `milo` command should use for this error: 2 for a request that
    /// names something that does not exist, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            HistoryError::NoSuchRun(_)
            | HistoryError::NoSuchPhase { .. }
            | HistoryError::UnknownPhase { .. }
            | HistoryError::BadRunSelector(_)
            | HistoryError::NotResumable { .. }
            | HistoryError::OtherPipeline { .. }
            | HistoryError::NotVerified { .. } => 2,
            _ => 1,
        }
    }
}
