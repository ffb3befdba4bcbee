//! [`render`]: draws a [`PipelineViewState`] into a ratatui [`Frame`].
//!
//! Rendering is a pure function of the view state, the time (`now`, in seconds since the
//! pipeline started, for the live durations of running phases) and a spinner frame counter, so
//! the same inputs always draw the same cells; the tests snapshot it with ratatui's
//! `TestBackend`.
//!
//! The screen, top to bottom: a header (name, status, elapsed, ETA), a progress bar, the
//! pipeline's error when it failed, the phase list in execution order, the selected phase's log
//! pane when expanded, and a footer with the keys of the current mode.
//!
//! A matrix phase's instances are one row while folded: `▸ test` with the group's status
//! symbol and where its members stand (`4/6 done, 1 failed, 1 running`), as in the progress
//! view; unfolded (`▾ test`), its members are listed indented beneath it.
//!
//! An incremental phase that did not run reads `≡ … up to date` (blue) or `⇣ … restored`
//! (light blue) in the list instead of `✓`, and the gauge counts them (`· 17 up to date (2
//! restored)`). The log pane's title says so too, and ends with an incremental phase's reason
//! (`· src/main.c changed`); the lines of a phase that did not run, replayed from the run that
//! recorded them, are marked `↺` (and the title says `↺ replayed from an earlier run`). Rows are dropped from
//! the bottom of that list of priorities as the terminal shrinks: every size, down to 0×0,
//! draws something sensible and never panics.

use std::time::Duration;

use milo::capture::Stream;
use milo::pipeline::{
    Eta, GroupCounts, Key, PhaseStatus, PipelineState, PipelineViewState, Status, Verdict, VisibleRow,
};
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table};

/// Braille spinner frames for running phases, advanced by `tick`.
const SPINNER: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/// Draws `view` over the whole frame.
///
/// `now` is the time in seconds since the pipeline started, used for the live durations of
/// running phases and the elapsed time of a running pipeline (the state only knows the time of
/// its newest action); `tick` picks the spinner frame. The phase list is drawn as for a first
/// frame: see [`render_list`] to keep its scroll position from one frame to the next.
pub fn render(frame: &mut Frame, view: &PipelineViewState, now: f64, tick: u64) {
    render_list(frame, view, now, tick, &mut PhaseList::default());
}

/// [`render`], scrolling the phase list from where `list` left it and updating `list`.
pub fn render_list(frame: &mut Frame, view: &PipelineViewState, now: f64, tick: u64, list: &mut PhaseList) {
    let eta = Eta::from_weights(1).remaining(&view.pipeline, now);
    render_with(frame, view, &Clock { now, tick, eta }, Mode::Normal, list);
}

/// What the phase list shows, kept by the TUI from one frame to the next.
///
/// The list always shows the selected row. Until the user moves the selection, it also
/// *follows* the run: the selection sits on the first running row (a phase, or the row of a
/// folded group with a member running; see [`PhaseList::follow_keys`]) and the list scrolls
/// to show as many of the running rows as fit, so a pipeline with more phases than rows keeps
/// its work in view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhaseList {
    /// The first row shown: a position in the view's visible rows.
    pub offset: usize,
    /// Whether the list follows the running phases (until the user moves the selection).
    pub follow: bool,
}

impl Default for PhaseList {
    /// The top of the list, following the run.
    fn default() -> Self {
        Self {
            offset: 0,
            follow: true,
        }
    }
}

impl PhaseList {
    /// The keys that move the selection onto the first running row (once the run has
    /// ended, onto the first failed one, whose logs say why), when the list follows the run
    /// and the logs are closed (an open log pane stays on the phase the user opened); empty
    /// otherwise. A folded group stands for its members. The TUI dispatches them into the
    /// view store, as if typed.
    pub fn follow_keys(&self, view: &PipelineViewState) -> Vec<Key> {
        if !self.follow || view.expanded {
            return Vec::new();
        }
        let failed = || {
            let p = &view.pipeline;
            p.is_finished()
                .then(|| {
                    view.visible_rows()
                        .iter()
                        .position(|row| row_is(p, row, |s| s == Status::Failed))
                })
                .flatten()
        };
        let Some(first) = active_range(view).map(|(first, _)| first).or_else(failed) else {
            return Vec::new();
        };
        let selected = view.selected_row;
        if first > selected {
            vec![Key::Down; first - selected]
        } else {
            vec![Key::Up; selected - first]
        }
    }

