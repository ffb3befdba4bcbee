//! [`Cx`]: the handle a saga performs its effects through, and the interpreter behind it.
//!
//! Each effect method matches on the runtime: `Live` runs it against a real [`Store`] on
//! tokio; `Test` records it as an [`Effect`] and answers it from the script of a
//! [`SagaTest`](super::testing::SagaTest).

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::stream::{FuturesUnordered, StreamExt};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::effect::{Effect, Pattern, RetryPolicy};
use super::testing::TestRt;
use super::{Body, Saga, SagaError, SagaHandle, SagaResult, drive, spawn_live};
use crate::action::Action;
use crate::store::Store;
use crate::util::panic_message;

pub(crate) enum Rt<S, A> {
    Live(Store<S, A>),
    Test(Arc<TestRt<S, A>>),
}

impl<S, A> Clone for Rt<S, A> {
    fn clone(&self) -> Self {
        match self {
            Rt::Live(s) => Rt::Live(s.clone()),
            Rt::Test(t) => Rt::Test(t.clone()),
        }
    }
}

/// A saga's context: its effects, its cancellation token and its attached children.
pub struct Cx<S, A> {
    pub(crate) rt: Rt<S, A>,
    pub(crate) token: CancellationToken,
    pub(crate) label: Arc<str>,
    pub(crate) tracker: TaskTracker,
}

impl<S, A> Clone for Cx<S, A> {
    fn clone(&self) -> Self {
        Self {
            rt: self.rt.clone(),
            token: self.token.clone(),
            label: self.label.clone(),
            tracker: self.tracker.clone(),
        }
    }
}

