//! `milo run`: load, build and run a pipeline with the chosen view, handle signals, write
//! the timeline, and map the outcome to an exit status.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use milo::pipeline::{Eta, Pipeline, PipelineState, RunOptions, Status, Verdict, pipeline_to_timeline};
use tokio_util::sync::CancellationToken;

use super::write_stdout;
use crate::cli::{Linger, RunArgs, Ui};
use crate::error::CliError;
use crate::views::View;
use crate::views::json::JsonView;
use crate::views::plain::PlainView;
use crate::views::progress::ProgressView;
use crate::{build, color, config, incremental, signals};

pub fn run(args: RunArgs) -> Result<u8, CliError> {
    if args.help_params {
        return super::params::params(&crate::cli::ListArgs {
            file: crate::cli::FileArg {
                file: args.file.file.clone(),
            },
            params: args.params.clone(),
            json: false,
        });
    }
    let mut param_args = args.params.params.clone();
    if args.resume.is_some() && !args.no_history {
        // `--resume` runs with the resumed run's parameters; `-p` still overrides them.
        param_args = resumed_params(&args)?.into_iter().chain(param_args).collect();
    }
    let file = config::load_with(&args.file.file, &config::ParamInputs::new(param_args, true))?;
    let params = config::resolved_params(&file);
    let params_line = super::params::line(&file);
    // `milo run test` is `milo run --only test`.
    let only: Vec<String> = args.only.iter().chain(&args.targets).cloned().collect();
    let slurm = if args.dry_run {
        None
    } else {
        crate::slurm::connect(&file)?
    };
    let mut pipeline = build::pipeline_on(&file, &only, slurm.as_ref())?;
    super::print_warnings(&file);
    let flags = incremental::Flags {
        force: args.force.clone(),
        no_cache: args.no_cache,
        read_only: args.dry_run,
        watched: None,
    };
    let cache = incremental::open(&file, &pipeline, &flags)?;
    if let Some(cache) = &cache
        && !args.dry_run
    {
        pipeline = pipeline.incremental(cache.clone());
    }
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
        let why = match (&cache, args.explain) {
            (Some(cache), true) => Some(incremental::explain_dry_run(&pipeline, cache)),
            _ => None,
        };
        let mut text = dry_run(&pipeline, why.as_deref());
        if let Some(line) = params_line {
            let at = text.find('\n').map_or(text.len(), |i| i + 1);
            text.insert_str(at, &format!("parameters: {line}\n"));
        }
        write_stdout(text.as_bytes())?;
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
    // Without capture (--no-capture, or `capture_output = false` in the file) the phases write
    // straight to the terminal: the live display would be torn by their output and redraw over
    // it, so their output goes between plain event lines instead.
    let ui = if ui == Ui::Progress && !pipeline.captures_output() {
        let why = if args.no_capture {
            "--no-capture"
        } else {
            "capture_output = false"
        };
        let _ = writeln!(
            std::io::stderr().lock(),
            "milo: {why}: showing plain lines, not the progress display"
        );
        Ui::Plain
    } else {
        ui
    };
    if let Some(addr) = args.mcp_http {
        milo_mcp::check_bind_addr(addr, args.mcp_allow_remote).map_err(|e| CliError::usage(e.to_string(), None))?;
    }
    let mcp = match args.mcp_http {
        Some(addr) => Some(mcp_options(addr, &args)?),
        None => None,
    };
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
        if let Some(slurm) = &slurm {
            crate::slurm::reattach(slurm, h, plan.run, &plan.rerun);
        }
        reuse = plan.reuse;
        resumed_from = Some(plan.run);
    }
    // `--no-history` means "do not record this run": earlier runs still give the ETA.
    let medians = match &history {
        Some(h) => h.median_durations(pipeline.name()).unwrap_or_default(),
        // Only an existing history, waited for no longer than a recorded run would wait.
        None if args.no_history => {
            let path = milo_history::cli::db_path(&args.file.file, args.db.as_deref());
            path.is_file()
                .then(|| milo_history::History::open_waiting(&path, milo_history::cli::RUN_START_WAIT))
                .and_then(Result::ok)
                .and_then(|h| h.median_durations(pipeline.name()).ok())
                .unwrap_or_default()
        }
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
            params,
            trigger: None,
            // 0 keeps every run (the recorder's rule).
            keep_runs: Some(args.keep_runs),
        },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Internal(format!("could not start the async runtime: {e}")))?;
    let executed = runtime.block_on(execute(pipeline, session));
    if let Some(slurm) = &slurm {
        // No job of the run is left in the queue, whatever became of the run.
        runtime.block_on(crate::slurm::finish(slurm));
    }
    let (status, state, written) = executed?;
    if args.explain {
        let text = incremental::explain_run(&state);
        // Beside the summary; with --ui json on stderr, so stdout stays one action per line.
        let written = match ui {
            Ui::Plain | Ui::Tui | Ui::Auto => write_stdout(text.as_bytes()),
            Ui::Json | Ui::Progress => {
                let _ = std::io::stderr().lock().write_all(text.as_bytes());
                Ok(())
            }
        };
        written?;
    }
    if let Some(path) = &args.timeline {
        let json =
            serde_json::to_vec_pretty(&pipeline_to_timeline(&state)).map_err(|e| CliError::Internal(e.to_string()))?;
        std::fs::write(path, json).map_err(|source| CliError::Io {
            action: "write the timeline to",
            path: path.clone(),
            source,
        })?;
    }
    let code = exit_code(status);
    if let Err(source) = written {
        let error = CliError::Io {
            action: "write the run's output to",
            path: "stdout".into(),
            source,
        };
        // A failed run keeps its own exit status; a completed one fails for the lost output.
        if code == 0 {
            return Err(error);
        }
        crate::print_error(&error);
    }
    Ok(code)
}

