//! Services: long-running phases (a dev server, a database) whose dependents start once a
//! readiness probe succeeds, and which are stopped when the run no longer needs them.
//!
//! A phase becomes a service with [`Phase::service`](super::Phase::service). The scheduler
//! starts it like any phase (`@@PHASE_START`; its state is `starting`), runs its readiness
//! check ([`Ready`]) under the service's timeout and puts `@@SERVICE` `ready` when it succeeds:
//! its dependents may start then. A service that is not ready in time fails with an error
//! saying which probe did not answer and which phases needed it; one that exits before it is
//! ready fails too. Once every other phase has ended, the run stops its services (their
//! cancellation: SIGTERM to a command's group, SIGKILL after the grace period) and puts
//! `@@SERVICE` `stopped` for each.
//!
//! With a [`ServicePool`] in [`RunOptions`](super::RunOptions) (`milo watch`), a ready service
//! is not stopped at the end of the run but handed to the pool (`@@SERVICE` `kept`); the next
//! run takes it back as it is (`ready` at once) unless one of its dependencies ran again in
//! that run, in which case it is stopped and started anew. The pool's owner stops what is left
//! with [`ServicePool::stop_all`].
//!
//! Probes that need the network (TCP, HTTP) or another process are given by the front end
//! through the [`Probe`] trait; the core only knows "started" and "a line of output".

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::phase::{LineSink, PhaseOutput};
use crate::capture::Stream;
use crate::saga::SagaResult;

/// How long a service gets to become ready by default.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A readiness check the front end provides (a TCP connection, an HTTP request, a command).
pub trait Probe: Send + Sync + std::fmt::Debug {
    /// What it checks, for messages: `tcp 127.0.0.1:5432`.
    fn describe(&self) -> String;
    /// One try: `Ok` once the service answers, else why not (the last reason is reported when
    /// the service is not ready in time). Called again after a short pause until it succeeds.
    fn check(&self) -> BoxFuture<'static, Result<(), String>>;
}

/// When a service counts as ready.
#[derive(Debug, Clone)]
pub enum Ready {
    /// As soon as it has started.
    Started,
    /// When a line of its output (stdout or stderr) contains this text.
    Log(String),
    /// When the probe succeeds.
    Probe(Arc<dyn Probe>),
}

impl Ready {
    /// What it waits for, for messages.
    pub fn describe(&self) -> String {
        match self {
            Ready::Started => "its start".to_owned(),
            Ready::Log(text) => format!("a line containing {text:?}"),
            Ready::Probe(p) => p.describe(),
        }
    }
}

/// What makes a phase a service: its readiness check and how long it may take.
#[derive(Debug, Clone)]
pub struct Service {
    /// When it is ready.
    pub ready: Ready,
    /// How long it may take to become ready before it fails.
    pub timeout: Duration,
}

impl Service {
    /// A service ready when `ready` says so, within [`DEFAULT_READY_TIMEOUT`].
    pub fn new(ready: Ready) -> Self {
        Self {
            ready,
            timeout: DEFAULT_READY_TIMEOUT,
        }
    }

    /// Sets how long it may take to become ready.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// Where a service stands, as `@@SERVICE` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceState {
    /// Started, not ready yet.
    Starting,
    /// Ready: its dependents may start.
    Ready,
    /// Stopped (or ended on its own after it was ready).
    Stopped,
    /// Still running after the run ended, kept for the next run (`milo watch`).
    Kept,
}

impl ServiceState {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceState::Starting => "starting",
            ServiceState::Ready => "ready",
            ServiceState::Stopped => "stopped",
            ServiceState::Kept => "kept",
        }
    }
}

impl std::fmt::Display for ServiceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Called once with how a service's handler ended.
pub(crate) type OnExit = Box<dyn FnOnce(SagaResult<PhaseOutput>) + Send>;

/// What ties a running service to the run that currently owns it: where its lines go and who
/// hears of its end. Between two runs of a pool, neither is set (its lines are dropped).
pub(crate) struct Link {
    sink: Mutex<Option<LineSink>>,
    on_exit: Mutex<Option<OnExit>>,
    /// The text of a `log` readiness check.
    pattern: Option<String>,
    seen: tokio::sync::watch::Sender<bool>,
}

impl Link {
    pub(crate) fn new(ready: &Ready) -> Arc<Self> {
        Arc::new(Self {
            sink: Mutex::new(None),
            on_exit: Mutex::new(None),
            pattern: match ready {
                Ready::Log(text) => Some(text.clone()),
                _ => None,
            },
            seen: tokio::sync::watch::channel(false).0,
        })
    }

    /// The service's own line sink: it notes a line that makes it ready, then forwards the
    /// line to the owning run, if any.
    pub(crate) fn sink(self: &Arc<Self>) -> LineSink {
        let link = self.clone();
        Arc::new(move |stream: Stream, line: String| {
            if let Some(p) = &link.pattern
                && !*link.seen.borrow()
                && line.contains(p.as_str())
            {
                link.seen.send_replace(true);
            }
            let sink = link.sink.lock().clone();
            if let Some(sink) = sink {
                sink(stream, line);
            }
        })
    }

