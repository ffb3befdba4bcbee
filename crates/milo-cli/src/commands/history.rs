//! `milo history`, `milo show`, `milo logs`, `milo replay` and `milo report`: read the run
//! history kept in `.milo/history.db` (see the `milo-history` and `milo-report` crates);
//! `milo history prune` deletes old runs from it.

use std::path::PathBuf;

use milo_history::HistoryError;
use milo_history::cli as hist;

use super::write_stdout;
use crate::cli::{DbArg, FileArg, HistoryArgs, HistoryCommand, LogsArgs, PruneArgs, ReportArgs, RunSelectArgs};
use crate::error::CliError;

fn db(file: &FileArg, db: &DbArg) -> PathBuf {
    hist::db_path(&file.file, db.db.as_deref())
}

fn history_error(e: HistoryError) -> CliError {
    if e.exit_code() == 2 {
        CliError::usage(e.to_string(), None)
    } else {
        CliError::Internal(e.to_string())
    }
}

/// Runs `f` into a buffer and prints it; its value is the exit status.
fn printed(f: impl FnOnce(&mut dyn std::io::Write) -> Result<u8, HistoryError>) -> Result<u8, CliError> {
    let mut out = Vec::new();
    let code = f(&mut out).map_err(history_error)?;
    write_stdout(&out)?;
    Ok(code)
}

pub fn history(a: &HistoryArgs) -> Result<u8, CliError> {
    match &a.command {
        Some(HistoryCommand::Prune(p)) => prune(p),
        None => printed(|o| hist::history(&db(&a.file, &a.db), a.limit, a.json, o)),
    }
}

fn prune(a: &PruneArgs) -> Result<u8, CliError> {
    let policy = milo_history::Prune {
        keep: a.keep,
        older_than: a.older_than,
        pipeline: a.pipeline.clone(),
        dry_run: a.dry_run,
    };
    if !policy.is_set() {
        return Err(CliError::usage(
            "`milo history prune` needs a policy: which runs should go?",
            Some(
                "add --keep N to keep the newest N runs of each pipeline, and/or --older-than DURATION (such as 30d) to delete older runs; --dry-run shows what would go"
                    .into(),
            ),
        ));
    }
    printed(|o| hist::prune(&db(&a.file, &a.db), &policy, a.vacuum, o))
}

pub fn show(a: &RunSelectArgs) -> Result<u8, CliError> {
    printed(|o| hist::show(&db(&a.file, &a.db), a.run.as_deref(), a.json, o))
}

pub fn replay(a: &RunSelectArgs) -> Result<u8, CliError> {
    printed(|o| hist::replay(&db(&a.file, &a.db), a.run.as_deref(), a.json, o))
}

pub fn logs(a: &LogsArgs) -> Result<u8, CliError> {
    let (run, phase) = match &a.second {
        Some(p) => (Some(a.first.as_str()), p.as_str()),
        None => (None, a.first.as_str()),
    };
    printed(|o| hist::logs(&db(&a.file, &a.db), run, phase, a.stream, o))
}

pub fn report(a: &ReportArgs) -> Result<u8, CliError> {
    let message = milo_report::cli::report(
        &db(&a.file, &a.db),
        a.run.as_deref(),
        a.timeline.as_deref(),
        a.output.as_deref(),
        a.format,
    )
    .map_err(|e| {
        if e.exit_code() == 2 {
            CliError::usage(e.to_string(), None)
        } else {
            CliError::Internal(e.to_string())
        }
    })?;
    write_stdout(format!("{message}\n").as_bytes())?;
    Ok(0)
}
