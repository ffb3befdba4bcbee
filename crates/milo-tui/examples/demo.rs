//! A demo of the detail TUI over a small build pipeline of shell commands, with output on both
//! streams, a retried phase and a parallel pair: `cargo run -p milo-tui --example demo`.
//!
//! Pass `fail` as the first argument to make the `lint` phase fail for good. Ctrl-C or `q`
//! while it runs cancels the pipeline; so does SIGTERM, after which the TUI closes once the
//! pipeline has ended.

use std::process::ExitCode;
use std::time::Duration;

use milo::pipeline::{Phase, PhasePolicy, Pipeline, RunOptions};
use milo_tui::{TuiOutcome, run_tui};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> ExitCode {
    match demo().await {
        Ok(TuiOutcome::Finished) => ExitCode::SUCCESS,
        Ok(TuiOutcome::QuitWhileRunning) => ExitCode::from(130),
        Err(e) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("demo: {e}");
            }
            ExitCode::from(2)
        }
    }
}

async fn demo() -> Result<TuiOutcome, Box<dyn std::error::Error>> {
    let fail = std::env::args().nth(1).as_deref() == Some("fail");
    let lint = if fail {
        "echo 'checking style'; sleep 0.5; echo 'src/lib.rs:3: line too long' >&2; exit 1"
    } else {
        "sleep 0.3; echo 'checking style'; echo 'all good'"
    };
    let pipeline = Pipeline::new(
        "demo",
        [
            Phase::command(
                "fetch",
                "for i in $(seq 1 15); do echo \"fetched crate $i\"; sleep 0.1; done",
            )
            .description("Download dependencies"),
            Phase::command(
                "compile",
                "for i in $(seq 1 60); do echo \"compiling unit $i\"; \
                 [ $((i % 9)) = 0 ] && echo \"warning: unused variable in unit $i\" >&2; sleep 0.05; done",
            )
            .depends_on(["fetch"])
            .weight(4)
            .description("Build every unit"),
            Phase::command(
                "test",
                "for i in $(seq 1 40); do echo \"test case_$i ... ok\"; sleep 0.08; done",
            )
            .depends_on(["compile"])
            .parallel(true)
            .weight(3)
            .description("Run the test suite"),
            Phase::command(
                "flaky",
                "[ -e \"${TMPDIR:-/tmp}/milo-demo-$PPID\" ] && { echo 'worked this time'; exit 0; }; \
                 touch \"${TMPDIR:-/tmp}/milo-demo-$PPID\"; echo 'network timeout' >&2; exit 1",
            )
            .depends_on(["compile"])
            .parallel(true)
            .policy(PhasePolicy::retry(2).retry_delay(Duration::from_millis(800)))
            .description("Upload coverage (retried)"),
            Phase::command("lint", lint)
                .depends_on(["compile"])
                .parallel(true)
                .description("Check the style"),
            Phase::command("package", "sleep 1; echo 'wrote demo-0.1.0.tar.gz'")
                .depends_on(["test", "flaky", "lint"])
                .description("Build the release archive"),
        ],
    )?
    // Output must go to the store, not to the terminal the TUI draws on.
    .capture_output(true);
    let store = pipeline.store()?;
    let stop = CancellationToken::new();
    let options = RunOptions {
        stop: stop.clone(),
        ..RunOptions::default()
    };
    let run = tokio::spawn({
        let store = store.clone();
        async move { pipeline.run_with(&store, options).await }
    });
    // As the CLI does: SIGTERM stops the pipeline and the TUI closes once it has ended.
    #[cfg(unix)]
    if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        let stop = stop.clone();
        tokio::spawn(async move {
            term.recv().await;
            stop.cancel();
        });
    }
    let outcome = run_tui(store, stop).await?;
    let _ = run.await;
    Ok(outcome)
}
