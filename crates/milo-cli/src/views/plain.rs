//! `--ui plain`: one line per event, good for CI logs, then the final summary.
//!
//! milo's own lines are `[phase] started`, `[phase] completed in 1.2s`, `[phase] failed
//! after …: error`, retry, skip and cancel lines, and `milo: …` lines. A phase's output lines
//! carry a marker after the name, `[phase] │ line` for stdout and `[phase] ! line` for
//! stderr, so no output line can pass for one of milo's. Phase-controlled text (output,
//! names, errors) is sanitised ([`Palette::clean`]): it cannot move the cursor, erase the
//! screen or talk to the terminal; on a colour terminal its own colours are kept.

use std::cell::RefCell;
use std::io::{BufWriter, Write};
use std::sync::Arc;
use std::sync::mpsc;

use milo::capture::Stream;
use milo::pipeline::{GroupCounts, PipelineAction, PipelineState, ServiceState, Status, Verdict};

use super::summary::{fresh_word, secs, summary};
use super::{Feed, View, WriteStatus, write_batched};
use crate::color::{DIM, Palette, RED};

/// The marker between a phase's name and one of its stdout lines.
pub const STDOUT_MARKER: &str = "│";
/// The marker between a phase's name and one of its stderr lines.
pub const STDERR_MARKER: &str = "!";

pub struct PlainView {
    feed: Feed<Item>,
    paint: Palette,
}

/// What the store listener hands the writer thread: output lines as they come (two reference
/// counts, formatted on the writer thread), every other event as its finished line.
enum Item {
    Log(Arc<str>, Stream, Arc<str>),
    Line(String),
}

/// The line for `action` given the state after it, if it deserves one. The action that ends
/// the last member of a matrix phase's group is followed by the group's line,
/// `[test] 4 instances: 3 completed, 1 failed` (the summary's words).
pub fn line(action: &PipelineAction, state: &PipelineState, paint: Palette) -> Option<String> {
    use PipelineAction as A;
    let line = event_line(action, state, paint)?;
    let (A::PhaseComplete { name, .. }
    | A::PhaseFailed { name, .. }
    | A::PhaseSkipped { name, .. }
    | A::PhaseCancelled { name, .. }) = action
    else {
        return Some(line);
    };
    let Some(group) = state.phase(name).and_then(|p| p.info.group.clone()) else {
        return Some(line);
    };
    let members: Vec<usize> = (0..state.phases.len())
        .filter(|&i| {
            state
                .phases
                .get(i)
                .is_some_and(|p| p.info.group.as_ref() == Some(&group))
        })
        .collect();
    let counts = GroupCounts::of(state, &members);
    if !counts.is_finished() {
        return Some(line);
    }
    Some(format!(
        "{line}\n[{}] {}",
        paint.clean(&group),
        paint.paint(Palette::status_style(counts.status()), counts.describe())
    ))
}

