//! The test interpreter: run a saga without a store, real handlers or real time, and check
//! the sequence of effects it performed (the Rust counterpart of redux-saga-test-plan).
//!
//! ```
//! use std::time::Duration;
//! use milo::DynAction;
//! use milo::saga::{Backoff, Effect, RetryPolicy, SagaError};
//! use milo::saga::testing::SagaTest;
//!
//! let t: SagaTest<(), DynAction> = SagaTest::new(());
//! t.fail("deploy", "no route").fail("deploy", "no route").fail("deploy", "no route");
//! t.answer("deploy", 7_u32);
//! let policy = RetryPolicy::new(4, Duration::from_secs(1)).backoff(Backoff::Exponential);
//! let got = t.run("deploy-saga", move |cx| async move {
//!     cx.retry("deploy", policy, |_attempt| async { Err::<u32, SagaError>("real call".into()) }).await
//! });
//! assert_eq!(got, Ok(7));
//! let delays: Vec<_> = t.effects().into_iter().filter_map(|e| match e {
//!     Effect::Delay(d) => Some(d.as_secs()),
//!     _ => None,
//! }).collect();
//! assert_eq!(delays, [1, 2, 4]);
//! assert_eq!(t.elapsed(), Duration::from_secs(7)); // virtual time; the test took microseconds
//! ```
//!
//! Forked and `all` children run inline, one after another, so the recorded order is
//! deterministic; a child that waits for its parent with `take` cannot be tested this way.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use super::context::{Answer, Cx};
use super::effect::Effect;
use super::{Saga, SagaError, SagaResult, drive};
use crate::action::Action;
use crate::store::Reducer;

pub(crate) struct TestRt<S, A> {
    state: Mutex<Arc<S>>,
    reducer: Option<Arc<dyn Reducer<S, A>>>,
    effects: Mutex<Vec<Effect<A>>>,
    answers: Mutex<HashMap<String, VecDeque<Answer>>>,
    takes: Mutex<VecDeque<A>>,
    clock: Mutex<Duration>,
    base: Instant,
    passthrough: AtomicBool,
}

impl<S: Send + Sync + 'static, A: Action + Clone> TestRt<S, A> {
    pub(crate) fn record(&self, effect: Effect<A>) {
        self.effects.lock().push(effect);
    }

    pub(crate) fn put(&self, action: A) {
        if let Some(reducer) = &self.reducer {
            let mut state = self.state.lock();
            let next = reducer.reduce(Some(&state), &action).state_or(&state);
            *state = next;
        }
        self.record(Effect::Put(action));
    }

    pub(crate) fn state(&self) -> Arc<S> {
        self.state.lock().clone()
    }

    pub(crate) fn now(&self) -> Instant {
        self.base + *self.clock.lock()
    }

    pub(crate) fn advance(&self, d: Duration) {
        *self.clock.lock() += d;
    }

    pub(crate) fn passthrough(&self) -> bool {
        self.passthrough.load(Ordering::Relaxed)
    }

    pub(crate) fn next_take(&self) -> Option<A> {
        self.takes.lock().pop_front()
    }

    pub(crate) fn answer<T: 'static>(&self, label: &str) -> Option<SagaResult<T>> {
        let answer = self.answers.lock().get_mut(label)?.pop_front()?;
        Some(match answer {
            Ok(value) => value.downcast::<T>().map(|b| *b).map_err(|_| {
                SagaError::Test(format!(
                    "call `{label}` was answered with a value of the wrong type (expected {})",
                    std::any::type_name::<T>()
                ))
            }),
            Err(e) => Err(e),
        })
    }
}

/// Runs sagas under the test interpreter. See the [module docs](self).
pub struct SagaTest<S, A> {
    rt: Arc<TestRt<S, A>>,
}

impl<S, A> SagaTest<S, A>
where
    S: Send + Sync + 'static,
    A: Action + Clone,
{
    /// A test whose `select` sees `state`. Puts do not change it unless a reducer is given.
    pub fn new(state: S) -> Self {
        Self::build(state, None)
    }

    /// A test whose puts are applied to `state` by `reducer`, so `select` sees their effect.
    pub fn with_reducer<R: Reducer<S, A>>(state: S, reducer: R) -> Self {
        Self::build(state, Some(Arc::new(reducer)))
    }

    fn build(state: S, reducer: Option<Arc<dyn Reducer<S, A>>>) -> Self {
        Self {
            rt: Arc::new(TestRt {
                state: Mutex::new(Arc::new(state)),
                reducer,
                effects: Mutex::new(Vec::new()),
                answers: Mutex::new(HashMap::new()),
                takes: Mutex::new(VecDeque::new()),
                clock: Mutex::new(Duration::ZERO),
                base: Instant::now(),
                passthrough: AtomicBool::new(false),
            }),
        }
    }

    /// Queues `value` as the answer to the next unanswered call named `label`.
    pub fn answer<T: Send + 'static>(&self, label: &str, value: T) -> &Self {
        self.push(label, Ok(Box::new(value)))
    }

    /// Queues an error as the answer to the next unanswered call named `label`.
    pub fn fail(&self, label: &str, error: impl Into<SagaError>) -> &Self {
        self.push(label, Err(error.into()))
    }

    fn push(&self, label: &str, answer: Answer) -> &Self {
        self.rt
            .answers
            .lock()
            .entry(label.to_owned())
            .or_default()
            .push_back(answer);
        self
    }

    /// Queues `action` as the answer to the next `take`.
    pub fn answer_take(&self, action: A) -> &Self {
        self.rt.takes.lock().push_back(action);
        self
    }

    /// When on, calls without a scripted answer run for real.
    pub fn passthrough(&self, on: bool) -> &Self {
        self.rt.passthrough.store(on, Ordering::Relaxed);
        self
    }

    /// Runs a saga body to its end, inside a fresh single-threaded tokio runtime.
    pub fn run<T, F, Fut>(&self, label: &str, body: F) -> SagaResult<T>
    where
        T: Send + 'static,
        F: FnOnce(Cx<S, A>) -> Fut + Send + 'static,
        Fut: Future<Output = SagaResult<T>> + Send + 'static,
    {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| SagaError::Test(format!("could not start a tokio runtime: {e}")))?;
        rt.block_on(self.run_async(label, body))
    }

    /// Runs a saga body to its end on the current runtime.
    pub async fn run_async<T, F, Fut>(&self, label: &str, body: F) -> SagaResult<T>
    where
        T: Send + 'static,
        F: FnOnce(Cx<S, A>) -> Fut + Send + 'static,
        Fut: Future<Output = SagaResult<T>> + Send + 'static,
    {
        let saga = Saga::new(label, body);
        let cx = Cx::test(self.rt.clone(), saga.label, CancellationToken::new());
        drive(cx, saga.body).await
    }

    /// Every effect performed so far, in order.
    pub fn effects(&self) -> Vec<Effect<A>> {
        self.rt.effects.lock().clone()
    }

    /// The actions put so far, in order.
    pub fn puts(&self) -> Vec<A> {
        self.rt
            .effects
            .lock()
            .iter()
            .filter_map(|e| match e {
                Effect::Put(a) => Some(a.clone()),
                _ => None,
            })
            .collect()
    }

    /// Virtual time elapsed (the sum of delays).
    pub fn elapsed(&self) -> Duration {
        *self.rt.clock.lock()
    }

    /// The current state.
    pub fn state(&self) -> Arc<S> {
        self.rt.state()
    }
}
