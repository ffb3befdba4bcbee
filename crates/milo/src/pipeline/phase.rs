//! [`Phase`]: one named step of a pipeline, its handler, and the [`PhaseContext`] a handler
//! receives.
//!
//! Handlers come in three kinds: sync functions (run on tokio's blocking pool), async
//! functions, and shell commands ([`Phase::command`]). A handler's `Ok` value becomes the
//! phase's [`PhaseOutput`]: dependents get it typed, without serialization, and its JSON form
//! travels in `@@PHASE_COMPLETE` for the timeline, history and MCP.

use std::any::Any;
use std::fmt::Display;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::policy::PhasePolicy;
use crate::capture::Stream;

/// The default number of log lines kept per phase.
pub const DEFAULT_MAX_LOGS: usize = 200;

/// A phase's result: a typed value for dependents and its JSON form for observers.
#[derive(Clone)]
pub struct PhaseOutput {
    value: Option<Arc<dyn Any + Send + Sync>>,
    json: Arc<serde_json::Value>,
}

impl std::fmt::Debug for PhaseOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PhaseOutput")
            .field("json", &self.json)
            .finish_non_exhaustive()
    }
}

impl PhaseOutput {
    /// No result (`null`).
    pub fn none() -> Self {
        Self {
            value: None,
            json: Arc::new(serde_json::Value::Null),
        }
    }

    /// A result that is only JSON (as command phases produce).
    pub fn json(value: serde_json::Value) -> Self {
        let json = Arc::new(value);
        Self {
            value: Some(json.clone()),
            json,
        }
    }

    /// A serializable result: typed for dependents and JSON for observers.
    pub fn new<T: Serialize + Send + Sync + 'static>(value: T) -> Self {
        let json = serde_json::to_value(&value).unwrap_or_else(|e| {
            tracing::warn!("a phase result does not serialize to JSON: {e}");
            serde_json::Value::Null
        });
        Self {
            value: Some(Arc::new(value)),
            json: Arc::new(json),
        }
    }

    /// A result of any type that dependents read typed; its JSON form is `null`.
    pub fn opaque<T: Send + Sync + 'static>(value: T) -> Self {
        Self {
            value: Some(Arc::new(value)),
            json: Arc::new(serde_json::Value::Null),
        }
    }

    /// The typed value, if it is a `T`.
    pub fn get<T: 'static>(&self) -> Option<&T> {
        self.value.as_deref()?.downcast_ref::<T>()
    }

    /// The JSON form.
    pub fn as_json(&self) -> &Arc<serde_json::Value> {
        &self.json
    }
}

/// Wraps a value of any `Send + Sync` type so a handler can return it without `Serialize`.
pub struct Opaque<T>(pub T);

/// What a handler may return in `Ok`: any serializable value, an [`Opaque`] value, or a
/// ready-made [`PhaseOutput`].
pub trait IntoPhaseOutput {
    /// Converts into a [`PhaseOutput`].
    fn into_output(self) -> PhaseOutput;
}

impl<T: Serialize + Send + Sync + 'static> IntoPhaseOutput for T {
    fn into_output(self) -> PhaseOutput {
        PhaseOutput::new(self)
    }
}

impl<T: Send + Sync + 'static> IntoPhaseOutput for Opaque<T> {
    fn into_output(self) -> PhaseOutput {
        PhaseOutput::opaque(self.0)
    }
}

impl IntoPhaseOutput for PhaseOutput {
    fn into_output(self) -> PhaseOutput {
        self
    }
}

pub(crate) type SyncFn = dyn Fn(&PhaseContext) -> Result<PhaseOutput, String> + Send + Sync;
pub(crate) type AsyncFn = dyn Fn(PhaseContext) -> BoxFuture<'static, Result<PhaseOutput, String>> + Send + Sync;

/// A shell command run by a command phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandPhase {
    /// The command line, run with `sh -c`.
    pub run: String,
    /// The working directory (default: the current directory).
    pub cwd: Option<PathBuf>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// The shell and its arguments before the command line, such as `["bash", "-euo",
    /// "pipefail", "-c"]`; `None` for `sh -c` (a plain program with plain arguments is then
    /// started directly, as `sh` would run it).
    pub shell: Option<Vec<String>>,
}

#[derive(Clone)]
pub(crate) enum Handler {
    Sync(Arc<SyncFn>),
    Async(Arc<AsyncFn>),
    Command(Arc<CommandPhase>),
}