fn event_line(action: &PipelineAction, state: &PipelineState, paint: Palette) -> Option<String> {
    use PipelineAction as A;
    let elapsed = |name: &str| paint.paint(DIM, secs(state.phase(name).map_or(0.0, |p| p.elapsed)));
    let word = |status: Status, word: &str| paint.paint(Palette::status_style(status), word);
    let n = |name: &str| format!("[{}]", paint.clean(name));
    Some(match action {
        A::PipelineStart { name, .. } => {
            let count = state.phases.len();
            format!(
                "milo: running {} ({count} phase{})",
                paint.clean(name),
                if count == 1 { "" } else { "s" }
            )
        }
        A::PhaseStart { name, .. } if state.phase(name).is_some_and(|p| p.info.service) => {
            format!("{} starting (service)", n(name))
        }
        A::Service { name, state: s, .. } => match s {
            ServiceState::Ready if state.phase(name).is_some_and(|p| p.attempt == 0) => format!(
                "{} {} (still running from the last cycle)",
                n(name),
                word(Status::Completed, "ready")
            ),
            ServiceState::Ready => format!(
                "{} {} after {}",
                n(name),
                word(Status::Completed, "ready"),
                elapsed(name)
            ),
            ServiceState::Stopped => format!("{} stopped after {}", n(name), elapsed(name)),
            ServiceState::Kept => format!("{} ready, kept running", n(name)),
            ServiceState::Starting => format!("{} starting (service)", n(name)),
        },
        A::PhaseStart { name, attempt, .. } if *attempt > 1 => format!("{} started (attempt {attempt})", n(name)),
        A::PhaseStart { name, .. } => match state.phase(name).and_then(|p| p.decision.as_ref()) {
            // An incremental phase says why it runs.
            Some(d) => format!(
                "{} started {}",
                n(name),
                paint.paint(DIM, format!("({})", paint.clean(&d.reason)))
            ),
            None => format!("{} started", n(name)),
        },
        A::PhaseQueued { name, job_id, .. } => format!(
            "{} {} as job {}",
            n(name),
            word(Status::Queued, "queued"),
            paint.clean(job_id)
        ),
        A::PhaseRunning { name, job_id, .. } => format!(
            "{} {} (job {})",
            n(name),
            word(Status::Running, "running"),
            paint.clean(job_id)
        ),
        A::PhaseLog { name, line, stream, .. } => {
            let text = log_line(name, *stream, line, paint);
            if replayed(state, name) {
                return Some(mark_replayed(&text, name, paint));
            }
            text
        }
        A::PhaseComplete {
            name,
            reused_from: Some(run),
            ..
        } => format!(
            "{} {} (reused from run {run})",
            n(name),
            word(Status::Completed, "completed")
        ),
        A::PhaseComplete { name, .. } if state.phase(name).is_some_and(|p| p.fresh().is_some()) => {
            let p = state.phase(name)?;
            let verdict = p.fresh()?;
            match p.decision.as_ref().filter(|_| verdict == Verdict::Restored) {
                Some(d) => format!(
                    "{} {} {}",
                    n(name),
                    word(Status::Completed, fresh_word(verdict)),
                    paint.paint(DIM, format!("({})", paint.clean(&d.reason)))
                ),
                None => format!("{} {}", n(name), word(Status::Completed, fresh_word(verdict))),
            }
        }
        A::PhaseComplete { name, .. } => format!(
            "{} {} in {}",
            n(name),
            word(Status::Completed, "completed"),
            elapsed(name)
        ),
        A::PhaseFailed { name, error, .. } => format!(
            "{} {} after {}: {}",
            n(name),
            word(Status::Failed, "failed"),
            elapsed(name),
            paint.clean(error)
        ),
        A::PhaseSkipped { name, error, .. } => format!(
            "{} {} after {}: {}",
            n(name),
            word(Status::Skipped, "skipped"),
            elapsed(name),
            paint.clean(error)
        ),
        A::PhaseCancelled { name, .. } => {
            format!(
                "{} {} after {}",
                n(name),
                word(Status::Cancelled, "cancelled"),
                elapsed(name)
            )
        }
        A::PhaseRetry {
            name,
            attempt,
            error,
            max_retries,
            delay,
            ..
        } => format!(
            "{} {}: {}; retrying in {}",
            n(name),
            word(
                Status::Retrying,
                &format!("attempt {attempt}/{} failed", max_retries + 1)
            ),
            paint.clean(error),
            secs(*delay)
        ),
        A::SagaError { saga, error } => format!(
            "milo: {} in {saga}: {}",
            paint.paint(RED, "internal error"),
            paint.clean(error)
        ),
        _ => return None,
    })
}

/// The marker before the stream marker of a line replayed from an earlier run (a phase that
/// was up to date shows the lines it printed then): `[phase] ↺ │ line`.
pub const REPLAYED_MARKER: &str = "↺";

