//! Running shell-command phases: launching behind an [`Executor`], live line capture,
//! cancellation and clean-up of everything the command started.
//!
//! [`run_command`] owns the policy — capture stdout/stderr line by line while the command runs,
//! turn its exit into a [`CommandError`], terminate its process group when the main process
//! exits or the run is cancelled (SIGTERM, then SIGKILL after a grace period), drain the
//! remaining output with a bounded wait. An [`Executor`] only knows how to start a command and
//! signal it, so the same policy applies whether a command runs as a local process
//! ([`LocalExecutor`]) or elsewhere (a cluster scheduler).
//!
//! ```no_run
//! use std::time::Duration;
//! use milo::executor::{CommandSpec, LocalExecutor, run_command};
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn demo() -> Result<(), milo::executor::CommandError> {
//! let spec = CommandSpec::new("echo hello; echo oops >&2");
//! let on_line = |stream: milo::capture::Stream, line: String| {
//!     tracing::info!("[{}] {line}", stream.as_str());
//! };
//! let cancel = CancellationToken::new();
//! run_command(&LocalExecutor, &spec, &on_line, &cancel, Duration::from_secs(5)).await?;
//! # Ok(())
//! # }
//! ```

mod argv;
pub mod contain;
mod local;
pub mod procfs;
mod spawn;

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::capture::{LineBuffer, Stream};

pub use local::LocalExecutor;

/// How long to keep reading output after everything the command started has stopped (only a
/// process that escaped the process group can keep a pipe open that long).
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// How long to wait for processes to disappear after SIGKILL before giving up on them.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// How often to check whether a signalled process group is gone.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// What to run: a shell command (`sh -c "<command>"`) and its surroundings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    /// The shell command line.
    pub command: String,
    /// The working directory; the orchestrator's own if `None`.
    pub cwd: Option<PathBuf>,
    /// Variables added to (or overriding) the inherited environment.
    pub env: Vec<(String, String)>,
    /// Capture stdout/stderr line by line (`true`), or let them pass through to the
    /// orchestrator's own (`false`).
    pub capture: bool,
    /// The shell and its arguments before the command line (`["bash", "-c"]`); `None`: `sh -c`.
    pub shell: Option<Vec<String>>,
}

impl CommandSpec {
    /// A captured command in the current directory with the inherited environment.
    pub fn new(command: impl Into<String>) -> Self {
        Self {
            command: command.into(),
            cwd: None,
            env: Vec::new(),
            capture: true,
            shell: None,
        }
    }

    /// Sets the working directory.
    pub fn cwd(mut self, cwd: impl Into<PathBuf>) -> Self {
        self.cwd = Some(cwd.into());
        self
    }

    /// Adds an environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Sets whether output is captured (see [`CommandSpec::capture`]).
    pub fn capture(mut self, capture: bool) -> Self {
        self.capture = capture;
        self
    }
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The command could not be started.
    #[error("could not start `{command}`: {reason}")]
    Spawn {
        /// The command line.
        command: String,
        /// What went wrong and how to fix it.
        reason: String,
        /// The underlying OS error.
        #[source]
        source: io::Error,
    },
    /// The command exited with a non-zero status.
    #[error("command exited with status {code}{}", exit_hint(*.code))]
    Exit {
        /// The exit status.
        code: i32,
    },
    /// The command was killed by a signal.
    #[error("command killed by signal {signal}")]
    Signal {
        /// The signal's name, e.g. `SIGKILL`.
        signal: String,
    },
    /// The run was cancelled; the command's processes were terminated.
    #[error("command cancelled; its processes were terminated")]
    Cancelled,
    /// A batch-scheduled command's job ended without an exit status of its command (the
    /// scheduler killed it at its time limit, it ran out of memory, its node failed, it was
    /// preempted, it vanished…): the executor's explanation.
    #[error("{message}")]
    Job {
        /// What happened to the job and how to fix it.
        message: String,
    },
    /// Waiting for the command failed (the OS lost track of it).
    #[error("lost track of the command while waiting for it: {source}")]
    Wait {
        /// The underlying OS error.
        #[source]
        source: io::Error,
    },
}

