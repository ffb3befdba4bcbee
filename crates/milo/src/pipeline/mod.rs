//! Pipelines: named phases with dependencies, run by a saga into a Store.

mod error;
mod policy;

pub use error::PipelineError;
pub use policy::{InvalidPolicyValue, MAX_RETRY_DELAY, OnFail, PhasePolicy, RetryBackoff};
