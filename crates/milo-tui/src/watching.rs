//! The TUI of a watch (`milo watch --ui tui`): what the watch tells the TUI ([`WatchStatus`]:
//! the current [`Cycle`] with its store and the paths that triggered it, the services up, whether
//! it waits for changes) and the banner drawn from it above the pipeline's screen.
//!
//! The banner is two rows (one on a short terminal, none below two rows):
//!
//! ```text
//!  cycle 3 — src/main.c, src/util.h changed
//!  watching for changes · services up: db, web · q stops
//! ```
//!
//! Everything in it comes from outside (paths, service names, the watch's note) and is
//! sanitised like phase output: no escape sequence reaches the terminal.

use milo::Store;
use milo::pipeline::{PipelineAction, PipelineState, PipelineViewState};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::render::{Clock, Mode, PhaseList, render_in, sanitize};

/// How many changed paths the banner names before `(+N more)`.
const SHOWN_PATHS: usize = 3;
/// The shortest terminal that gets both banner rows.
const TWO_ROWS_FROM: u16 = 8;

/// One cycle of a watch: one run of the pipeline, shown until the next cycle starts.
#[derive(Clone)]
pub struct Cycle {
    /// The cycle's number, from 1.
    pub number: u64,
    /// The paths whose change started it, relative to the pipeline's directory (empty for the
    /// first cycle).
    pub changed: Vec<String>,
    /// The cycle's pipeline store; the TUI follows it from its current state.
    pub store: Store<PipelineState, PipelineAction>,
}

impl std::fmt::Debug for Cycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cycle")
            .field("number", &self.number)
            .field("changed", &self.changed)
            .finish_non_exhaustive()
    }
}

/// What a watch is doing, as sent to [`run_tui_cycles`](crate::run_tui_cycles) through a
/// `tokio::sync::watch` channel: only the newest status matters, and dropping the sender says
/// the watch has ended.
#[derive(Debug, Clone, Default)]
pub struct WatchStatus {
    /// The current (or last) cycle; `None` before the first one.
    pub cycle: Option<Cycle>,
    /// Whether the cycle has ended and the watch waits for changes.
    pub waiting: bool,
    /// The services up, by name.
    pub services: Vec<String>,
    /// The watch's newest message, such as a phase interrupted by a change or a warning of
    /// the file watcher (what the other views print as a line).
    pub note: Option<String>,
}

/// Draws the watch's banner over the top of `frame` and `view` (the current cycle's view
/// state) below it, the phase list as for a first frame.
///
/// `now` and `tick` are as for [`render`](crate::render).
pub fn render_watch(frame: &mut Frame, status: &WatchStatus, view: &PipelineViewState, now: f64, tick: u64) {
    let eta = milo::pipeline::Eta::from_weights(1).remaining(&view.pipeline, now);
    let clock = Clock { now, tick, eta };
    let rest = draw_banner(frame, frame.area(), status, Mode::Normal);
    render_in(frame, rest, view, &clock, Mode::Normal, &mut PhaseList::default());
}

/// Draws the banner at the top of `area`; the rows left below it.
pub(crate) fn draw_banner(frame: &mut Frame, area: Rect, status: &WatchStatus, mode: Mode) -> Rect {
    let rows: u16 = match area.height {
        0 | 1 => 0,
        h if h < TWO_ROWS_FROM => 1,
        _ => 2,
    };
    let lines = [cycle_line(status), state_line(status, mode)];
    for (i, line) in lines.into_iter().take(usize::from(rows)).enumerate() {
        let y = area.y + u16::try_from(i).unwrap_or(0);
        frame.render_widget(Paragraph::new(line), Rect::new(area.x, y, area.width, 1));
    }
    Rect::new(area.x, area.y + rows, area.width, area.height - rows)
}

/// ` cycle 3 — src/main.c, src/util.h changed`.
fn cycle_line(status: &WatchStatus) -> Line<'static> {
    let bold = Style::new().add_modifier(Modifier::BOLD).fg(Color::Magenta);
    let Some(cycle) = &status.cycle else {
        return Line::from(Span::styled(" watch starting…", bold));
    };
    let mut spans = vec![Span::styled(format!(" cycle {}", cycle.number), bold)];
    if !cycle.changed.is_empty() {
        spans.push(Span::styled(" — ", Style::new().fg(Color::DarkGray)));
        spans.push(Span::raw(format!("{} changed", shown(&cycle.changed))));
    }
    Line::from(spans)
}

/// The paths, sanitised, at most [`SHOWN_PATHS`] of them, then `(+N more)`.
fn shown(paths: &[String]) -> String {
    let mut out: Vec<String> = paths.iter().take(SHOWN_PATHS).map(|p| sanitize(p)).collect();
    if paths.len() > SHOWN_PATHS {
        out.push(format!("(+{} more)", paths.len() - SHOWN_PATHS));
    }
    out.join(", ")
}

/// ` watching for changes · services up: db, web · q stops`, or what the cycle does.
fn state_line(status: &WatchStatus, mode: Mode) -> Line<'static> {
    let dim = Style::new().fg(Color::DarkGray);
    let (what, color) = match mode {
        Mode::Normal if status.waiting => ("watching for changes", Color::Green),
        Mode::Normal => ("running the cycle", Color::Cyan),
        Mode::Stopping | Mode::Quitting => ("stopping the watch…", Color::Yellow),
    };
    let mut spans = vec![Span::styled(format!(" {what}"), Style::new().fg(color))];
    if !status.services.is_empty() {
        let names: Vec<String> = status.services.iter().map(|s| sanitize(s)).collect();
        spans.push(Span::styled(" · services up: ", dim));
        spans.push(Span::raw(names.join(", ")));
    }
    if let Some(note) = &status.note {
        spans.push(Span::styled(" · ", dim));
        spans.push(Span::raw(sanitize(note.lines().next().unwrap_or(""))));
    }
    if mode == Mode::Normal && status.waiting {
        spans.push(Span::styled(" · q stops", dim));
    }
    Line::from(spans)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_three_paths_then_how_many_more() {
        let paths: Vec<String> = (1..=5).map(|i| format!("src/{i}.c")).collect();
        assert_eq!(shown(&paths[..2]), "src/1.c, src/2.c");
        assert_eq!(shown(&paths[..3]), "src/1.c, src/2.c, src/3.c");
        assert_eq!(shown(&paths), "src/1.c, src/2.c, src/3.c, (+2 more)");
        assert_eq!(shown(&["a\u{1b}[2Jb.c".to_owned()]), "ab.c");
    }
}
