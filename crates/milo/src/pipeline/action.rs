//! [`PipelineAction`]: the actions a pipeline run dispatches, in their JSON wire form
//! `{"type": "@@PHASE_START", "payload": {...}}`.
//!
//! Every time value is in the payload, in seconds since the pipeline started, so replaying a
//! recorded sequence of actions through the reducer reproduces the same state.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::incremental::Decision;
use super::service::ServiceState;
use crate::action::{Action, Builtin};
use crate::capture::Stream;

/// An action of the pipeline reducer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload")]
pub enum PipelineAction {
    /// `@@INIT`: the store was created.
    #[serde(rename = "@@INIT")]
    Init {},
    /// `@@SAGA_CANCELLED`: a saga was cancelled.
    #[serde(rename = "@@SAGA_CANCELLED")]
    SagaCancelled {
        /// The saga's label.
        saga: String,
    },
    /// `@@SAGA_ERROR`: a saga failed.
    #[serde(rename = "@@SAGA_ERROR")]
    SagaError {
        /// The saga's label.
        saga: String,
        /// What went wrong.
        error: String,
    },
    /// `@@PIPELINE_START`: the run began.
    #[serde(rename = "@@PIPELINE_START")]
    PipelineStart {
        /// The pipeline's name.
        name: Arc<str>,
        /// Seconds since the pipeline started (0).
        timestamp: f64,
        /// When it started, in seconds since the Unix epoch (wall-clock time; the other
        /// timestamps are relative to it). `None` in journals written before it was recorded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        started_at: Option<f64>,
    },
    /// `@@PHASE_START`: an attempt of a phase began.
    #[serde(rename = "@@PHASE_START")]
    PhaseStart {
        /// The phase.
        name: Arc<str>,
        /// 1 for the first attempt.
        attempt: u32,
        /// Seconds since the pipeline started.
        timestamp: f64,
    },
    /// `@@PHASE_QUEUED`: the attempt's command was submitted to a batch scheduler (Slurm) as
    /// job `job_id` and waits there to start; put after its `@@PHASE_START`.
    #[serde(rename = "@@PHASE_QUEUED")]
    PhaseQueued {
        /// The phase.
        name: Arc<str>,
        /// The scheduler's job id.
        job_id: Arc<str>,
        /// Seconds since the pipeline started.
        timestamp: f64,
    },
    /// `@@PHASE_RUNNING`: the queued job `job_id` started; the phase runs again, and its
    /// timeout counts from here.
    #[serde(rename = "@@PHASE_RUNNING")]
    PhaseRunning {
        /// The phase.
        name: Arc<str>,
        /// The scheduler's job id.
        job_id: Arc<str>,
        /// Seconds since the pipeline started.
        timestamp: f64,
    },
    /// `@@PHASE_DECISION`: an incremental phase was checked before its first attempt. Put
    /// before its `@@PHASE_START` when it runs; when it is up to date or restored, its
    /// recorded lines follow as `@@PHASE_LOG` (replayed) and then its `@@PHASE_COMPLETE`.
    #[serde(rename = "@@PHASE_DECISION")]
    PhaseDecision {
        /// The phase.
        name: Arc<str>,
        /// Its key, verdict and reason.
        #[serde(flatten)]
        decision: Decision,
        /// Seconds since the pipeline started.
        timestamp: f64,
    },
    /// `@@PHASE_COMPLETE`: a phase succeeded.
    #[serde(rename = "@@PHASE_COMPLETE")]
    PhaseComplete {
        /// The phase.
        name: Arc<str>,
        /// Its result as JSON (`null` when it has none or it does not serialize).
        result: Arc<serde_json::Value>,
        /// Seconds since the pipeline started.
        timestamp: f64,
        /// Set when the result was reused from an earlier run instead of running the phase.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reused_from: Option<String>,
    },
    /// `@@PHASE_FAILED`: a phase failed for good.
    #[serde(rename = "@@PHASE_FAILED")]
    PhaseFailed {
        /// The phase.
        name: Arc<str>,
        /// The last error.
        error: String,
        /// Seconds since the pipeline started.
        timestamp: f64,
    },
    /// `@@PHASE_SKIPPED`: a phase failed under the skip policy.
    #[serde(rename = "@@PHASE_SKIPPED")]
    PhaseSkipped {
        /// The phase.
        name: Arc<str>,
        /// The error that made it skip.
        error: String,
        /// Seconds since the pipeline started.
        timestamp: f64,
    },
    /// `@@PHASE_RETRY`: an attempt failed and the phase will run again after `delay`.
    #[serde(rename = "@@PHASE_RETRY")]
    PhaseRetry {
        /// The phase.
        name: Arc<str>,
        /// The attempt that failed (1-based).
        attempt: u32,
        /// Its error.
        error: String,
        /// The policy's `max_retries`.
        max_retries: u32,
        /// Seconds until the next attempt.
        delay: f64,
        /// Seconds since the pipeline started.
        timestamp: f64,
    },
    /// `@@PHASE_CANCELLED`: a running or waiting phase was stopped by fail-fast or an
    /// interrupt.
    #[serde(rename = "@@PHASE_CANCELLED")]
    PhaseCancelled {
        /// The phase.
        name: Arc<str>,
        /// Seconds since the pipeline started.
        timestamp: f64,
    },
    /// `@@SERVICE`: a service phase became ready, was stopped, or was kept running for the
    /// next run (`starting` is implied by its `@@PHASE_START`). A service a run takes over
    /// from an earlier one (`milo watch`) has no `@@PHASE_START`: its first action is `ready`.
    #[serde(rename = "@@SERVICE")]
    Service {
        /// The phase.
        name: Arc<str>,
        /// Its new state.
        state: ServiceState,
        /// Seconds since the pipeline started.
        timestamp: f64,
    },
    /// `@@PHASE_LOG`: one captured line of output.
    #[serde(rename = "@@PHASE_LOG")]
    PhaseLog {
        /// The phase.
        name: Arc<str>,
        /// The line, without its newline.
        line: Arc<str>,
        /// `stdout` or `stderr` (`stdout` when absent, as in the specification's original).
        #[serde(default)]
        stream: Stream,
        /// Seconds since the pipeline started (`0.0` when absent).
        #[serde(default)]
        timestamp: f64,
    },
    /// `@@PIPELINE_COMPLETE`: every phase completed or was skipped.
    #[serde(rename = "@@PIPELINE_COMPLETE")]
    PipelineComplete {
        /// Seconds since the pipeline started.
        timestamp: f64,
    },
    /// `@@PIPELINE_FAILED`: a phase failed under the stop policy.
    #[serde(rename = "@@PIPELINE_FAILED")]
    PipelineFailed {
        /// Which phase failed and why.
        error: String,
        /// Seconds since the pipeline started.
        timestamp: f64,
    },
    /// `@@PIPELINE_CANCELLED`: the run was interrupted.
    #[serde(rename = "@@PIPELINE_CANCELLED")]
    PipelineCancelled {
        /// Seconds since the pipeline started.
        timestamp: f64,
    },
}

