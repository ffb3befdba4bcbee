//! [`run_tui`] and [`run_tui_cycles`]: the event loop of the detail TUI.
//!
//! One task waits on four things: terminal events, a new view state, a spinner tick and the
//! `stop` token; for a watch also a fifth, the watch's status, whose new cycle swaps the
//! pipeline store (and its view store) the TUI follows. Keys become
//! [`Key`](milo::pipeline::Key) actions dispatched into the view store; the screen is redrawn
//! from the newest view state when something changed, at most [`FRAME`] apart, however fast
//! the pipeline logs. After each draw the log pane's height goes back to the view store as
//! `@@RESIZE`, so scrolling and auto-follow know what fits.

use std::io::{self, IsTerminal};
use std::sync::Arc;
use std::time::Duration;

use crossterm::event::{Event, EventStream};
use futures::StreamExt;
use milo::Store;
use milo::pipeline::{
    DEFAULT_GRACE, Eta, Key, PipelineAction, PipelineState, PipelineViewState, ViewAction, ViewEvent, VisibleRow,
};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::layout::Rect;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::mirror::Mirror;
use crate::render::{Clock, Mode, PhaseList, is_live, log_pane_height, render_in};
use crate::terminal::TerminalGuard;
use crate::watching::{WatchStatus, draw_banner};
use crate::{TuiError, TuiOutcome, keys};

/// The shortest time between two frames (about 30 frames a second).
const FRAME: Duration = Duration::from_millis(33);
/// How often the spinner and live durations move while the pipeline runs.
const TICK: Duration = Duration::from_millis(100);
/// How long `q` waits for a running pipeline to wind down after cancelling it: the grace
/// period its commands get between SIGTERM and SIGKILL, and a little more.
const QUIT_BOUND: Duration = DEFAULT_GRACE.saturating_add(Duration::from_secs(1));

/// Shows the detail TUI of the pipeline in `store` until the user quits or, once `stop` has
/// been cancelled by someone else, until the pipeline has ended.
///
/// The TUI takes over the terminal (raw mode, alternate screen) and gives it back on every
/// way out, including errors and panics. The pipeline keeps running at full speed while the
/// user browses: the TUI follows it through a view store fed by a listener that only
/// forwards actions.
///
/// * `q` (or Esc, Ctrl-C) after the pipeline ended returns [`TuiOutcome::Finished`].
/// * `q` while it runs cancels `stop`, shows "stopping…" until the pipeline has ended (at
///   most a few seconds; `q` again leaves at once) and returns
///   [`TuiOutcome::QuitWhileRunning`].
/// * `stop` cancelled by the caller (Ctrl-C or SIGTERM handled outside): the TUI keeps
///   showing until the pipeline has ended, then returns [`TuiOutcome::Finished`].
///
/// Fails with [`TuiError::NotATerminal`] when stdout is not a terminal, before touching it.
pub async fn run_tui(
    store: Store<PipelineState, PipelineAction>,
    stop: CancellationToken,
) -> Result<TuiOutcome, TuiError> {
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    run_tui_with_eta(store, stop, Eta::from_weights(jobs)).await
}

/// [`run_tui`], estimating the time left with `eta` (e.g. from the run history's median phase
/// durations).
pub async fn run_tui_with_eta(
    store: Store<PipelineState, PipelineAction>,
    stop: CancellationToken,
    eta: Eta,
) -> Result<TuiOutcome, TuiError> {
    show(store, stop, eta, None).await
}