/// One step of a pipeline: a name, a handler, dependencies and options.
///
/// ```
/// use milo::pipeline::{Phase, PhasePolicy};
/// let deploy = Phase::new("deploy", |_cx| Ok::<_, String>("v1.2"))
///     .depends_on(["build"])
///     .description("Ship it")
///     .policy(PhasePolicy::retry(3));
/// assert_eq!(deploy.name(), "deploy");
/// ```
#[derive(Clone)]
pub struct Phase {
    pub(crate) name: Arc<str>,
    pub(crate) handler: Handler,
    pub(crate) depends_on: Vec<Arc<str>>,
    pub(crate) parallel: bool,
    pub(crate) weight: f64,
    pub(crate) description: String,
    pub(crate) policy: PhasePolicy,
    pub(crate) max_logs: usize,
    pub(crate) timeout: Option<Duration>,
    pub(crate) service: Option<super::service::Service>,
    /// The group it belongs to (the instances of a matrix phase), if any.
    pub(crate) group: Option<Arc<PhaseGroup>>,
    /// Where this command phase runs, when not on the pipeline's executor.
    pub(crate) executor: Option<Arc<dyn crate::executor::Executor>>,
}

impl Phase {
    fn with_handler(name: impl Into<Arc<str>>, handler: Handler) -> Self {
        Self {
            name: name.into(),
            handler,
            depends_on: Vec::new(),
            parallel: false,
            weight: 1.0,
            description: String::new(),
            policy: PhasePolicy::default(),
            max_logs: DEFAULT_MAX_LOGS,
            timeout: None,
            service: None,
            group: None,
            executor: None,
        }
    }

    /// A phase with a sync handler, run on tokio's blocking pool.
    pub fn new<T, E, F>(name: impl Into<Arc<str>>, handler: F) -> Self
    where
        T: IntoPhaseOutput,
        E: Display,
        F: Fn(&PhaseContext) -> Result<T, E> + Send + Sync + 'static,
    {
        let f = move |cx: &PhaseContext| handler(cx).map(IntoPhaseOutput::into_output).map_err(|e| e.to_string());
        Self::with_handler(name, Handler::Sync(Arc::new(f)))
    }

    /// A phase with an async handler.
    pub fn new_async<T, E, F, Fut>(name: impl Into<Arc<str>>, handler: F) -> Self
    where
        T: IntoPhaseOutput,
        E: Display,
        F: Fn(PhaseContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let f = move |cx: PhaseContext| {
            handler(cx)
                .map(|r| r.map(IntoPhaseOutput::into_output).map_err(|e| e.to_string()))
                .boxed()
        };
        Self::with_handler(name, Handler::Async(Arc::new(f)))
    }

    /// A phase that runs `run` with `sh -c` in its own process group (see
    /// [`executor`](crate::executor)).
    pub fn command(name: impl Into<Arc<str>>, run: impl Into<String>) -> Self {
        Self::command_with(
            name,
            CommandPhase {
                run: run.into(),
                cwd: None,
                env: Vec::new(),
                shell: None,
            },
        )
    }

    /// A command phase with a working directory and environment.
    pub fn command_with(name: impl Into<Arc<str>>, command: CommandPhase) -> Self {
        Self::with_handler(name, Handler::Command(Arc::new(command)))
    }

    /// Phases that must complete (or be skipped) before this one starts.
    pub fn depends_on<I, N>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = N>,
        N: Into<Arc<str>>,
    {
        self.depends_on = names.into_iter().map(Into::into).collect();
        self
    }

    /// Whether it may run concurrently with other parallel phases (default `false`: it runs
    /// alone).
    pub fn parallel(mut self, parallel: bool) -> Self {
        self.parallel = parallel;
        self
    }

    /// Its share of progress (default 1).
    pub fn weight(mut self, weight: impl Into<f64>) -> Self {
        self.weight = weight.into();
        self
    }

    /// A human-readable description.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// What to do when it fails (default: stop).
    pub fn policy(mut self, policy: PhasePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// How many log lines to keep (default 200).
    pub fn max_logs(mut self, max_logs: usize) -> Self {
        self.max_logs = max_logs;
        self
    }

    /// Fail an attempt that runs longer than `timeout` (its policy then applies). For a
    /// command a batch scheduler queues, the time counts from the start of its job.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Makes it a long-running service: its dependents start once it is ready, and the run
    /// stops it when every other phase has ended (see [`Service`](super::Service)). Its
    /// `timeout` and retry policy do not apply.
    pub fn service(mut self, service: super::service::Service) -> Self {
        self.service = Some(service);
        self
    }

    /// Puts the phase in `group` (share one `Arc` among the members): at most
    /// [`PhaseGroup::max_parallel`] of them run at once, and with [`PhaseGroup::fail_fast`]
    /// the failure of one cancels the others that are running or waiting to retry.
    pub fn group(mut self, group: Arc<PhaseGroup>) -> Self {
        self.group = Some(group);
        self
    }

    /// Runs this command phase on `executor` instead of the pipeline's
    /// ([`Pipeline::executor`](super::Pipeline::executor)); no effect on other phases.
    pub fn executor(mut self, executor: Arc<dyn crate::executor::Executor>) -> Self {
        self.executor = Some(executor);
        self
    }

    /// The phase's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The command line, for command phases.
    pub fn command_line(&self) -> Option<&CommandPhase> {
        match &self.handler {
            Handler::Command(c) => Some(c),
            _ => None,
        }
    }
}

impl std::fmt::Debug for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Phase")
            .field("name", &self.name)
            .field("depends_on", &self.depends_on)
            .field("parallel", &self.parallel)
            .field("weight", &self.weight)
            .finish_non_exhaustive()
    }
}

