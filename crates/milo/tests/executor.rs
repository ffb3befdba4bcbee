//! Integration tests for the shell-command executor: exit statuses, live capture,
//! cancellation and clean-up of process groups.

mod common;

use common::{marker, run, texts};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use milo::capture::{MAX_LINE_BYTES, Stream};
use milo::executor::{CommandError, CommandSpec, LocalExecutor, run_command};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const GRACE: Duration = Duration::from_secs(10);

/// Live (non-zombie) processes whose command line contains `sleep <marker>`.
fn running(marker: &str) -> Vec<String> {
    let out = std::process::Command::new("pgrep")
        .arg("-fa")
        .arg(format!("sleep {marker}"))
        .output()
        .expect("pgrep runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Waits (up to 5 s) until `n` processes with `marker` run.
async fn wait_running(marker: &str, n: usize) {
    let start = Instant::now();
    while running(marker).len() < n {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "expected {n} `sleep {marker}` processes, found {:?}",
            running(marker)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A command running in a task, with a channel receiving its lines and a token to cancel it.
type Started = (
    tokio::task::JoinHandle<Result<(), CommandError>>,
    mpsc::UnboundedReceiver<(Stream, String)>,
    CancellationToken,
);

/// Starts `spec` in a task.
fn start(spec: CommandSpec, grace: Duration) -> Started {
    let (tx, rx) = mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    let token = cancel.clone();
    let task = tokio::spawn(async move {
        let on_line = move |s: Stream, l: String| {
            let _ = tx.send((s, l));
        };
        run_command(&LocalExecutor, &spec, &on_line, &token, grace).await
    });
    (task, rx, cancel)
}

async fn expect_line(rx: &mut mpsc::UnboundedReceiver<(Stream, String)>, want: &str) {
    let got = tokio::time::timeout(Duration::from_secs(3), rx.recv())
        .await
        .expect("a line within 3s")
        .expect("channel open");
    assert_eq!(got, (Stream::Stdout, want.to_owned()));
}

#[tokio::test]
async fn zero_exit_is_success_and_nonzero_is_an_error_with_the_status() {
    let (res, _) = run(CommandSpec::new("true"), GRACE).await;
    assert!(res.is_ok(), "{res:?}");

    let (res, _) = run(CommandSpec::new("exit 3"), GRACE).await;
    let err = res.expect_err("exit 3 fails");
    assert!(matches!(err, CommandError::Exit { code: 3 }), "{err:?}");
    assert!(err.to_string().contains("exited with status 3"), "{err}");

    let (res, _) = run(CommandSpec::new("no-such-command-milo-test"), GRACE).await;
    let err = res.expect_err("unknown command fails");
    assert!(err.to_string().contains("status 127 (command not found"), "{err}");
}

#[tokio::test]
async fn death_by_signal_names_the_signal() {
    let (res, _) = run(CommandSpec::new("kill -9 $$"), GRACE).await;
    let err = res.expect_err("killed");
    assert!(
        matches!(&err, CommandError::Signal { signal } if signal == "SIGKILL"),
        "{err:?}"
    );
    assert!(err.to_string().contains("killed by signal SIGKILL"), "{err}");
}

#[tokio::test]
async fn stdout_and_stderr_are_captured_on_the_right_stream() {
    let (res, lines) = run(
        CommandSpec::new("echo out1; echo err1 >&2; echo out2; printf 'err2\\r\\nlast' >&2"),
        GRACE,
    )
    .await;
    assert!(res.is_ok(), "{res:?}");
    assert_eq!(texts(&lines, Stream::Stdout), ["out1", "out2"]);
    assert_eq!(texts(&lines, Stream::Stderr), ["err1", "err2", "last"]);
}

#[tokio::test]
async fn lines_arrive_while_the_command_runs() {
    let mark = marker();
    let started = Instant::now();
    let (task, mut rx, cancel) = start(CommandSpec::new(format!("echo ready; sleep {mark}; echo never")), GRACE);
    expect_line(&mut rx, "ready").await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(!task.is_finished());
    cancel.cancel();
    let res = task.await.expect("no panic");
    assert!(matches!(res, Err(CommandError::Cancelled)), "{res:?}");
}

#[tokio::test]
async fn cancel_terminates_the_command_and_its_grandchildren() {
    let mark = marker();
    let (task, _rx, cancel) = start(
        CommandSpec::new(format!("sleep {mark} & sleep {mark}; echo never")),
        GRACE,
    );
    wait_running(&mark, 2).await;
    let t = Instant::now();
    cancel.cancel();
    let res = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("cancel completes within 5s")
        .expect("no panic");
    assert!(matches!(res, Err(CommandError::Cancelled)), "{res:?}");
    let err = res.expect_err("cancelled");
    assert!(err.to_string().contains("cancelled"), "{err}");
    // SIGTERM sufficed: no need to wait for the grace period.
    assert!(t.elapsed() < Duration::from_secs(3), "took {:?}", t.elapsed());
    assert_eq!(running(&mark), Vec::<String>::new());
}

#[tokio::test]
async fn a_command_ignoring_sigterm_is_killed_after_the_grace() {
    let mark = marker();
    let grace = Duration::from_millis(500);
    let (task, mut rx, cancel) = start(
        CommandSpec::new(format!("trap '' TERM; sleep {mark} & echo ready; wait")),
        grace,
    );
    expect_line(&mut rx, "ready").await;
    wait_running(&mark, 1).await;
    let t = Instant::now();
    cancel.cancel();
    let res = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("cancel completes within 5s")
        .expect("no panic");
    assert!(matches!(res, Err(CommandError::Cancelled)), "{res:?}");
    assert!(t.elapsed() >= grace, "SIGKILL came before the grace: {:?}", t.elapsed());
    assert!(t.elapsed() < Duration::from_secs(4), "took {:?}", t.elapsed());
    assert_eq!(running(&mark), Vec::<String>::new());
}

#[tokio::test]
async fn leftover_background_processes_are_terminated_when_the_main_exits() {
    // The background sleep keeps stdout open: reading to EOF alone would hang.
    let mark = marker();
    let t = Instant::now();
    let (res, lines) = tokio::time::timeout(
        Duration::from_secs(5),
        run(CommandSpec::new(format!("sleep {mark} & echo started; exit 4")), GRACE),
    )
    .await
    .expect("does not hang on the inherited pipe");
    assert!(matches!(res, Err(CommandError::Exit { code: 4 })), "{res:?}");
    assert_eq!(texts(&lines, Stream::Stdout), ["started"]);
    assert!(t.elapsed() < Duration::from_secs(3), "took {:?}", t.elapsed());
    assert_eq!(running(&mark), Vec::<String>::new());
}

#[tokio::test]
async fn a_leftover_ignoring_sigterm_is_killed_after_the_grace() {
    let mark = marker();
    let grace = Duration::from_millis(300);
    let t = Instant::now();
    let (res, lines) = tokio::time::timeout(
        Duration::from_secs(5),
        run(
            CommandSpec::new(format!("(trap '' TERM; sleep {mark}) & sleep 0.2; echo main done")),
            grace,
        ),
    )
    .await
    .expect("does not hang");
    assert!(res.is_ok(), "{res:?}");
    assert_eq!(texts(&lines, Stream::Stdout), ["main done"]);
    assert!(t.elapsed() >= grace);
    assert!(t.elapsed() < Duration::from_secs(4), "took {:?}", t.elapsed());
    assert_eq!(running(&mark), Vec::<String>::new());
}

#[tokio::test]
async fn dropping_the_run_kills_the_group() {
    let mark = marker();
    let (task, _rx, _cancel) = start(CommandSpec::new(format!("sleep {mark} & sleep {mark}")), GRACE);
    wait_running(&mark, 2).await;
    task.abort();
    let _ = task.await;
    let t = Instant::now();
    while !running(&mark).is_empty() {
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", running(&mark));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn binary_output_is_decoded_lossily() {
    let (res, lines) = run(CommandSpec::new(r"printf '\377\376abc\n\000x\n'"), GRACE).await;
    assert!(res.is_ok(), "{res:?}");
    assert_eq!(texts(&lines, Stream::Stdout), ["\u{fffd}\u{fffd}abc", "\0x"]);

    let (res, lines) = run(CommandSpec::new("head -c 200000 /dev/urandom"), GRACE).await;
    assert!(res.is_ok(), "{res:?}");
    assert!(!lines.is_empty());
    assert!(lines.iter().all(|(_, l)| l.len() < MAX_LINE_BYTES + 100));
}

#[tokio::test]
async fn a_long_line_is_truncated() {
    let (res, lines) = run(
        CommandSpec::new("head -c 1000000 /dev/zero | tr '\\0' x; echo; echo after"),
        GRACE,
    )
    .await;
    assert!(res.is_ok(), "{res:?}");
    let out = texts(&lines, Stream::Stdout);
    assert_eq!(out.len(), 2, "{:?}", out.iter().map(|l| l.len()).collect::<Vec<_>>());
    let omitted = 1_000_000 - MAX_LINE_BYTES;
    assert_eq!(
        out[0],
        format!(
            "{} … [line truncated: {omitted} bytes omitted]",
            "x".repeat(MAX_LINE_BYTES)
        )
    );
    assert_eq!(out[1], "after");
}

#[tokio::test]
async fn cwd_and_env_are_applied() {
    let dir = std::env::temp_dir().join(format!("milo-executor-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let spec = CommandSpec::new("pwd -P; echo \"$MILO_TEST_VAR\"")
        .cwd(&dir)
        .env("MILO_TEST_VAR", "hello there");
    let (res, lines) = run(spec, GRACE).await;
    let _ = std::fs::remove_dir(&dir);
    assert!(res.is_ok(), "{res:?}");
    let out = texts(&lines, Stream::Stdout);
    let canonical = dir.canonicalize().unwrap_or(dir.clone());
    assert_eq!(PathBuf::from(out[0]), canonical);
    assert_eq!(out[1], "hello there");
}

#[tokio::test]
async fn a_missing_cwd_is_a_clear_spawn_error() {
    let dir = PathBuf::from("/nonexistent/milo-executor-test");
    let (res, lines) = run(CommandSpec::new("true").cwd(&dir), GRACE).await;
    let err = res.expect_err("missing cwd");
    assert!(matches!(err, CommandError::Spawn { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("/nonexistent/milo-executor-test"), "{msg}");
    assert!(msg.contains("working directory"), "{msg}");
    assert!(msg.contains("create it"), "{msg}");
    assert!(lines.is_empty());
}

#[tokio::test]
async fn uncaptured_output_passes_through_without_lines() {
    let (res, lines) = run(CommandSpec::new("echo passthrough").capture(false), GRACE).await;
    assert!(res.is_ok(), "{res:?}");
    assert!(lines.is_empty());

    let (res, _) = run(CommandSpec::new("exit 2").capture(false), GRACE).await;
    assert!(matches!(res, Err(CommandError::Exit { code: 2 })), "{res:?}");
}