/// Shows the TUI of a watch (`milo watch --ui tui`) until the watch ends: each cycle's
/// pipeline in turn under a banner with the cycle's number, the paths that started it and,
/// between cycles, "watching for changes" with the services up (see [`WatchStatus`]).
///
/// Each new [`Cycle`](crate::Cycle) in `cycles` replaces the previous one's screen; the
/// selected phase (by name) and whether its logs are open carry over. The TUI returns when
/// the sender is dropped (the watch ended): [`TuiOutcome::Finished`], or
/// [`TuiOutcome::QuitWhileRunning`] when the user stopped it. `q` (Esc, Ctrl-C) cancels
/// `stop`, which the watch loop is expected to obey, and waits for the watch to end (at most
/// a few seconds; `q` again leaves at once). Waits for the first cycle before taking over the
/// terminal; returns [`TuiOutcome::Finished`] if the watch ends before one.
///
/// Fails with [`TuiError::NotATerminal`] when stdout is not a terminal, before touching it.
pub async fn run_tui_cycles(
    mut cycles: watch::Receiver<WatchStatus>,
    stop: CancellationToken,
    eta: Eta,
) -> Result<TuiOutcome, TuiError> {
    if !io::stdout().is_terminal() {
        return Err(TuiError::NotATerminal);
    }
    let (shown, first) = loop {
        let status = cycles.borrow_and_update().clone();
        if let Some(cycle) = &status.cycle {
            break (cycle.number, cycle.store.clone());
        }
        if cycles.changed().await.is_err() {
            return Ok(TuiOutcome::Finished);
        }
    };
    let status = cycles.borrow().clone();
    let feed = Feed {
        status,
        rx: cycles,
        shown,
        closed: false,
    };
    show(first, stop, eta, Some(feed)).await
}

/// Takes over the terminal and runs the [`App`] on `store` (and the watch's `feed`).
async fn show(
    store: Store<PipelineState, PipelineAction>,
    stop: CancellationToken,
    eta: Eta,
    feed: Option<Feed>,
) -> Result<TuiOutcome, TuiError> {
    let guard = TerminalGuard::enter()?;
    let mirror = Mirror::new(&store)?;
    let mut terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
    clear(&mut terminal)?;
    let app = App {
        store,
        view: mirror.view.clone(),
        mirror,
        stop,
        origin: None,
        tick: 0,
        eta,
        list: PhaseList::default(),
        feed,
    };
    let outcome = app.run(&mut terminal, &guard).await;
    drop(terminal);
    drop(guard);
    outcome
}

/// What a watch has told the TUI.
struct Feed {
    rx: watch::Receiver<WatchStatus>,
    /// The newest status.
    status: WatchStatus,
    /// The number of the cycle on screen.
    shown: u64,
    /// The watch has ended (the sender was dropped).
    closed: bool,
}

struct App {
    eta: Eta,
    store: Store<PipelineState, PipelineAction>,
    view: Store<PipelineViewState, ViewAction>,
    /// Keeps `view` in step with `store`.
    mirror: Mirror,
    stop: CancellationToken,
    /// The estimated instant the pipeline started, for live durations.
    origin: Option<Instant>,
    tick: u64,
    /// The phase list's scroll position, and whether it still follows the run.
    list: PhaseList,
    /// A watch's cycles, when the TUI shows a watch.
    feed: Option<Feed>,
}

/// Where the user's quit request stands.
enum Quitting {
    No,
    /// `q` while the pipeline ran: `stop` is cancelled; leave when it ends or at the deadline.
    Stopping {
        deadline: Instant,
    },
}