/// `--mcp-*` flags as the server's options; a new token unless one is given.
fn mcp_options(addr: std::net::SocketAddr, args: &RunArgs) -> Result<McpOptions, CliError> {
    let (token, token_file) = match &args.mcp_token {
        Some(token) => {
            let bad = token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic());
            if bad {
                return Err(CliError::usage(
                    "--mcp-token (or MILO_MCP_TOKEN) is empty or holds spaces or characters other than printable ASCII, which an HTTP header cannot carry",
                    Some("use letters, digits and punctuation, such as the output of `openssl rand -hex 32`".into()),
                ));
            }
            (token.clone(), None)
        }
        None => {
            let token = milo_mcp::generate_token().map_err(|e| CliError::Internal(e.to_string()))?;
            (token, Some(token_path(&args.file.file)))
        }
    };
    let mut http = milo_mcp::HttpOptions::new(addr, token);
    http.allow_remote = args.mcp_allow_remote;
    http.allowed_origins = args.mcp_allow_origin.clone();
    http.max_sessions = args.mcp_max_sessions;
    http.session_idle_timeout = args.mcp_session_timeout;
    Ok(McpOptions {
        http,
        linger: args.mcp_linger,
        token_file,
    })
}

/// Where a generated `--mcp-http` token is written: `.milo/mcp-token` beside the pipeline file.
/// The resumed run's parameter values as `-p NAME=VALUE` arguments (none when the history or
/// the run cannot be read: the resume itself reports that).
fn resumed_params(args: &RunArgs) -> Result<Vec<String>, CliError> {
    // The pipeline's name, which does not depend on the parameters.
    let file = config::load_with(
        &args.file.file,
        &config::ParamInputs::new(args.params.params.clone(), false),
    )?;
    let Some(history) = milo_history::cli::open_for_run(&args.file.file, args.db.as_deref()) else {
        return Ok(Vec::new());
    };
    let recorded = milo_history::cli::resume_params(&history, args.resume.as_deref(), &file.name).unwrap_or_default();
    let declared: std::collections::HashSet<&str> = file.params.iter().map(|p| p.name.as_str()).collect();
    // A parameter the file no longer declares is not carried over (it would be an error).
    Ok(recorded
        .into_iter()
        .filter(|(name, _)| declared.contains(name.as_str()))
        .map(|(name, value)| format!("{name}={value}"))
        .collect())
}

fn token_path(pipeline_file: &Path) -> PathBuf {
    let dir = pipeline_file.parent().unwrap_or(Path::new(""));
    dir.join(".milo").join("mcp-token")
}

/// Writes `token` to `path`, readable by its owner only (a file left by an earlier run is
/// replaced, not reused with its permissions).
fn write_token(path: &Path, token: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(format!("{token}\n").as_bytes())?;
    file.sync_all()
}

/// Removes the token file at exit, unless another run has written its own token there since.
fn remove_token(path: &Path, token: &str) {
    if std::fs::read_to_string(path).is_ok_and(|t| t.trim() == token) {
        let _ = std::fs::remove_file(path);
    }
}