    /// The first row to show in a list of `rows` rows, moving as little as possible from
    /// [`offset`](Self::offset): the selected phase is always in view and, while following,
    /// the running ones (from the first, with the phase before it for context, when they do not
    /// all fit).
    fn scroll(&self, view: &PipelineViewState, rows: usize) -> usize {
        let len = view.visible_len();
        if rows == 0 || len == 0 {
            return 0;
        }
        let max = len.saturating_sub(rows);
        let mut offset = self.offset.min(max);
        if self.follow
            && !view.expanded
            && let Some((first, last)) = active_range(view)
        {
            let in_view = |o: usize| first >= o && last < o + rows;
            if !in_view(offset) {
                offset = first.saturating_sub(1);
                if !in_view(offset) {
                    offset = first;
                }
            }
        }
        let selected = view.selected_row.min(len - 1);
        offset.clamp((selected + 1).saturating_sub(rows), selected).min(max)
    }
}

/// The positions (in the visible rows) of the first and last queued, running or retrying row.
fn active_range(view: &PipelineViewState) -> Option<(usize, usize)> {
    let p = &view.pipeline;
    let active = |s: Status| matches!(s, Status::Queued | Status::Running | Status::Retrying);
    let rows = view.visible_rows();
    let first = rows.iter().position(|row| row_is(p, row, active))?;
    let last = rows.iter().rposition(|row| row_is(p, row, active))?;
    Some((first, last))
}

/// Whether `row` stands at a status `wanted` accepts: a phase's own, or for a folded group,
/// any of its members' (an unfolded group's members have rows of their own).
fn row_is(p: &PipelineState, row: &VisibleRow, wanted: impl Fn(Status) -> bool) -> bool {
    match *row {
        VisibleRow::Phase { index, .. } => p.phases.get(index).is_some_and(|s| wanted(s.status)),
        VisibleRow::Group {
            members,
            unfolded: false,
            ..
        } => members
            .iter()
            .any(|&i| p.phases.get(i).is_some_and(|s| wanted(s.status))),
        VisibleRow::Group { unfolded: true, .. } => false,
    }
}

/// What the TUI is doing about stopping the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Nothing: the pipeline runs or has ended.
    Normal,
    /// `stop` was cancelled by the caller; the TUI waits for the pipeline to end.
    Stopping,
    /// The user quit while the pipeline ran; the TUI waits for it to end.
    Quitting,
}

/// What changes with time alone.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    pub(crate) now: f64,
    pub(crate) tick: u64,
    /// Estimated seconds left, if known.
    pub(crate) eta: Option<f64>,
}

/// [`render`], showing that the pipeline is being stopped when it is.
pub(crate) fn render_with(
    frame: &mut Frame,
    view: &PipelineViewState,
    clock: &Clock,
    mode: Mode,
    list: &mut PhaseList,
) {
    render_in(frame, frame.area(), view, clock, mode, list);
}

/// [`render_with`] into `area` only (the watch's banner takes the rows above it).
pub(crate) fn render_in(
    frame: &mut Frame,
    area: Rect,
    view: &PipelineViewState,
    clock: &Clock,
    mode: Mode,
    list: &mut PhaseList,
) {
    if area.is_empty() {
        return;
    }
    let layout = Areas::new(area, view, view.expanded);
    let clock = Clock {
        now: if clock.now.is_finite() { clock.now } else { 0.0 },
        tick: clock.tick,
        eta: clock.eta.filter(|e| e.is_finite()),
    };
    if let Some(r) = layout.header {
        frame.render_widget(Paragraph::new(header_line(view, &clock, mode)), r);
    }
    if let Some(r) = layout.gauge {
        frame.render_widget(Paragraph::new(gauge_line(view, r.width)), r);
    }
    if let (Some(r), Some(error)) = (layout.error, view.pipeline.error.as_deref()) {
        let text = format!(" ✗ {}", one_line(error));
        frame.render_widget(Paragraph::new(Span::styled(text, Style::new().fg(Color::Red))), r);
    }
    if let Some(r) = layout.phases {
        render_phases(frame, r, view, &clock, list);
    }
    if let Some(r) = layout.logs {
        render_logs(frame, r, view);
    }
    if let Some(r) = layout.footer {
        frame.render_widget(Paragraph::new(footer_line(view, mode, list, r.width)), r);
    }
}

