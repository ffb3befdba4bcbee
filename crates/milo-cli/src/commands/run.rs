//! `milo run`: load, build and run a pipeline with the chosen view, handle signals, write
//! the timeline, and map the outcome to an exit status.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use milo::pipeline::{Eta, Pipeline, PipelineState, RunOptions, Status, pipeline_to_timeline};
use tokio_util::sync::CancellationToken;

use super::write_stdout;
use crate::cli::{RunArgs, Ui};
use crate::error::CliError;
use crate::views::View;
use crate::views::json::JsonView;
use crate::views::plain::PlainView;
use crate::views::progress::ProgressView;
use crate::{build, config, signals};

pub fn run(args: RunArgs) -> Result<u8, CliError> {
    let file = config::load(&args.file.file)?;
    let mut pipeline = build::pipeline(&file, &args.only)?;
    // The parsed file is not needed any more; a 10,000-phase file holds megabytes.
    drop(file);
    if let Some(j) = args.jobs {
        pipeline = pipeline.jobs(j as usize);
    }
    if args.fail_fast {
        pipeline = pipeline.fail_fast(true);
    }
    if args.no_capture {
        if args.ui == Ui::Json {
            return Err(CliError::usage(
                "--no-capture cannot be used with --ui json: the phases' output would be mixed into the JSON stream on stdout",
                Some("drop --no-capture: with --ui json every output line arrives as a @@PHASE_LOG action".into()),
            ));
        }
        if args.ui == Ui::Tui {
            return Err(CliError::usage(
                "--no-capture cannot be used with --ui tui: the TUI shows the captured output",
                Some("drop --no-capture, or pick another --ui".into()),
            ));
        }
        pipeline = pipeline.capture_output(false);
    }
    if args.dry_run {
        write_stdout(dry_run(&pipeline).as_bytes())?;
        return Ok(0);
    }
    let ui = match args.ui {
        Ui::Auto if std::io::stderr().is_terminal() => Ui::Progress,
        Ui::Auto => Ui::Plain,
        Ui::Tui if !std::io::stdout().is_terminal() => {
            return Err(CliError::usage(
                "--ui tui needs a terminal, but standard output is not one",
                Some("run it in a terminal, or use --ui plain or --ui json when piping".into()),
            ));
        }
        Ui::Tui => {
            pipeline = pipeline.capture_output(true);
            Ui::Tui
        }
        other => other,
    };
    if !pipeline.captures_output() && !pipeline.secrets().is_empty() {
        // Uncaptured output goes from the phases straight to the terminal: milo never sees it.
        let _ = writeln!(
            std::io::stderr().lock(),
            "warning: the phases' output is not captured (--no-capture or capture_output = false), so secret values in it are not masked\n  = note: the history, the JSON stream and the MCP resources still mask them"
        );
    }
    if let Some(addr) = args.mcp_http {
        milo_mcp::check_bind_addr(addr, args.mcp_allow_remote).map_err(|e| CliError::usage(e.to_string(), None))?;
    }
    let mcp = args.mcp_http.map(|addr| McpOptions {
        addr,
        allow_remote: args.mcp_allow_remote,
        linger: Duration::from_secs_f64(args.mcp_linger.max(0.0)),
    });
    let history = if args.no_history {
        None
    } else {
        milo_history::cli::open_for_run(&args.file.file, args.db.as_deref())
    };
    let mut reuse = HashMap::new();
    let mut resumed_from = None;
    if let Some(selector) = &args.resume {
        let Some(h) = &history else {
            return Err(CliError::usage(
                "--resume needs the run history, which is not available",
                Some("drop --no-history, or fix the history database named in the warning above".into()),
            ));
        };
        let (plan, note) = milo_history::cli::resume(h, Some(selector), &pipeline)
            .map_err(|e| CliError::usage(e.to_string(), None))?;
        let _ = writeln!(std::io::stderr().lock(), "{note}");
        reuse = plan.reuse;
        resumed_from = Some(plan.run);
    }
    let medians = match &history {
        Some(h) => h.median_durations(pipeline.name()).unwrap_or_default(),
        None => HashMap::new(),
    };
    let session = Session {
        ui,
        mcp,
        eta: Eta::new(medians, pipeline.job_limit()),
        reuse,
        history,
        record: milo_history::RecordOptions {
            pipeline_file: Some(args.file.file.display().to_string()),
            resumed_from,
            // 0 keeps every run (the recorder's rule).
            keep_runs: Some(args.keep_runs),
        },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Internal(format!("could not start the async runtime: {e}")))?;
    let (status, state) = runtime.block_on(execute(pipeline, session))?;
    if let Some(path) = &args.timeline {
        let json =
            serde_json::to_vec_pretty(&pipeline_to_timeline(&state)).map_err(|e| CliError::Internal(e.to_string()))?;
        std::fs::write(path, json).map_err(|source| CliError::Io {
            action: "write the timeline to",
            path: path.clone(),
            source,
        })?;
    }
    Ok(exit_code(status))
}

/// The exit status of a run that ended with `status`.
fn exit_code(status: Status) -> u8 {
    match status {
        Status::Completed => 0,
        Status::Cancelled => 130,
        _ => 1,
    }
}