    /// Makes a run the owner: its sink and what to call when the service ends.
    pub(crate) fn attach(&self, sink: LineSink, on_exit: OnExit) {
        *self.sink.lock() = Some(sink);
        *self.on_exit.lock() = Some(on_exit);
    }

    /// Leaves the service without an owner.
    pub(crate) fn detach(&self) {
        *self.sink.lock() = None;
        *self.on_exit.lock() = None;
    }

    pub(crate) fn exited(&self, result: SagaResult<PhaseOutput>) {
        let on_exit = self.on_exit.lock().take();
        if let Some(f) = on_exit {
            f(result);
        }
    }

    /// Waits until the service is ready by `ready`, at most `timeout`; the error says what did
    /// not answer.
    pub(crate) async fn wait_ready(&self, ready: &Ready, timeout: Duration) -> Result<(), String> {
        let last = Mutex::new(None::<String>);
        let wait = async {
            match ready {
                Ready::Started => {}
                Ready::Log(_) => {
                    let mut rx = self.seen.subscribe();
                    let _ = rx.wait_for(|seen| *seen).await;
                }
                Ready::Probe(probe) => {
                    let mut pause = Duration::from_millis(20);
                    loop {
                        match probe.check().await {
                            Ok(()) => break,
                            Err(e) => *last.lock() = Some(e),
                        }
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_millis(250));
                    }
                }
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(()) => Ok(()),
            Err(_) => {
                let why = last
                    .lock()
                    .take()
                    .map(|e| format!(" (last try: {e})"))
                    .unwrap_or_default();
                Err(format!(
                    "was not ready after {}: no answer from {}{why}",
                    crate::util::format_duration(timeout),
                    ready.describe()
                ))
            }
        }
    }
}

/// A service's running handler.
pub(crate) struct Live {
    /// Cancelled to stop it.
    pub(crate) token: CancellationToken,
    /// Cancelled once its handler has ended.
    pub(crate) exited: CancellationToken,
    pub(crate) link: Arc<Link>,
    pub(crate) task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Live {
    /// Stops it and waits for its handler to end.
    pub(crate) async fn stop(&self) {
        self.token.cancel();
        let task = self.task.lock().take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

/// Services kept running from one run to the next (see the module's documentation).
#[derive(Clone, Default)]
pub struct ServicePool {
    kept: Arc<Mutex<HashMap<Arc<str>, Arc<Live>>>>,
}

impl std::fmt::Debug for ServicePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServicePool").field("kept", &self.names()).finish()
    }
}

impl ServicePool {
    /// An empty pool.
    pub fn new() -> Self {
        Self::default()
    }

    /// The services it holds that are still running, sorted.
    pub fn names(&self) -> Vec<Arc<str>> {
        let mut names: Vec<Arc<str>> = self
            .kept
            .lock()
            .iter()
            .filter(|(_, l)| !l.exited.is_cancelled())
            .map(|(n, _)| n.clone())
            .collect();
        names.sort();
        names
    }

    /// Stops service `name` if the pool holds it (the next run starts it anew); whether it did.
    pub async fn stop(&self, name: &str) -> bool {
        let live = self.kept.lock().remove(name);
        match live {
            Some(live) => {
                live.stop().await;
                true
            }
            None => false,
        }
    }

    /// Stops every service it holds and waits for them to end.
    pub async fn stop_all(&self) {
        let all: Vec<Arc<Live>> = self.kept.lock().drain().map(|(_, l)| l).collect();
        futures::future::join_all(all.iter().map(|l| l.stop())).await;
    }

    pub(crate) fn take(&self, name: &str) -> Option<Arc<Live>> {
        self.kept.lock().remove(name)
    }

    pub(crate) fn keep(&self, name: Arc<str>, live: Arc<Live>) {
        live.link.detach();
        self.kept.lock().insert(name, live);
    }
}

/// Interrupts single running phases from outside the run (`on_change = "restart"`): each
/// running attempt's cancellation token, by phase, while the run holds it in
/// [`RunOptions::interrupts`](super::RunOptions::interrupts).
#[derive(Debug, Clone, Default)]
pub struct Interrupts {
    running: Arc<Mutex<HashMap<Arc<str>, CancellationToken>>>,
}

impl Interrupts {
    /// A new, empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels phase `name`'s running attempt (it ends `cancelled`; its dependents do not
    /// start in this run); whether it was running.
    pub fn interrupt(&self, name: &str) -> bool {
        let token = self.running.lock().remove(name);
        token.inspect(CancellationToken::cancel).is_some()
    }

    /// The phases running now, sorted.
    pub fn running(&self) -> Vec<Arc<str>> {
        let mut names: Vec<Arc<str>> = self.running.lock().keys().cloned().collect();
        names.sort();
        names
    }

    pub(crate) fn insert(&self, name: Arc<str>, token: CancellationToken) {
        self.running.lock().insert(name, token);
    }

    pub(crate) fn remove(&self, name: &str) {
        self.running.lock().remove(name);
    }
}