/// How many log lines the log pane shows when `view` is drawn over `area` (as if its logs were
/// expanded): what `@@RESIZE` should carry for a terminal of that size.
pub fn log_pane_height(area: Rect, view: &PipelineViewState) -> usize {
    Areas::new(area, view, true)
        .logs
        .map_or(1, |r| usize::from(r.height.saturating_sub(1)).max(1))
}

/// Where each part of the screen goes; `None` for parts that do not fit.
#[derive(Debug, Default)]
struct Areas {
    header: Option<Rect>,
    gauge: Option<Rect>,
    error: Option<Rect>,
    phases: Option<Rect>,
    logs: Option<Rect>,
    footer: Option<Rect>,
}

impl Areas {
    fn new(area: Rect, view: &PipelineViewState, expanded: bool) -> Self {
        let mut areas = Areas::default();
        if area.is_empty() {
            return areas;
        }
        let mut top = area.y;
        let mut bottom = area.bottom();
        let take_top = |rows: u16, top: &mut u16, bottom: u16| {
            let r = Rect::new(area.x, *top, area.width, rows.min(bottom - *top));
            *top += r.height;
            r
        };
        areas.header = Some(take_top(1, &mut top, bottom));
        if area.height >= 3 {
            bottom -= 1;
            areas.footer = Some(Rect::new(area.x, bottom, area.width, 1));
        }
        if area.height >= 4 {
            areas.gauge = Some(take_top(1, &mut top, bottom));
        }
        if view.pipeline.error.is_some() && bottom - top >= 6 {
            areas.error = Some(take_top(1, &mut top, bottom));
        }
        let body = bottom - top;
        if body == 0 {
            return areas;
        }
        let phases = u16::try_from(view.visible_len()).unwrap_or(u16::MAX).max(1);
        if !expanded {
            areas.phases = Some(take_top(body, &mut top, bottom));
        } else if body >= 3 {
            let list = phases.min((body / 3).max(1));
            areas.phases = Some(take_top(list, &mut top, bottom));
            areas.logs = Some(take_top(body - list, &mut top, bottom));
        } else if body == 2 {
            areas.logs = Some(take_top(body, &mut top, bottom));
        } else {
            areas.phases = Some(take_top(body, &mut top, bottom));
        }
        areas
    }
}

fn status_color(status: Status) -> Color {
    match status {
        Status::Pending => Color::DarkGray,
        Status::Queued => Color::Blue,
        Status::Running => Color::Cyan,
        Status::Retrying => Color::Magenta,
        Status::Completed => Color::Green,
        Status::Failed => Color::Red,
        Status::Skipped => Color::Yellow,
        Status::Cancelled => Color::DarkGray,
    }
}

fn status_symbol(status: Status, tick: u64) -> &'static str {
    match status {
        Status::Pending => "·",
        Status::Queued => "◷",
        Status::Running => SPINNER[(tick % SPINNER.len() as u64) as usize],
        Status::Retrying => "↻",
        Status::Completed => "✓",
        Status::Failed => "✗",
        Status::Skipped => "↷",
        Status::Cancelled => "⊘",
    }
}

/// The symbol, colour and label of an incremental phase that completed without running.
fn fresh_look(verdict: Verdict) -> (&'static str, Color, &'static str) {
    match verdict {
        Verdict::Restored => ("⇣", Color::LightBlue, "restored"),
        _ => ("≡", Color::Blue, "up to date"),
    }
}

/// Whether `phase`'s lines are replayed from an earlier run (it was decided up to date or
/// restored, so it never runs in this one).
fn replayed(phase: &PhaseStatus) -> bool {
    phase.decision.as_ref().is_some_and(|d| d.verdict.is_fresh())
}

/// `secs` as milo prints durations (`850ms`, `1.5s`, `2m3s`).
fn duration(secs: f64) -> String {
    let secs = if secs.is_finite() { secs.max(0.0) } else { 0.0 };
    milo::format_duration(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX))
}

/// Whether time moves for `pipeline`: it has started and not ended (a failed pipeline may still
/// have phases running).
pub(crate) fn is_live(pipeline: &milo::pipeline::PipelineState) -> bool {
    pipeline.status != Status::Pending && !pipeline.is_finished()
}

