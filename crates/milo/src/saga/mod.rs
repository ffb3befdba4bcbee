//! The saga runtime: async workflows that perform effects against a [`Store`].
//!
//! A saga is an async function of a [`Cx`] (its context handle). Everything it does to the
//! outside world goes through an effect method on the context: [`Cx::put`] (dispatch),
//! [`Cx::call`], [`Cx::call_blocking`], [`Cx::try_call`], [`Cx::select`], [`Cx::take`],
//! [`Cx::delay`], [`Cx::fork`] (attached), [`Cx::spawn`] (detached), [`Cx::all`],
//! [`Cx::race`], [`Cx::retry`] and [`Cx::timeout`].
//!
//! The context is an interpreter: on a live store the effects run on tokio; under a
//! [`testing::SagaTest`] they are recorded as [`Effect`] values, calls are answered by the
//! test, and delays take no real time.
//!
//! Cancellation is structured. Each saga has a cancellation token; attached forks get a child
//! token, so cancelling a saga cancels its attached children transitively, while detached
//! sagas live on. A saga that is cancelled dispatches `@@SAGA_CANCELLED`; one that returns an
//! error or panics dispatches `@@SAGA_ERROR` with the message. Panics never escape into the
//! runtime. A saga that finishes waits for its attached children before its handle completes;
//! one that fails or is cancelled cancels them and waits for them to stop.

mod context;
mod effect;
pub mod testing;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use context::Cx;
pub(crate) use effect::backoff_delay as effect_backoff_delay;
pub use effect::{Backoff, Effect, Pattern, RetryPolicy, when};

use crate::action::{Action, Builtin};
use crate::store::{DispatchError, Store};
use crate::util::{format_duration, panic_message};

/// Why a saga (or one of its effects) did not produce a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SagaError {
    /// The saga was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// A [`Cx::timeout`] expired.
    #[error("timed out after {}", format_duration(*.0))]
    Timeout(Duration),
    /// The saga, or a call made with [`Cx::try_call`], panicked.
    #[error("panicked: {0}")]
    Panicked(String),
    /// The saga or a call returned an error.
    #[error("{0}")]
    Failed(String),
    /// A `put` could not be applied.
    #[error(transparent)]
    Dispatch(#[from] DispatchError),
    /// The test interpreter could not answer an effect.
    #[error("saga test: {0}")]
    Test(String),
}

impl SagaError {
    /// A failure with `message`.
    pub fn msg(message: impl std::fmt::Display) -> Self {
        SagaError::Failed(message.to_string())
    }
}

impl From<String> for SagaError {
    fn from(s: String) -> Self {
        SagaError::Failed(s)
    }
}

impl From<&str> for SagaError {
    fn from(s: &str) -> Self {
        SagaError::Failed(s.to_owned())
    }
}

impl From<std::io::Error> for SagaError {
    fn from(e: std::io::Error) -> Self {
        SagaError::Failed(e.to_string())
    }
}

/// The result of a saga or an effect.
pub type SagaResult<T = ()> = Result<T, SagaError>;

type Body<S, A, T> = Box<dyn FnOnce(Cx<S, A>) -> BoxFuture<'static, SagaResult<T>> + Send>;

/// A saga not yet started: a label (used in `@@SAGA_ERROR` and test records) and a body.
pub struct Saga<S, A, T = ()> {
    pub(crate) label: Arc<str>,
    pub(crate) body: Body<S, A, T>,
}

impl<S, A, T> Saga<S, A, T> {
    /// A saga named `label` running `body`.
    pub fn new<F, Fut>(label: impl Into<Arc<str>>, body: F) -> Self
    where
        F: FnOnce(Cx<S, A>) -> Fut + Send + 'static,
        Fut: Future<Output = SagaResult<T>> + Send + 'static,
    {
        Self {
            label: label.into(),
            body: Box::new(move |cx| body(cx).boxed()),
        }
    }

    /// The saga's label.
    pub fn label(&self) -> &str {
        &self.label
    }
}

/// A running (or finished) saga: await it for its result, or cancel it.
///
/// Dropping a handle does not cancel the saga.
pub struct SagaHandle<T> {
    token: CancellationToken,
    inner: HandleInner<T>,
}

enum HandleInner<T> {
    Task(JoinHandle<SagaResult<T>>),
    Ready(Option<SagaResult<T>>),
}

impl<T> SagaHandle<T> {
    /// Cancels the saga and, transitively, its attached children.
    pub fn cancel(&self) {
        self.token.cancel();
    }

    /// The saga's cancellation token.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Whether the saga has ended.
    pub fn is_finished(&self) -> bool {
        match &self.inner {
            HandleInner::Task(h) => h.is_finished(),
            HandleInner::Ready(_) => true,
        }
    }
}

