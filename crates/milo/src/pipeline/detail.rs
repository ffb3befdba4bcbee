//! [`make_detail_reducer`]: keyboard navigation over a running pipeline, as a pure reducer
//! over [`PipelineViewState`] (the state behind the detail TUI).
//!
//! In the overview, ↑/↓ select a phase (clamped) and Enter or Space expands its logs; Esc or
//! `q` quits. In the log view, ↑/↓ scroll, `g`/Home go to the top, `G`/End to the bottom, `f`
//! toggles auto-follow, Enter, Space or Esc collapse, `q` quits. Scrolling up or going to the
//! top turns auto-follow off. With auto-follow on, a new line of the selected phase keeps the
//! view at the newest line; other actions never move the view.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::action::PipelineAction;
use super::state::PipelineState;
use crate::action::{Action, Builtin};
use crate::store::{Reducer, ReducerResult};

/// A key the detail view understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Key {
    /// ↑
    Up,
    /// ↓
    Down,
    /// Enter
    Enter,
    /// Space
    Space,
    /// Esc
    Esc,
    /// Home
    Home,
    /// End
    End,
    /// A character key (`g`, `G`, `f`, `q`).
    Char(char),
}

/// A view event: a key press or a new log pane height.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload")]
pub enum ViewEvent {
    /// `@@KEY`
    #[serde(rename = "@@KEY")]
    Key {
        /// The key.
        key: Key,
    },
    /// `@@RESIZE`: the log pane now shows this many lines.
    #[serde(rename = "@@RESIZE")]
    Resize {
        /// Visible log lines.
        log_height: usize,
    },
}

/// The actions of the detail reducer: pipeline actions and view events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ViewAction {
    /// A pipeline action, passed to the wrapped reducer.
    Pipeline(PipelineAction),
    /// A key press or resize.
    View(ViewEvent),
}

impl From<PipelineAction> for ViewAction {
    fn from(a: PipelineAction) -> Self {
        ViewAction::Pipeline(a)
    }
}

impl From<Key> for ViewAction {
    fn from(key: Key) -> Self {
        ViewAction::View(ViewEvent::Key { key })
    }
}

impl Action for ViewAction {
    fn type_name(&self) -> &str {
        match self {
            ViewAction::Pipeline(a) => a.type_name(),
            ViewAction::View(ViewEvent::Key { .. }) => "@@KEY",
            ViewAction::View(ViewEvent::Resize { .. }) => "@@RESIZE",
        }
    }

    fn from_builtin(builtin: Builtin) -> Self {
        ViewAction::Pipeline(PipelineAction::from_builtin(builtin))
    }
}

/// The detail view's state: the pipeline plus what the user is looking at.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineViewState {
    /// The pipeline's state.
    pub pipeline: Arc<PipelineState>,
    /// The selected phase, as a position in execution order.
    pub selected_phase: usize,
    /// Whether the selected phase's logs are shown.
    pub expanded: bool,
    /// The first visible log line.
    pub log_scroll: usize,
    /// Whether the view follows the newest line.
    pub auto_follow: bool,
    /// How many log lines fit in the pane.
    pub log_height: usize,
    /// Whether the user asked to quit.
    pub quit: bool,
}

impl PipelineViewState {
    /// The view of `pipeline`: first phase selected, collapsed, following.
    pub fn new(pipeline: Arc<PipelineState>) -> Self {
        Self {
            pipeline,
            selected_phase: 0,
            expanded: false,
            log_scroll: 0,
            auto_follow: true,
            log_height: 10,
            quit: false,
        }
    }

    /// The index (in declaration order) of the selected phase.
    pub fn selected_index(&self) -> Option<usize> {
        self.pipeline.def().order().get(self.selected_phase).copied()
    }

    fn log_len(&self) -> usize {
        self.selected_index()
            .and_then(|i| self.pipeline.phases.get(i))
            .map_or(0, |p| p.logs.len())
    }

    /// The largest useful `log_scroll`.
    pub fn max_scroll(&self) -> usize {
        self.log_len().saturating_sub(self.log_height.max(1))
    }
}