/// Where a phase's output lines go: a `@@PHASE_LOG` dispatch, or straight to the process's
/// own stdout/stderr when capture is off.
pub(crate) type LineSink = Arc<dyn Fn(Stream, String) + Send + Sync>;

/// Where a batch-scheduled command's [`RemoteEvent`](crate::executor::RemoteEvent)s go: a
/// `@@PHASE_QUEUED` or `@@PHASE_RUNNING` dispatch, and the attempt's timeout clock, held while
/// the job is queued.
pub(crate) type EventSink = Arc<dyn Fn(crate::executor::RemoteEvent) + Send + Sync>;

/// What a handler receives: its phase, attempt, dependencies' results, output writers and a
/// cancellation signal.
#[derive(Clone)]
pub struct PhaseContext {
    pub(crate) pipeline: Arc<str>,
    pub(crate) name: Arc<str>,
    pub(crate) attempt: u32,
    pub(crate) inputs: Arc<[(Arc<str>, Option<PhaseOutput>)]>,
    pub(crate) sink: LineSink,
    pub(crate) events: Option<EventSink>,
    /// `true` while the attempt's job is queued (its timeout does not run).
    pub(crate) held: Option<tokio::sync::watch::Receiver<bool>>,
    pub(crate) capture: bool,
    pub(crate) cancel: CancellationToken,
    pub(crate) files: Arc<super::command::RunFiles>,
}

impl PhaseContext {
    /// The phase's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pipeline's name.
    pub fn pipeline(&self) -> &str {
        &self.pipeline
    }

    /// The attempt number, 1 for the first.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The result of direct dependency `dependency` as a `T`; `None` if it was skipped, is not
    /// a dependency, or is not a `T`.
    pub fn result<T: 'static>(&self, dependency: &str) -> Option<&T> {
        self.output(dependency)?.get::<T>()
    }

    /// The result of direct dependency `dependency`; `None` if it was skipped or is not a
    /// dependency.
    pub fn output(&self, dependency: &str) -> Option<&PhaseOutput> {
        self.inputs.iter().find(|(n, _)| &**n == dependency)?.1.as_ref()
    }

    /// `{dependency: result JSON}` for every direct dependency (`null` for a skipped one).
    pub fn inputs_json(&self) -> serde_json::Value {
        let map = self
            .inputs
            .iter()
            .map(|(n, o)| {
                (
                    n.to_string(),
                    o.as_ref().map_or(serde_json::Value::Null, |o| (**o.as_json()).clone()),
                )
            })
            .collect();
        serde_json::Value::Object(map)
    }

    /// A writer for the phase's standard output; each line becomes a `@@PHASE_LOG`.
    pub fn stdout(&self) -> PhaseWriter {
        PhaseWriter::new(self.sink.clone(), Stream::Stdout)
    }

    /// A writer for the phase's standard error; each line becomes a `@@PHASE_LOG`.
    pub fn stderr(&self) -> PhaseWriter {
        PhaseWriter::new(self.sink.clone(), Stream::Stderr)
    }

    /// Records one line of output directly.
    pub fn log(&self, stream: Stream, line: impl Into<String>) {
        (self.sink)(stream, line.into());
    }

    /// Cancelled when the phase is cancelled or times out; long handlers should watch it.
    pub fn cancellation(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Whether the phase has been cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Whether output is captured (otherwise it passes straight through).
    pub fn captures_output(&self) -> bool {
        self.capture
    }
}

/// An [`io::Write`] that turns what a handler writes into lines for its phase's log.
/// A final partial line is emitted when the writer is dropped.
pub struct PhaseWriter {
    sink: LineSink,
    stream: Stream,
    lines: crate::capture::LineBuffer,
}

impl PhaseWriter {
    fn new(sink: LineSink, stream: Stream) -> Self {
        Self {
            sink,
            stream,
            lines: crate::capture::LineBuffer::new(),
        }
    }
}

impl io::Write for PhaseWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (sink, stream) = (&self.sink, self.stream);
        self.lines.push(buf, |line| sink(stream, line));
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for PhaseWriter {
    fn drop(&mut self) {
        let (sink, stream) = (&self.sink, self.stream);
        self.lines.finish(|line| sink(stream, line));
    }
}

/// Phases that are scheduled together, such as the instances of a matrix phase (GitHub
/// Actions' `strategy.max-parallel` and `strategy.fail-fast`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhaseGroup {
    /// Its name (the matrix phase's).
    pub name: Arc<str>,
    /// At most this many members run at once (within the pipeline's `jobs`); `None`: no limit.
    pub max_parallel: Option<usize>,
    /// The failure of a member cancels the members that are running or waiting to retry.
    pub fail_fast: bool,
}