fn exit_hint(code: i32) -> &'static str {
    match code {
        126 => " (the command was found but is not executable; check its permissions)",
        127 => " (command not found; check its name and PATH)",
        _ => "",
    }
}

/// How a command's main process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitOutcome {
    /// It exited with this status.
    Code(i32),
    /// It was killed by this signal number.
    Signal(i32),
}

impl ExitOutcome {
    /// `Ok` for status 0, otherwise the matching [`CommandError`].
    pub fn into_result(self) -> Result<(), CommandError> {
        match self {
            ExitOutcome::Code(0) => Ok(()),
            ExitOutcome::Code(code) => Err(CommandError::Exit { code }),
            ExitOutcome::Signal(n) => Err(CommandError::Signal { signal: signal_name(n) }),
        }
    }
}

/// `SIGKILL` for 9, `signal 99` for numbers without a name.
pub fn signal_name(n: i32) -> String {
    nix::sys::signal::Signal::try_from(n)
        .map(|s| s.as_str().to_owned())
        .unwrap_or_else(|_| format!("signal {n}"))
}

/// How a remote executor's job ended when its command did not report an exit status: the
/// [`io::Error`] an [`ExitFuture`] resolves to wraps it (`io::Error::other(JobFailure(..))`),
/// and [`run_command`] turns it into [`CommandError::Job`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct JobFailure(pub String);

/// What a batch-scheduled command reports besides its output and exit: the phase shows it
/// as `queued` (with the job id) until the job starts, then as `running`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteEvent {
    /// The command was submitted as job `job_id` and waits for the scheduler to start it.
    Queued {
        /// The scheduler's job id.
        job_id: String,
    },
    /// Job `job_id` started running; the phase's timeout counts from here.
    Started {
        /// The scheduler's job id.
        job_id: String,
    },
}

/// The stream of [`RemoteEvent`]s of a launched command.
pub type EventReceiver = tokio::sync::mpsc::UnboundedReceiver<RemoteEvent>;

/// A signal for all of a command's processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupSignal {
    /// Ask to stop (SIGTERM).
    Terminate,
    /// Force stop (SIGKILL).
    Kill,
}

/// A captured output stream of a launched command.
pub type OutputReader = Box<dyn AsyncRead + Send + Unpin>;

/// Resolves when a launched command's main process exits. It owns what it waits on, so it can
/// be polled while the [`Launched`] handle is used to signal.
pub type ExitFuture = BoxFuture<'static, io::Result<ExitOutcome>>;

/// Starts commands somewhere: local processes, a cluster scheduler…
pub trait Executor: Send + Sync + 'static {
    /// Starts `spec`. Output is piped if `spec.capture`, inherited otherwise.
    fn launch(&self, spec: &CommandSpec) -> Result<Box<dyn Launched>, CommandError>;
}

/// A started command: its output, its exit, and a handle on all the processes it started
/// (its group).
///
/// Dropping it must forcibly stop whatever is still running.
pub trait Launched: Send {
    /// The stdout reader (once; `None` when not captured).
    fn take_stdout(&mut self) -> Option<OutputReader>;
    /// The stderr reader (once; `None` when not captured).
    fn take_stderr(&mut self) -> Option<OutputReader>;
    /// The main process's exit (once).
    fn take_exit(&mut self) -> Option<ExitFuture>;
    /// Sends `signal` to every process of the group. Succeeds if there is none left.
    fn signal(&mut self, signal: GroupSignal) -> io::Result<()>;
    /// Whether any process of the group is still running. An exited main process that has
    /// not been waited for yet does not count.
    fn is_running(&mut self) -> bool;
    /// For a command a batch scheduler runs: its [`RemoteEvent`]s (once). `None`, the
    /// default, for a command that runs as soon as it is launched.
    fn take_events(&mut self) -> Option<EventReceiver> {
        None
    }
}