/// The pipeline's elapsed time: live until it ends, else as of its last action.
fn pipeline_elapsed(view: &PipelineViewState, clock: &Clock) -> f64 {
    let p = &view.pipeline;
    if is_live(p) {
        clock.now.max(p.elapsed)
    } else {
        p.elapsed
    }
}

fn header_line(view: &PipelineViewState, clock: &Clock, mode: Mode) -> Line<'static> {
    let p = &view.pipeline;
    let dim = Style::new().fg(Color::DarkGray);
    let (status, color) = if mode != Mode::Normal && !p.is_finished() {
        ("stopping…".to_owned(), Color::Yellow)
    } else {
        (p.status.as_str().to_owned(), status_color(p.status))
    };
    let elapsed = pipeline_elapsed(view, clock);
    let mut spans = vec![
        Span::styled(
            format!(" {} ", sanitize(&p.name)),
            Style::new().add_modifier(Modifier::BOLD),
        ),
        Span::styled(status, Style::new().fg(color).add_modifier(Modifier::BOLD)),
        Span::styled("  elapsed ", dim),
        Span::raw(duration(elapsed)),
    ];
    if let (Status::Running, Some(eta)) = (p.status, clock.eta) {
        spans.push(Span::styled("  ETA ", dim));
        spans.push(Span::raw(duration(eta)));
    }
    Line::from(spans)
}

fn gauge_line(view: &PipelineViewState, width: u16) -> Line<'static> {
    let p = &view.pipeline;
    let progress = if p.progress.is_finite() {
        p.progress.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let percent = format!(" {:>3.0}%", progress * 100.0);
    let done = p
        .phases
        .iter()
        .filter(|s| matches!(s.status, Status::Completed | Status::Skipped))
        .count();
    let fresh = p.phases.iter().filter(|s| s.fresh().is_some()).count();
    let restored = p.phases.iter().filter(|s| s.fresh() == Some(Verdict::Restored)).count();
    let mut count = format!("  {done}/{}", p.phases.len());
    if fresh > 0 {
        count.push_str(&format!(" · {fresh} up to date"));
        if restored > 0 {
            count.push_str(&format!(" ({restored} restored)"));
        }
    }
    let fixed = 1 + percent.chars().count() + count.chars().count();
    let bar = usize::from(width).saturating_sub(fixed);
    let filled = ((bar as f64) * progress).round() as usize;
    let color = match p.status {
        Status::Failed => Color::Red,
        Status::Cancelled => Color::DarkGray,
        _ => Color::Green,
    };
    Line::from(vec![
        Span::raw(" "),
        Span::styled("█".repeat(filled), Style::new().fg(color)),
        Span::styled("░".repeat(bar - filled.min(bar)), Style::new().fg(Color::DarkGray)),
        Span::styled(percent, Style::new().add_modifier(Modifier::BOLD)),
        Span::styled(count, Style::new().fg(Color::DarkGray)),
    ])
}