impl<S, A> Cx<S, A>
where
    S: Send + Sync + 'static,
    A: Action + Clone,
{
    pub(crate) fn live(store: Store<S, A>, label: Arc<str>, token: CancellationToken) -> Self {
        Self {
            rt: Rt::Live(store),
            token,
            label,
            tracker: TaskTracker::new(),
        }
    }

    pub(crate) fn test(rt: Arc<TestRt<S, A>>, label: Arc<str>, token: CancellationToken) -> Self {
        Self {
            rt: Rt::Test(rt),
            token,
            label,
            tracker: TaskTracker::new(),
        }
    }

    /// This saga's label.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// This saga's cancellation token (cancelled when the saga or an ancestor is cancelled).
    pub fn cancellation(&self) -> &CancellationToken {
        &self.token
    }

    /// The store behind a live context; `None` under the test interpreter.
    pub fn store(&self) -> Option<&Store<S, A>> {
        match &self.rt {
            Rt::Live(s) => Some(s),
            Rt::Test(_) => None,
        }
    }

    /// The current instant: real time when live, virtual time (advanced by delays) in tests.
    pub fn now(&self) -> Instant {
        match &self.rt {
            Rt::Live(_) => Instant::now(),
            Rt::Test(t) => t.now(),
        }
    }

    /// **put**: dispatches `action` into the store.
    pub fn put(&self, action: A) -> SagaResult<()> {
        match &self.rt {
            Rt::Live(store) => store.dispatch(action).map_err(SagaError::from),
            Rt::Test(t) => {
                t.put(action);
                Ok(())
            }
        }
    }

    /// A function that dispatches like [`put`](Self::put), usable from any thread (for
    /// writers that turn output into actions). Dispatch errors are logged, not returned.
    pub fn putter(&self) -> Arc<dyn Fn(A) + Send + Sync> {
        let cx = self.clone();
        Arc::new(move |a| {
            if let Err(e) = cx.put(a) {
                tracing::warn!("dispatch failed: {e}");
            }
        })
    }

    /// **select**: reads the current state.
    pub fn select<R>(&self, f: impl FnOnce(&S) -> R) -> R {
        match &self.rt {
            Rt::Live(store) => f(&store.get_state()),
            Rt::Test(t) => {
                t.record(Effect::Select);
                f(&t.state())
            }
        }
    }

    /// **call**: awaits `fut` (an async function call named `label`). A panic inside it
    /// fails the saga; use [`try_call`](Self::try_call) to get it as an error instead.
    pub async fn call<T, E, Fut>(&self, label: &str, fut: Fut) -> SagaResult<T>
    where
        T: Send + 'static,
        E: Into<SagaError>,
        Fut: Future<Output = Result<T, E>> + Send,
    {
        self.call_as(|| Effect::Call(label.to_owned()), label, fut).await
    }

    /// A call recorded (by the test interpreter) as `effect()` (only built there: a live call
    /// allocates nothing for it).
    async fn call_as<T, E, Fut>(&self, effect: impl FnOnce() -> Effect<A>, label: &str, fut: Fut) -> SagaResult<T>
    where
        T: Send + 'static,
        E: Into<SagaError>,
        Fut: Future<Output = Result<T, E>> + Send,
    {
        match &self.rt {
            Rt::Live(_) => fut.await.map_err(Into::into),
            Rt::Test(t) => {
                t.record(effect());
                match t.answer::<T>(label) {
                    Some(answer) => answer,
                    None if t.passthrough() => fut.await.map_err(Into::into),
                    None => Err(unanswered(label)),
                }
            }
        }
    }

    /// **try_call**: like [`call`](Self::call), but a panic in `fut` becomes
    /// [`SagaError::Panicked`] instead of failing the saga.
    pub async fn try_call<T, E, Fut>(&self, label: &str, fut: Fut) -> SagaResult<T>
    where
        T: Send + 'static,
        E: Into<SagaError>,
        Fut: Future<Output = Result<T, E>> + Send,
    {
        AssertUnwindSafe(self.call_as(|| Effect::TryCall(label.to_owned()), label, fut))
            .catch_unwind()
            .await
            .unwrap_or_else(|p| Err(SagaError::Panicked(panic_message(&*p))))
    }

    /// **call_blocking**: runs the sync function `f` on tokio's blocking pool. A panic in it
    /// fails the saga like a panic in [`call`](Self::call).
    pub async fn call_blocking<T, E, F>(&self, label: &str, f: F) -> SagaResult<T>
    where
        T: Send + 'static,
        E: Into<SagaError> + Send + 'static,
        F: FnOnce() -> Result<T, E> + Send + 'static,
    {
        match &self.rt {
            Rt::Live(_) => match tokio::task::spawn_blocking(f).await {
                Ok(r) => r.map_err(Into::into),
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => Err(SagaError::Cancelled),
            },
            Rt::Test(t) => {
                t.record(Effect::CallBlocking(label.to_owned()));
                match t.answer::<T>(label) {
                    Some(answer) => answer,
                    None if t.passthrough() => f().map_err(Into::into),
                    None => Err(unanswered(label)),
                }
            }
        }
    }

    /// **take**: waits for the next dispatched action matching `pattern`.
    pub async fn take<P: Pattern<A>>(&self, pattern: P) -> SagaResult<A> {
        match self.take_inner(pattern, None).await? {
            Some(a) => Ok(a),
            None => Err(SagaError::Cancelled),
        }
    }

    /// **take** with a timeout: `Ok(None)` when nothing matched within `timeout`.
    pub async fn take_timeout<P: Pattern<A>>(&self, pattern: P, timeout: Duration) -> SagaResult<Option<A>> {
        self.take_inner(pattern, Some(timeout)).await
    }

    async fn take_inner<P: Pattern<A>>(&self, pattern: P, timeout: Option<Duration>) -> SagaResult<Option<A>> {
        match &self.rt {
            Rt::Live(store) => {
                let rx = store.register_take(Box::new(move |a| pattern.matches(a)));
                match timeout {
                    None => Ok(rx.await.ok()),
                    Some(d) => match tokio::time::timeout(d, rx).await {
                        Ok(r) => Ok(r.ok()),
                        Err(_) => Ok(None),
                    },
                }
            }
            Rt::Test(t) => {
                t.record(match timeout {
                    None => Effect::Take(pattern.describe()),
                    Some(d) => Effect::TakeTimeout(pattern.describe(), d),
                });
                match t.next_take() {
                    Some(a) => Ok(Some(a)),
                    None if timeout.is_some() => Ok(None),
                    None => Err(SagaError::Test(format!(
                        "take of `{}` was not answered",
                        pattern.describe()
                    ))),
                }
            }
        }
    }

    /// **delay**: waits `duration` (virtual time in tests).
    pub async fn delay(&self, duration: Duration) {
        match &self.rt {
            Rt::Live(_) => tokio::time::sleep(duration).await,
            Rt::Test(t) => {
                t.record(Effect::Delay(duration));
                t.advance(duration);
            }
        }
    }

    /// **fork**: starts `body` as an attached child: cancelled with this saga, and awaited
    /// before this saga's handle completes.
    pub async fn fork<T, F, Fut>(&self, label: impl Into<Arc<str>>, body: F) -> SagaHandle<T>
    where
        T: Send + 'static,
        F: FnOnce(Cx<S, A>) -> Fut + Send + 'static,
        Fut: Future<Output = SagaResult<T>> + Send + 'static,
    {
        let saga = Saga::new(label, body);
        self.start(saga.label, saga.body, true).await
    }

    /// **spawn**: starts `body` detached: it outlives this saga and is not cancelled with it.
    pub async fn spawn<T, F, Fut>(&self, label: impl Into<Arc<str>>, body: F) -> SagaHandle<T>
    where
        T: Send + 'static,
        F: FnOnce(Cx<S, A>) -> Fut + Send + 'static,
        Fut: Future<Output = SagaResult<T>> + Send + 'static,
    {
        let saga = Saga::new(label, body);
        self.start(saga.label, saga.body, false).await
    }

    async fn start<T: Send + 'static>(&self, label: Arc<str>, body: Body<S, A, T>, attached: bool) -> SagaHandle<T> {
        let token = if attached {
            self.token.child_token()
        } else {
            CancellationToken::new()
        };
        match &self.rt {
            Rt::Live(store) => {
                let tracker = attached.then_some(&self.tracker);
                spawn_live(store.clone(), label, token, tracker, body)
            }
            Rt::Test(t) => {
                let name = label.to_string();
                t.record(if attached {
                    Effect::Fork(name)
                } else {
                    Effect::Spawn(name)
                });
                let cx = Cx::test(t.clone(), label, token.clone());
                let result = drive(cx, body).await;
                SagaHandle {
                    token,
                    inner: super::HandleInner::Ready(Some(result)),
                }
            }
        }
    }

    /// **all**: runs `sagas` concurrently and returns their values in input order. The first
    /// error cancels the others (and is returned once they have stopped).
    pub async fn all<T: Send + 'static>(&self, sagas: Vec<Saga<S, A, T>>) -> SagaResult<Vec<T>> {
        let scope = self.token.child_token();
        let n = sagas.len();
        match &self.rt {
            Rt::Live(store) => {
                let mut running: FuturesUnordered<_> = sagas
                    .into_iter()
                    .enumerate()
                    .map(|(i, s)| {
                        let h = spawn_live(store.clone(), s.label, scope.child_token(), Some(&self.tracker), s.body);
                        h.map(move |r| (i, r))
                    })
                    .collect();
                let mut values: Vec<Option<T>> = (0..n).map(|_| None).collect();
                while let Some((i, r)) = running.next().await {
                    match r {
                        Ok(v) => values[i] = Some(v),
                        Err(e) => {
                            scope.cancel();
                            while running.next().await.is_some() {}
                            return Err(e);
                        }
                    }
                }
                Ok(values.into_iter().flatten().collect())
            }
            Rt::Test(t) => {
                t.record(Effect::All(sagas.iter().map(|s| s.label.to_string()).collect()));
                let mut values = Vec::with_capacity(n);
                for s in sagas {
                    let cx = Cx::test(t.clone(), s.label, scope.child_token());
                    values.push(drive(cx, s.body).await?);
                }
                Ok(values)
            }
        }
    }

    /// **race**: runs `sagas` concurrently; the first to finish wins and the others are
    /// cancelled (and have stopped when this returns). Returns the winner's index and value.
    pub async fn race<T: Send + 'static>(&self, sagas: Vec<Saga<S, A, T>>) -> SagaResult<(usize, T)> {
        let scope = self.token.child_token();
        if sagas.is_empty() {
            return Err(SagaError::msg("race of no sagas"));
        }
        let mut running: FuturesUnordered<_> = match &self.rt {
            Rt::Live(store) => sagas
                .into_iter()
                .enumerate()
                .map(|(i, s)| {
                    let h = spawn_live(store.clone(), s.label, scope.child_token(), Some(&self.tracker), s.body);
                    h.map(move |r| (i, r)).boxed()
                })
                .collect(),
            Rt::Test(t) => {
                t.record(Effect::Race(sagas.iter().map(|s| s.label.to_string()).collect()));
                sagas
                    .into_iter()
                    .enumerate()
                    .map(|(i, s)| {
                        let cx = Cx::test(t.clone(), s.label, scope.child_token());
                        drive(cx, s.body).map(move |r| (i, r)).boxed()
                    })
                    .collect()
            }
        };
        let first = running.next().await;
        scope.cancel();
        while running.next().await.is_some() {}
        match first {
            Some((i, r)) => r.map(|v| (i, v)),
            None => Err(SagaError::msg("race of no sagas")),
        }
    }

    /// **retry**: calls `f(attempt)` until it succeeds or `policy.max_attempts` attempts have
    /// failed, waiting `policy.delay_for(attempt)` (a `delay` effect) between attempts.
    pub async fn retry<T, E, F, Fut>(&self, label: &str, policy: RetryPolicy, mut f: F) -> SagaResult<T>
    where
        T: Send + 'static,
        E: Into<SagaError>,
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, E>> + Send,
    {
        let max = policy.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            match self.call(label, f(attempt)).await {
                Ok(v) => return Ok(v),
                Err(SagaError::Cancelled) => return Err(SagaError::Cancelled),
                Err(e) if attempt >= max => return Err(e),
                Err(_) => {
                    self.delay(policy.delay_for(attempt)).await;
                    attempt += 1;
                }
            }
        }
    }

    /// **timeout**: `fut`'s result, or [`SagaError::Timeout`] if it takes longer than
    /// `duration` (in which case `fut` is dropped, i.e. cancelled).
    pub async fn timeout<T, Fut>(&self, duration: Duration, fut: Fut) -> SagaResult<T>
    where
        Fut: Future<Output = SagaResult<T>>,
    {
        match &self.rt {
            Rt::Live(_) => tokio::time::timeout(duration, fut)
                .await
                .unwrap_or(Err(SagaError::Timeout(duration))),
            Rt::Test(t) => {
                t.record(Effect::Timeout(duration));
                fut.await
            }
        }
    }
}

fn unanswered(label: &str) -> SagaError {
    SagaError::Test(format!(
        "call `{label}` has no scripted answer (use SagaTest::answer, or passthrough(true) to run it)"
    ))
}

/// A scripted answer to a call in a test: a boxed value, or an error.
pub(crate) type Answer = Result<Box<dyn Any + Send>, SagaError>;
