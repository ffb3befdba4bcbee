//! `milo run`: load, build and run a pipeline with the chosen view, handle signals, write
//! the timeline, and map the outcome to an exit status.

use std::fmt::Write;
use std::io::IsTerminal;

use milo::pipeline::{Pipeline, RunOptions, Status, pipeline_to_timeline};
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
    if let Some(j) = args.jobs {
        pipeline = pipeline.jobs(j as usize);
    }
    if args.fail_fast {
        pipeline = pipeline.fail_fast(true);
    }
    if args.no_capture {
        pipeline = pipeline.capture_output(false);
    }
    if args.dry_run {
        write_stdout(dry_run(&pipeline).as_bytes())?;
        return Ok(0);
    }
    let ui = match args.ui {
        Ui::Auto if std::io::stderr().is_terminal() => Ui::Progress,
        Ui::Auto => Ui::Plain,
        other => other,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Internal(format!("could not start the async runtime: {e}")))?;
    let status = runtime.block_on(execute(pipeline, ui))?;
    if let Some(path) = &args.timeline {
        let (_, state) = &status;
        let json =
            serde_json::to_vec_pretty(&pipeline_to_timeline(state)).map_err(|e| CliError::Internal(e.to_string()))?;
        std::fs::write(path, json).map_err(|source| CliError::Io {
            action: "write the timeline to",
            path: path.clone(),
            source,
        })?;
    }
    Ok(match status.0 {
        Status::Completed => 0,
        Status::Cancelled => 130,
        _ => 1,
    })
}

async fn execute(
    pipeline: Pipeline,
    ui: Ui,
) -> Result<(Status, std::sync::Arc<milo::pipeline::PipelineState>), CliError> {
    let store = pipeline.store().map_err(|e| CliError::Internal(e.to_string()))?;
    let view: Box<dyn View> = match ui {
        Ui::Json => Box::new(JsonView::start(&store)),
        Ui::Progress => Box::new(ProgressView::start(&store)),
        Ui::Plain | Ui::Auto => Box::new(PlainView::start(&store)),
    };
    let stop = CancellationToken::new();
    let done = CancellationToken::new();
    let watcher = tokio::spawn(signals::watch(stop.clone(), done.clone()));
    let report = pipeline
        .run_with(
            &store,
            RunOptions {
                stop: stop.clone(),
                ..Default::default()
            },
        )
        .await;
    done.cancel();
    let _ = watcher.await;
    let state = store.get_state();
    view.finish(&state);
    let report = report.map_err(|e| CliError::Internal(format!("the run stopped unexpectedly: {e}")))?;
    Ok((report.status, state))
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
