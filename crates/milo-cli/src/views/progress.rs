//! `--ui progress`: a live display on stderr. An overall bar with weighted percent, elapsed
//! time and an ETA; a line per running phase with a spinner, its elapsed time, attempt and its
//! latest log line; a permanent line for each finished phase (✓ ✗ ↷ ⊘) with its duration, and
//! the last log lines of a failed one. The instances of a matrix phase are listed under a
//! line for the phase with their counts (`test (2/4 done, 1 running)`) and, once all have
//! ended, collapse to one line with the failed, skipped and cancelled ones beneath. Redraws
//! are throttled and sample only the newest state, so the display never slows the pipeline.
//!
//! Every line is cut to the terminal's width, asked of the terminal at each redraw (so a
//! resized window is followed) and measured in display columns, so no line ever wraps and
//! the redraw always erases exactly what it drew. Phase-controlled text (names, log lines,
//! errors) is sanitised ([`Palette::clean`]): a phase cannot move the cursor, erase the
//! screen or talk to the terminal through the display.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use milo::pipeline::{Eta, GroupCounts, PhaseStatus, PipelineAction, PipelineState, Row, ServiceState, Status};
use unicode_width::UnicodeWidthChar;

use super::View;
use super::summary::{FAILED_TAIL, finished_line, group_line, secs, summary, tail};
use crate::color::{BLUE, BOLD, CYAN, DIM, GREEN, Palette, YELLOW};

const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
/// Time between redraws.
pub const FRAME: Duration = Duration::from_millis(100);
/// The width assumed when the terminal cannot be asked and `$COLUMNS` is not set.
pub const DEFAULT_WIDTH: usize = 80;

/// Cuts `s` to at most `width` display columns (wide characters count two, escape
/// sequences none), ending it with `…` when something was cut (and a colour reset when it
/// holds colours).
pub fn fit(s: &str, width: usize) -> String {
    if display_width(s) <= width {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len().min(width * 4 + 8));
    let mut used = 0;
    let mut styled = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // Only SGR is left in sanitised text: copy it through, up to its final byte.
            styled = true;
            out.push(c);
            for c in chars.by_ref() {
                out.push(c);
                if ('@'..='~').contains(&c) && c != '[' {
                    break;
                }
            }
            continue;
        }
        let w = c.width().unwrap_or(0);
        if used + w > width.saturating_sub(1) {
            break;
        }
        used += w;
        out.push(c);
    }
    out.push('…');
    if styled {
        out.push_str("\x1b[0m");
    }
    out
}

/// The display columns `s` takes on a terminal, escape sequences excluded.
pub fn display_width(s: &str) -> usize {
    let mut width = 0;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) && c != '[' {
                    break;
                }
            }
        } else {
            width += c.width().unwrap_or(0);
        }
    }
    width
}

/// The live part of the display for `state` at `now` seconds since the start.
pub fn live_lines(state: &PipelineState, now: f64, width: usize, tick: usize) -> Vec<String> {
    live_lines_with_eta(state, now, width, tick, &Eta::from_weights(1))
}

/// [`live_lines`] with the time left estimated by `eta` (from the run history when there is
/// one, else from this run's own pace).
pub fn live_lines_with_eta(state: &PipelineState, now: f64, width: usize, tick: usize, eta: &Eta) -> Vec<String> {
    live_lines_painted(state, now, width, tick, eta, Palette::plain())
}

/// [`live_lines_with_eta`], coloured with `paint`.
pub fn live_lines_painted(
    state: &PipelineState,
    now: f64,
    width: usize,
    tick: usize,
    eta: &Eta,
    paint: Palette,
) -> Vec<String> {
    let width = width.max(20);
    let progress = eta.progress(state, now);
    let pct = (progress * 100.0).floor();
    let bar_width = 24.min(width / 3);
    let filled = ((progress * bar_width as f64).round() as usize).min(bar_width);
    let eta = match eta.remaining(state, now) {
        Some(left) if state.status == Status::Running => {
            format!("  {}", paint.paint(DIM, format!("ETA {}", secs(left))))
        }
        _ => String::new(),
    };
    let mut lines = vec![fit(
        &format!(
            "{} [{}{}] {:>3}%  {}{}",
            paint.paint(BOLD, paint.clean(&state.name)),
            paint.paint(GREEN, "█".repeat(filled)),
            paint.paint(DIM, "░".repeat(bar_width - filled)),
            pct,
            secs(now),
            eta
        ),
        width,
    )];
    let spinner = SPINNER[tick % SPINNER.len()];
    let active = |p: &&Arc<PhaseStatus>| matches!(p.status, Status::Queued | Status::Running | Status::Retrying);
    for row in state.def().rows() {
        match row {
            Row::Phase(i) => {
                if let Some(p) = state.phases.get(i).filter(active) {
                    lines.push(fit(&running_line(p, now, spinner, paint), width));
                }
            }
            Row::Group { name, members } => {
                // A group that has started and not ended: its line, its active members under it.
                let c = GroupCounts::of(state, &members);
                if c.is_finished() || c.done() + c.running + c.queued == 0 {
                    continue;
                }
                lines.push(fit(&group_header(&name, &c, spinner, paint), width));
                for p in members.iter().filter_map(|&i| state.phases.get(i)).filter(active) {
                    lines.push(fit(&format!("  {}", running_line(p, now, spinner, paint)), width));
                }
            }
        }
    }
    lines
}

