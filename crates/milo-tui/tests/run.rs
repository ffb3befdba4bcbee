//! `milo_tui::run_tui` outside a terminal: it refuses before touching anything.

use std::io::IsTerminal;

use milo::pipeline::{Phase, Pipeline};
use milo_tui::TuiError;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn refuses_when_stdout_is_not_a_terminal() {
    if std::io::stdout().is_terminal() {
        // Run by hand in a terminal: this would open the TUI, which is not the point here.
        return;
    }
    let noop = |_cx| async { Ok::<_, String>(()) };
    let pipeline = Pipeline::new("p", [Phase::new_async("a", noop)]).expect("a pipeline");
    let store = pipeline.store().expect("a store");
    let err = milo_tui::run_tui(store, CancellationToken::new())
        .await
        .expect_err("no terminal");
    assert!(matches!(err, TuiError::NotATerminal), "{err:?}");
    assert!(err.to_string().contains("not one"), "{err}");
}
