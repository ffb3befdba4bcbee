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

/// Records the runs a [`Hub`] starts: called with the run's pipeline, its store (before
/// anything is dispatched into it) and its parameter values; `None` runs it unrecorded (the
/// recorder says why, such as on stderr).
pub type RunRecorder = dyn Fn(&Pipeline, &PipelineStore, &[(String, String)]) -> Option<Recording> + Send + Sync;

/// A pipeline's parameters, for the `run_pipeline` tool's `params` argument.
pub struct Params {
    /// The JSON schema of `params`: an object schema with a property per parameter (its
    /// type, `enum` of choices, `default`, `description`) and the required ones.
    pub schema: serde_json::Map<String, serde_json::Value>,
    /// The values the served pipeline was built with, in declaration order.
    pub values: Vec<(String, String)>,
    /// Builds the pipeline for the values given (the others keep their defaults): the
    /// pipeline and every value it got, or a message saying what is wrong with them.
    pub build: Box<ParamsBuilder>,
}

/// See [`Params::build`].
pub type ParamsBuilder = dyn Fn(&serde_json::Map<String, serde_json::Value>) -> Result<(Pipeline, Vec<(String, String)>), String>
    + Send
    + Sync;

impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Params")
            .field("values", &self.values)
            .finish_non_exhaustive()
    }
}

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
    /// The pipeline of the active or last run (or the one served, before any); a run with
    /// other parameter values replaces it.
    pipeline: Mutex<(Pipeline, Vec<(String, String)>)>,
    params: Option<Params>,
    runs: watch::Sender<Option<Arc<Run>>>,
    start: Mutex<()>,
    next_id: AtomicU64,
    recorder: Option<Box<RunRecorder>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("pipeline", &self.pipeline().name().to_owned())
            .field("current", &self.current().map(|r| r.id()))
            .field("recorded", &self.recorder.is_some())
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// A hub for `pipeline`. Runs it starts capture output (the logs resource needs it, and a
    /// command writing to the inherited stdout would corrupt the stdio transport).
    pub fn new(pipeline: Pipeline) -> Arc<Hub> {
        Self::build(pipeline, None, None)
    }

    /// [`Hub::new`], with each run it starts recorded by `recorder`.
    pub fn with_recorder(pipeline: Pipeline, recorder: Box<RunRecorder>) -> Arc<Hub> {
        Self::build(pipeline, Some(recorder), None)
    }

    /// A hub whose runs may be given parameter values (`run_pipeline`'s `params`), each run
    /// recorded by `recorder` when there is one.
    pub fn with_params(pipeline: Pipeline, recorder: Option<Box<RunRecorder>>, params: Params) -> Arc<Hub> {
        Self::build(pipeline, recorder, Some(params))
    }

    fn build(pipeline: Pipeline, recorder: Option<Box<RunRecorder>>, params: Option<Params>) -> Arc<Hub> {
        let (runs, _) = watch::channel(None);
        let values = params.as_ref().map(|p| p.values.clone()).unwrap_or_default();
        Arc::new(Hub {
            pipeline: Mutex::new((pipeline.capture_output(true), values)),
            params,
            runs,
            start: Mutex::new(()),
            next_id: AtomicU64::new(1),
            recorder,
        })
    }

    /// The pipeline of the active or last run (the one served before any run).
    pub fn pipeline(&self) -> Pipeline {
        self.pipeline.lock().0.clone()
    }

    /// The parameter values of the active or last run (or of the served pipeline), as JSON
    /// strings by name.
    pub fn params_values(&self) -> Vec<(String, serde_json::Value)> {
        self.pipeline
            .lock()
            .1
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect()
    }

    /// The schema of the pipeline's parameters, if it has any (see [`Params::schema`]).
    pub fn params_schema(&self) -> Option<&serde_json::Map<String, serde_json::Value>> {
        self.params.as_ref().map(|p| &p.schema)
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
        self.start_run_with(None)
    }

    /// [`Hub::start_run`] with parameter values (`None`: those the hub was built with); the
    /// run's pipeline replaces the served one. Values for a pipeline without parameters, or
    /// that the pipeline refuses, are a [`RunError::Params`].
    pub fn start_run_with(&self, values: Option<&serde_json::Map<String, serde_json::Value>>) -> Result<u64, RunError> {
        let _start = self.start.lock();
        let name = self.pipeline().name().to_owned();
        if let Some(active) = self.active() {
            return Err(RunError::AlreadyRunning {
                pipeline: name,
                run_id: active.id(),
            });
        }
        if let Some(values) = values.filter(|v| !v.is_empty()) {
            let Some(params) = &self.params else {
                return Err(RunError::Params {
                    pipeline: name,
                    message: "it has no parameters: call run_pipeline without `params`".to_owned(),
                });
            };
            let (pipeline, resolved) = (params.build)(values).map_err(|message| RunError::Params {
                pipeline: name,
                message,
            })?;
            *self.pipeline.lock() = (pipeline.capture_output(true), resolved);
        } else if let Some(params) = &self.params {
            // A run without `params` gets the values the hub was built with again.
            let mut current = self.pipeline.lock();
            if current.1 != params.values {
                match (params.build)(&serde_json::Map::new()) {
                    Ok((pipeline, resolved)) => *current = (pipeline.capture_output(true), resolved),
                    Err(message) => {
                        return Err(RunError::Params {
                            pipeline: name,
                            message,
                        });
                    }
                }
            }
        }
        let (pipeline, values) = self.pipeline.lock().clone();
        let store = pipeline.store().map_err(|e| RunError::Start {
            pipeline: pipeline.name().to_owned(),
            message: e.to_string(),
        })?;
        let recording = self
            .recorder
            .as_ref()
            .and_then(|record| record(&pipeline, &store, &values));
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
        let run_name = pipeline.name().to_owned();
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
        tracing::info!(run = id, pipeline = run_name, "pipeline run started");
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
