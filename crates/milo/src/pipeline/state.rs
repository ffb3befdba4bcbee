//! [`PipelineState`] and [`PhaseStatus`]: the observable state of a run, and the pure reducer
//! that produces it from [`PipelineAction`]s.
//!
//! Phases live in a persistent vector indexed by position (names resolve through the shared
//! [`PipelineDef`]), and each phase's logs in a persistent ring of at most `max_logs` lines,
//! so one dispatch costs the same whether the pipeline has ten phases or a hundred thousand
//! and however many lines were logged.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::action::PipelineAction;
use super::graph::{PhaseInfo, PipelineDef};
use super::incremental::{Decision, Verdict};
use super::log_ring::LogRing;
use super::phases::Phases;
use super::service::ServiceState;
use crate::capture::Stream;
use crate::store::{Reducer, ReducerResult};

/// The status of a pipeline or a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Not started.
    Pending,
    /// Phase only: submitted to a batch scheduler (Slurm), waiting there for its job to start
    /// ([`PhaseStatus::job_id`] names the job).
    Queued,
    /// Running.
    Running,
    /// Finished successfully.
    Completed,
    /// Failed.
    Failed,
    /// Phase only: failed under the skip policy.
    Skipped,
    /// Phase only: failed, waiting for its next attempt.
    Retrying,
    /// Stopped by fail-fast or an interrupt.
    Cancelled,
}

impl Status {
    /// The lowercase name (`"running"`…).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
            Status::Retrying => "retrying",
            Status::Cancelled => "cancelled",
        }
    }

    /// Whether this status is final.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            Status::Completed | Status::Failed | Status::Skipped | Status::Cancelled
        )
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One captured line of a phase's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    /// The text, without its newline.
    pub line: Arc<str>,
    /// `stdout` or `stderr`.
    pub stream: Stream,
    /// Seconds since the pipeline started.
    pub timestamp: f64,
}

/// The state of one phase.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseStatus {
    /// The phase's name.
    pub name: Arc<str>,
    /// Where it stands.
    pub status: Status,
    /// When its first attempt started (seconds since the pipeline started).
    pub started_at: Option<f64>,
    /// When it finished, or when its last attempt failed while retrying.
    pub finished_at: Option<f64>,
    /// Seconds from its first start to its end (all attempts and waits); for a running
    /// phase, up to the last action about it.
    pub elapsed: f64,
    /// The error if it failed, was skipped, or the last attempt's error while retrying.
    pub error: Option<String>,
    /// The current or last attempt (0 before it starts).
    pub attempt: u32,
    /// The newest `max_logs` captured lines.
    pub logs: LogRing,
    /// How many lines were captured in all (including those no longer kept).
    pub log_count: u64,
    /// The result as JSON, once completed.
    pub result: Option<Arc<serde_json::Value>>,
    /// Set when the result was reused from an earlier run.
    pub reused_from: Option<String>,
    /// For an incremental phase: its key, whether it ran, was up to date or was restored,
    /// and why. When it was up to date or restored, its logs are the recorded ones, replayed.
    pub decision: Option<Arc<Decision>>,
    /// For a service: `starting`, `ready`, `stopped` or `kept` (`None` before it starts, and
    /// for other phases).
    pub service: Option<ServiceState>,
    /// The batch scheduler's job id of the current or last attempt, when it ran on one
    /// (Slurm); `None` for a local phase.
    pub job_id: Option<Arc<str>>,
    /// The phase's definition.
    pub info: Arc<PhaseInfo>,
}

impl PhaseStatus {
    /// `UpToDate` or `Restored` when the phase completed without running because it was
    /// up to date; `None` when it ran (or has not ended).
    pub fn fresh(&self) -> Option<Verdict> {
        let verdict = self.decision.as_ref()?.verdict;
        (self.status == Status::Completed && verdict.is_fresh()).then_some(verdict)
    }
}

/// The observable state of a pipeline run.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineState {
    /// The pipeline's name.
    pub name: Arc<str>,
    /// `pending`, `running`, `completed`, `failed` or `cancelled`.
    pub status: Status,
    /// Completed and skipped weight over total weight, 0.0 to 1.0.
    pub progress: f64,
    /// The most recently started phase still running.
    pub current_phase: Option<Arc<str>>,
    /// Seconds since the pipeline started, as of the newest action.
    pub elapsed: f64,
    /// When the pipeline started, in seconds since the Unix epoch (from `@@PIPELINE_START`).
    pub started_at: Option<f64>,
    /// Every phase, in declaration order.
    pub phases: Phases,
    /// Why the pipeline failed, when it did.
    pub error: Option<String>,
    /// How many phases are running or waiting to retry.
    pub in_progress: usize,
    done_weight: f64,
    def: Arc<PipelineDef>,
}

