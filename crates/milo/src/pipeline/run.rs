//! [`Pipeline::run`]: the convenience that builds a store, runs the saga and returns the final
//! state and results.

use std::sync::Arc;

use super::action::PipelineAction;
use super::graph::Pipeline;
use super::saga::{RunOptions, RunReport};
use super::state::PipelineState;
use crate::saga::{SagaError, SagaResult};
use crate::store::Store;

/// The end of a run: its final state and each phase's result.
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// The final state.
    pub state: Arc<PipelineState>,
    /// How it ended and the results, in declaration order.
    pub report: RunReport,
}

impl RunOutput {
    /// The result of phase `name` as a `T`.
    pub fn result<T: 'static>(&self, name: &str) -> Option<&T> {
        let i = self.state.def().index_of(name)?;
        self.report.results.get(i)?.as_ref()?.get::<T>()
    }
}

impl Pipeline {
    /// A store over this pipeline's state, starting from `None` as in the specification.
    pub fn store(&self) -> SagaResult<Store<PipelineState, PipelineAction>> {
        Store::new(self.build_reducer(), None).map_err(SagaError::from)
    }

    /// Runs the pipeline in `store` until it ends. Must be called inside a tokio runtime.
    pub async fn run_with(
        &self,
        store: &Store<PipelineState, PipelineAction>,
        options: RunOptions,
    ) -> SagaResult<RunReport> {
        let pipeline = self.clone();
        store
            .run_saga(format!("pipeline:{}", self.name()), move |cx| async move {
                pipeline.run_in(cx, options).await
            })
            .await
    }

    /// Runs the pipeline in a new store and returns the final state and results.
    pub async fn run(&self) -> SagaResult<RunOutput> {
        let store = self.store()?;
        let report = self.run_with(&store, RunOptions::default()).await?;
        Ok(RunOutput {
            state: store.get_state(),
            report,
        })
    }

    /// [`run`](Self::run) on a new multi-threaded tokio runtime, blocking until it ends.
    pub fn run_blocking(&self) -> SagaResult<RunOutput> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| SagaError::msg(format!("could not start a tokio runtime: {e}")))?;
        rt.block_on(self.run())
    }
}
