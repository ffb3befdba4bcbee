//! # milo-mcp — an MCP server for milo pipelines
//!
//! Serves one [`Pipeline`](milo::pipeline::Pipeline) to MCP clients (AI agents, desktop
//! assistants) over stdio ([`serve_stdio`]) or streamable HTTP ([`serve_http`]), built on
//! [`rmcp`], the official Rust MCP SDK.
//!
//! * Resources: [`TIMELINE_URI`] (the active or last run's timeline), [`GRAPH_URI`] (phases,
//!   dependencies and execution order) and the template [`LOGS_TEMPLATE`] (a phase's captured
//!   lines). Clients subscribe to them — with `resources/subscribe` (MCP 2025-11-25 and
//!   older) or `subscriptions/listen` (2026-07-28) — and get `notifications/resources/updated`,
//!   at most about ten a second per resource and always for the final state.
//! * Tools: `run_pipeline`, `cancel_pipeline`, `get_timeline`, `execution_order`,
//!   `phase_logs {name, tail}`.
//!
//! Every session shares one [`Hub`]: the pipeline and its active or last run, whether the run
//! was started by the `run_pipeline` tool or [attached](Hub::attach) by `milo run --mcp-http`.
//! With a [`RunRecorder`] ([`Hub::with_recorder`]) the runs it starts are recorded (milo's CLI
//! puts them in the run history).
//!
//! Over stdio, [`CheckedLines`] answers malformed input with JSON-RPC errors (`-32700`,
//! `-32600`, `-32602`). Over HTTP, [`HttpOptions`] say who gets in: a bearer token on every
//! request, loopback `Host` names and browser origins (plus the allowed ones), and a capped
//! number of sessions that expire when idle.
//!
//! ```no_run
//! # async fn example(pipeline: milo::pipeline::Pipeline) -> Result<(), milo_mcp::McpError> {
//! let hub = milo_mcp::Hub::new(pipeline);
//! milo_mcp::serve_stdio(hub).await
//! # }
//! ```

mod error;
mod hub;
mod notify;
mod resources;
mod server;
mod stdio;
#[cfg(feature = "test-client")]
pub mod testing;
mod tools;
mod transport;

pub use error::{McpError, RunError};
pub use hub::{Hub, Params, ParamsBuilder, PipelineStore, Recording, Run, RunRecorder};
pub use notify::MIN_INTERVAL;
pub use resources::{GRAPH_URI, LOGS_TEMPLATE, TIMELINE_URI, logs_uri};
pub use server::MiloServer;
pub use stdio::{CheckedLines, MAX_LINE_BYTES};
pub use tools::{CANCEL_PIPELINE, EXECUTION_ORDER, GET_TIMELINE, PHASE_LOGS, RUN_PIPELINE};
pub use transport::{
    DEFAULT_MAX_SESSIONS, DEFAULT_SESSION_IDLE_TIMEOUT, HTTP_PATH, HTTP_SHUTDOWN_GRACE, HttpOptions, check_bind_addr,
    generate_token, serve_http, serve_stdio, serve_transport,
};
