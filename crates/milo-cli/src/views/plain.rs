//! `--ui plain`: one line per event, good for CI logs: `[phase] line` for output, and start,
//! complete, fail, retry, skip and cancel lines with durations; then the final summary.

use std::io::Write;
use std::sync::Arc;
use std::sync::mpsc;

use milo::pipeline::{PipelineAction, PipelineState};

use super::summary::{secs, summary};
use super::{Feed, View};

pub struct PlainView {
    feed: Feed<String>,
}

/// The line for `action` given the state after it, if it deserves one.
pub fn line(action: &PipelineAction, state: &PipelineState) -> Option<String> {
    use PipelineAction as A;
    let elapsed = |name: &str| state.phase(name).map_or(0.0, |p| p.elapsed);
    Some(match action {
        A::PipelineStart { name, .. } => {
            let n = state.phases.len();
            format!("milo: running {name} ({n} phase{})", if n == 1 { "" } else { "s" })
        }
        A::PhaseStart { name, attempt, .. } if *attempt > 1 => format!("[{name}] started (attempt {attempt})"),
        A::PhaseStart { name, .. } => format!("[{name}] started"),
        A::PhaseLog { name, line, .. } => format!("[{name}] {line}"),
        A::PhaseComplete {
            name,
            reused_from: Some(run),
            ..
        } => format!("[{name}] completed (reused from run {run})"),
        A::PhaseComplete { name, .. } => format!("[{name}] completed in {}", secs(elapsed(name))),
        A::PhaseFailed { name, error, .. } => format!("[{name}] failed after {}: {error}", secs(elapsed(name))),
        A::PhaseSkipped { name, error, .. } => format!("[{name}] skipped after {}: {error}", secs(elapsed(name))),
        A::PhaseCancelled { name, .. } => format!("[{name}] cancelled after {}", secs(elapsed(name))),
        A::PhaseRetry {
            name,
            attempt,
            error,
            max_retries,
            delay,
            ..
        } => format!(
            "[{name}] attempt {attempt}/{} failed: {error}; retrying in {}",
            max_retries + 1,
            secs(*delay)
        ),
        A::SagaError { saga, error } => format!("milo: internal error in {saga}: {error}"),
        _ => return None,
    })
}

impl PlainView {
    pub fn start(store: &milo::Store<PipelineState, PipelineAction>) -> Self {
        let feed = Feed::start(
            store,
            |a, s: &Arc<PipelineState>| line(a, s),
            |rx: mpsc::Receiver<String>| {
                let stdout = std::io::stdout();
                let mut out = stdout.lock();
                for l in rx {
                    let _ = writeln!(out, "{l}");
                }
                let _ = out.flush();
            },
        );
        Self { feed }
    }
}

impl View for PlainView {
    fn finish(self: Box<Self>, state: &PipelineState) {
        self.feed.close();
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "{}", summary(state));
        let _ = out.flush();
    }
}