impl PipelineAction {
    /// The phase this action is about, if any.
    pub fn phase(&self) -> Option<&str> {
        use PipelineAction::*;
        match self {
            PhaseStart { name, .. }
            | PhaseQueued { name, .. }
            | PhaseRunning { name, .. }
            | PhaseDecision { name, .. }
            | PhaseComplete { name, .. }
            | PhaseFailed { name, .. }
            | PhaseSkipped { name, .. }
            | PhaseRetry { name, .. }
            | PhaseCancelled { name, .. }
            | Service { name, .. }
            | PhaseLog { name, .. } => Some(name),
            _ => None,
        }
    }

    /// The action's timestamp (seconds since the pipeline started), if it has one.
    pub fn timestamp(&self) -> Option<f64> {
        use PipelineAction::*;
        match self {
            PipelineStart { timestamp, .. }
            | PhaseStart { timestamp, .. }
            | PhaseQueued { timestamp, .. }
            | PhaseRunning { timestamp, .. }
            | PhaseDecision { timestamp, .. }
            | PhaseComplete { timestamp, .. }
            | PhaseFailed { timestamp, .. }
            | PhaseSkipped { timestamp, .. }
            | PhaseRetry { timestamp, .. }
            | PhaseCancelled { timestamp, .. }
            | Service { timestamp, .. }
            | PhaseLog { timestamp, .. }
            | PipelineComplete { timestamp }
            | PipelineFailed { timestamp, .. }
            | PipelineCancelled { timestamp } => Some(*timestamp),
            Init {} | SagaCancelled { .. } | SagaError { .. } => None,
        }
    }