/// `⠋ test (2/4 done, 1 failed, 1 running)`: a matrix phase in the live area.
fn group_header(name: &str, c: &GroupCounts, spinner: char, paint: Palette) -> String {
    let mut counts = format!("{}/{} done", c.done(), c.total);
    for (n, word, style) in [
        (c.failed, "failed", Palette::status_style(Status::Failed)),
        (c.running, "running", CYAN),
        (c.queued, "queued", BLUE),
    ] {
        if n > 0 {
            counts.push_str(&format!(", {}", paint.paint(style, format!("{n} {word}"))));
        }
    }
    format!(
        "{} {} ({counts})",
        paint.paint(CYAN, spinner),
        paint.paint(BOLD, paint.clean(name))
    )
}

/// Lines printed once, permanently, when every instance of a matrix phase has ended (or the
/// run has): the [`group_line`], and the instances that failed, were skipped or cancelled
/// indented beneath it (their last lines are in the summary).
pub fn finished_group_lines(
    state: &PipelineState,
    name: &str,
    members: &[usize],
    width: usize,
    paint: Palette,
) -> Vec<String> {
    let width = width.max(20);
    let mut lines = vec![fit(&group_line(name, &GroupCounts::of(state, members), paint), width)];
    for p in members.iter().filter_map(|&i| state.phases.get(i)) {
        if matches!(p.status, Status::Failed | Status::Skipped | Status::Cancelled) {
            lines.push(fit(&format!("    {}", finished_line(p, paint)), width));
        }
    }
    lines
}

fn running_line(p: &PhaseStatus, now: f64, spinner: char, paint: Palette) -> String {
    let since = now - p.started_at.unwrap_or(now);
    let max = p.info.policy.max_retries + 1;
    let attempt = if p.attempt > 1 || p.status == Status::Retrying {
        paint.paint(YELLOW, format!(" ({}/{max})", p.attempt))
    } else {
        String::new()
    };
    let symbol = if p.status == Status::Retrying {
        paint.paint(YELLOW, '↻')
    } else if p.status == Status::Queued {
        paint.paint(BLUE, '◷')
    } else {
        paint.paint(CYAN, spinner)
    };
    let job = match (&p.job_id, p.status) {
        (Some(id), Status::Queued) => paint.paint(BLUE, format!("  queued as job {}", paint.clean(id))),
        (Some(id), _) => paint.paint(DIM, format!("  job {}", paint.clean(id))),
        (None, _) => String::new(),
    };
    let last = p
        .logs
        .last()
        .map(|l| format!("  {}", paint.paint(DIM, paint.clean(&l.line))))
        .unwrap_or_default();
    let service = match p.service {
        Some(ServiceState::Ready) => format!("  {}", paint.paint(GREEN, "ready")),
        Some(state) => format!("  {}", paint.paint(DIM, state.as_str())),
        None => String::new(),
    };
    format!(
        "{symbol} {}  {}{attempt}{job}{service}{last}",
        paint.clean(&p.name),
        paint.paint(DIM, secs(since))
    )
}

/// Lines printed once, permanently, when phase `p` finishes.
pub fn finished_lines(p: &PhaseStatus, width: usize, paint: Palette) -> Vec<String> {
    let mut lines = vec![fit(&finished_line(p, paint), width.max(20))];
    if p.status == Status::Failed {
        lines.extend(tail(p, FAILED_TAIL, paint).into_iter().map(|l| fit(&l, width.max(20))));
    }
    lines
}

/// Draws frames: finished phases scroll up permanently, the live area is redrawn in place.
pub struct Drawer<W: Write> {
    out: W,
    printed: Vec<bool>,
    live: usize,
    tick: usize,
    eta: Eta,
    paint: Palette,
}

