//! # milo — the pipeline orchestrator's core engine
//!
//! milo runs multi-phase workflows through a Store/saga architecture:
//!
//! * [`Store`] holds one immutable state and applies [actions](action) through a pure
//!   [`Reducer`], in a total order, notifying listeners and async watchers.
//! * The [saga runtime](saga) runs async workflows whose effects (`put`, `call`, `fork`,
//!   `all`, `race`, `retry`, `timeout`…) go through an interpreter: live on tokio, or
//!   recorded by the [test interpreter](saga::testing).
//!
//! This crate has no terminal, network or database dependencies; every front end (CLI, TUI,
//! MCP server, run history) is its own crate built on it.
//!
//! ```
//! use std::sync::Arc;
//! use milo::{DynAction, Store};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A counter: the reducer builds its state from nothing on @@INIT.
//! let reducer = |state: Option<&Arc<i64>>, action: &DynAction| -> i64 {
//!     let n = state.map_or(0, |s| **s);
//!     match &*action.kind {
//!         "add" => n + action.payload.as_i64().unwrap_or(0),
//!         _ => n,
//!     }
//! };
//! let store = Store::new(reducer, None)?;
//! store.dispatch(DynAction::with_payload("add", 2.into()))?;
//!
//! // A saga: wait, then put.
//! let handle = store.run_saga("adder", |cx| async move {
//!     cx.delay(std::time::Duration::from_millis(1)).await;
//!     cx.put(DynAction::with_payload("add", 40.into()))?;
//!     Ok(())
//! });
//! handle.await?;
//! assert_eq!(*store.get_state(), 42);
//! # Ok(())
//! # }
//! ```

pub mod action;
pub mod bounded_read;
pub mod capture;
pub mod executor;
pub mod pipeline;
pub mod saga;
pub mod store;
pub mod text;
mod util;

pub use action::{Action, Builtin, DynAction};
pub use saga::{Cx, Saga, SagaError, SagaHandle, SagaResult};
pub use store::{DispatchError, Middleware, Reducer, ReducerResult, Store, Subscription};
pub use util::format_duration;

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
