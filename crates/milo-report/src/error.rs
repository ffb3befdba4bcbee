//! [`ReportError`]: every way building or writing a report can fail, each saying what went
//! wrong and how to get past it.

use std::path::PathBuf;

use milo_history::HistoryError;

/// A failure of `milo report`.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Reading the run from the history failed (no database, no such run…).
    #[error(transparent)]
    History(#[from] HistoryError),
    /// The `--timeline` file could not be read.
    #[error("could not read the timeline `{}`: {source}", path.display())]
    ReadTimeline {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The `--timeline` file is not a milo timeline.
    #[error(
        "`{}` is not a milo timeline ({reason}); write one with `milo run --timeline FILE`",
        path.display()
    )]
    BadTimeline {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Both a run and `--timeline` were given.
    #[error("give either a run or --timeline FILE, not both: a timeline file is a report's whole input")]
    RunAndTimeline,
    /// The report could not be written.
    #[error("could not write the report `{}`: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The chrome-trace JSON could not be serialized.
    #[error("could not serialize the trace: {0}")]
    Serialize(#[from] serde_json::Error),
}

impl ReportError {
    /// The exit status `milo report` should use: 2 for a request that names something that
    /// does not exist or makes no sense (no such run, unreadable or invalid `--timeline`, a
    /// run and a timeline), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            ReportError::History(e) => e.exit_code(),
            ReportError::ReadTimeline { .. } | ReportError::BadTimeline { .. } | ReportError::RunAndTimeline => 2,
            ReportError::Write { .. } | ReportError::Serialize(_) => 1,
        }
    }
}
