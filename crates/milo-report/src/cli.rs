//! `milo report` on plain parameters, for the `milo` command to call:
//! [`report`] builds the report of a recorded run (or of a `--timeline` file) and writes it
//! as HTML or as a Chrome trace, returning the line to print.

use std::path::{Path, PathBuf};

use milo_history::{History, parse_run};

use crate::error::ReportError;
use crate::model::ReportRun;
use crate::{render_chrome_trace, render_html};

/// What `milo report` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReportFormat {
    /// One self-contained HTML page (the default).
    #[default]
    Html,
    /// Chrome/Perfetto trace-event JSON.
    ChromeTrace,
}

impl ReportFormat {
    /// The file extension of this format.
    pub fn extension(self) -> &'static str {
        match self {
            ReportFormat::Html => "html",
            ReportFormat::ChromeTrace => "json",
        }
    }
}

/// Parses `--format`: `html` or `chrome-trace`.
pub fn parse_format(s: &str) -> Result<ReportFormat, String> {
    match s {
        "html" => Ok(ReportFormat::Html),
        "chrome-trace" | "chrome" | "trace" | "perfetto" => Ok(ReportFormat::ChromeTrace),
        _ => Err(format!("`{s}` is not a report format: use html or chrome-trace")),
    }
}

/// Loads the run a report is about: from `timeline` if given (then `run` must be `None`),
/// else run `run` (a run number, `last` or `None` for the newest) of the history at `db`.
pub fn load(db: &Path, run: Option<&str>, timeline: Option<&Path>) -> Result<ReportRun, ReportError> {
    match timeline {
        Some(path) => {
            if run.is_some() {
                return Err(ReportError::RunAndTimeline);
            }
            let text = std::fs::read_to_string(path).map_err(|source| ReportError::ReadTimeline {
                path: path.to_owned(),
                source,
            })?;
            let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| ReportError::BadTimeline {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
            ReportRun::from_timeline(&value).map_err(|reason| ReportError::BadTimeline {
                path: path.to_owned(),
                reason,
            })
        }
        None => {
            let history = History::open_existing(db)?;
            ReportRun::from_history(&history, parse_run(run)?)
        }
    }
}

/// The default output file: `milo-report-<run>.html` (`.json` for a trace) in the current
/// directory; for a timeline file, `<run>` is the pipeline's name.
pub fn default_output(report: &ReportRun, format: ReportFormat) -> PathBuf {
    let tag = match report.run {
        Some(id) => id.to_string(),
        None => {
            let safe: String = report
                .pipeline
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            if safe.is_empty() { "timeline".to_owned() } else { safe }
        }
    };
    PathBuf::from(format!("milo-report-{tag}.{}", format.extension()))
}

/// `milo report [RUN] [--timeline FILE] [-o FILE] [--format html|chrome-trace]`: writes the
/// report of run `run` of the history at `db` (or of the timeline file) to `output` (default:
/// [`default_output`]) and returns the message to print, e.g.
/// `wrote the report of run 3 (build: 5 phases, failed) to milo-report-3.html`.
pub fn report(
    db: &Path,
    run: Option<&str>,
    timeline: Option<&Path>,
    output: Option<&Path>,
    format: ReportFormat,
) -> Result<String, ReportError> {
    let report = load(db, run, timeline)?;
    let path = output.map_or_else(|| default_output(&report, format), Path::to_owned);
    let bytes = match format {
        ReportFormat::Html => render_html(&report).into_bytes(),
        ReportFormat::ChromeTrace => {
            let mut b = serde_json::to_vec(&render_chrome_trace(&report))?;
            b.push(b'\n');
            b
        }
    };
    std::fs::write(&path, bytes).map_err(|source| ReportError::Write {
        path: path.clone(),
        source,
    })?;
    let what = match report.run {
        Some(id) => format!("run {id}"),
        None => "the timeline".to_owned(),
    };
    let kind = match format {
        ReportFormat::Html => "report",
        ReportFormat::ChromeTrace => "trace",
    };
    Ok(format!(
        "wrote the {kind} of {what} ({}: {} phase{}, {}) to {}",
        report.pipeline,
        report.phases.len(),
        if report.phases.len() == 1 { "" } else { "s" },
        report.status,
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(parse_format("html"), Ok(ReportFormat::Html));
        assert_eq!(parse_format("chrome-trace"), Ok(ReportFormat::ChromeTrace));
        assert!(parse_format("pdf").is_err());
    }

    #[test]
    fn default_names() {
        let mut r = ReportRun {
            pipeline: "my build/x".into(),
            run: Some(7),
            status: "completed".into(),
            elapsed: 1.0,
            started_at: None,
            error: None,
            params: Vec::new(),
            trigger: None,
            phases: vec![],
        };
        assert_eq!(
            default_output(&r, ReportFormat::Html),
            PathBuf::from("milo-report-7.html")
        );
        r.run = None;
        assert_eq!(
            default_output(&r, ReportFormat::ChromeTrace),
            PathBuf::from("milo-report-my_build_x.json")
        );
    }
}