/// Records each run a [`milo_mcp::Hub`] starts in `history`, as `milo run` records its own.
pub(crate) fn history_recorder(
    history: milo_history::History,
    record: milo_history::RecordOptions,
) -> Box<milo_mcp::RunRecorder> {
    let history = std::sync::Mutex::new(history);
    Box::new(move |pipeline, store, params| {
        let recorder = {
            let history = history.lock().ok()?;
            let options = milo_history::RecordOptions {
                // A hub without parameters of its own (`milo run --mcp-http`) runs with the
                // values the recording was set up with.
                params: if params.is_empty() {
                    record.params.clone()
                } else {
                    params.to_vec()
                },
                ..record.clone()
            };
            match history.recorder(pipeline, options) {
                Ok(r) => r,
                Err(e) => {
                    milo_history::cli::warn(&e);
                    return None;
                }
            }
        };
        let id = u64::try_from(recorder.run_id()).ok()?;
        let subscription = recorder.subscribe(store);
        Some(milo_mcp::Recording {
            id,
            finish: Box::new(move |status| {
                drop(subscription);
                if let Err(e) = recorder.finish(status, i32::from(exit_code(status))) {
                    milo_history::cli::warn_unrecorded(&e);
                }
            }),
        })
    })
}

/// The exit status of a run that ended with `status`.
pub(crate) fn exit_code(status: Status) -> u8 {
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
    http: milo_mcp::HttpOptions,
    linger: Linger,
    /// Where the generated token goes (none when the user gave the token).
    token_file: Option<PathBuf>,
}

/// The `--mcp-http` server of a run.
struct McpServer {
    hub: Arc<milo_mcp::Hub>,
    task: tokio::task::JoinHandle<()>,
    shutdown: CancellationToken,
}

/// Runs the pipeline with the session's views; returns the run's status, its final state and
/// how writing the view's output to stdout went.
async fn execute(
    pipeline: Pipeline,
    session: Session,
) -> Result<(Status, Arc<PipelineState>, std::io::Result<()>), CliError> {
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
    let record_options = record.clone();
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
    // Signals stop the run, and later the MCP server's linger (cancel_pipeline only the run).
    let signalled = CancellationToken::new();
    let watcher = tokio::spawn(signals::watch(signalled.clone(), done.clone()));
    let forward = {
        let (signalled, stop) = (signalled.clone(), stop.clone());
        tokio::spawn(async move {
            signalled.cancelled().await;
            stop.cancel();
        })
    };
    let mcp_server = match &mcp {
        Some(m) => {
            // Runs started through MCP during the linger are recorded like this one.
            let hub_history = history.and_then(|h| {
                let options = milo_history::RecordOptions {
                    resumed_from: None,
                    ..record_options.clone()
                };
                recorder.as_ref().map(|_| history_recorder(h, options))
            });
            let run_id = recorder.as_ref().and_then(|r| u64::try_from(r.run_id()).ok());
            Some(start_mcp(&pipeline, &store, &stop, run_id, m, hub_history).await?)
        }
        None => None,
    };
    let view: Option<Box<dyn View>> = match ui {
        Ui::Json => Some(Box::new(JsonView::start(&store))),
        Ui::Progress => Some(Box::new(ProgressView::start(&store, eta.clone(), color::for_stderr()))),
        Ui::Plain | Ui::Auto => Some(Box::new(PlainView::start(&store, color::for_stdout()))),
        Ui::Tui => None,
    };
    let run = {
        let (pipeline, store, stop) = (pipeline.clone(), store.clone(), stop.clone());
        let options = RunOptions {
            stop,
            reuse,
            ..RunOptions::default()
        };
        tokio::spawn(async move { pipeline.run_with(&store, options).await })
    };
    // The run is recorded as ended when it ends, not when the TUI closes: the TUI stays open
    // after the run until `q`, and the terminal may be closed (SIGHUP) rather than quit.
    let ended = async {
        let report = match run.await {
            Ok(r) => r,
            Err(e) => Err(milo::SagaError::msg(e)),
        };
        drop(recording);
        if let Some(recorder) = recorder {
            let status = report.as_ref().map_or(Status::Failed, |r| r.status);
            if let Err(e) = recorder.finish(status, i32::from(exit_code(status))) {
                milo_history::cli::warn_unrecorded(&e);
            }
        }
        report
    };
    let tui = async {
        match ui {
            Ui::Tui => Some(milo_tui::run_tui_with_eta(store.clone(), stop.clone(), eta).await),
            _ => None,
        }
    };
    let (report, tui) = tokio::join!(ended, tui);
    let state = store.get_state();
    let written = match view {
        Some(view) => view.finish(&state),
        None => {
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "{}", crate::views::summary::summary(&state, color::for_stdout()));
            Ok(())
        }
    };
    if let (Some(server), Some(m)) = (mcp_server, &mcp) {
        linger(&server.hub, m.linger, &signalled).await;
        server.shutdown.cancel();
        let _ = server.task.await;
        if let Some(path) = &m.token_file {
            remove_token(path, &m.http.token);
        }
    }
    done.cancel();
    forward.abort();
    let _ = watcher.await;
    if let Some(Err(e)) = tui {
        return Err(CliError::Internal(format!("the TUI failed: {e}")));
    }
    let report = report.map_err(|e| CliError::Internal(format!("the run stopped unexpectedly: {e}")))?;
    Ok((report.status, state, written))
}