impl App {
    async fn run<W: io::Write>(
        mut self,
        terminal: &mut Terminal<CrosstermBackend<W>>,
        guard: &TerminalGuard,
    ) -> Result<TuiOutcome, TuiError> {
        let mut rx = self.view.watch();
        let mut events = EventStream::new();
        let mut input_open = true;
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut quitting = Quitting::No;
        let mut dirty = true;
        let mut next_frame = Instant::now();
        loop {
            if guard.take_interrupted()? {
                clear(terminal)?;
                dirty = true;
            }
            if dirty && Instant::now() >= next_frame {
                self.follow_the_run()?;
                let view = rx.borrow_and_update().clone();
                let mode = match quitting {
                    Quitting::Stopping { .. } => Mode::Quitting,
                    Quitting::No if self.stop.is_cancelled() => Mode::Stopping,
                    Quitting::No => Mode::Normal,
                };
                self.draw(terminal, &view, mode)?;
                dirty = false;
                next_frame = Instant::now() + FRAME;
            }

            let pipeline = self.store.get_state();
            // A watch ends when its loop does, not with one cycle's pipeline.
            let watching = self.feed.is_some();
            let finished = self.feed.as_ref().map_or(pipeline.is_finished(), |f| f.closed);
            match quitting {
                Quitting::Stopping { deadline } => {
                    if finished || Instant::now() >= deadline {
                        return Ok(TuiOutcome::QuitWhileRunning);
                    }
                }
                Quitting::No if self.view.get_state().quit => {
                    if finished {
                        return Ok(TuiOutcome::Finished);
                    }
                    self.stop.cancel();
                    quitting = Quitting::Stopping {
                        deadline: Instant::now() + QUIT_BOUND,
                    };
                    dirty = true;
                    continue;
                }
                Quitting::No => {
                    if finished && (watching || self.stop.is_cancelled() || !input_open) {
                        return Ok(TuiOutcome::Finished);
                    }
                }
            }
            let live = is_live(&pipeline);
            let deadline = match quitting {
                Quitting::Stopping { deadline } => Some(deadline),
                Quitting::No => None,
            };

            tokio::select! {
                event = events.next(), if input_open => match event {
                    Some(Ok(Event::Key(key))) => {
                        let before = self.view.get_state();
                        let keys = keys::translate(&key, keys::Context::of(&before));
                        if keys == [Key::Char('f')] && !before.expanded {
                            // `f` in the overview: follow the run again.
                            self.list.follow = true;
                            dirty = true;
                        }
                        for key in keys {
                            if key == Key::Char('q') && deadline.is_some() {
                                // A second `q` while stopping: leave now.
                                return Ok(TuiOutcome::QuitWhileRunning);
                            }
                            self.view.dispatch(key.into())?;
                        }
                        let after = self.view.get_state();
                        if after.selected_row != before.selected_row || after.unfolded != before.unfolded {
                            // The user moved or (un)folded: from now on the list stays where
                            // they put it.
                            self.list.follow = false;
                        }
                    }
                    Some(Ok(Event::Resize(..))) => dirty = true,
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e.into()),
                    None => input_open = false,
                },
                changed = rx.changed(), if !dirty => {
                    if changed.is_ok() {
                        dirty = true;
                    }
                }
                _ = ticker.tick() => {
                    self.tick = self.tick.wrapping_add(1);
                    dirty |= live;
                }
                () = tokio::time::sleep_until(next_frame), if dirty => {}
                () = self.stop.cancelled(), if !self.stop.is_cancelled() => dirty = true,
                () = sleep_until_opt(deadline), if deadline.is_some() => {}
                open = next_status(self.feed.as_mut()), if self.feed.as_ref().is_some_and(|f| !f.closed) => {
                    if !open {
                        if let Some(feed) = self.feed.as_mut() {
                            feed.closed = true;
                        }
                    } else if self.take_status()? {
                        rx = self.view.watch();
                    }
                    dirty = true;
                }
            }
        }
    }

    /// Takes the watch's newest status; `Ok(true)` when it brought a new cycle, whose store the
    /// TUI now shows.
    fn take_status(&mut self) -> Result<bool, TuiError> {
        let Some(feed) = self.feed.as_mut() else {
            return Ok(false);
        };
        let status = feed.rx.borrow_and_update().clone();
        let new = status
            .cycle
            .as_ref()
            .filter(|c| c.number != feed.shown)
            .map(|c| (c.number, c.store.clone()));
        feed.status = status;
        let Some((number, store)) = new else {
            return Ok(false);
        };
        feed.shown = number;
        self.switch_to(store)?;
        Ok(true)
    }

    /// Shows `store` (a new cycle's) instead of the current one, on the phase of the same name
    /// as the one selected, with its logs open if they were.
    fn switch_to(&mut self, store: Store<PipelineState, PipelineAction>) -> Result<(), TuiError> {
        let before = self.view.get_state();
        // A row by what it shows: a phase's name, or a group's (which no phase has).
        let name = |v: &PipelineViewState, pos: usize| -> Option<(bool, Arc<str>)> {
            match v.visible_row(pos)? {
                VisibleRow::Phase { index, .. } => v.pipeline.def().phases.get(index).map(|p| (false, p.name.clone())),
                VisibleRow::Group { name, .. } => Some((true, name.clone())),
            }
        };
        let selected = name(&before, before.selected_row);
        let mirror = Mirror::new(&store)?;
        let view = mirror.view.clone();
        view.dispatch(ViewAction::View(ViewEvent::Resize {
            log_height: before.log_height,
        }))?;
        // The groups unfolded before are unfolded again (the selection moves down over the
        // rows to each and toggles it), then the selection goes to the same row.
        let mut at = 0;
        let mut pos = 0;
        loop {
            let now = view.get_state();
            let Some(row) = now.visible_row(pos) else { break };
            if let VisibleRow::Group {
                name, unfolded: false, ..
            } = row
                && before.unfolded.contains(name)
            {
                for _ in at..pos {
                    view.dispatch(Key::Down.into())?;
                }
                at = pos;
                view.dispatch(Key::Space.into())?;
            }
            pos += 1;
        }
        let after = view.get_state();
        let target = (0..after.visible_len())
            .find(|&pos| selected.is_some() && name(&after, pos) == selected)
            .unwrap_or(0);
        for _ in target..at {
            view.dispatch(Key::Up.into())?;
        }
        for _ in at..target {
            view.dispatch(Key::Down.into())?;
        }
        if before.expanded && view.get_state().selected_index().is_some() {
            view.dispatch(Key::Enter.into())?;
        }
        self.store = store;
        self.view = view;
        self.mirror = mirror;
        self.origin = None;
        Ok(())
    }

    /// While the list follows the run, moves the selection onto the first running phase.
    fn follow_the_run(&self) -> Result<(), TuiError> {
        for key in self.list.follow_keys(&self.view.get_state()) {
            self.view.dispatch(key.into())?;
        }
        Ok(())
    }

    /// Draws one frame and tells the view store how many log lines fit.
    fn draw<W: io::Write>(
        &mut self,
        terminal: &mut Terminal<CrosstermBackend<W>>,
        view: &Arc<PipelineViewState>,
        mode: Mode,
    ) -> Result<(), TuiError> {
        let now = self.seconds_since_start(&view.pipeline);
        let eta = self.eta.remaining(&view.pipeline, now);
        let clock = Clock {
            now,
            tick: self.tick,
            eta,
        };
        let mut rows = view.log_height;
        let list = &mut self.list;
        let status = self.feed.as_ref().map(|f| &f.status);
        terminal.draw(|frame| {
            let area = match status {
                Some(status) => draw_banner(frame, frame.area(), status, mode),
                None => frame.area(),
            };
            render_in(frame, area, view, &clock, mode, list);
            rows = log_pane_height(area, view);
        })?;
        if rows != view.log_height {
            self.view
                .dispatch(ViewAction::View(ViewEvent::Resize { log_height: rows }))?;
        }
        Ok(())
    }

    /// The pipeline's clock now. Actions carry times since the pipeline started; an action
    /// seen at instant `t` with time `e` means it started at or before `t - e`, and the
    /// earliest such bound is the best estimate.
    fn seconds_since_start(&mut self, pipeline: &PipelineState) -> f64 {
        let now = Instant::now();
        let elapsed = Duration::try_from_secs_f64(pipeline.elapsed.max(0.0)).unwrap_or_default();
        if let Some(candidate) = now.checked_sub(elapsed) {
            self.origin = Some(self.origin.map_or(candidate, |o| o.min(candidate)));
        }
        self.origin
            .map_or(pipeline.elapsed, |o| now.duration_since(o).as_secs_f64())
    }
}

/// Clears the screen and makes the next draw repaint every cell.
///
/// Not `Terminal::clear`: that asks the terminal where its cursor is (`ESC [ 6n`) and fails
/// after two seconds when no answer comes, as with some pseudo-terminals and slow links; a
/// full-screen view has no cursor to preserve. Resizing the viewport to the screen clears it
/// and resets the back buffer without asking.
fn clear<W: io::Write>(terminal: &mut Terminal<CrosstermBackend<W>>) -> io::Result<()> {
    let size = terminal.size()?;
    terminal.resize(Rect::new(0, 0, size.width, size.height))
}

/// Waits for the watch's next status: `true` when there is one to take (with
/// [`App::take_status`]), `false` when the watch has ended.
async fn next_status(feed: Option<&mut Feed>) -> bool {
    match feed {
        Some(feed) => feed.rx.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