/// Everything a run needs besides the pipeline.
struct Session {
    ui: Ui,
    mcp: Option<McpOptions>,
    eta: Eta,
    reuse: HashMap<String, (serde_json::Value, String)>,
    history: Option<milo_history::History>,
    record: milo_history::RecordOptions,
}

/// `--mcp-http` settings.
struct McpOptions {
    addr: SocketAddr,
    allow_remote: bool,
    linger: Duration,
}

async fn execute(pipeline: Pipeline, session: Session) -> Result<(Status, Arc<PipelineState>), CliError> {
    let Session {
        ui,
        mcp,
        eta,
        reuse,
        history,
        record,
    } = session;
    let store = pipeline.store().map_err(|e| CliError::Internal(e.to_string()))?;
    // Subscribed first, so the journal holds every action of the run.
    let recorder = history.as_ref().and_then(|h| match h.recorder(&pipeline, record) {
        Ok(r) => Some(r),
        Err(e) => {
            milo_history::cli::warn(&e);
            None
        }
    });
    let recording = recorder.as_ref().map(|r| r.subscribe(&store));
    let stop = CancellationToken::new();
    let done = CancellationToken::new();
    let watcher = tokio::spawn(signals::watch(stop.clone(), done.clone()));
    let mcp_shutdown = CancellationToken::new();
    let mcp_server = match &mcp {
        Some(m) => Some(start_mcp(&pipeline, &store, &stop, m, mcp_shutdown.clone()).await?),
        None => None,
    };
    let view: Option<Box<dyn View>> = match ui {
        Ui::Json => Some(Box::new(JsonView::start(&store))),
        Ui::Progress => Some(Box::new(ProgressView::start(&store, eta.clone()))),
        Ui::Plain | Ui::Auto => Some(Box::new(PlainView::start(&store))),
        Ui::Tui => None,
    };
    let run = {
        let (pipeline, store, stop) = (pipeline.clone(), store.clone(), stop.clone());
        let options = RunOptions { stop, reuse };
        tokio::spawn(async move { pipeline.run_with(&store, options).await })
    };
    let tui = if ui == Ui::Tui {
        Some(milo_tui::run_tui_with_eta(store.clone(), stop.clone(), eta).await)
    } else {
        None
    };
    let report = match run.await {
        Ok(r) => r,
        Err(e) => Err(milo::SagaError::msg(e)),
    };
    done.cancel();
    let _ = watcher.await;
    let state = store.get_state();
    drop(recording);
    if let Some(recorder) = recorder {
        let status = report.as_ref().map_or(Status::Failed, |r| r.status);
        if let Err(e) = recorder.finish(status, i32::from(exit_code(status))) {
            milo_history::cli::warn_unrecorded(&e);
        }
    }
    match view {
        Some(view) => view.finish(&state),
        None => {
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "{}", crate::views::summary::summary(&state));
        }
    }
    if let Some(server) = mcp_server {
        if let Some(m) = &mcp {
            tokio::time::sleep(m.linger).await;
        }
        mcp_shutdown.cancel();
        let _ = server.await;
    }
    if let Some(Err(e)) = tui {
        return Err(CliError::Internal(format!("the TUI failed: {e}")));
    }
    let report = report.map_err(|e| CliError::Internal(format!("the run stopped unexpectedly: {e}")))?;
    Ok((report.status, state))
}

/// Starts the `--mcp-http` server on the run's store; returns its task.
async fn start_mcp(
    pipeline: &Pipeline,
    store: &milo::Store<milo::pipeline::PipelineState, milo::pipeline::PipelineAction>,
    stop: &CancellationToken,
    options: &McpOptions,
    shutdown: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, CliError> {
    let hub = milo_mcp::Hub::new(pipeline.clone());
    hub.attach(store.clone(), stop.clone());
    let (bound, server) = milo_mcp::serve_http(hub, options.addr, options.allow_remote, shutdown)
        .await
        .map_err(|e| CliError::usage(format!("--mcp-http {}: {e}", options.addr), None))?;
    let _ = writeln!(
        std::io::stderr().lock(),
        "milo: MCP server at http://{bound}{}",
        milo_mcp::HTTP_PATH
    );
    Ok(tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::warn!("MCP server: {e}");
        }
    }))
}

fn dry_run(p: &Pipeline) -> String {
    let mut out = format!(
        "{}: would run {} phases (jobs {}), nothing is run\n",
        p.name(),
        p.phases().len(),
        p.job_limit()
    );
    for (n, &i) in p.def().order().iter().enumerate() {
        let info = &p.def().phases[i];
        let deps = if info.depends_on.is_empty() {
            String::new()
        } else {
            format!(
                "  after {}",
                info.depends_on.iter().map(|d| &**d).collect::<Vec<_>>().join(", ")
            )
        };
        let par = if info.parallel { "  [parallel]" } else { "" };
        let _ = writeln!(out, "{:>3}. {}{par}{deps}", n + 1, info.name);
        if let Some(cmd) = &info.command {
            let _ = writeln!(out, "       $ {cmd}");
        }
    }
    out
}
