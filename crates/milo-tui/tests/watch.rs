//! The TUI of a watch drawn by `milo_tui::render_watch` into ratatui's `TestBackend`: the
//! cycle's banner (number, changed paths, services, waiting) above the cycle's pipeline.

use std::sync::Arc;

use milo::Store;
use milo::pipeline::{Phase, Pipeline, PipelineAction, PipelineViewState, make_detail_reducer};
use milo_tui::{Cycle, WatchStatus};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn pipeline() -> Pipeline {
    let noop = |_cx| async { Ok::<_, String>(()) };
    Pipeline::new(
        "app",
        [
            Phase::new_async("compile", noop).description("Compile the sources"),
            Phase::new_async("test", noop)
                .depends_on(["compile"])
                .description("Run the tests"),
        ],
    )
    .expect("a valid pipeline")
}

/// A cycle of [`pipeline`] with the actions `actions` applied, and its view state.
fn cycle(number: u64, changed: &[&str], actions: Vec<PipelineAction>) -> (Cycle, Arc<PipelineViewState>) {
    let pipeline = pipeline();
    let store = pipeline.store().expect("a store");
    for a in actions {
        store.dispatch(a).expect("dispatch");
    }
    let view = Store::new(
        make_detail_reducer(pipeline.build_reducer()),
        Some(PipelineViewState::new(store.get_state())),
    )
    .expect("a view store");
    let cycle = Cycle {
        number,
        changed: changed.iter().map(|s| (*s).to_owned()).collect(),
        store,
    };
    (cycle, view.get_state())
}

fn start() -> PipelineAction {
    PipelineAction::PipelineStart {
        started_at: None,
        name: "app".into(),
        timestamp: 0.0,
    }
}

fn phase_start(name: &str) -> PipelineAction {
    PipelineAction::PhaseStart {
        name: name.into(),
        attempt: 1,
        timestamp: 0.5,
    }
}

fn complete(name: &str, timestamp: f64) -> PipelineAction {
    PipelineAction::PhaseComplete {
        name: name.into(),
        result: Arc::new(serde_json::Value::Null),
        timestamp,
        reused_from: None,
    }
}

fn rows(status: &WatchStatus, view: &PipelineViewState, width: u16, height: u16) -> Vec<String> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("a test terminal");
    terminal
        .draw(|frame| milo_tui::render_watch(frame, status, view, 1.0, 0))
        .expect("draw");
    let buffer = terminal.backend().buffer();
    (0..height)
        .map(|y| {
            (0..width)
                .map(|x| buffer[(x, y)].symbol())
                .collect::<String>()
                .trim_end()
                .to_owned()
        })
        .collect()
}

fn dump(rows: &[String]) -> String {
    rows.iter().enumerate().map(|(i, r)| format!("{i:>2}|{r}\n")).collect()
}

#[test]
fn a_running_cycle_names_its_number_and_the_changed_paths() {
    let (cycle, view) = cycle(3, &["src/main.c", "src/util.h"], vec![start(), phase_start("compile")]);
    let status = WatchStatus {
        cycle: Some(cycle),
        waiting: false,
        services: vec!["db".into()],
        note: None,
    };
    let rows = rows(&status, &view, 80, 12);
    assert_eq!(rows[0], " cycle 3 — src/main.c, src/util.h changed", "{}", dump(&rows));
    assert_eq!(rows[1], " running the cycle · services up: db", "{}", dump(&rows));
    // The cycle's pipeline below the banner: its header, then its phases.
    assert!(rows[2].starts_with(" app running"), "{}", dump(&rows));
    assert!(rows.iter().any(|r| r.contains("compile")), "{}", dump(&rows));
    assert!(
        !rows.iter().any(|r| r.contains("watching for changes")),
        "{}",
        dump(&rows)
    );
}

#[test]
fn between_cycles_it_is_watching_with_the_services_up() {
    let (cycle, view) = cycle(
        1,
        &[],
        vec![
            start(),
            phase_start("compile"),
            complete("compile", 1.0),
            phase_start("test"),
            complete("test", 2.0),
            PipelineAction::PipelineComplete { timestamp: 2.0 },
        ],
    );
    let status = WatchStatus {
        cycle: Some(cycle),
        waiting: true,
        services: vec!["db".into(), "web".into()],
        note: None,
    };
    let rows = rows(&status, &view, 80, 12);
    // The first cycle: nothing changed, it is the first run.
    assert_eq!(rows[0], " cycle 1", "{}", dump(&rows));
    assert_eq!(
        rows[1],
        " watching for changes · services up: db, web · q stops",
        "{}",
        dump(&rows)
    );
    assert!(rows[2].starts_with(" app completed"), "{}", dump(&rows));
}

#[test]
fn many_paths_are_cut_and_nothing_from_outside_reaches_the_terminal_as_escapes() {
    let paths = ["a.c", "b\u{1b}[2J.c", "c.c", "d.c", "e.c"];
    let (cycle, view) = cycle(7, &paths, vec![start()]);
    let status = WatchStatus {
        cycle: Some(cycle),
        waiting: false,
        services: vec!["d\u{1b}]0;title\u{7}b".into()],
        note: Some("`compile` interrupted\u{1b}[31m (on_change = \"restart\")\nsecond line".into()),
    };
    let rows = rows(&status, &view, 120, 12);
    assert_eq!(
        rows[0],
        " cycle 7 — a.c, b.c, c.c, (+2 more) changed",
        "{}",
        dump(&rows)
    );
    assert_eq!(
        rows[1],
        " running the cycle · services up: db · `compile` interrupted (on_change = \"restart\")",
        "{}",
        dump(&rows)
    );
}

#[test]
fn a_short_terminal_keeps_the_cycle_line_and_tiny_ones_draw_without_panicking() {
    let (cycle, view) = cycle(2, &["src/main.c"], vec![start()]);
    let status = WatchStatus {
        cycle: Some(cycle),
        waiting: true,
        services: Vec::new(),
        note: None,
    };
    let short = rows(&status, &view, 60, 5);
    assert_eq!(short[0], " cycle 2 — src/main.c changed", "{}", dump(&short));
    assert!(short[1].starts_with(" app"), "{}", dump(&short));
    for (w, h) in [(0, 0), (1, 1), (10, 1), (10, 2), (3, 8), (80, 8)] {
        let _ = rows(&status, &view, w, h);
    }
}

#[tokio::test]
async fn run_tui_cycles_refuses_when_stdout_is_not_a_terminal() {
    use std::io::IsTerminal;
    if std::io::stdout().is_terminal() {
        // Run by hand in a terminal: this would open the TUI, which is not the point here.
        return;
    }
    let (cycle, _) = cycle(1, &[], vec![start()]);
    let (_tx, rx) = tokio::sync::watch::channel(WatchStatus {
        cycle: Some(cycle),
        ..WatchStatus::default()
    });
    let stop = tokio_util::sync::CancellationToken::new();
    let err = milo_tui::run_tui_cycles(rx, stop.clone(), milo::pipeline::Eta::from_weights(1))
        .await
        .expect_err("no terminal");
    assert!(matches!(err, milo_tui::TuiError::NotATerminal), "{err:?}");
    assert!(!stop.is_cancelled());
}