impl<W: Write> Drawer<W> {
    pub fn new(out: W) -> Self {
        Self {
            out,
            printed: Vec::new(),
            live: 0,
            tick: 0,
            eta: Eta::from_weights(1),
            paint: Palette::plain(),
        }
    }

    /// Estimates the time left with `eta`.
    pub fn with_eta(mut self, eta: Eta) -> Self {
        self.eta = eta;
        self
    }

    /// Colours the display with `paint`.
    pub fn with_palette(mut self, paint: Palette) -> Self {
        self.paint = paint;
        self
    }

    /// Draws one frame for a terminal `columns` wide; with `last`, the live area is dropped.
    ///
    /// Lines are cut one column short of the width: a line that fills the last column leaves
    /// some terminals waiting to wrap, and the next redraw would then be one line off.
    pub fn frame(&mut self, state: &PipelineState, now: f64, columns: usize, last: bool) -> std::io::Result<()> {
        let width = columns.saturating_sub(1);
        if self.printed.len() != state.phases.len() {
            self.printed = vec![false; state.phases.len()];
        }
        let mut buf = String::new();
        if self.live > 0 {
            buf.push_str(&format!("\x1b[{}A\r\x1b[J", self.live));
        }
        for row in state.def().rows() {
            match row {
                Row::Phase(i) => {
                    let Some(p) = state.phases.get(i) else { continue };
                    if p.status.is_finished() && !self.printed[i] {
                        self.printed[i] = true;
                        for l in finished_lines(p, width, self.paint) {
                            buf.push_str(&l);
                            buf.push('\n');
                        }
                    }
                }
                Row::Group { name, members } => {
                    // A group collapses to its lines once all its members have ended (or
                    // the run has); its first member's flag stands for the group.
                    let Some(&first) = members.first() else { continue };
                    let ended = last || GroupCounts::of(state, &members).is_finished();
                    if ended && !self.printed[first] {
                        self.printed[first] = true;
                        for l in finished_group_lines(state, &name, &members, width, self.paint) {
                            buf.push_str(&l);
                            buf.push('\n');
                        }
                    }
                }
            }
        }
        self.live = 0;
        if !last {
            for l in live_lines_painted(state, now, width, self.tick, &self.eta, self.paint) {
                buf.push_str(&l);
                buf.push('\n');
                self.live += 1;
            }
        }
        self.tick += 1;
        self.out.write_all(buf.as_bytes())?;
        self.out.flush()
    }
}

/// The terminal's width in columns: asked of the terminal (so it follows resizes), else
/// `$COLUMNS`, else [`DEFAULT_WIDTH`].
pub fn terminal_width() -> usize {
    match crossterm::terminal::size() {
        Ok((cols, _)) if cols > 0 => usize::from(cols),
        _ => std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.trim().parse().ok())
            .filter(|&c| c > 0)
            .unwrap_or(DEFAULT_WIDTH),
    }
}

pub struct ProgressView {
    done: Arc<AtomicBool>,
    thread: Option<JoinHandle<Drawer<std::io::Stderr>>>,
    start: Instant,
    paint: Palette,
}

impl ProgressView {
    pub fn start(store: &milo::Store<PipelineState, PipelineAction>, eta: Eta, paint: Palette) -> Self {
        let done = Arc::new(AtomicBool::new(false));
        let start = Instant::now();
        let (d, store) = (done.clone(), store.clone());
        let thread = std::thread::Builder::new()
            .name("milo-progress".into())
            .spawn(move || {
                let mut drawer = Drawer::new(std::io::stderr()).with_eta(eta).with_palette(paint);
                while !d.load(Ordering::Acquire) {
                    let _ = drawer.frame(
                        &store.get_state(),
                        start.elapsed().as_secs_f64(),
                        terminal_width(),
                        false,
                    );
                    std::thread::park_timeout(FRAME);
                }
                drawer
            })
            .ok();
        Self {
            done,
            thread,
            start,
            paint,
        }
    }
}

impl View for ProgressView {
    fn finish(self: Box<Self>, state: &PipelineState) -> std::io::Result<()> {
        self.done.store(true, Ordering::Release);
        if let Some(t) = self.thread {
            t.thread().unpark();
            if let Ok(mut drawer) = t.join() {
                let _ = drawer.frame(state, self.start.elapsed().as_secs_f64(), terminal_width(), true);
            }
        }
        // The display is on stderr: there is nowhere left to report a failure to write it.
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "{}", summary(state, self.paint));
        Ok(())
    }
}