fn render_phases(frame: &mut Frame, area: Rect, view: &PipelineViewState, clock: &Clock, list: &mut PhaseList) {
    let p = &view.pipeline;
    let visible = view.visible_rows();
    let rows = usize::from(area.height);
    list.offset = list.scroll(view, rows);
    let phase_at = |row: &VisibleRow| match *row {
        VisibleRow::Phase { index, member } => p.phases.get(index).map(|s| (s, member)),
        VisibleRow::Group { .. } => None,
    };
    // Each running phase's newest output line goes on a row of its own under it when every
    // row and those lines fit; otherwise after its description.
    let running_output = visible
        .iter()
        .filter_map(phase_at)
        .filter(|(s, _)| s.status == Status::Running && !s.logs.is_empty())
        .count();
    let own_rows = !view.expanded && visible.len() + running_output <= rows;
    // Room for a member's indent and a group's fold mark.
    let name_width = visible
        .iter()
        .map(|row| match *row {
            VisibleRow::Phase { index, member } => {
                p.phases.get(index).map_or(0, |s| Span::raw(sanitize(&s.name)).width()) + 2 * usize::from(member)
            }
            VisibleRow::Group { name, .. } => Span::raw(sanitize(name)).width() + 2,
        })
        .max()
        .unwrap_or(0)
        .min(usize::from(area.width) / 3)
        .max(4);
    let mut table_rows: Vec<Row> = Vec::with_capacity(rows);
    for (pos, row) in visible.iter().enumerate().skip(list.offset) {
        if table_rows.len() >= rows {
            break;
        }
        let selected = pos == view.selected_row;
        if let VisibleRow::Group {
            name,
            members,
            unfolded,
        } = *row
        {
            table_rows.push(group_row(name, &GroupCounts::of(p, members), unfolded, selected, clock));
            continue;
        }
        let Some((phase, member)) = phase_at(row) else {
            continue;
        };
        let latest = (phase.status == Status::Running)
            .then(|| phase.logs.last())
            .flatten()
            .map(|l| one_line(&l.line));
        // An open log pane shows the selected phase's newest line already.
        let shown = view.expanded && selected;
        let inline = if own_rows || shown { None } else { latest.as_deref() };
        table_rows.push(phase_row(phase, member, selected, clock, inline));
        if let (true, Some(line)) = (own_rows, latest) {
            let indent = if member { "  " } else { "" };
            table_rows.push(Row::new(vec![
                Cell::from(""),
                Cell::from(""),
                Cell::from(""),
                Cell::from(Span::styled(
                    format!("{indent}↳ {line}"),
                    Style::new().fg(Color::DarkGray),
                )),
            ]));
        }
    }
    let widths = [
        Constraint::Length(2),
        Constraint::Length(u16::try_from(name_width).unwrap_or(u16::MAX)),
        Constraint::Length(8),
        Constraint::Fill(1),
    ];
    frame.render_widget(Table::new(table_rows, widths).column_spacing(1), area);
}

