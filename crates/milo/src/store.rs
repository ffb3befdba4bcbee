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
    /// The next state; `None` (see [`unchanged`](Self::unchanged)) keeps the current one.
    /// Returning the same `Arc` also means "unchanged".
    pub state: Option<Arc<S>>,
    /// Sagas the store schedules once the action has been applied.
    pub sagas: Vec<Saga<S, A>>,
}

impl<S, A> ReducerResult<S, A> {
    /// A result with `state` and no sagas.
    pub fn new(state: Arc<S>) -> Self {
        Self {
            state: Some(state),
            sagas: Vec::new(),
        }
    }

    /// "Nothing changed": the cheapest answer, as it does not even copy the state's pointer.
    pub fn unchanged() -> Self {
        Self {
            state: None,
            sagas: Vec::new(),
        }
    }

    /// The next state given the `current` one.
    pub fn state_or(&self, current: &Arc<S>) -> Arc<S> {
        self.state.clone().unwrap_or_else(|| current.clone())
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
    /// The store was created without an initial state and the reducer built none on `@@INIT`.
    #[error("the reducer returned no state for `{action}` and the store has no initial state")]
    NoInitialState {
        /// The type name of the action (`@@INIT`).
        action: String,
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
        Self {
            id: self.id,
            active: self.active.clone(),
            listener: self.listener.clone(),
        }
    }
}

type Matcher<A> = Box<dyn Fn(&A) -> bool + Send + Sync>;

struct Taker<A> {
    matches: Matcher<A>,
    reply: oneshot::Sender<A>,
}

/// Everything only the dispatching thread touches, behind the store's lock.
struct Core<S, A> {
    reducer: Arc<dyn Reducer<S, A>>,
    middleware: Vec<Arc<dyn Middleware<S, A>>>,
    current: Current<S, A>,
}

/// The dispatcher's own copies of the state and the listener list, so that a dispatch needs
/// no [`ArcSwap`] load (the published copies are for readers and subscribers).
struct Current<S, A> {
    /// The current state; the same `Arc` as `Inner::state`.
    state: Arc<S>,
    /// The listener list as of `listeners_version`.
    listeners: Arc<Vec<ListenerEntry<S, A>>>,
    listeners_version: u64,
}

impl<S, A> Current<S, A> {
    /// Picks up the published listener list if it changed since we last looked.
    fn refresh_listeners(&mut self, inner: &Inner<S, A>) {
        let version = inner.listeners_version.load(Ordering::Acquire);
        if version != self.listeners_version {
            self.listeners = inner.listeners.load_full();
            self.listeners_version = version;
        }
    }
}

pub(crate) struct Inner<S, A> {
    core: Mutex<Core<S, A>>,
    /// A token of the thread holding `core` (0 when none), to queue re-entrant dispatches
    /// instead of deadlocking on `core`.
    owner: AtomicUsize,
    state: ArcSwap<S>,
    watch: watch::Sender<Arc<S>>,
    listeners: ArcSwap<Vec<ListenerEntry<S, A>>>,
    /// Bumped after every change to `listeners`.
    listeners_version: AtomicU64,
    listeners_edit: Mutex<()>,
    next_listener: AtomicU64,
    pending: Mutex<VecDeque<A>>,
    has_pending: AtomicBool,
    takers: Mutex<Vec<Taker<A>>>,
    taker_count: AtomicUsize,
    runtime: Option<tokio::runtime::Handle>,
}

thread_local! {
    /// Its address identifies the current thread (never 0) while the thread lives.
    static THREAD_TOKEN: u8 = const { 0 };
}

fn thread_token() -> usize {
    THREAD_TOKEN.with(|t| t as *const u8 as usize)
}

/// Marks the current thread as the one holding a store's lock, until dropped. Must be dropped
/// before the lock is released, so that it never clears another thread's mark.
///
/// A thread only ever reads its own token back from `owner` if it wrote it itself and has not
/// cleared it yet, so `Relaxed` is enough: the check needs no ordering with other threads.
struct OwnerMark<'a>(&'a AtomicUsize);

