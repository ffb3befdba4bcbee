//! `--ui progress`: a live display on stderr. An overall bar with weighted percent, elapsed
//! time and an ETA; a line per running phase with a spinner, its elapsed time, attempt and its
//! latest log line; a permanent line for each finished phase (✓ ✗ ↷ ⊘) with its duration, and
//! the last log lines of a failed one. Redraws are throttled and sample only the newest state,
//! so the display never slows the pipeline.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use milo::pipeline::{Eta, PhaseStatus, PipelineAction, PipelineState, Status};

use super::View;
use super::summary::{FAILED_TAIL, finished_line, secs, summary, tail};

const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
/// Time between redraws.
pub const FRAME: Duration = Duration::from_millis(100);

/// Cuts `s` to at most `width` characters.
fn fit(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The live part of the display for `state` at `now` seconds since the start.
pub fn live_lines(state: &PipelineState, now: f64, width: usize, tick: usize) -> Vec<String> {
    live_lines_with_eta(state, now, width, tick, &Eta::from_weights(1))
}

/// [`live_lines`] with the time left estimated by `eta` (from the run history when there is
/// one, else from the weights).
pub fn live_lines_with_eta(state: &PipelineState, now: f64, width: usize, tick: usize, eta: &Eta) -> Vec<String> {
    let width = width.max(20);
    let pct = (state.progress * 100.0).floor();
    let bar_width = 24.min(width / 3);
    let filled = ((state.progress * bar_width as f64).round() as usize).min(bar_width);
    let eta = match eta.remaining(state, now) {
        Some(left) if state.status == Status::Running => format!("  ETA {}", secs(left)),
        _ => String::new(),
    };
    let mut lines = vec![fit(
        &format!(
            "{} [{}{}] {:>3}%  {}{}",
            state.name,
            "█".repeat(filled),
            "░".repeat(bar_width - filled),
            pct,
            secs(now),
            eta
        ),
        width,
    )];
    let spinner = SPINNER[tick % SPINNER.len()];
    for p in state
        .phases_in_order()
        .filter(|p| matches!(p.status, Status::Running | Status::Retrying))
    {
        lines.push(fit(&running_line(p, now, spinner), width));
    }
    lines
}

fn running_line(p: &PhaseStatus, now: f64, spinner: char) -> String {
    let since = now - p.started_at.unwrap_or(now);
    let max = p.info.policy.max_retries + 1;
    let attempt = if p.attempt > 1 || p.status == Status::Retrying {
        format!(" ({}/{max})", p.attempt)
    } else {
        String::new()
    };
    let symbol = if p.status == Status::Retrying { '↻' } else { spinner };
    let last = p.logs.last().map(|l| format!("  {}", l.line)).unwrap_or_default();
    format!("{symbol} {}  {}{attempt}{last}", p.name, secs(since))
}

/// Lines printed once, permanently, when phase `p` finishes.
pub fn finished_lines(p: &PhaseStatus, width: usize) -> Vec<String> {
    let mut lines = vec![fit(&finished_line(p), width.max(20))];
    if p.status == Status::Failed {
        lines.extend(tail(p, FAILED_TAIL).into_iter().map(|l| fit(&l, width.max(20))));
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
}

impl<W: Write> Drawer<W> {
    pub fn new(out: W) -> Self {
        Self {
            out,
            printed: Vec::new(),
            live: 0,
            tick: 0,
            eta: Eta::from_weights(1),
        }
    }

    /// Estimates the time left with `eta`.
    pub fn with_eta(mut self, eta: Eta) -> Self {
        self.eta = eta;
        self
    }

    /// Draws one frame; with `last`, the live area is dropped.
    pub fn frame(&mut self, state: &PipelineState, now: f64, width: usize, last: bool) -> std::io::Result<()> {
        if self.printed.len() != state.phases.len() {
            self.printed = vec![false; state.phases.len()];
        }
        let mut buf = String::new();
        if self.live > 0 {
            buf.push_str(&format!("\x1b[{}A\r\x1b[J", self.live));
        }
        for &i in state.def().order() {
            let Some(p) = state.phases.get(i) else { continue };
            if p.status.is_finished() && !self.printed[i] {
                self.printed[i] = true;
                for l in finished_lines(p, width) {
                    buf.push_str(&l);
                    buf.push('\n');
                }
            }
        }
        self.live = 0;
        if !last {
            for l in live_lines_with_eta(state, now, width, self.tick, &self.eta) {
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

fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(100)
}

pub struct ProgressView {
    done: Arc<AtomicBool>,
    thread: Option<JoinHandle<Drawer<std::io::Stderr>>>,
    start: Instant,
}

impl ProgressView {
    pub fn start(store: &milo::Store<PipelineState, PipelineAction>, eta: Eta) -> Self {
        let done = Arc::new(AtomicBool::new(false));
        let start = Instant::now();
        let (d, store) = (done.clone(), store.clone());
        let thread = std::thread::Builder::new()
            .name("milo-progress".into())
            .spawn(move || {
                let mut drawer = Drawer::new(std::io::stderr()).with_eta(eta);
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
        Self { done, thread, start }
    }
}

impl View for ProgressView {
    fn finish(self: Box<Self>, state: &PipelineState) {
        self.done.store(true, Ordering::Release);
        if let Some(t) = self.thread {
            t.thread().unpark();
            if let Ok(mut drawer) = t.join() {
                let _ = drawer.frame(state, self.start.elapsed().as_secs_f64(), terminal_width(), true);
            }
        }
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "{}", summary(state));
    }
}
