//! # milo-tui — the detail TUI of a running pipeline
//!
//! A full-screen terminal view of one pipeline run, for `milo run --ui tui`: a header with the
//! status, a weighted progress bar, the elapsed time and an ETA; one row per phase in
//! execution order with its status, duration and description (a matrix phase's instances
//! folded into one row with their counts, until the user unfolds it with Enter or Space); the
//! selected phase's logs (stderr marked and coloured) with auto-follow; and the keys of the
//! current mode.
//!
//! The data flows one way, as everywhere in milo: the pipeline store's actions are forwarded
//! into a view store running [`make_detail_reducer`](milo::pipeline::make_detail_reducer),
//! keys become actions of that reducer, and the screen is drawn from its
//! [`PipelineViewState`](milo::pipeline::PipelineViewState) by [`render`], a pure function
//! that tests snapshot through ratatui's `TestBackend`.
//!
//! * [`run_tui`] runs the TUI until the user quits or the run is stopped (see there).
//! * [`run_tui_cycles`] runs it across the cycles of a watch (`milo watch --ui tui`): each
//!   [`Cycle`]'s pipeline in turn under a banner with the cycle's number, the paths that
//!   started it and the watch's [`WatchStatus`]; [`render_watch`] draws one such frame.
//! * [`render`] draws one view state; usable on its own with any ratatui backend, with
//!   [`log_pane_height`] for the `@@RESIZE` that goes with a terminal size. [`render_list`]
//!   keeps the phase list's scroll position in a [`PhaseList`] between frames, which also
//!   follows the running phases until the user moves the selection.
//!
//! ```no_run
//! use milo::pipeline::{Phase, Pipeline, RunOptions};
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let pipeline = Pipeline::new("build", [Phase::command("test", "cargo test")])?;
//! let store = pipeline.store()?;
//! let stop = CancellationToken::new();
//! let run = tokio::spawn({
//!     let (pipeline, store) = (pipeline.clone(), store.clone());
//!     async move { pipeline.run_with(&store, RunOptions::default()).await }
//! });
//! let outcome = milo_tui::run_tui(store, stop).await?;
//! # let _ = (outcome, run);
//! # Ok(())
//! # }
//! ```

mod app;
mod keys;
mod mirror;
mod render;
mod terminal;
mod watching;

pub use app::{run_tui, run_tui_cycles, run_tui_with_eta};
pub use render::{PhaseList, log_pane_height, render, render_list};
pub use watching::{Cycle, WatchStatus, render_watch};

/// How the TUI ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TuiOutcome {
    /// The pipeline had ended when the TUI closed.
    Finished,
    /// The user quit while the pipeline was running; `stop` was cancelled.
    QuitWhileRunning,
}

/// Why the TUI could not run.
#[derive(Debug, thiserror::Error)]
pub enum TuiError {
    /// Standard output is not a terminal, so there is nothing to draw on.
    #[error("the TUI needs a terminal, but standard output is not one (choose another --ui, or run it in a terminal)")]
    NotATerminal,
    /// Reading keys or drawing failed.
    #[error("terminal I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// The view store rejected an action.
    #[error("the TUI's view store failed: {0}")]
    Store(#[from] milo::DispatchError),
}