impl<'a> OwnerMark<'a> {
    fn set(owner: &'a AtomicUsize, token: usize) -> Self {
        owner.store(token, Ordering::Relaxed);
        OwnerMark(owner)
    }
}

impl Drop for OwnerMark<'_> {
    fn drop(&mut self) {
        self.0.store(0, Ordering::Relaxed);
    }
}

/// A Redux-style store. Cloning a `Store` gives another handle to the same store.
pub struct Store<S, A> {
    pub(crate) inner: Arc<Inner<S, A>>,
}

impl<S, A> Clone for Store<S, A> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
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
            (Ok(ReducerResult { state: Some(s), sagas }), _) => (s, sagas),
            (Ok(ReducerResult { state: None, sagas }), Some(s)) => (s, sagas),
            (Ok(ReducerResult { state: None, .. }), None) => {
                return Err(DispatchError::NoInitialState {
                    action: init.type_name().to_owned(),
                });
            }
            (Err(_), Some(s)) => (s, Vec::new()),
            (Err(p), None) => {
                return Err(DispatchError::ReducerPanicked {
                    action: init.type_name().to_owned(),
                    message: panic_message(&*p),
                });
            }
        };
        let (watch, _) = watch::channel(state.clone());
        let listeners = Arc::new(Vec::new());
        let current = Current {
            state: state.clone(),
            listeners: listeners.clone(),
            listeners_version: 0,
        };
        let store = Store {
            inner: Arc::new(Inner {
                core: Mutex::new(Core {
                    reducer,
                    middleware,
                    current,
                }),
                owner: AtomicUsize::new(0),
                state: ArcSwap::new(state),
                watch,
                listeners: ArcSwap::new(listeners),
                listeners_version: AtomicU64::new(0),
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
        let inner = &*self.inner;
        // Dispatch only feeds the channel while it has receivers (notifying costs more than a
        // small reducer), so a new receiver first brings the stored value up to date. The state
        // is read under the channel's own lock: a dispatcher stores its state before sending
        // it, so what is read here is never older than what the channel holds.
        let receiver = inner.watch.subscribe();
        inner.watch.send_if_modified(|current| {
            let latest = inner.state.load_full();
            let changed = !Arc::ptr_eq(current, &latest);
            if changed {
                *current = latest;
            }
            changed
        });
        receiver
    }

    /// Applies `action`: middleware, then the reducer (once), then the listeners.
    ///
    /// Safe to call from any thread or task. Returns an error if the reducer or a listener
    /// panicked or a middleware rejected the action; the store stays usable either way.
    pub fn dispatch(&self, action: A) -> Result<(), DispatchError> {
        let inner = &*self.inner;
        let me = thread_token();
        if inner.owner.load(Ordering::Relaxed) == me {
            // Re-entrant dispatch from a listener or middleware: apply it after this one.
            inner.pending.lock().push_back(action);
            inner.has_pending.store(true, Ordering::Release);
            return Ok(());
        }
        let mut sagas = Vec::new();
        let result = {
            let mut core = inner.core.lock();
            // Declared after the lock guard, so it is dropped (cleared) before the unlock.
            let _owner = OwnerMark::set(&inner.owner, me);
            let Core {
                reducer,
                middleware,
                current,
            } = &mut *core;
            let step = Step {
                store: self,
                reducer: &**reducer,
                middleware,
            };
            let first = step.process(current, action, &mut sagas);
            while inner.has_pending.load(Ordering::Acquire) {
                let next = {
                    let mut pending = inner.pending.lock();
                    let next = pending.pop_front();
                    if pending.is_empty() {
                        inner.has_pending.store(false, Ordering::Release);
                    }
                    next
                };
                match next {
                    Some(a) => {
                        if let Err(e) = step.process(current, a, &mut sagas) {
                            tracing::warn!("queued dispatch failed: {e}");
                        }
                    }
                    None => break,
                }
            }
            // Drop listeners unsubscribed during this dispatch now, not at the next one.
            current.refresh_listeners(inner);
            first
        };
        if !sagas.is_empty() {
            self.schedule(sagas)?;
        }
        result
    }

    fn schedule(&self, sagas: Vec<Saga<S, A>>) -> Result<(), DispatchError> {
        if sagas.is_empty() {
            return Ok(());
        }
        let Some(rt) = self
            .inner
            .runtime
            .clone()
            .or_else(|| tokio::runtime::Handle::try_current().ok())
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
        let entry = ListenerEntry {
            id,
            active: active.clone(),
            listener: Arc::new(listener),
        };
        {
            let _edit = self.inner.listeners_edit.lock();
            let mut list = Vec::clone(&self.inner.listeners.load());
            list.push(entry);
            self.inner.listeners.store(Arc::new(list));
            self.inner.listeners_version.fetch_add(1, Ordering::Release);
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
                    inner.listeners_version.fetch_add(1, Ordering::Release);
                    // Release the dispatcher's copy (and so the listener) now if no dispatch
                    // is running; a running one drops it when it ends.
                    if let Some(mut core) = inner.core.try_lock() {
                        core.current.refresh_listeners(&inner);
                    }
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

/// One dispatch's view of the store's locked core: runs an action through the middleware,
/// the reducer, the listeners and the takers.
struct Step<'a, S, A> {
    store: &'a Store<S, A>,
    reducer: &'a dyn Reducer<S, A>,
    middleware: &'a [Arc<dyn Middleware<S, A>>],
}

impl<S, A> Step<'_, S, A>
where
    S: Send + Sync + 'static,
    A: Action + Clone,
{
    fn process(
        &self,
        current: &mut Current<S, A>,
        action: A,
        sagas: &mut Vec<Saga<S, A>>,
    ) -> Result<(), DispatchError> {
        if self.middleware.is_empty() {
            return self.reduce(current, action, sagas);
        }
        self.through(current, 0, action, sagas)
    }

    fn through(
        &self,
        current: &mut Current<S, A>,
        index: usize,
        action: A,
        sagas: &mut Vec<Saga<S, A>>,
    ) -> Result<(), DispatchError> {
        match self.middleware.get(index) {
            None => self.reduce(current, action, sagas),
            Some(m) => {
                let state = current.state.clone();
                let mut next = |a: A| self.through(current, index + 1, a, sagas);
                m.handle(&state, action, &mut next)
            }
        }
    }

    fn reduce(&self, current: &mut Current<S, A>, action: A, sagas: &mut Vec<Saga<S, A>>) -> Result<(), DispatchError> {
        let inner = &*self.store.inner;
        let reduced = catch_unwind(AssertUnwindSafe(|| self.reducer.reduce(Some(&current.state), &action)));
        let ReducerResult {
            state,
            sagas: new_sagas,
        } = match reduced {
            Ok(r) => r,
            Err(p) => {
                return Err(DispatchError::ReducerPanicked {
                    action: action.type_name().to_owned(),
                    message: panic_message(&*p),
                });
            }
        };
        if let Some(state) = state
            && !Arc::ptr_eq(&state, &current.state)
        {
            inner.state.store(state.clone());
            if inner.watch.receiver_count() > 0 {
                inner.watch.send_replace(state.clone());
            }
            current.state = state;
        }
        if !new_sagas.is_empty() {
            sagas.extend(new_sagas);
        }

        current.refresh_listeners(inner);
        let mut result = Ok(());
        for entry in current.listeners.iter() {
            if !entry.active.load(Ordering::Acquire) {
                continue;
            }
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| (entry.listener)(&action, &current.state))) {
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
}

impl<S, A> std::fmt::Debug for Store<S, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}
