//! [`Pipeline::run`]: the convenience that builds a store, runs the saga and returns the final
//! state and results.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::action::PipelineAction;
use super::graph::Pipeline;
use super::saga::{RunOptions, RunReport};
use super::state::PipelineState;
use crate::saga::{SagaError, SagaResult};
use crate::store::{DispatchError, Middleware, Next, Store};

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
    ///
    /// Its one middleware keeps timestamps non-decreasing in dispatch order: phases running
    /// on different threads read the clock before they dispatch, so an action could otherwise
    /// reach the store (and every view, the JSON stream and the history) a few microseconds
    /// "earlier" than the one before it. A late timestamp is raised to the previous one; the
    /// reducer still only sees times that arrive inside actions.
    pub fn store(&self) -> SagaResult<Store<PipelineState, PipelineAction>> {
        let monotonic: Arc<dyn Middleware<PipelineState, PipelineAction>> = Arc::new(MonotonicTimestamps::default());
        Store::with_middleware(self.build_reducer(), None, vec![monotonic]).map_err(SagaError::from)
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

/// The middleware of [`Pipeline::store`]: raises a timestamp that is earlier than the last one
/// dispatched since the run's `@@PIPELINE_START`. Runs under the store's dispatch lock, so
/// the relaxed atomic sees every earlier dispatch.
#[derive(Debug, Default)]
struct MonotonicTimestamps {
    /// The bits of the latest timestamp so far (0.0 to start).
    last: AtomicU64,
}

impl Middleware<PipelineState, PipelineAction> for MonotonicTimestamps {
    fn handle(
        &self,
        _state: &Arc<PipelineState>,
        mut action: PipelineAction,
        next: Next<'_, PipelineAction>,
    ) -> Result<(), DispatchError> {
        // A new run in the same store starts its clock again.
        let restart = matches!(action, PipelineAction::PipelineStart { .. });
        if let Some(t) = action.timestamp_mut() {
            let last = f64::from_bits(self.last.load(Ordering::Relaxed));
            if *t < last && !restart {
                *t = last;
            } else {
                self.last.store(t.to_bits(), Ordering::Relaxed);
            }
        }
        next(action)
    }
}
