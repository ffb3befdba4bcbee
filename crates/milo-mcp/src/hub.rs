//! [`Hub`]: the pipeline and its active (or last) run, shared by every MCP session.
//!
//! A run is either started by the `run_pipeline` tool ([`Hub::start_run`]) or attached from
//! outside ([`Hub::attach`], used by `milo run --mcp-http`). Sessions read the run's store and
//! watch [`Hub::runs`] to follow a new run when one replaces the last. With a
//! [`RunRecorder`] ([`Hub::with_recorder`]), every run the hub starts is recorded (milo's run
//! history) and carries the recording's id.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use milo::Store;
use milo::pipeline::{Pipeline, PipelineAction, PipelineState, RunOptions, Status};
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::error::RunError;

/// A store a pipeline runs in.
pub type PipelineStore = Store<PipelineState, PipelineAction>;

/// One run known to the hub: the store it runs in and the token that stops it.
#[derive(Debug)]
pub struct Run {
    id: u64,
    store: PipelineStore,
    stop: CancellationToken,
    ended: AtomicBool,
    /// Attached from outside ([`Hub::attach`]) rather than started by the hub.
    attached: bool,
}

impl Run {
    /// The run's id: its recording's (the run history's) when recorded, else numbered by the
    /// hub from 1.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The store the run dispatches into.
    pub fn store(&self) -> &PipelineStore {
        &self.store
    }

    /// The newest state of the run.
    pub fn state(&self) -> Arc<PipelineState> {
        self.store.get_state()
    }

    /// Whether the run is still in progress: its task has not ended and its state is not final.
    pub fn is_active(&self) -> bool {
        !self.ended.load(Ordering::Acquire) && !self.store.get_state().is_finished()
    }

    /// Whether the run is over for good: a run the hub started has also finished its
    /// recording; an attached one has a final state.
    fn is_settled(&self) -> bool {
        self.ended.load(Ordering::Acquire) || self.attached && self.store.get_state().is_finished()
    }
}

/// Records the runs a [`Hub`] starts: called with the new run's store before anything is
/// dispatched into it; `None` runs it unrecorded (the recorder says why, such as on stderr).
pub type RunRecorder = dyn Fn(&Pipeline, &PipelineStore) -> Option<Recording> + Send + Sync;

/// One run being recorded.
pub struct Recording {
    /// The id the run gets (such as its run history id).
    pub id: u64,
    /// Called once with how the run ended. Dropped uncalled (the run's task was dropped, as
    /// when the process ends), the recording should count the run as interrupted.
    pub finish: Box<dyn FnOnce(Status) + Send>,
}

impl std::fmt::Debug for Recording {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recording")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The pipeline served over MCP and its active or last run. Shared (as `Arc<Hub>`) between
/// all server sessions, stdio and HTTP alike.
pub struct Hub {
    pipeline: Pipeline,
    runs: watch::Sender<Option<Arc<Run>>>,
    start: Mutex<()>,
    next_id: AtomicU64,
    recorder: Option<Box<RunRecorder>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("pipeline", &self.pipeline.name())
            .field("current", &self.current().map(|r| r.id()))
            .field("recorded", &self.recorder.is_some())
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// A hub for `pipeline`. Runs it starts capture output (the logs resource needs it, and a
    /// command writing to the inherited stdout would corrupt the stdio transport).
    pub fn new(pipeline: Pipeline) -> Arc<Hub> {
        Self::build(pipeline, None)
    }

    /// [`Hub::new`], with each run it starts recorded by `recorder`.
    pub fn with_recorder(pipeline: Pipeline, recorder: Box<RunRecorder>) -> Arc<Hub> {
        Self::build(pipeline, Some(recorder))
    }

    fn build(pipeline: Pipeline, recorder: Option<Box<RunRecorder>>) -> Arc<Hub> {
        let (runs, _) = watch::channel(None);
        Arc::new(Hub {
            pipeline: pipeline.capture_output(true),
            runs,
            start: Mutex::new(()),
            next_id: AtomicU64::new(1),
            recorder,
        })
    }

    /// The pipeline served.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// The active or last run, if any.
    pub fn current(&self) -> Option<Arc<Run>> {
        self.runs.borrow().clone()
    }

    /// The active run, if one is in progress.
    pub fn active(&self) -> Option<Arc<Run>> {
        self.current().filter(|r| r.is_active())
    }

    /// A receiver that holds the current run and wakes when a run is attached, started or ends.
    pub fn runs(&self) -> watch::Receiver<Option<Arc<Run>>> {
        self.runs.subscribe()
    }

