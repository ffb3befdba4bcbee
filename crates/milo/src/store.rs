//! The [`Store`]: one state, one pure reducer, actions applied in a total order.
//!
//! `dispatch` may be called from any thread or task. Each action goes through the
//! middleware chain, then the reducer (exactly once), then every listener, all under one
//! lock, so listeners and middleware see actions and states in dispatch order. A dispatch
//! made from inside a listener or middleware is queued and applied right after the current
//! one, in order, instead of deadlocking.
//!
//! `get_state` reads the newest snapshot through an [`ArcSwap`] and never waits for the
//! lock; holding a snapshot never blocks dispatch. Async views that only need the newest
//! state use [`Store::watch`].
//!
//! A reducer that panics leaves the previous state in place; `dispatch` returns
//! [`DispatchError::ReducerPanicked`] and the store stays usable.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use tokio::sync::{oneshot, watch};

use crate::action::{Action, Builtin};
use crate::saga::{Saga, SagaHandle};
use crate::util::panic_message;

/// What a reducer returns: the next state and, optionally, sagas for the store to run.
pub struct ReducerResult<S, A> {
    /// The next state. Returning the same `Arc` means "unchanged".
    pub state: Arc<S>,
    /// Sagas the store schedules once the action has been applied.
    pub sagas: Vec<Saga<S, A>>,
}

impl<S, A> ReducerResult<S, A> {
    /// A result with `state` and no sagas.
    pub fn new(state: Arc<S>) -> Self {
        Self { state, sagas: Vec::new() }
    }

    /// Adds a saga for the store to schedule.
    pub fn with_saga(mut self, saga: Saga<S, A>) -> Self {
        self.sagas.push(saga);
        self
    }
}

impl<S, A> From<S> for ReducerResult<S, A> {
    fn from(state: S) -> Self {
        Self::new(Arc::new(state))
    }
}

impl<S, A> From<Arc<S>> for ReducerResult<S, A> {
    fn from(state: Arc<S>) -> Self {
        Self::new(state)
    }
}

/// A pure function from (state, action) to the next state.
///
/// `state` is `None` only for `@@INIT` when the store was created without an initial state:
/// the reducer builds its initial state from nothing, as in the specification
/// (`Store(reducer, initial_state=None)`). Every timestamp or result a reducer needs must
/// arrive inside the action, so replaying the same actions always gives the same state.
pub trait Reducer<S, A>: Send + Sync + 'static {
    /// Applies `action` to `state`.
    fn reduce(&self, state: Option<&Arc<S>>, action: &A) -> ReducerResult<S, A>;
}

impl<S, A, F, R> Reducer<S, A> for F
where
    F: Fn(Option<&Arc<S>>, &A) -> R + Send + Sync + 'static,
    R: Into<ReducerResult<S, A>>,
{
    fn reduce(&self, state: Option<&Arc<S>>, action: &A) -> ReducerResult<S, A> {
        self(state, action).into()
    }
}

/// Why a dispatch did not apply cleanly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DispatchError {
    /// The reducer panicked; the previous state was kept.
    #[error("the reducer panicked on `{action}`: {message} (the previous state was kept)")]
    ReducerPanicked {
        /// The type name of the action being reduced.
        action: String,
        /// The panic message.
        message: String,
    },
    /// A listener panicked; the state was applied and the other listeners ran.
    #[error("a store listener panicked on `{action}`: {message}")]
    ListenerPanicked {
        /// The type name of the action.
        action: String,
        /// The panic message.
        message: String,
    },
    /// A middleware returned an error; the action was not applied.
    #[error("middleware rejected `{action}`: {message}")]
    Rejected {
        /// The type name of the action.
        action: String,
        /// Why it was rejected.
        message: String,
    },
    /// The reducer scheduled sagas but no tokio runtime was available to run them.
    #[error("the reducer scheduled a saga but no tokio runtime is running")]
    NoRuntime,
}

/// Calls the rest of the middleware chain, then the reducer.
pub type Next<'a, A> = &'a mut dyn FnMut(A) -> Result<(), DispatchError>;

