//! `--ui plain`: one line per event, good for CI logs: `[phase] line` for output, and start,
//! complete, fail, retry, skip and cancel lines with durations; then the final summary.

use std::io::{BufWriter, Write};
use std::sync::Arc;
use std::sync::mpsc;

use milo::pipeline::{PipelineAction, PipelineState};

use super::summary::{secs, summary};
use super::{Feed, View, write_batched};

pub struct PlainView {
    feed: Feed<Item>,
}

/// What the store listener hands the writer thread: output lines as they come (two reference
/// counts, formatted on the writer thread), every other event as its finished line.
enum Item {
    Log(Arc<str>, Arc<str>),
    Line(String),
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
            |a, s: &Arc<PipelineState>| match a {
                PipelineAction::PhaseLog { name, line: l, .. } => Some(Item::Log(name.clone(), l.clone())),
                _ => line(a, s).map(Item::Line),
            },
            |rx: mpsc::Receiver<Item>| {
                let stdout = std::io::stdout();
                let out = std::cell::RefCell::new(BufWriter::with_capacity(64 * 1024, stdout.lock()));
                write_batched(
                    rx,
                    |item| {
                        let mut out = out.borrow_mut();
                        let _ = match item {
                            // Same text as `line` gives: `[name] line`.
                            Item::Log(name, l) => out
                                .write_all(b"[")
                                .and_then(|()| out.write_all(name.as_bytes()))
                                .and_then(|()| out.write_all(b"] "))
                                .and_then(|()| out.write_all(l.as_bytes()))
                                .and_then(|()| out.write_all(b"\n")),
                            Item::Line(l) => out.write_all(l.as_bytes()).and_then(|()| out.write_all(b"\n")),
                        };
                    },
                    || {
                        let _ = out.borrow_mut().flush();
                    },
                );
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
