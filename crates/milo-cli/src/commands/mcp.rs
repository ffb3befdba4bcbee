//! `milo mcp`: the pipeline's MCP server on stdio, for AI agents (see the `milo-mcp` crate).
//! Runs it starts are recorded in the run history; a signal stops the run in progress as
//! Ctrl-C stops `milo run`, then the server.

use tokio_util::sync::CancellationToken;

use crate::cli::McpArgs;
use crate::commands::run::history_recorder;
use crate::error::CliError;
use crate::{build, config, signals};

/// Builds the pipeline of `file` for the `params` of a `run_pipeline` call, over the server's
/// own `-p` values (`base`): the file is read again, so the run is what `milo run -p` would run.
fn rebuild(
    file: std::path::PathBuf,
    base: Vec<String>,
    slurm: Option<milo_slurm::Slurm>,
) -> Box<milo_mcp::ParamsBuilder> {
    Box::new(move |given| {
        let mut inputs = base.clone();
        for (name, value) in given {
            let Some(text) = super::params::cli_value(value) else {
                return Err(format!(
                    "the value of `{name}` must be a string, a number, a boolean or an array of strings"
                ));
            };
            inputs.push(format!("{name}={text}"));
        }
        let loaded = config::load_with(&file, &config::ParamInputs::new(inputs, true)).map_err(|e| {
            // The messages and their help, without the snippets drawn for a terminal.
            e.errors()
                .map(|e| {
                    std::iter::once(e.message())
                        .chain(e.help().iter().map(String::as_str))
                        .collect::<Vec<_>>()
                        .join(" — ")
                })
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        let pipeline = build::pipeline_on(&loaded, &[], slurm.as_ref()).map_err(|e| e.to_string())?;
        Ok((pipeline, config::resolved_params(&loaded)))
    })
}

/// The exit status after a signal stopped the server (as `milo run` interrupted).
const INTERRUPTED: u8 = 130;

pub fn serve(args: &McpArgs) -> Result<u8, CliError> {
    let file = config::load_with(
        &args.file.file,
        &config::ParamInputs::new(args.params.params.clone(), true),
    )?;
    let slurm = crate::slurm::connect(&file)?;
    let pipeline = build::pipeline_on(&file, &[], slurm.as_ref())?;
    let params = config::resolved_params(&file);
    let params_support = (!file.params.is_empty()).then(|| milo_mcp::Params {
        schema: super::params::json_schema(&file.params),
        values: params.clone(),
        build: rebuild(args.file.file.clone(), args.params.params.clone(), slurm.clone()),
    });
    drop(file);
    let history = if args.no_history {
        None
    } else {
        milo_history::cli::open_for_run(&args.file.file, args.db.db.as_deref())
    };
    let recorder = history.map(|history| {
        let record = milo_history::RecordOptions {
            pipeline_file: Some(args.file.file.display().to_string()),
            resumed_from: None,
            params,
            trigger: None,
            keep_runs: Some(milo_history::DEFAULT_KEEP_RUNS),
        };
        history_recorder(history, record)
    });
    let hub = match (params_support, recorder) {
        (Some(params), recorder) => milo_mcp::Hub::with_params(pipeline, recorder, params),
        (None, Some(recorder)) => milo_mcp::Hub::with_recorder(pipeline, recorder),
        (None, None) => milo_mcp::Hub::new(pipeline),
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