impl PipelineState {
    /// The initial state of `def`: every phase pending.
    pub fn new(def: Arc<PipelineDef>) -> Self {
        let phases = Phases::new(def.phases.iter().map(|info| {
            Arc::new(PhaseStatus {
                name: info.name.clone(),
                status: Status::Pending,
                started_at: None,
                finished_at: None,
                elapsed: 0.0,
                error: None,
                attempt: 0,
                logs: LogRing::new(),
                log_count: 0,
                result: None,
                reused_from: None,
                decision: None,
                service: None,
                job_id: None,
                info: info.clone(),
            })
        }));
        Self {
            name: def.name.clone(),
            status: Status::Pending,
            progress: 0.0,
            current_phase: None,
            elapsed: 0.0,
            phases,
            error: None,
            in_progress: 0,
            started_at: None,
            done_weight: 0.0,
            def,
        }
    }

    /// The pipeline's definition.
    pub fn def(&self) -> &Arc<PipelineDef> {
        &self.def
    }

    /// Phase `name`'s status.
    pub fn phase(&self, name: &str) -> Option<&Arc<PhaseStatus>> {
        self.phases.get(self.def.index_of(name)?)
    }

    /// Phases in execution order.
    pub fn phases_in_order(&self) -> impl Iterator<Item = &Arc<PhaseStatus>> + '_ {
        self.def.order().iter().filter_map(|&i| self.phases.get(i))
    }

    /// Whether the run has ended.
    pub fn is_finished(&self) -> bool {
        matches!(self.status, Status::Completed | Status::Failed | Status::Cancelled) && self.in_progress == 0
    }

    /// Phases that are running now, oldest start first.
    pub fn running(&self) -> impl Iterator<Item = &Arc<PhaseStatus>> + '_ {
        self.phases.iter().filter(|p| p.status == Status::Running)
    }

    fn update(&mut self, index: usize, f: impl FnOnce(&mut PhaseStatus)) {
        self.phases.update(index, f);
    }

    fn in_progress_at(&self, index: usize) -> bool {
        self.phases
            .get(index)
            .is_some_and(|p| matches!(p.status, Status::Queued | Status::Running | Status::Retrying))
    }

    /// Counts phase `index` as in progress unless it already is (its status is about to become
    /// queued, running or retrying).
    fn enter_progress(&mut self, index: usize) {
        if !self.in_progress_at(index) {
            self.in_progress += 1;
        }
    }

    /// The most recently started phase that is still running.
    fn refresh_current(&mut self) {
        self.current_phase = self
            .phases
            .in_progress()
            .rev()
            .find(|(_, p)| p.status == Status::Running)
            .map(|(_, p)| p.name.clone());
    }

    fn finish(&mut self, index: usize, status: Status, error: Option<String>, timestamp: f64) {
        if self.in_progress_at(index) {
            self.in_progress -= 1;
        }
        let mut weight = 0.0;
        self.update(index, |p| {
            if matches!(status, Status::Completed | Status::Skipped)
                && !matches!(p.status, Status::Completed | Status::Skipped)
            {
                weight = p.info.weight;
            }
            p.status = status;
            p.finished_at = Some(timestamp);
            p.elapsed = (timestamp - p.started_at.unwrap_or(timestamp)).max(0.0);
            if error.is_some() {
                p.error = error;
            }
        });
        self.phases.settle(index);
        self.done_weight += weight;
        self.progress = progress(self.done_weight, self.def.total_weight());
        self.refresh_current();
    }
}

fn progress(done: f64, total: f64) -> f64 {
    if total > 0.0 {
        (done / total).clamp(0.0, 1.0)
    } else {
        0.0
    }
}

/// The reducer of a pipeline's [`PipelineState`]; see [`Pipeline::build_reducer`](super::Pipeline::build_reducer).
#[derive(Debug, Clone)]
pub struct PipelineReducer {
    def: Arc<PipelineDef>,
}

impl PipelineReducer {
    /// A reducer for pipelines defined by `def`.
    pub fn new(def: Arc<PipelineDef>) -> Self {
        Self { def }
    }

    /// Applies `action` to `state` (or to a fresh state when `None`), without a store.
    pub fn apply(&self, state: Option<&Arc<PipelineState>>, action: &PipelineAction) -> Arc<PipelineState> {
        let state = match state {
            Some(s) => s.clone(),
            None => Arc::new(PipelineState::new(self.def.clone())),
        };
        reduce(state, action)
    }
}

impl Reducer<PipelineState, PipelineAction> for PipelineReducer {
    fn reduce(
        &self,
        state: Option<&Arc<PipelineState>>,
        action: &PipelineAction,
    ) -> ReducerResult<PipelineState, PipelineAction> {
        ReducerResult::new(self.apply(state, action))
    }
}