/// The first cell of a row: the selection marker and a status symbol.
fn marker_cell(selected: bool, symbol: &'static str, color: Color) -> Cell<'static> {
    let marker = if selected { "›" } else { " " };
    Cell::from(Line::from(vec![
        Span::styled(marker, Style::new().fg(Color::White).add_modifier(Modifier::BOLD)),
        Span::styled(symbol, Style::new().fg(color).add_modifier(Modifier::BOLD)),
    ]))
}

/// `row` with the selected row's background when `selected`.
fn highlight(row: Row<'static>, selected: bool) -> Row<'static> {
    if selected {
        row.style(Style::new().bg(Color::Rgb(40, 44, 52)))
    } else {
        row
    }
}

fn name_style(selected: bool) -> Style {
    if selected {
        Style::new().add_modifier(Modifier::BOLD)
    } else {
        Style::new()
    }
}

/// A group's row: `▸ test` (`▾` unfolded) with the group's status and where its members
/// stand, worded as the progress view's group line: `4/6 done, 1 failed, 1 running`.
fn group_row(name: &str, c: &GroupCounts, unfolded: bool, selected: bool, clock: &Clock) -> Row<'static> {
    let status = c.status();
    let fold = if unfolded { "▾" } else { "▸" };
    let mut detail = vec![Span::styled(
        format!("{}/{} done", c.done(), c.total),
        Style::new().fg(Color::Gray),
    )];
    for (n, word, s) in [
        (c.failed, "failed", Status::Failed),
        (c.skipped, "skipped", Status::Skipped),
        (c.cancelled, "cancelled", Status::Cancelled),
        (c.running, "running", Status::Running),
        (c.queued, "queued", Status::Queued),
    ] {
        if n > 0 {
            detail.push(Span::styled(", ", Style::new().fg(Color::Gray)));
            detail.push(Span::styled(format!("{n} {word}"), Style::new().fg(status_color(s))));
        }
    }
    let row = Row::new(vec![
        marker_cell(selected, status_symbol(status, clock.tick), status_color(status)),
        Cell::from(Line::from(vec![
            Span::styled(format!("{fold} "), Style::new().fg(Color::Gray)),
            Span::styled(sanitize(name), name_style(selected)),
        ])),
        Cell::from(""),
        Cell::from(Line::from(detail)),
    ]);
    highlight(row, selected)
}

/// One phase's row, indented when it is a `member` listed under its group; `latest` is its
/// newest output line, to show after the description.
fn phase_row(phase: &PhaseStatus, member: bool, selected: bool, clock: &Clock, latest: Option<&str>) -> Row<'static> {
    let fresh = phase.fresh().map(fresh_look);
    let (symbol, color) = match fresh {
        Some((symbol, color, _)) => (symbol, color),
        None => (status_symbol(phase.status, clock.tick), status_color(phase.status)),
    };
    let symbol = marker_cell(selected, symbol, color);
    let live = matches!(phase.status, Status::Queued | Status::Running | Status::Retrying);
    let secs = match (live, phase.started_at) {
        (true, Some(start)) => Some((clock.now - start).max(phase.elapsed)),
        (false, Some(_)) => Some(phase.elapsed),
        (_, None) if phase.status == Status::Completed => Some(phase.elapsed),
        (_, None) => None,
    };
    // A phase that did not run took no time of its own: its label says what it was instead.
    let secs = secs.filter(|_| fresh.is_none());
    let time = secs.map(duration).unwrap_or_default();
    let mut detail = Vec::new();
    let max_attempts = phase.info.policy.max_retries.saturating_add(1);
    if phase.status == Status::Retrying {
        let next = phase.attempt.saturating_add(1).min(max_attempts);
        detail.push(Span::styled(
            format!("retry {next}/{max_attempts} "),
            Style::new().fg(Color::Magenta),
        ));
    } else if phase.status == Status::Running && phase.attempt > 1 {
        detail.push(Span::styled(
            format!("attempt {}/{max_attempts} ", phase.attempt),
            Style::new().fg(Color::Magenta),
        ));
    } else if phase.attempt > 1 && matches!(phase.status, Status::Completed | Status::Failed | Status::Cancelled) {
        detail.push(Span::styled(
            format!("({} attempts) ", phase.attempt),
            Style::new().fg(Color::Magenta),
        ));
    }
    if let Some(job) = &phase.job_id {
        let label = if phase.status == Status::Queued {
            format!("queued as job {} ", one_line(job))
        } else {
            format!("job {} ", one_line(job))
        };
        detail.push(Span::styled(label, Style::new().fg(Color::Blue)));
    }
    if let Some(from) = &phase.reused_from {
        detail.push(Span::styled(
            format!("reused from {} ", one_line(from)),
            Style::new().fg(Color::DarkGray),
        ));
    }
    if let Some((_, color, label)) = fresh {
        detail.push(Span::styled(format!("{label} "), Style::new().fg(color)));
    }
    if !phase.info.description.is_empty() {
        detail.push(Span::styled(
            one_line(&phase.info.description),
            Style::new().fg(Color::Gray),
        ));
    }
    if let Some(error) = &phase.error
        && matches!(phase.status, Status::Failed | Status::Skipped | Status::Retrying)
    {
        let sep = if phase.info.description.is_empty() { "" } else { " — " };
        detail.push(Span::styled(
            format!("{sep}{}", one_line(error)),
            Style::new().fg(Color::Red),
        ));
    }
    if let Some(line) = latest {
        let sep = if detail.is_empty() { "" } else { "  " };
        detail.push(Span::styled(format!("{sep}↳ {line}"), Style::new().fg(Color::DarkGray)));
    }
    let indent = if member { "  " } else { "" };
    let row = Row::new(vec![
        symbol,
        Cell::from(Span::styled(
            format!("{indent}{}", sanitize(&phase.name)),
            name_style(selected),
        )),
        Cell::from(Line::from(Span::styled(time, Style::new().fg(color))).right_aligned()),
        Cell::from(Line::from(detail)),
    ]);
    highlight(row, selected)
}