    /// Attaches a run started elsewhere (`milo run --mcp-http`): the store it runs in and its
    /// stop token (which `cancel_pipeline` cancels). Returns its run id. It replaces the
    /// current run, even an active one.
    pub fn attach(&self, store: PipelineStore, stop: CancellationToken) -> u64 {
        self.attach_as(store, stop, None)
    }

    /// [`Hub::attach`] with the run's id given (such as its run history id); `None` numbers it
    /// as the hub does.
    pub fn attach_as(&self, store: PipelineStore, stop: CancellationToken, id: Option<u64>) -> u64 {
        let _start = self.start.lock();
        let id = id.unwrap_or_else(|| self.next_id.fetch_add(1, Ordering::Relaxed));
        // Numbers the hub hands out later stay clear of the given one.
        self.next_id.fetch_max(id.saturating_add(1), Ordering::Relaxed);
        if let Some(previous) = self.active() {
            tracing::warn!(
                previous = previous.id(),
                run = id,
                "attaching a run while another is active"
            );
        }
        let run = Arc::new(Run {
            id,
            store,
            stop,
            ended: AtomicBool::new(false),
            attached: true,
        });
        self.runs.send_replace(Some(run));
        id
    }

    /// Starts a run of the pipeline on a tokio task and returns its id at once. Fails if a run
    /// is in progress. Must be called inside a tokio runtime.
    pub fn start_run(&self) -> Result<u64, RunError> {
        let _start = self.start.lock();
        if let Some(active) = self.active() {
            return Err(RunError::AlreadyRunning {
                pipeline: self.pipeline.name().to_owned(),
                run_id: active.id(),
            });
        }
        let store = self.pipeline.store().map_err(|e| RunError::Start {
            pipeline: self.pipeline.name().to_owned(),
            message: e.to_string(),
        })?;
        let recording = self.recorder.as_ref().and_then(|record| record(&self.pipeline, &store));
        let id = recording
            .as_ref()
            .map_or_else(|| self.next_id.fetch_add(1, Ordering::Relaxed), |r| r.id);
        self.next_id.fetch_max(id.saturating_add(1), Ordering::Relaxed);
        let stop = CancellationToken::new();
        let run = Arc::new(Run {
            id,
            store: store.clone(),
            stop: stop.clone(),
            ended: AtomicBool::new(false),
            attached: false,
        });
        self.runs.send_replace(Some(run.clone()));
        let pipeline = self.pipeline.clone();
        let runs = self.runs.clone();
        tokio::spawn(async move {
            let options = RunOptions {
                stop,
                ..RunOptions::default()
            };
            let status = match pipeline.run_with(&store, options).await {
                Ok(report) => {
                    tracing::info!(run = id, status = %report.status, "pipeline run ended");
                    report.status
                }
                Err(e) => {
                    tracing::error!(run = id, error = %e, "pipeline run failed");
                    Status::Failed
                }
            };
            if let Some(recording) = recording {
                (recording.finish)(status);
            }
            run.ended.store(true, Ordering::Release);
            // Wake the watchers so they see the run has ended.
            runs.send_modify(|_| {});
        });
        tracing::info!(run = id, pipeline = self.pipeline.name(), "pipeline run started");
        Ok(id)
    }

    /// Waits until no run is in progress (and the last one the hub started has finished its
    /// recording).
    pub async fn idle(&self) {
        let mut runs = self.runs();
        while self.current().is_some_and(|r| !r.is_settled()) {
            // Runs the hub starts wake `runs` when they end; an attached run ends when its
            // state is final, which is looked at again every so often.
            let _ = tokio::time::timeout(std::time::Duration::from_millis(250), runs.changed()).await;
        }
    }

    /// Stops the run in progress, if any, as [`cancel_run`](Self::cancel_run) does, and waits
    /// until it has ended (its commands stopped, its recording finished).
    pub async fn stop(&self) {
        if self.cancel_run().is_ok() {
            self.idle().await;
        }
    }

    /// Asks the active run to stop (commands get SIGTERM, then SIGKILL after the grace
    /// period). Returns its id; the run ends with a `cancelled` status shortly after.
    pub fn cancel_run(&self) -> Result<u64, RunError> {
        let run = self.active().ok_or(RunError::NotRunning)?;
        run.stop.cancel();
        tracing::info!(run = run.id(), "pipeline run cancelled");
        Ok(run.id())
    }
}
