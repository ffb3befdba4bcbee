//! [`McpError`] and [`RunError`]: what can go wrong serving a pipeline over MCP.

use std::net::SocketAddr;

/// Why an MCP server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum McpError {
    /// `serve_http` was asked to bind a non-loopback address without `allow_remote`.
    #[error(
        "refusing to serve MCP on {addr}: it is not a loopback address, and the server would expose \
         the pipeline (and the tools that run it) to the network; bind 127.0.0.1 or [::1], or pass \
         --mcp-allow-remote to allow it"
    )]
    NotLoopback {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// The HTTP listener could not be bound.
    #[error("could not listen for MCP on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// No bearer token could be made (the OS has no randomness to give) or the one given is
    /// unusable.
    #[error("no usable MCP bearer token: {0}; pass one with --mcp-token or MILO_MCP_TOKEN")]
    Token(String),
    /// The HTTP options contradict themselves.
    #[error("invalid MCP server settings: {0}")]
    Config(String),
    /// The HTTP server failed while serving.
    #[error("the MCP HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
    /// The stdio session could not be initialized (the client went away or spoke out of turn).
    #[error("the MCP stdio session could not start: {0}")]
    Initialize(#[source] Box<rmcp::service::ServerInitializeError>),
    /// The session task panicked or was aborted.
    #[error("the MCP session task failed: {0}")]
    Session(#[source] tokio::task::JoinError),
}

impl From<rmcp::service::ServerInitializeError> for McpError {
    fn from(e: rmcp::service::ServerInitializeError) -> Self {
        McpError::Initialize(Box::new(e))
    }
}

/// Why a run could not be started or cancelled through the [`Hub`](crate::Hub).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The `params` given to `run_pipeline` are not values the pipeline accepts.
    #[error("cannot run pipeline `{pipeline}` with these parameters: {message}")]
    Params {
        /// The pipeline's name.
        pipeline: String,
        /// What is wrong with them, and how to fix it.
        message: String,
    },
    /// A run is still in progress; only one runs at a time.
    #[error(
        "pipeline `{pipeline}` is already running (run {run_id}); wait for it to finish or call \
         cancel_pipeline first"
    )]
    AlreadyRunning {
        /// The pipeline's name.
        pipeline: String,
        /// The active run.
        run_id: u64,
    },
    /// There is no run in progress to cancel.
    #[error("no pipeline run is in progress")]
    NotRunning,
    /// The run's store could not be created.
    #[error("could not start pipeline `{pipeline}`: {message}")]
    Start {
        /// The pipeline's name.
        pipeline: String,
        /// Why.
        message: String,
    },
}