fn render_logs(frame: &mut Frame, area: Rect, view: &PipelineViewState) {
    let Some(phase) = view.selected_index().and_then(|i| view.pipeline.phases.get(i)) else {
        return;
    };
    let height = usize::from(area.height.saturating_sub(1));
    let total = phase.logs.len();
    let first = view.log_scroll.min(total);
    let last = (first + height).min(total);
    let follow = if view.auto_follow { "on" } else { "off" };
    let range = if total == 0 {
        "no output".to_owned()
    } else {
        format!("{}-{last}/{total}", first + 1)
    };
    let dropped = phase.log_count.saturating_sub(total as u64);
    let dropped = if dropped > 0 {
        format!(" (+{dropped} older)")
    } else {
        String::new()
    };
    let replay = replayed(phase);
    let mut title = vec![
        Span::raw(" "),
        Span::styled(sanitize(&phase.name), Style::new().add_modifier(Modifier::BOLD)),
    ];
    // An incremental phase: that it did not run (up to date, restored), then after the
    // range why it runs or did not (last: the longest part, cut first when narrow).
    let mut reason = None;
    if let Some(d) = &phase.decision {
        let why = one_line(&d.reason);
        if d.verdict.is_fresh() {
            let (_, color, label) = fresh_look(d.verdict);
            title.push(Span::styled(format!(" · {label}"), Style::new().fg(color)));
            reason = (why != label).then_some(why);
        } else {
            reason = Some(why);
        }
    }
    title.push(Span::styled(
        format!(" · {range}{dropped} · follow: {follow} "),
        Style::new().fg(Color::Gray),
    ));
    if replay && total > 0 {
        title.push(Span::styled(
            "· ↺ replayed from an earlier run ",
            Style::new().fg(Color::DarkGray),
        ));
    }
    if let Some(reason) = reason {
        title.push(Span::styled(format!("· {reason} "), Style::new().fg(Color::Gray)));
    }
    let title = Line::from(title);
    let block = Block::new()
        .borders(Borders::TOP)
        .border_style(Style::new().fg(Color::DarkGray))
        .title(title);
    let lines: Vec<Line> = phase
        .logs
        .iter()
        .skip(first)
        .take(height)
        .map(|l| match (l.stream, replay) {
            (Stream::Stderr, false) => Line::from(vec![
                Span::styled("! ", Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)),
                Span::styled(sanitize(&l.line), Style::new().fg(Color::LightRed)),
            ]),
            (Stream::Stdout, false) => Line::from(vec![Span::raw("  "), Span::raw(sanitize(&l.line))]),
            // Replayed from the run that recorded them: marked, and dimmed.
            (Stream::Stderr, true) => Line::from(vec![
                Span::styled("!", Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)),
                Span::styled("↺", Style::new().fg(Color::DarkGray)),
                Span::styled(
                    sanitize(&l.line),
                    Style::new().fg(Color::LightRed).add_modifier(Modifier::DIM),
                ),
            ]),
            (Stream::Stdout, true) => Line::from(vec![
                Span::styled("↺ ", Style::new().fg(Color::DarkGray)),
                Span::styled(sanitize(&l.line), Style::new().add_modifier(Modifier::DIM)),
            ]),
        })
        .collect();
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn footer_line(view: &PipelineViewState, mode: Mode, list: &PhaseList, width: u16) -> Line<'static> {
    let key = Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD);
    let text = Style::new().fg(Color::Gray);
    // Enter on a group's row folds or unfolds it rather than opening logs.
    let enter = match view.visible_row(view.selected_row) {
        Some(VisibleRow::Group { unfolded: true, .. }) => ("⏎", "fold", "fold"),
        Some(VisibleRow::Group { unfolded: false, .. }) => ("⏎", "unfold", "unfold"),
        _ => ("⏎", "logs", "logs"),
    };
    let hints: &[(&str, &str, &str)] = if mode == Mode::Quitting {
        &[("q", "quit now", "now")]
    } else if view.expanded {
        &[
            ("↑↓", "scroll", ""),
            ("←→", "phase", ""),
            ("g/G", "top/bottom", ""),
            ("f", "follow", "follow"),
            ("⏎", "back", "back"),
            ("q", "quit", "quit"),
        ]
    } else if !list.follow && !view.pipeline.is_finished() {
        &[
            ("↑↓", "select", "select"),
            enter,
            ("f", "follow the run", "follow"),
            ("q", "quit", "quit"),
        ]
    } else {
        &[("↑↓", "select", "select"), enter, ("q", "quit", "quit")]
    };
    let status = if mode != Mode::Normal {
        Some(Span::styled("stopping the pipeline…  ", Style::new().fg(Color::Yellow)))
    } else if view.pipeline.is_finished() {
        let status = view.pipeline.status;
        Some(Span::styled(
            format!("{} {}  ", status_symbol(status, 0), status.as_str()),
            Style::new().fg(status_color(status)).add_modifier(Modifier::BOLD),
        ))
    } else {
        None
    };
    let line = |long: bool, status: Option<Span<'static>>| {
        let mut spans = vec![Span::raw(" ")];
        spans.extend(status);
        for (i, (k, full, short)) in hints.iter().enumerate() {
            if i > 0 {
                spans.push(Span::raw("  "));
            }
            spans.push(Span::styled(*k, key));
            let what = if long { full } else { short };
            if !what.is_empty() {
                spans.push(Span::styled(format!(" {what}"), text));
            }
        }
        Line::from(spans)
    };
    // The longest form that fits: with the status, without it, then with short labels.
    [line(true, status.clone()), line(true, None), line(false, None)]
        .into_iter()
        .find(|l| l.width() <= usize::from(width))
        .unwrap_or_else(|| line(false, None))
}