/// The pure transition function.
fn reduce(state: Arc<PipelineState>, action: &PipelineAction) -> Arc<PipelineState> {
    use PipelineAction as A;
    let index = match action.phase() {
        Some(name) => match state.def.index_of(name) {
            Some(i) => Some(i),
            None => return state,
        },
        None => None,
    };
    let mut next = (*state).clone();
    if let Some(ts) = action.timestamp() {
        next.elapsed = next.elapsed.max(ts);
    }
    let i = index.unwrap_or(0);
    match action {
        A::Init {} | A::SagaCancelled { .. } | A::SagaError { .. } => return state,
        A::PipelineStart { started_at, .. } => {
            next.status = Status::Running;
            next.started_at = *started_at;
        }
        A::PhaseStart {
            name,
            attempt,
            timestamp,
        } => {
            next.enter_progress(i);
            next.phases.activate(i);
            next.update(i, |p| {
                p.status = Status::Running;
                p.attempt = *attempt;
                p.finished_at = None;
                p.job_id = None;
                if p.started_at.is_none() {
                    p.started_at = Some(*timestamp);
                }
                p.elapsed = (timestamp - p.started_at.unwrap_or(*timestamp)).max(0.0);
                if p.info.service {
                    p.service = Some(ServiceState::Starting);
                }
            });
            next.current_phase = Some(name.clone());
        }
        A::Service { name, state, timestamp } => {
            if *state == ServiceState::Ready && !next.in_progress_at(i) {
                // A service kept running from an earlier run: it starts ready (attempt 0).
                next.enter_progress(i);
                next.phases.activate(i);
                next.update(i, |p| {
                    p.status = Status::Running;
                    p.finished_at = None;
                    p.started_at.get_or_insert(*timestamp);
                });
                next.current_phase = Some(name.clone());
            }
            next.update(i, |p| {
                p.service = Some(*state);
                p.elapsed = (timestamp - p.started_at.unwrap_or(*timestamp)).max(0.0);
            });
            if matches!(state, ServiceState::Stopped | ServiceState::Kept) {
                next.update(i, |p| p.result = Some(Arc::new(serde_json::Value::Null)));
                next.finish(i, Status::Completed, None, *timestamp);
            }
        }
        A::PhaseQueued { job_id, timestamp, .. } => {
            next.enter_progress(i);
            next.update(i, |p| {
                p.status = Status::Queued;
                p.job_id = Some(job_id.clone());
                p.elapsed = (timestamp - p.started_at.unwrap_or(*timestamp)).max(0.0);
            });
            next.refresh_current();
        }
        A::PhaseRunning {
            name,
            job_id,
            timestamp,
        } => {
            next.enter_progress(i);
            next.update(i, |p| {
                p.status = Status::Running;
                p.job_id = Some(job_id.clone());
                p.elapsed = (timestamp - p.started_at.unwrap_or(*timestamp)).max(0.0);
            });
            next.current_phase = Some(name.clone());
        }
        A::PhaseDecision { decision, .. } => {
            let decision = Arc::new(decision.clone());
            next.update(i, |p| p.decision = Some(decision));
        }
        A::PhaseComplete {
            result,
            timestamp,
            reused_from,
            ..
        } => {
            next.update(i, |p| {
                p.result = Some(result.clone());
                p.reused_from = reused_from.clone();
                p.error = None;
                if p.started_at.is_none() {
                    p.started_at = Some(*timestamp);
                }
            });
            next.finish(i, Status::Completed, None, *timestamp);
        }
        A::PhaseFailed { error, timestamp, .. } => {
            // A service that failed is stopped by the run.
            next.update(i, |p| {
                if p.service.is_some() {
                    p.service = Some(ServiceState::Stopped);
                }
            });
            next.finish(i, Status::Failed, Some(error.clone()), *timestamp);
            next.status = Status::Failed;
        }
        A::PhaseSkipped { error, timestamp, .. } => {
            next.finish(i, Status::Skipped, Some(error.clone()), *timestamp);
        }
        A::PhaseCancelled { timestamp, .. } => {
            next.finish(i, Status::Cancelled, None, *timestamp);
        }
        A::PhaseRetry {
            attempt,
            error,
            timestamp,
            ..
        } => {
            next.enter_progress(i);
            next.update(i, |p| {
                p.status = Status::Retrying;
                p.attempt = *attempt;
                p.error = Some(error.clone());
                p.elapsed = (timestamp - p.started_at.unwrap_or(*timestamp)).max(0.0);
            });
            next.refresh_current();
        }
        A::PhaseLog {
            line,
            stream,
            timestamp,
            ..
        } => {
            next.update(i, |p| {
                p.log_count += 1;
                let line = LogLine {
                    line: line.clone(),
                    stream: *stream,
                    timestamp: *timestamp,
                };
                p.logs = p.logs.pushed(line, p.info.max_logs);
            });
        }
        A::PipelineComplete { .. } => {
            next.status = Status::Completed;
            next.progress = 1.0;
            next.current_phase = None;
        }
        A::PipelineFailed { error, .. } => {
            next.status = Status::Failed;
            next.error = Some(error.clone());
        }
        A::PipelineCancelled { .. } => {
            next.status = Status::Cancelled;
        }
    }
    Arc::new(next)
}