/// Whether phase `name`'s lines are replayed ones: it was found up to date or restored.
pub fn replayed(state: &PipelineState, name: &str) -> bool {
    state
        .phase(name)
        .and_then(|p| p.decision.as_ref())
        .is_some_and(|d| d.verdict.is_fresh())
}

fn mark_replayed(text: &str, name: &str, paint: Palette) -> String {
    let head = format!("[{}] ", paint.clean(name));
    match text.strip_prefix(&head) {
        Some(rest) => format!("{head}{} {rest}", paint.paint(DIM, REPLAYED_MARKER)),
        None => text.to_owned(),
    }
}

/// `[name] │ line` (stdout) or `[name] ! line` (stderr), sanitised (the writer thread writes
/// the same text in parts).
pub fn log_line(name: &str, stream: Stream, line: &str, paint: Palette) -> String {
    let marker = match stream {
        Stream::Stdout => paint.paint(DIM, STDOUT_MARKER),
        Stream::Stderr => paint.paint(RED, STDERR_MARKER),
    };
    format!("[{}] {marker} {}", paint.clean(name), paint.clean(line))
}

impl PlainView {
    /// Starts writing to stdout, coloured with `paint`.
    pub fn start(store: &milo::Store<PipelineState, PipelineAction>, paint: Palette) -> Self {
        let feed = Feed::start(
            store,
            move |a, s: &Arc<PipelineState>| match a {
                PipelineAction::PhaseLog { name, .. } if replayed(s, name) => line(a, s, paint).map(Item::Line),
                PipelineAction::PhaseLog {
                    name, line: l, stream, ..
                } => Some(Item::Log(name.clone(), *stream, l.clone())),
                _ => line(a, s, paint).map(Item::Line),
            },
            move |rx: mpsc::Receiver<Item>| {
                let stdout = std::io::stdout();
                let out = RefCell::new(BufWriter::with_capacity(64 * 1024, stdout.lock()));
                // A failed stdout must not stop the run: after an error, keep draining.
                let status = RefCell::new(WriteStatus::default());
                // What goes between the name and the line, built once: output lines are
                // written in parts, without a new string per line when there is nothing to
                // sanitise.
                let out_marker = format!("] {} ", paint.paint(DIM, STDOUT_MARKER));
                let err_marker = format!("] {} ", paint.paint(RED, STDERR_MARKER));
                write_batched(
                    rx,
                    |item| {
                        let mut status = status.borrow_mut();
                        if !status.ok() {
                            return;
                        }
                        let mut out = out.borrow_mut();
                        let written = match item {
                            Item::Log(name, stream, l) => {
                                let marker = if stream == Stream::Stdout {
                                    &out_marker
                                } else {
                                    &err_marker
                                };
                                out.write_all(b"[")
                                    .and_then(|()| out.write_all(paint.clean(&name).as_bytes()))
                                    .and_then(|()| out.write_all(marker.as_bytes()))
                                    .and_then(|()| out.write_all(paint.clean(&l).as_bytes()))
                                    .and_then(|()| out.write_all(b"\n"))
                            }
                            Item::Line(l) => out.write_all(l.as_bytes()).and_then(|()| out.write_all(b"\n")),
                        };
                        status.record(written);
                    },
                    || {
                        let mut status = status.borrow_mut();
                        if status.ok() {
                            status.record(out.borrow_mut().flush());
                        }
                    },
                );
                let mut status = status.into_inner();
                if status.ok() {
                    status.record(out.into_inner().flush());
                }
                status.into_result()
            },
        );
        Self { feed, paint }
    }
}

impl View for PlainView {
    fn finish(self: Box<Self>, state: &PipelineState) -> std::io::Result<()> {
        let mut status = WriteStatus::default();
        status.record(self.feed.close());
        if status.ok() {
            let mut out = std::io::stdout().lock();
            status.record(
                out.write_all(summary(state, self.paint).as_bytes())
                    .and_then(|()| out.flush()),
            );
        }
        status.into_result()
    }
}
