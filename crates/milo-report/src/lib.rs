//! Run reports for milo: what a run did, to look at after the fact.
//!
//! * [`ReportRun`] is the data model: the run and its phases in execution order, each with
//!   its attempts ([`Segment`]s), captured logs ([`LogLine`]s) and durations in earlier
//!   runs. Build it from the run history ([`ReportRun::from_history`]: every attempt from the
//!   journal, full logs) or from a `milo run --timeline` file ([`ReportRun::from_timeline`]:
//!   one segment per phase, no logs).
//! * [`render_html`] turns it into one self-contained HTML page: a Gantt chart with retries
//!   and the critical path, the dependency graph, a phase table with medians and sparklines,
//!   and the logs.
//! * [`render_chrome_trace`] turns it into Chrome/Perfetto trace-event JSON.
//! * [`cli::report`] implements `milo report` on plain parameters.
//!
//! ```no_run
//! # fn demo() -> Result<(), milo_report::ReportError> {
//! let history = milo_history::History::open_existing(".milo/history.db".as_ref())?;
//! let run = milo_report::ReportRun::from_history(&history, None)?;
//! std::fs::write("report.html", milo_report::render_html(&run)).ok();
//! # Ok(()) }
//! ```

pub mod cli;
mod error;
pub mod html;
mod model;
mod source;
pub mod trace;

pub use error::ReportError;
pub use html::render_html;
pub use model::{LogLine, ReportPhase, ReportRun, Segment};
pub use source::HISTORY_RUNS;
pub use trace::render_chrome_trace;