/// After the run: keeps the MCP server up for `linger` (or until a signal), then as long as
/// a run started through MCP goes on — a signal cancels that run, which is then recorded as
/// cancelled, instead of it being killed silently when milo exits.
async fn linger(hub: &milo_mcp::Hub, linger: Linger, signalled: &CancellationToken) {
    let wait = async {
        match linger {
            Linger::For(d) => tokio::time::sleep(d).await,
            Linger::UntilStopped => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = wait => {}
        _ = signalled.cancelled() => {}
    }
    if let Some(run) = hub.active() {
        let _ = writeln!(
            std::io::stderr().lock(),
            "milo: run {} started through MCP is still going; the MCP server stays up until it ends (Ctrl-C cancels it)",
            run.id()
        );
    }
    tokio::select! {
        _ = hub.idle() => {}
        _ = signalled.cancelled() => hub.stop().await,
    }
}

/// Starts the `--mcp-http` server on the run's store (as run `run_id`).
async fn start_mcp(
    pipeline: &Pipeline,
    store: &milo::Store<milo::pipeline::PipelineState, milo::pipeline::PipelineAction>,
    stop: &CancellationToken,
    run_id: Option<u64>,
    options: &McpOptions,
    recorder: Option<Box<milo_mcp::RunRecorder>>,
) -> Result<McpServer, CliError> {
    let hub = match recorder {
        Some(recorder) => milo_mcp::Hub::with_recorder(pipeline.clone(), recorder),
        None => milo_mcp::Hub::new(pipeline.clone()),
    };
    hub.attach_as(store.clone(), stop.clone(), run_id);
    let shutdown = CancellationToken::new();
    let addr = options.http.addr;
    let (bound, server) = milo_mcp::serve_http(hub.clone(), options.http.clone(), shutdown.clone())
        .await
        .map_err(|e| CliError::usage(format!("--mcp-http {addr}: {e}"), None))?;
    let token = &options.http.token;
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "milo: MCP server at http://{bound}{}", milo_mcp::HTTP_PATH);
    match &options.token_file {
        Some(path) => {
            let saved = match write_token(path, token) {
                Ok(()) => format!(" (also in {}, readable by you only)", path.display()),
                Err(e) => format!(" (could not write it to {}: {e})", path.display()),
            };
            let _ = writeln!(
                err,
                "milo: MCP token: {token}{saved}; clients send it as the header `Authorization: Bearer <token>`"
            );
        }
        None => {
            let _ = writeln!(
                err,
                "milo: MCP token: the one given with --mcp-token or MILO_MCP_TOKEN; clients send it as the header `Authorization: Bearer <token>`"
            );
        }
    }
    drop(err);
    let task = tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::warn!("MCP server: {e}");
        }
    });
    Ok(McpServer { hub, task, shutdown })
}

/// The plan of a dry run; with `why` (`--explain`), each phase's verdict under it.
fn dry_run(p: &Pipeline, why: Option<&[Option<(Verdict, String)>]>) -> String {
    let mut out = format!(
        "{}: would run {} (jobs {}), nothing is run\n",
        p.name(),
        super::plural(p.phases().len(), "phase"),
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
            // Every line of a multi-line command keeps its indentation, under the first.
            let mut lines = cmd.trim_end_matches('\n').lines();
            let _ = writeln!(out, "       $ {}", lines.next().unwrap_or(""));
            for line in lines {
                let _ = writeln!(out, "         {line}");
            }
        }
        if let Some(why) = why {
            let text = match &why[i] {
                None => "runs: it has no `sources` or `outputs`".to_owned(),
                Some((Verdict::Run, reason)) => format!("would run: {reason}"),
                Some((Verdict::UpToDate, _)) => "up to date".to_owned(),
                Some((Verdict::Restored, reason)) => format!("would be restored: {reason}"),
            };
            let _ = writeln!(out, "       → {}", crate::color::Palette::plain().clean(&text));
        }
    }
    out
}