/// The first line of `s`, for one-row cells.
fn one_line(s: &str) -> String {
    sanitize(s.lines().next().unwrap_or(""))
}

/// `s` without ANSI escape sequences, tabs as spaces, and other control characters dropped,
/// so a phase's output cannot move the cursor or change the terminal's modes (the shared
/// [`milo::text::sanitize`], without colours: the TUI styles lines itself).
pub(crate) fn sanitize(s: &str) -> String {
    milo::text::sanitize(s, milo::text::Sgr::Drop).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_strips_escapes_and_controls() {
        assert_eq!(sanitize("\u{1b}[31mred\u{1b}[0m"), "red");
        assert_eq!(sanitize("a\tb"), "a    b");
        assert_eq!(sanitize("\u{1b}]0;title\u{7}x"), "x");
        assert_eq!(sanitize("\u{1b}]8;;http://x\u{1b}\\link"), "link");
        assert_eq!(sanitize("cr\rlf\u{0}"), "crlf");
        assert_eq!(sanitize("trailing\u{1b}"), "trailing");
        assert_eq!(sanitize("naïve ✓"), "naïve ✓");
    }

    fn view() -> PipelineViewState {
        use milo::pipeline::{Phase, Pipeline, PipelineAction};
        let noop = |_cx| async { Ok::<_, String>(()) };
        let pipeline = Pipeline::new("p", [Phase::new_async("a", noop)]).expect("a pipeline");
        let reducer = pipeline.build_reducer();
        let state = reducer.apply(
            None,
            &PipelineAction::PipelineStart {
                started_at: None,
                name: "p".into(),
                timestamp: 0.0,
            },
        );
        PipelineViewState::new(state)
    }

    fn screen(view: &PipelineViewState, mode: Mode) -> String {
        let mut terminal = ratatui::Terminal::new(ratatui::backend::TestBackend::new(50, 5)).expect("a terminal");
        terminal
            .draw(|f| {
                render_with(
                    f,
                    view,
                    &Clock {
                        now: 2.0,
                        tick: 0,
                        eta: None,
                    },
                    mode,
                    &mut PhaseList::default(),
                )
            })
            .expect("draw");
        terminal.backend().to_string()
    }

    #[test]
    fn stopping_shows_in_the_header_and_footer() {
        let view = view();
        let normal = screen(&view, Mode::Normal);
        assert!(normal.contains("p running  elapsed 2s"), "{normal}");
        let stopping = screen(&view, Mode::Stopping);
        assert!(stopping.contains("p stopping…"), "{stopping}");
        assert!(stopping.contains("stopping the pipeline…  ↑↓ select"), "{stopping}");
        let quitting = screen(&view, Mode::Quitting);
        assert!(quitting.contains("stopping the pipeline…  q quit now"), "{quitting}");
    }

    #[test]
    fn names_cannot_drive_the_terminal() {
        use milo::pipeline::{Phase, Pipeline};
        let noop = |_cx| async { Ok::<_, String>(()) };
        let pipeline = Pipeline::new("p\u{7}", [Phase::new_async("a\u{1b}[2J", noop)]).expect("a pipeline");
        let view = PipelineViewState::new(pipeline.store().expect("a store").get_state());
        let mut expanded = view.clone();
        expanded.expanded = true;
        for view in [view, expanded] {
            let text = screen(&view, Mode::Normal);
            assert!(!text.contains('\u{1b}') && !text.contains('\u{7}'), "{text:?}");
            assert!(text.contains(" a "), "{text}");
        }
    }

    #[test]
    fn durations_clamp_nonsense() {
        assert_eq!(duration(-1.0), "0ms");
        assert_eq!(duration(f64::NAN), "0ms");
        assert_eq!(duration(1.5), "1.5s");
        assert!(!duration(f64::INFINITY).is_empty());
    }
}
