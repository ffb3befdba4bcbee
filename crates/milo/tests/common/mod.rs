//! Helpers shared by the executor tests (`mod common;` in a test file).

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use milo::capture::Stream;
use milo::executor::{CommandError, CommandSpec, LocalExecutor, run_command};
use tokio_util::sync::CancellationToken;

/// Runs `spec` to completion, returning the result and the captured lines.
pub async fn run(spec: CommandSpec, grace: Duration) -> (Result<(), CommandError>, Vec<(Stream, String)>) {
    let lines = Mutex::new(Vec::new());
    let on_line = |s: Stream, l: String| lines.lock().expect("not poisoned").push((s, l));
    let cancel = CancellationToken::new();
    let res = run_command(&LocalExecutor, &spec, &on_line, &cancel, grace).await;
    (res, lines.into_inner().expect("not poisoned"))
}

/// The lines of `stream`, in order.
pub fn texts(lines: &[(Stream, String)], stream: Stream) -> Vec<&str> {
    lines
        .iter()
        .filter(|(s, _)| *s == stream)
        .map(|(_, l)| l.as_str())
        .collect()
}

/// A `sleep` duration unique to this test run and call, so `pgrep -f` finds only our processes.
pub fn marker() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("300.{}{:03}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}