    /// The action's timestamp, mutably, if it has one.
    pub fn timestamp_mut(&mut self) -> Option<&mut f64> {
        use PipelineAction::*;
        match self {
            PipelineStart { timestamp, .. }
            | PhaseStart { timestamp, .. }
            | PhaseQueued { timestamp, .. }
            | PhaseRunning { timestamp, .. }
            | PhaseDecision { timestamp, .. }
            | PhaseComplete { timestamp, .. }
            | PhaseFailed { timestamp, .. }
            | PhaseSkipped { timestamp, .. }
            | PhaseRetry { timestamp, .. }
            | PhaseCancelled { timestamp, .. }
            | Service { timestamp, .. }
            | PhaseLog { timestamp, .. }
            | PipelineComplete { timestamp }
            | PipelineFailed { timestamp, .. }
            | PipelineCancelled { timestamp } => Some(timestamp),
            Init {} | SagaCancelled { .. } | SagaError { .. } => None,
        }
    }

    /// Whether this action ends a run (`@@PIPELINE_COMPLETE`, `_FAILED` or `_CANCELLED`).
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            PipelineAction::PipelineComplete { .. }
                | PipelineAction::PipelineFailed { .. }
                | PipelineAction::PipelineCancelled { .. }
        )
    }
}

impl Action for PipelineAction {
    fn type_name(&self) -> &str {
        use PipelineAction::*;
        match self {
            Init {} => "@@INIT",
            SagaCancelled { .. } => "@@SAGA_CANCELLED",
            SagaError { .. } => "@@SAGA_ERROR",
            PipelineStart { .. } => "@@PIPELINE_START",
            PhaseStart { .. } => "@@PHASE_START",
            PhaseQueued { .. } => "@@PHASE_QUEUED",
            PhaseRunning { .. } => "@@PHASE_RUNNING",
            PhaseDecision { .. } => "@@PHASE_DECISION",
            PhaseComplete { .. } => "@@PHASE_COMPLETE",
            PhaseFailed { .. } => "@@PHASE_FAILED",
            PhaseSkipped { .. } => "@@PHASE_SKIPPED",
            PhaseRetry { .. } => "@@PHASE_RETRY",
            PhaseCancelled { .. } => "@@PHASE_CANCELLED",
            Service { .. } => "@@SERVICE",
            PhaseLog { .. } => "@@PHASE_LOG",
            PipelineComplete { .. } => "@@PIPELINE_COMPLETE",
            PipelineFailed { .. } => "@@PIPELINE_FAILED",
            PipelineCancelled { .. } => "@@PIPELINE_CANCELLED",
        }
    }

    fn from_builtin(builtin: Builtin) -> Self {
        match builtin {
            Builtin::Init => PipelineAction::Init {},
            Builtin::SagaCancelled { saga } => PipelineAction::SagaCancelled { saga },
            Builtin::SagaError { saga, error } => PipelineAction::SagaError { saga, error },
        }
    }
}