/// Runs `spec` on `executor` to completion.
///
/// * Each output line goes to `on_line` as it is printed (if `spec.capture`), split by
///   [`LineBuffer`].
/// * The command ends when its main process exits; anything it left running is then
///   terminated: SIGTERM to its group, SIGKILL after `grace`.
/// * When `cancel` fires, the whole group gets the same treatment and the result is
///   [`CommandError::Cancelled`].
/// * Output still in flight is drained for at most [`DRAIN_TIMEOUT`] once the group is gone,
///   so a process that escaped the group and holds the pipe cannot hang the run.
///
/// Dropping the returned future kills the group (SIGKILL).
pub async fn run_command(
    executor: &dyn Executor,
    spec: &CommandSpec,
    on_line: &(dyn Fn(Stream, String) + Send + Sync),
    cancel: &CancellationToken,
    grace: Duration,
) -> Result<(), CommandError> {
    run_command_observed(executor, spec, on_line, &|_| {}, cancel, grace).await
}

/// [`run_command`], with each [`RemoteEvent`] of a batch-scheduled command passed to
/// `on_event` as it happens (a local command has none).
pub async fn run_command_observed(
    executor: &dyn Executor,
    spec: &CommandSpec,
    on_line: &(dyn Fn(Stream, String) + Send + Sync),
    on_event: &(dyn Fn(RemoteEvent) + Send + Sync),
    cancel: &CancellationToken,
    grace: Duration,
) -> Result<(), CommandError> {
    let mut launched = executor.launch(spec)?;
    let mut events = launched.take_events();
    let mut out = Pump::new(Stream::Stdout, launched.take_stdout());
    let mut err = Pump::new(Stream::Stderr, launched.take_stderr());
    let Some(mut exit) = launched.take_exit() else {
        return Err(CommandError::Wait {
            source: io::Error::other("the executor gave no way to wait for the command"),
        });
    };
    let mut status: Option<io::Result<ExitOutcome>> = None;

    // Run until the main process exits or the run is cancelled.
    let cancelled = {
        let main = async {
            loop {
                let event = async {
                    match &mut events {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    biased;
                    s = &mut exit => return Some(s),
                    () = cancel.cancelled() => return None,
                    e = event => match e {
                        Some(e) => on_event(e),
                        None => events = None,
                    },
                }
            }
        };
        match pump_while(&mut out, &mut err, on_line, main).await {
            Some(s) => {
                status = Some(s);
                false
            }
            None => true,
        }
    };
    // Events sent just before the exit (a job that started and ended within one poll).
    if let Some(rx) = &mut events {
        while let Ok(e) = rx.try_recv() {
            on_event(e);
        }
    }
    if cancelled {
        tracing::debug!(command = %spec.command, "cancelled; terminating its process group");
    }

    // Stop whatever is left in the group (everything, when cancelled).
    let stop = stop_group(&mut *launched, &mut exit, &mut status, grace);
    pump_while(&mut out, &mut err, on_line, stop).await;

    // Drain what is still buffered in the pipes.
    let drain = tokio::time::timeout(DRAIN_TIMEOUT, drain(&mut out, &mut err, on_line));
    if drain.await.is_err() {
        tracing::warn!(
            command = %spec.command,
            "output still open {DRAIN_TIMEOUT:?} after the command's processes stopped \
             (a process outside its group holds it); stopped reading"
        );
    }
    out.finish(on_line);
    err.finish(on_line);

    if cancelled {
        return Err(CommandError::Cancelled);
    }
    match status {
        Some(Ok(outcome)) => outcome.into_result(),
        Some(Err(source)) => match source.get_ref().and_then(|e| e.downcast_ref::<JobFailure>()) {
            Some(JobFailure(message)) => Err(CommandError::Job {
                message: message.clone(),
            }),
            None => Err(CommandError::Wait { source }),
        },
        // Unreachable: `status` is set when not cancelled.
        None => Err(CommandError::Cancelled),
    }
}

/// SIGTERM the group unless it is already gone (main process reaped, nothing else running),
/// wait `grace` for it to go, then SIGKILL and wait a bit more.
async fn stop_group(
    launched: &mut dyn Launched,
    exit: &mut ExitFuture,
    status: &mut Option<io::Result<ExitOutcome>>,
    grace: Duration,
) {
    if status.is_some() && !launched.is_running() {
        return;
    }
    if let Err(e) = launched.signal(GroupSignal::Terminate) {
        tracing::warn!("could not send SIGTERM to the command's processes: {e}");
    }
    if settle(launched, exit, status, Instant::now() + grace).await {
        return;
    }
    tracing::debug!("command's processes still running {grace:?} after SIGTERM; sending SIGKILL");
    if let Err(e) = launched.signal(GroupSignal::Kill) {
        tracing::warn!("could not send SIGKILL to the command's processes: {e}");
    }
    if !settle(launched, exit, status, Instant::now() + KILL_WAIT).await {
        tracing::warn!("command's processes still running {KILL_WAIT:?} after SIGKILL; giving up");
    }
}

/// Waits until the main process has exited and nothing else of the group runs, or until
/// `deadline`. True if everything stopped.
async fn settle(
    launched: &mut dyn Launched,
    exit: &mut ExitFuture,
    status: &mut Option<io::Result<ExitOutcome>>,
    deadline: Instant,
) -> bool {
    loop {
        let tick = tokio::time::sleep_until(deadline.min(Instant::now() + POLL_INTERVAL));
        if status.is_none() {
            tokio::select! {
                s = &mut *exit => *status = Some(s),
                () = tick => {}
            }
        } else {
            tick.await;
        }
        if status.is_some() && !launched.is_running() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
    }
}

/// Reads both outputs into lines while `fut` runs; returns its output.
async fn pump_while<T>(
    out: &mut Pump,
    err: &mut Pump,
    on_line: &(dyn Fn(Stream, String) + Send + Sync),
    fut: impl Future<Output = T>,
) -> T {
    let mut fut = std::pin::pin!(fut);
    loop {
        if !out.is_open() && !err.is_open() {
            return fut.await;
        }
        tokio::select! {
            biased;
            v = &mut fut => return v,
            r = out.read() => out.consume(r, on_line),
            r = err.read() => err.consume(r, on_line),
        }
    }
}

/// Reads both outputs to their end.
async fn drain(out: &mut Pump, err: &mut Pump, on_line: &(dyn Fn(Stream, String) + Send + Sync)) {
    while out.is_open() || err.is_open() {
        tokio::select! {
            r = out.read() => out.consume(r, on_line),
            r = err.read() => err.consume(r, on_line),
        }
    }
}

/// One output stream being split into lines.
struct Pump {
    stream: Stream,
    reader: Option<OutputReader>,
    lines: LineBuffer,
    chunk: Vec<u8>,
}

impl Pump {
    fn new(stream: Stream, reader: Option<OutputReader>) -> Self {
        Self {
            stream,
            reader,
            lines: LineBuffer::new(),
            chunk: vec![0; 16 * 1024],
        }
    }

    fn is_open(&self) -> bool {
        self.reader.is_some()
    }

    /// Reads a chunk (cancel-safe); never resolves once the stream is closed.
    async fn read(&mut self) -> io::Result<usize> {
        match &mut self.reader {
            Some(r) => r.read(&mut self.chunk).await,
            None => std::future::pending().await,
        }
    }

    fn consume(&mut self, read: io::Result<usize>, on_line: &(dyn Fn(Stream, String) + Send + Sync)) {
        let stream = self.stream;
        match read {
            Ok(0) => self.reader = None,
            Ok(n) => self.lines.push(&self.chunk[..n], |l| on_line(stream, l)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::warn!("reading the command's {}: {e}", stream.as_str());
                self.reader = None;
            }
        }
    }

    fn finish(&mut self, on_line: &(dyn Fn(Stream, String) + Send + Sync)) {
        let stream = self.stream;
        self.reader = None;
        self.lines.finish(|l| on_line(stream, l));
    }
}