// The result is only ever moved out, never pinned, so the handle can be `Unpin` for any `T`.
impl<T> Unpin for SagaHandle<T> {}

impl<T> Future for SagaHandle<T> {
    type Output = SagaResult<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.inner {
            HandleInner::Task(h) => h.poll_unpin(cx).map(|r| match r {
                Ok(r) => r,
                Err(e) if e.is_panic() => Err(SagaError::Panicked(panic_message(&*e.into_panic()))),
                Err(_) => Err(SagaError::Cancelled),
            }),
            HandleInner::Ready(r) => Poll::Ready(
                r.take()
                    .unwrap_or_else(|| Err(SagaError::Test("handle polled twice".into()))),
            ),
        }
    }
}

/// Dispatches `@@SAGA_CANCELLED` or `@@SAGA_ERROR` for a saga that did not succeed.
fn report<S, A, T>(cx: &Cx<S, A>, outcome: &SagaResult<T>)
where
    S: Send + Sync + 'static,
    A: Action + Clone,
{
    let builtin = match outcome {
        Ok(_) => return,
        Err(SagaError::Cancelled) => Builtin::SagaCancelled {
            saga: cx.label.to_string(),
        },
        Err(e) => Builtin::SagaError {
            saga: cx.label.to_string(),
            error: e.to_string(),
        },
    };
    if let Err(e) = cx.put(A::from_builtin(builtin)) {
        tracing::warn!(saga = %cx.label, "could not report the saga's end: {e}");
    }
}

/// Runs `body` to its end under `token`: catches panics, waits for attached children,
/// cancels them on failure (and waits for them to stop) and reports the outcome.
async fn drive<S, A, T>(cx: Cx<S, A>, body: Body<S, A, T>) -> SagaResult<T>
where
    S: Send + Sync + 'static,
    A: Action + Clone,
    T: Send + 'static,
{
    let token = cx.token.clone();
    let tracker = cx.tracker.clone();
    let reporter = cx.clone();
    let fut = std::panic::AssertUnwindSafe(body(cx)).catch_unwind();
    let outcome = tokio::select! {
        biased;
        _ = token.cancelled() => Err(SagaError::Cancelled),
        r = fut => r.unwrap_or_else(|p| Err(SagaError::Panicked(panic_message(&*p)))),
    };
    tracker.close();
    let outcome = match outcome {
        Ok(v) if !tracker.is_empty() => tokio::select! {
            biased;
            _ = token.cancelled() => Err(SagaError::Cancelled),
            _ = tracker.wait() => Ok(v),
        },
        other => other,
    };
    if outcome.is_err() {
        // Stop the attached children (transitively) and wait until they have reported, so
        // that when this saga's handle completes its whole tree has ended.
        token.cancel();
        report(&reporter, &outcome);
        tracker.wait().await;
    }
    outcome
}

/// Starts a saga with its own token, on `tracker` when it is attached to a parent.
pub(crate) fn spawn_live<S, A, T>(
    store: Store<S, A>,
    label: Arc<str>,
    token: CancellationToken,
    tracker: Option<&TaskTracker>,
    body: Body<S, A, T>,
) -> SagaHandle<T>
where
    S: Send + Sync + 'static,
    A: Action + Clone,
    T: Send + 'static,
{
    let cx = Cx::live(store, label, token.clone());
    let fut = drive(cx, body);
    let handle = match tracker {
        Some(t) => t.spawn(fut),
        None => tokio::spawn(fut),
    };
    SagaHandle {
        token,
        inner: HandleInner::Task(handle),
    }
}

pub(crate) fn spawn_root<S, A>(store: Store<S, A>, saga: Saga<S, A>) -> SagaHandle<()>
where
    S: Send + Sync + 'static,
    A: Action + Clone,
{
    spawn_live(store, saga.label, CancellationToken::new(), None, saga.body)
}

impl<S, A> Store<S, A>
where
    S: Send + Sync + 'static,
    A: Action + Clone,
{
    /// Runs an async saga body returning a value, detached. Must be called inside a tokio
    /// runtime.
    pub fn run_saga<T, F, Fut>(&self, label: impl Into<Arc<str>>, body: F) -> SagaHandle<T>
    where
        T: Send + 'static,
        F: FnOnce(Cx<S, A>) -> Fut + Send + 'static,
        Fut: Future<Output = SagaResult<T>> + Send + 'static,
    {
        let saga = Saga::new(label, body);
        spawn_live(self.clone(), saga.label, CancellationToken::new(), None, saga.body)
    }
}