/// Wraps dispatch: sees each action (in dispatch order) before the reducer, and may pass it on
/// with `next`, transform it, or drop it.
pub trait Middleware<S, A>: Send + Sync + 'static {
    /// Handles `action`; `state` is the state before it is applied.
    fn handle(&self, state: &Arc<S>, action: A, next: Next<'_, A>) -> Result<(), DispatchError>;
}

impl<S, A, F> Middleware<S, A> for F
where
    F: Fn(&Arc<S>, A, Next<'_, A>) -> Result<(), DispatchError> + Send + Sync + 'static,
{
    fn handle(&self, state: &Arc<S>, action: A, next: Next<'_, A>) -> Result<(), DispatchError> {
        self(state, action, next)
    }
}

type Listener<S, A> = dyn Fn(&A, &Arc<S>) + Send + Sync;

struct ListenerEntry<S, A> {
    id: u64,
    active: Arc<AtomicBool>,
    listener: Arc<Listener<S, A>>,
}

impl<S, A> Clone for ListenerEntry<S, A> {
    fn clone(&self) -> Self {
        Self { id: self.id, active: self.active.clone(), listener: self.listener.clone() }
    }
}

type Matcher<A> = Box<dyn Fn(&A) -> bool + Send + Sync>;

struct Taker<A> {
    matches: Matcher<A>,
    reply: oneshot::Sender<A>,
}

struct Core<S, A> {
    reducer: Arc<dyn Reducer<S, A>>,
    middleware: Vec<Arc<dyn Middleware<S, A>>>,
}

pub(crate) struct Inner<S, A> {
    core: Mutex<Core<S, A>>,
    state: ArcSwap<S>,
    watch: watch::Sender<Arc<S>>,
    listeners: ArcSwap<Vec<ListenerEntry<S, A>>>,
    listeners_edit: Mutex<()>,
    next_listener: AtomicU64,
    pending: Mutex<VecDeque<A>>,
    has_pending: AtomicBool,
    takers: Mutex<Vec<Taker<A>>>,
    taker_count: AtomicUsize,
    runtime: Option<tokio::runtime::Handle>,
}

thread_local! {
    /// Stores this thread is dispatching into right now (by address), to queue re-entrant
    /// dispatches instead of deadlocking on the store's lock.
    static DISPATCHING: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

struct DispatchScope(usize);

impl DispatchScope {
    fn enter(id: usize) -> Option<Self> {
        DISPATCHING.with(|d| {
            let mut d = d.borrow_mut();
            if d.contains(&id) {
                None
            } else {
                d.push(id);
                Some(DispatchScope(id))
            }
        })
    }
}

impl Drop for DispatchScope {
    fn drop(&mut self) {
        DISPATCHING.with(|d| {
            let mut d = d.borrow_mut();
            if let Some(pos) = d.iter().rposition(|x| *x == self.0) {
                d.remove(pos);
            }
        });
    }
}

/// A Redux-style store. Cloning a `Store` gives another handle to the same store.
pub struct Store<S, A> {
    pub(crate) inner: Arc<Inner<S, A>>,
}

impl<S, A> Clone for Store<S, A> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone() }
    }
}

/// Keeps a listener subscribed; dropping it unsubscribes.
#[must_use = "the listener is unsubscribed when the Subscription is dropped"]
pub struct Subscription {
    active: Arc<AtomicBool>,
    remove: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.active.store(false, Ordering::Release);
        if let Some(remove) = self.remove.take() {
            remove();
        }
    }
}

