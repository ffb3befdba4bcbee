//! `milo mcp`: the pipeline's MCP server on stdio, for AI agents (see the `milo-mcp` crate).
//! Runs it starts are recorded in the run history; a signal stops the run in progress as
//! Ctrl-C stops `milo run`, then the server.

use tokio_util::sync::CancellationToken;

use crate::cli::McpArgs;
use crate::commands::run::history_recorder;
use crate::error::CliError;
use crate::{build, config, signals};

/// The exit status after a signal stopped the server (as `milo run` interrupted).
const INTERRUPTED: u8 = 130;

pub fn serve(args: &McpArgs) -> Result<u8, CliError> {
    let file = config::load_with(
        &args.file.file,
        &config::ParamInputs::new(args.params.params.clone(), true),
    )?;
    let slurm = crate::slurm::connect(&file)?;
    let pipeline = build::pipeline_on(&file, &[], slurm.as_ref())?;
    drop(file);
    let history = if args.no_history {
        None
    } else {
        milo_history::cli::open_for_run(&args.file.file, args.db.db.as_deref())
    };
    let hub = match history {
        Some(history) => {
            let record = milo_history::RecordOptions {
                pipeline_file: Some(args.file.file.display().to_string()),
                resumed_from: None,
                keep_runs: Some(milo_history::DEFAULT_KEEP_RUNS),
            };
            milo_mcp::Hub::with_recorder(pipeline, history_recorder(history, record))
        }
        None => milo_mcp::Hub::new(pipeline),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Internal(format!("could not start the async runtime: {e}")))?;
    let result = runtime.block_on(async {
        let signalled = CancellationToken::new();
        let done = CancellationToken::new();
        let watcher = tokio::spawn(signals::watch(signalled.clone(), done.clone()));
        let outcome = tokio::select! {
            served = milo_mcp::serve_stdio(hub.clone()) => served.map(|()| 0),
            _ = signalled.cancelled() => {
                tracing::info!("signal received: stopping the MCP server");
                Ok(INTERRUPTED)
            }
        };
        // Whichever way the session ended, a run in progress is stopped (its commands get
        // SIGTERM, then SIGKILL after their grace period; a second Ctrl-C kills them at once)
        // and recorded before milo exits.
        hub.stop().await;
        if let Some(slurm) = &slurm {
            crate::slurm::finish(slurm).await;
        }
        done.cancel();
        let _ = watcher.await;
        outcome
    });
    // A read of stdin may still be blocked in tokio's blocking pool (after a signal): do not
    // wait for it.
    runtime.shutdown_background();
    result.map_err(|e| CliError::Internal(format!("MCP server: {e}")))
}
