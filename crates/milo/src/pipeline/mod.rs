//! Pipelines: named phases with dependencies, run by a saga into a Store.
//!
//! * [`Phase`] and [`Pipeline`] define the work; [`Pipeline::new`] validates it.
//! * [`Pipeline::build_reducer`] gives the pure reducer over [`PipelineState`];
//!   [`Pipeline::build_saga`] the saga that runs the phases; [`Pipeline::run`] does both.
//! * [`pipeline_to_timeline`] and [`make_detail_reducer`] serve the observers.

mod action;
mod command;
mod detail;
mod error;
mod eta;
mod graph;
mod incremental;
mod log_ring;
mod phase;
mod phases;
mod policy;
mod rows;
mod run;
mod saga;
mod secrets;
mod service;
mod state;
mod timeline;
mod tracing_capture;

pub use action::PipelineAction;
pub use command::{parse_result, result_dir_bases};
pub use detail::{DetailReducer, Key, PipelineViewState, ViewAction, ViewEvent, VisibleRow, make_detail_reducer};
pub use error::{PipelineError, shown_cycle_steps};
pub use eta::Eta;
pub use graph::{DEFAULT_GRACE, PhaseInfo, Pipeline, PipelineDef};
pub use incremental::{Check, Decision, DepResult, Dependency, Incremental, Recorded, Verdict};
pub use log_ring::LogRing;
pub use phase::{
    CommandPhase, DEFAULT_MAX_LOGS, IntoPhaseOutput, Opaque, Phase, PhaseContext, PhaseGroup, PhaseOutput, PhaseWriter,
};
pub use phases::{MAX_ACTIVE, Phases};
pub use policy::{InvalidPolicyValue, MAX_RETRY_DELAY, OnFail, PhasePolicy, RetryBackoff};
pub use rows::{GroupCounts, Row};
pub use run::RunOutput;
pub use saga::{RunOptions, RunReport};
pub use secrets::{MASK, Secrets};
pub use service::{DEFAULT_READY_TIMEOUT, Interrupts, Probe, Ready, Service, ServicePool, ServiceState};
pub use state::{LogLine, PhaseStatus, PipelineReducer, PipelineState, Status};
pub use timeline::pipeline_to_timeline;
pub use tracing_capture::{PHASE_SPAN, PhaseLogLayer, phase_log_layer};

impl Pipeline {
    /// The pure reducer over [`PipelineState`] for this pipeline (it builds the initial state
    /// on `@@INIT`, so a store can start from `None`).
    pub fn build_reducer(&self) -> PipelineReducer {
        PipelineReducer::new(self.def.clone())
    }
}