impl<S, A> Store<S, A>
where
    S: Send + Sync + 'static,
    A: Action + Clone,
{
    /// Creates a store and dispatches `@@INIT`, so `reducer` can build the initial state when
    /// `initial_state` is `None`.
    ///
    /// Fails only if the reducer panics on `@@INIT` with no initial state to fall back to.
    pub fn new<R>(reducer: R, initial_state: Option<S>) -> Result<Self, DispatchError>
    where
        R: Reducer<S, A>,
    {
        Self::with_middleware(reducer, initial_state, Vec::new())
    }

    /// Creates a store whose dispatch goes through `middleware` (outermost first).
    pub fn with_middleware<R>(
        reducer: R,
        initial_state: Option<S>,
        middleware: Vec<Arc<dyn Middleware<S, A>>>,
    ) -> Result<Self, DispatchError>
    where
        R: Reducer<S, A>,
    {
        let reducer: Arc<dyn Reducer<S, A>> = Arc::new(reducer);
        let init = A::from_builtin(Builtin::Init);
        let initial = initial_state.map(Arc::new);
        let first = catch_unwind(AssertUnwindSafe(|| reducer.reduce(initial.as_ref(), &init)));
        let (state, sagas) = match (first, initial) {
            (Ok(r), _) => (r.state, r.sagas),
            (Err(_), Some(s)) => (s, Vec::new()),
            (Err(p), None) => {
                return Err(DispatchError::ReducerPanicked {
                    action: init.type_name().to_owned(),
                    message: panic_message(&*p),
                });
            }
        };
        let (watch, _) = watch::channel(state.clone());
        let store = Store {
            inner: Arc::new(Inner {
                core: Mutex::new(Core { reducer, middleware }),
                state: ArcSwap::new(state),
                watch,
                listeners: ArcSwap::from_pointee(Vec::new()),
                listeners_edit: Mutex::new(()),
                next_listener: AtomicU64::new(0),
                pending: Mutex::new(VecDeque::new()),
                has_pending: AtomicBool::new(false),
                takers: Mutex::new(Vec::new()),
                taker_count: AtomicUsize::new(0),
                runtime: tokio::runtime::Handle::try_current().ok(),
            }),
        };
        store.schedule(sagas)?;
        Ok(store)
    }

    /// The newest state. Never waits for a dispatch in progress.
    pub fn get_state(&self) -> Arc<S> {
        self.inner.state.load_full()
    }

    /// A receiver that always holds the newest state, for async views that only need the
    /// latest snapshot (`changed().await` wakes on the next new state).
    pub fn watch(&self) -> watch::Receiver<Arc<S>> {
        self.inner.watch.subscribe()
    }

    /// Applies `action`: middleware, then the reducer (once), then the listeners.
    ///
    /// Safe to call from any thread or task. Returns an error if the reducer or a listener
    /// panicked or a middleware rejected the action; the store stays usable either way.
    pub fn dispatch(&self, action: A) -> Result<(), DispatchError> {
        let id = Arc::as_ptr(&self.inner) as *const () as usize;
        let Some(_scope) = DispatchScope::enter(id) else {
            // Re-entrant dispatch from a listener or middleware: apply it after this one.
            self.inner.pending.lock().push_back(action);
            self.inner.has_pending.store(true, Ordering::Release);
            return Ok(());
        };
        let mut sagas = Vec::new();
        let result = {
            let core = self.inner.core.lock();
            let first = self.process(&core, action, &mut sagas);
            while self.inner.has_pending.load(Ordering::Acquire) {
                let next = {
                    let mut pending = self.inner.pending.lock();
                    let next = pending.pop_front();
                    if pending.is_empty() {
                        self.inner.has_pending.store(false, Ordering::Release);
                    }
                    next
                };
                match next {
                    Some(a) => {
                        if let Err(e) = self.process(&core, a, &mut sagas) {
                            tracing::warn!("queued dispatch failed: {e}");
                        }
                    }
                    None => break,
                }
            }
            first
        };
        if !sagas.is_empty() {
            self.schedule(sagas)?;
        }
        result
    }

    fn process(
        &self,
        core: &Core<S, A>,
        action: A,
        sagas: &mut Vec<Saga<S, A>>,
    ) -> Result<(), DispatchError> {
        if core.middleware.is_empty() {
            return self.reduce(core, action, sagas);
        }
        self.through(core, 0, action, sagas)
    }

    fn through(
        &self,
        core: &Core<S, A>,
        index: usize,
        action: A,
        sagas: &mut Vec<Saga<S, A>>,
    ) -> Result<(), DispatchError> {
        match core.middleware.get(index) {
            None => self.reduce(core, action, sagas),
            Some(m) => {
                let state = self.inner.state.load_full();
                let mut next = |a: A| self.through(core, index + 1, a, sagas);
                m.handle(&state, action, &mut next)
            }
        }
    }

    fn reduce(
        &self,
        core: &Core<S, A>,
        action: A,
        sagas: &mut Vec<Saga<S, A>>,
    ) -> Result<(), DispatchError> {
        let inner = &*self.inner;
        let current = inner.state.load();
        let reduced = catch_unwind(AssertUnwindSafe(|| core.reducer.reduce(Some(&current), &action)));
        let ReducerResult { state, sagas: new_sagas } = match reduced {
            Ok(r) => r,
            Err(p) => {
                return Err(DispatchError::ReducerPanicked {
                    action: action.type_name().to_owned(),
                    message: panic_message(&*p),
                });
            }
        };
        if !Arc::ptr_eq(&state, &current) {
            drop(current);
            inner.state.store(state.clone());
            inner.watch.send_replace(state.clone());
        } else {
            drop(current);
        }
        sagas.extend(new_sagas);

        let mut result = Ok(());
        let listeners = inner.listeners.load();
        for entry in listeners.iter() {
            if !entry.active.load(Ordering::Acquire) {
                continue;
            }
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| (entry.listener)(&action, &state))) {
                result = Err(DispatchError::ListenerPanicked {
                    action: action.type_name().to_owned(),
                    message: panic_message(&*p),
                });
            }
        }
        if inner.taker_count.load(Ordering::Acquire) > 0 {
            let mut takers = inner.takers.lock();
            let mut i = 0;
            while i < takers.len() {
                if takers[i].reply.is_closed() {
                    takers.swap_remove(i);
                } else if (takers[i].matches)(&action) {
                    let t = takers.swap_remove(i);
                    let _ = t.reply.send(action.clone());
                } else {
                    i += 1;
                }
            }
            inner.taker_count.store(takers.len(), Ordering::Release);
        }
        result
    }

    fn schedule(&self, sagas: Vec<Saga<S, A>>) -> Result<(), DispatchError> {
        if sagas.is_empty() {
            return Ok(());
        }
        let Some(rt) = self.inner.runtime.clone().or_else(|| tokio::runtime::Handle::try_current().ok())
        else {
            return Err(DispatchError::NoRuntime);
        };
        let _enter = rt.enter();
        for saga in sagas {
            // Detached: a saga scheduled by a reducer lives on its own.
            drop(self.run(saga));
        }
        Ok(())
    }

    /// Calls `listener` with every action and the state after it, in dispatch order, until the
    /// returned [`Subscription`] is dropped.
    pub fn subscribe<F>(&self, listener: F) -> Subscription
    where
        F: Fn(&A, &Arc<S>) + Send + Sync + 'static,
    {
        let id = self.inner.next_listener.fetch_add(1, Ordering::Relaxed);
        let active = Arc::new(AtomicBool::new(true));
        let entry = ListenerEntry { id, active: active.clone(), listener: Arc::new(listener) };
        {
            let _edit = self.inner.listeners_edit.lock();
            let mut list = Vec::clone(&self.inner.listeners.load());
            list.push(entry);
            self.inner.listeners.store(Arc::new(list));
        }
        let weak = Arc::downgrade(&self.inner);
        Subscription {
            active,
            remove: Some(Box::new(move || {
                if let Some(inner) = weak.upgrade() {
                    let _edit = inner.listeners_edit.lock();
                    let mut list = Vec::clone(&inner.listeners.load());
                    list.retain(|e| e.id != id);
                    inner.listeners.store(Arc::new(list));
                }
            })),
        }
    }

    /// Registers a one-shot wait for the next action that `matches`.
    pub(crate) fn register_take(&self, matches: Matcher<A>) -> oneshot::Receiver<A> {
        let (reply, rx) = oneshot::channel();
        let mut takers = self.inner.takers.lock();
        takers.push(Taker { matches, reply });
        self.inner.taker_count.store(takers.len(), Ordering::Release);
        rx
    }

    /// Runs `saga` on the current tokio runtime, detached from any parent.
    ///
    /// Must be called from within a tokio runtime.
    pub fn run(&self, saga: Saga<S, A>) -> SagaHandle<()> {
        crate::saga::spawn_root(self.clone(), saga)
    }
}

impl<S, A> std::fmt::Debug for Store<S, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}
