//! [`make_detail_reducer`]: keyboard navigation over a running pipeline, as a pure reducer
//! over [`PipelineViewState`] (the state behind the detail TUI).
//!
//! In the overview, ↑/↓ move over the visible rows (clamped): a phase, or a matrix phase's
//! [group](super::PhaseGroup) of instances, one row while folded. Enter or Space on a phase
//! expands its logs, on a group folds or unfolds it; Esc or `q` quits. Groups start folded and
//! only the user unfolds or folds them, so rows never move under the selection while the
//! pipeline runs (a group's row shows where its members stand). In the log view, ↑/↓ scroll, `g`/Home go to the top, `G`/End to the bottom, `f`
//! toggles auto-follow, Enter, Space or Esc collapse, `q` quits. Scrolling up or going to the
//! top turns auto-follow off. With auto-follow on, a new line of the selected phase keeps the
//! view at the newest line; other actions never move the view.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::action::PipelineAction;
use super::rows::Row;
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
    /// The selected row, as a position in [`visible_rows`](Self::visible_rows): in a
    /// pipeline without matrix phases, the selected phase's position in execution order.
    pub selected_row: usize,
    /// The pipeline's rows ([`PipelineDef::rows`](super::PipelineDef::rows)), computed once.
    pub rows: Arc<[Row]>,
    /// The groups the user unfolded, by name; every other group is one row.
    pub unfolded: Arc<BTreeSet<Arc<str>>>,
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
    /// The view of `pipeline`: first row selected, every group folded, collapsed, following.
    pub fn new(pipeline: Arc<PipelineState>) -> Self {
        Self {
            rows: pipeline.def().rows().into(),
            unfolded: Arc::default(),
            pipeline,
            selected_row: 0,
            expanded: false,
            log_scroll: 0,
            auto_follow: true,
            log_height: 10,
            quit: false,
        }
    }

    /// The rows the phase list shows, top to bottom: each folded group as one row, each
    /// unfolded one followed by its members.
    pub fn visible_rows(&self) -> Vec<VisibleRow<'_>> {
        let mut visible = Vec::with_capacity(self.rows.len());
        self.for_each_visible(|row| {
            visible.push(row);
            true
        });
        visible
    }

    /// The visible row at `pos`, if there is one.
    pub fn visible_row(&self, pos: usize) -> Option<VisibleRow<'_>> {
        let mut found = None;
        let mut at = 0;
        self.for_each_visible(|row| {
            if at == pos {
                found = Some(row);
                return false;
            }
            at += 1;
            true
        });
        found
    }

    /// How many rows the phase list shows.
    pub fn visible_len(&self) -> usize {
        self.rows
            .iter()
            .map(|row| match row {
                Row::Phase(_) => 1,
                Row::Group { name, members } if self.unfolded.contains(name) => 1 + members.len(),
                Row::Group { .. } => 1,
            })
            .sum()
    }

    /// Calls `f` on each visible row in order, until it returns `false`.
    fn for_each_visible<'a>(&'a self, mut f: impl FnMut(VisibleRow<'a>) -> bool) {
        for row in self.rows.iter() {
            match row {
                Row::Phase(index) => {
                    if !f(VisibleRow::Phase {
                        index: *index,
                        member: false,
                    }) {
                        return;
                    }
                }
                Row::Group { name, members } => {
                    let unfolded = self.unfolded.contains(name);
                    if !f(VisibleRow::Group {
                        name,
                        members,
                        unfolded,
                    }) {
                        return;
                    }
                    if unfolded {
                        for &index in members {
                            if !f(VisibleRow::Phase { index, member: true }) {
                                return;
                            }
                        }
                    }
                }
            }
        }
    }

    /// The index (in declaration order) of the selected phase; `None` on a group's row.
    pub fn selected_index(&self) -> Option<usize> {
        match self.visible_row(self.selected_row)? {
            VisibleRow::Phase { index, .. } => Some(index),
            VisibleRow::Group { .. } => None,
        }
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

/// One row of the phase list as the detail view shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VisibleRow<'a> {
    /// The phase at this index of [`PipelineDef::phases`](super::PipelineDef::phases);
    /// `member` when it is listed under its unfolded group.
    Phase {
        /// Its index in declaration order.
        index: usize,
        /// Whether it is an instance shown under its group's row.
        member: bool,
    },
    /// A matrix phase's group of instances.
    Group {
        /// The group's name (the matrix phase's).
        name: &'a Arc<str>,
        /// Its members' indices, in declaration order.
        members: &'a [usize],
        /// Whether its members are listed beneath it.
        unfolded: bool,
    },
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
                if let PipelineAction::PhaseLog { name, .. } = a
                    && next.expanded
                    && next.auto_follow
                {
                    let selected = next
                        .selected_index()
                        .and_then(|i| next.pipeline.phases.get(i))
                        .is_some_and(|p| p.name == *name);
                    if selected {
                        next.log_scroll = next.max_scroll();
                    }
                }
                // (Only when scrolled: finding the selected phase walks the rows, and this runs
                // for every action of the pipeline.)
                if next.log_scroll > 0 {
                    next.log_scroll = next.log_scroll.min(next.max_scroll());
                }
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
    if key == Key::Char('q') {
        v.quit = true;
        return;
    }
    if !v.expanded {
        match key {
            Key::Up => v.selected_row = v.selected_row.saturating_sub(1),
            Key::Down => v.selected_row = (v.selected_row + 1).min(v.visible_len().saturating_sub(1)),
            Key::Enter | Key::Space => match v.visible_row(v.selected_row) {
                Some(VisibleRow::Phase { .. }) => {
                    v.expanded = true;
                    v.log_scroll = if v.auto_follow { v.max_scroll() } else { 0 };
                }
                // The rows above stay as they are, so the selection stays on the group.
                Some(VisibleRow::Group { name, unfolded, .. }) => {
                    let name = name.clone();
                    let set = Arc::make_mut(&mut v.unfolded);
                    if unfolded {
                        set.remove(&name);
                    } else {
                        set.insert(name);
                    }
                }
                None => {}
            },
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;
    use crate::pipeline::{Phase, PhaseGroup, Pipeline};

    fn ok(_: &crate::pipeline::PhaseContext) -> Result<(), String> {
        Ok(())
    }

    /// `build`, the three instances of `test`, then `publish`: three rows while `test` is folded.
    fn store() -> Store<PipelineViewState, ViewAction> {
        let g = Arc::new(PhaseGroup {
            name: "test".into(),
            max_parallel: None,
            fail_fast: false,
        });
        let pipeline = Pipeline::new(
            "p",
            [
                Phase::new("build", ok),
                Phase::new("test[v=1]", ok).depends_on(["build"]).group(g.clone()),
                Phase::new("test[v=2]", ok).depends_on(["build"]).group(g.clone()),
                Phase::new("test[v=3]", ok).depends_on(["build"]).group(g),
                Phase::new("publish", ok).depends_on(["test[v=1]", "test[v=2]", "test[v=3]"]),
            ],
        )
        .unwrap();
        Store::new(make_detail_reducer(pipeline.build_reducer()), None).unwrap()
    }

    fn key(store: &Store<PipelineViewState, ViewAction>, k: Key) -> Arc<PipelineViewState> {
        store.dispatch(k.into()).unwrap();
        store.get_state()
    }

    fn name(v: &PipelineViewState) -> Option<&str> {
        v.selected_index().map(|i| &*v.pipeline.phases[i].name)
    }

    #[test]
    fn a_group_starts_folded_and_down_steps_over_its_members() {
        let store = store();
        let v = store.get_state();
        assert_eq!(v.visible_len(), 3);
        assert!(matches!(
            v.visible_row(1),
            Some(VisibleRow::Group { name, members: [1, 2, 3], unfolded: false }) if &**name == "test"
        ));
        let v = key(&store, Key::Down);
        assert_eq!((v.selected_row, v.selected_index()), (1, None));
        let v = key(&store, Key::Down);
        assert_eq!(name(&v), Some("publish"));
        // Clamped at the last visible row.
        assert_eq!(key(&store, Key::Down).selected_row, 2);
    }

    #[test]
    fn enter_or_space_on_a_group_unfolds_and_folds_it_and_the_selection_stays_on_it() {
        let store = store();
        key(&store, Key::Down);
        let v = key(&store, Key::Enter);
        assert!(!v.expanded, "a group has no logs of its own");
        assert_eq!((v.selected_row, v.visible_len()), (1, 6));
        assert!(v.unfolded.contains("test"));
        assert_eq!(
            v.visible_rows()[2..5],
            [
                VisibleRow::Phase { index: 1, member: true },
                VisibleRow::Phase { index: 2, member: true },
                VisibleRow::Phase { index: 3, member: true },
            ]
        );
        // A member is selectable and its logs open as any phase's.
        let v = key(&store, Key::Down);
        assert_eq!(name(&v), Some("test[v=1]"));
        assert!(key(&store, Key::Enter).expanded);
        assert!(!key(&store, Key::Esc).expanded);
        key(&store, Key::Up);
        let v = key(&store, Key::Space);
        assert_eq!((v.selected_row, v.visible_len(), v.selected_index()), (1, 3, None));
        assert!(v.unfolded.is_empty());
    }

    #[test]
    fn the_selection_stays_valid_whatever_is_folded() {
        let store = store();
        for k in [
            Key::Down,
            Key::Enter,
            Key::Down,
            Key::Down,
            Key::Down,
            Key::Down,
            Key::Down,
        ] {
            key(&store, k);
        }
        let v = store.get_state();
        assert_eq!((v.selected_row, name(&v)), (5, Some("publish")));
        for _ in 0..4 {
            key(&store, Key::Up);
        }
        let v = key(&store, Key::Enter);
        assert_eq!(v.visible_len(), 3);
        assert!(v.selected_row < v.visible_len());
        assert_eq!(name(&key(&store, Key::Down)), Some("publish"));
    }

    #[test]
    fn a_pipeline_without_groups_selects_in_execution_order() {
        let pipeline = Pipeline::new("p", [Phase::new("b", ok).depends_on(["a"]), Phase::new("a", ok)]).unwrap();
        let store = Store::new(make_detail_reducer(pipeline.build_reducer()), None).unwrap();
        assert_eq!(name(&store.get_state()), Some("a"));
        assert_eq!(name(&key(&store, Key::Down)), Some("b"));
    }
}
