//! [`Mirror`]: a view store that follows a pipeline store action by action.
//!
//! The view store runs [`make_detail_reducer`] over the pipeline's own reducer, so it sees
//! every `@@PHASE_LOG` (auto-follow needs the action, not just the state). The pipeline store's
//! listener only forwards each action with one dispatch into the view store, so browsing the
//! TUI never slows the pipeline down.
//!
//! Joining a store that is already running must neither lose nor repeat an action. The
//! listener is subscribed first; the snapshot that seeds the view is taken while holding the
//! listener's lock, so every action whose listener ran before it is in the snapshot and is
//! ignored, and every later one is forwarded. The one exception: the store publishes a state
//! before calling the listeners, so the action that produced the snapshot may reach the
//! listener only afterwards; it is recognised by its state and skipped.

use std::sync::{Arc, Mutex, MutexGuard};

use milo::pipeline::{
    PipelineAction, PipelineReducer, PipelineState, PipelineViewState, ViewAction, make_detail_reducer,
};
use milo::{DispatchError, Store, Subscription};

/// The view store of the TUI, in step with a pipeline store until dropped.
pub(crate) struct Mirror {
    /// The view store: pipeline actions and keys go in, [`PipelineViewState`]s come out.
    pub(crate) view: Store<PipelineViewState, ViewAction>,
    _subscription: Subscription,
}

enum Slot {
    /// The view store does not exist yet; its snapshot will include these actions.
    Joining,
    Live {
        view: Store<PipelineViewState, ViewAction>,
        /// The snapshot the view started from, until the next action arrives.
        seen: Option<Arc<PipelineState>>,
    },
}

fn lock(slot: &Mutex<Slot>) -> MutexGuard<'_, Slot> {
    slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Mirror {
    /// Creates the view store of `store`, seeded with its current state, and starts forwarding.
    pub(crate) fn new(store: &Store<PipelineState, PipelineAction>) -> Result<Self, DispatchError> {
        let slot = Arc::new(Mutex::new(Slot::Joining));
        let subscription = store.subscribe({
            let slot = slot.clone();
            move |action, state| {
                if let Slot::Live { view, seen } = &mut *lock(&slot) {
                    if seen.take().is_some_and(|s| Arc::ptr_eq(&s, state)) {
                        return;
                    }
                    if let Err(e) = view.dispatch(ViewAction::Pipeline(action.clone())) {
                        tracing::warn!("the TUI's view store rejected a pipeline action: {e}");
                    }
                }
            }
        });
        let mut slot = lock(&slot);
        let snapshot = store.get_state();
        let reducer = make_detail_reducer(PipelineReducer::new(snapshot.def().clone()));
        let view = Store::new(reducer, Some(PipelineViewState::new(snapshot.clone())))?;
        *slot = Slot::Live {
            view: view.clone(),
            seen: Some(snapshot),
        };
        drop(slot);
        Ok(Mirror {
            view,
            _subscription: subscription,
        })
    }
}

#[cfg(test)]
mod tests {
    use milo::capture::Stream;
    use milo::pipeline::{Phase, Pipeline};

    use super::*;

    fn store() -> Store<PipelineState, PipelineAction> {
        let noop = |_cx| async { Ok::<_, String>(()) };
        let pipeline = Pipeline::new("p", [Phase::new_async("a", noop)]).expect("a pipeline");
        pipeline.store().expect("a store")
    }

    fn log(i: u32) -> PipelineAction {
        PipelineAction::PhaseLog {
            name: "a".into(),
            line: format!("line {i}").into(),
            stream: Stream::Stdout,
            timestamp: f64::from(i),
        }
    }

    #[test]
    fn joins_a_running_store_and_follows_it() {
        let store = store();
        store
            .dispatch(PipelineAction::PhaseStart {
                name: "a".into(),
                attempt: 1,
                timestamp: 0.0,
            })
            .expect("dispatch");
        store.dispatch(log(1)).expect("dispatch");
        let mirror = Mirror::new(&store).expect("a mirror");
        assert_eq!(*mirror.view.get_state().pipeline, *store.get_state());
        store.dispatch(log(2)).expect("dispatch");
        assert_eq!(*mirror.view.get_state().pipeline, *store.get_state());
        drop(mirror);
    }

    #[test]
    fn loses_and_repeats_nothing_while_joining_a_busy_store() {
        for _ in 0..20 {
            let store = store();
            let writer = std::thread::spawn({
                let store = store.clone();
                move || {
                    for i in 0..2000 {
                        store.dispatch(log(i)).expect("dispatch");
                    }
                }
            });
            std::thread::yield_now();
            let mirror = Mirror::new(&store).expect("a mirror");
            writer.join().expect("the writer");
            let (view, state) = (mirror.view.get_state(), store.get_state());
            assert_eq!(view.pipeline.phases[0].log_count, 2000);
            assert_eq!(*view.pipeline, *state);
        }
    }

    #[test]
    fn stops_forwarding_when_dropped() {
        let store = store();
        let mirror = Mirror::new(&store).expect("a mirror");
        let view = mirror.view.clone();
        drop(mirror);
        store.dispatch(log(1)).expect("dispatch");
        assert_eq!(view.get_state().pipeline.phases[0].log_count, 0);
    }
}