/// Wraps a pipeline reducer with keyboard navigation; see [`make_detail_reducer`].
#[derive(Debug, Clone)]
pub struct DetailReducer<R> {
    inner: R,
}

/// The specification's `make_detail_reducer(pipeline.build_reducer())`.
pub fn make_detail_reducer<R>(inner: R) -> DetailReducer<R>
where
    R: Reducer<PipelineState, PipelineAction>,
{
    DetailReducer { inner }
}

impl<R> Reducer<PipelineViewState, ViewAction> for DetailReducer<R>
where
    R: Reducer<PipelineState, PipelineAction>,
{
    fn reduce(
        &self,
        state: Option<&Arc<PipelineViewState>>,
        action: &ViewAction,
    ) -> ReducerResult<PipelineViewState, ViewAction> {
        let Some(state) = state else {
            let init = PipelineAction::from_builtin(Builtin::Init);
            let Some(pipeline) = self.inner.reduce(None, &init).state else {
                // The wrapped reducer built nothing: there is no pipeline to view.
                return ReducerResult::unchanged();
            };
            return PipelineViewState::new(pipeline).into();
        };
        let mut next = (**state).clone();
        match action {
            ViewAction::Pipeline(a) => {
                let pipeline = self.inner.reduce(Some(&state.pipeline), a).state_or(&state.pipeline);
                if Arc::ptr_eq(&pipeline, &state.pipeline) {
                    return state.clone().into();
                }
                next.pipeline = pipeline;
                if let PipelineAction::PhaseLog { name, .. } = a {
                    let selected = next
                        .selected_index()
                        .and_then(|i| next.pipeline.phases.get(i))
                        .map(|p| p.name.clone());
                    if next.expanded && next.auto_follow && selected.as_deref() == Some(&**name) {
                        next.log_scroll = next.max_scroll();
                    }
                }
                next.log_scroll = next.log_scroll.min(next.max_scroll());
            }
            ViewAction::View(ViewEvent::Resize { log_height }) => {
                next.log_height = (*log_height).max(1);
                next.log_scroll = if next.auto_follow {
                    next.max_scroll()
                } else {
                    next.log_scroll.min(next.max_scroll())
                };
            }
            ViewAction::View(ViewEvent::Key { key }) => on_key(&mut next, *key),
        }
        next.into()
    }
}

fn on_key(v: &mut PipelineViewState, key: Key) {
    navigate(v, key);
    // Selecting another phase (or its logs shrinking) must not leave the view past the end.
    v.log_scroll = v.log_scroll.min(v.max_scroll());
}

fn navigate(v: &mut PipelineViewState, key: Key) {
    let phases = v.pipeline.phases.len();
    if key == Key::Char('q') {
        v.quit = true;
        return;
    }
    if !v.expanded {
        match key {
            Key::Up => v.selected_phase = v.selected_phase.saturating_sub(1),
            Key::Down => v.selected_phase = (v.selected_phase + 1).min(phases.saturating_sub(1)),
            Key::Enter | Key::Space if phases > 0 => {
                v.expanded = true;
                v.log_scroll = if v.auto_follow { v.max_scroll() } else { 0 };
            }
            Key::Esc => v.quit = true,
            _ => {}
        }
        return;
    }
    match key {
        Key::Up => {
            v.log_scroll = v.log_scroll.saturating_sub(1);
            v.auto_follow = false;
        }
        Key::Down => v.log_scroll = (v.log_scroll + 1).min(v.max_scroll()),
        Key::Home | Key::Char('g') => {
            v.log_scroll = 0;
            v.auto_follow = false;
        }
        Key::End | Key::Char('G') => v.log_scroll = v.max_scroll(),
        Key::Char('f') => {
            v.auto_follow = !v.auto_follow;
            if v.auto_follow {
                v.log_scroll = v.max_scroll();
            }
        }
        Key::Enter | Key::Space | Key::Esc => v.expanded = false,
        _ => {}
    }
}
