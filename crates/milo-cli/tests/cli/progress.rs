//! The progress view drawn into an in-memory 60×20 terminal (vt100), from states built by
//! dispatching actions into a store, as a run would.

use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;
use std::sync::Arc;

use milo::Store;
use milo::capture::Stream;
use milo::pipeline::{Phase, PhaseContext, PhasePolicy, Pipeline, PipelineAction as A, PipelineState};
use milo_cli::views::progress::{Drawer, live_lines};

const COLS: u16 = 60;
const ROWS: u16 = 20;

fn ok(_: &PhaseContext) -> Result<(), String> {
    Ok(())
}

/// A store for: discover → {render ×3 weight, fetch (retry 3), broken, slow}, lint (skip).
/// Total weight 8, so each weight-1 phase is 12.5%.
fn store() -> Store<PipelineState, A> {
    let pipeline = Pipeline::new(
        "site",
        [
            Phase::new("discover", ok),
            Phase::new("lint", ok).policy(PhasePolicy::skip()),
            Phase::new("render", ok)
                .depends_on(["discover"])
                .parallel(true)
                .weight(3),
            Phase::new("fetch", ok)
                .depends_on(["discover"])
                .parallel(true)
                .policy(PhasePolicy::retry(3)),
            Phase::new("broken", ok).depends_on(["discover"]).parallel(true),
            Phase::new("slow", ok).depends_on(["discover"]).parallel(true),
        ],
    )
    .unwrap();
    let store = Store::new(pipeline.build_reducer(), None).unwrap();
    store
        .dispatch(A::PipelineStart {
            started_at: None,
            name: "site".into(),
            timestamp: 0.0,
        })
        .unwrap();
    store
}

fn start(s: &Store<PipelineState, A>, name: &str, attempt: u32, t: f64) {
    s.dispatch(A::PhaseStart {
        name: name.into(),
        attempt,
        timestamp: t,
    })
    .unwrap();
}

fn log(s: &Store<PipelineState, A>, name: &str, line: &str, t: f64) {
    s.dispatch(A::PhaseLog {
        name: name.into(),
        line: line.into(),
        stream: Stream::Stdout,
        timestamp: t,
    })
    .unwrap();
}

fn complete(s: &Store<PipelineState, A>, name: &str, t: f64) {
    s.dispatch(A::PhaseComplete {
        name: name.into(),
        result: Arc::new(serde_json::Value::Null),
        timestamp: t,
        reused_from: None,
    })
    .unwrap();
}

/// discover done (1s), lint skipped, render running with logs, fetch on attempt 2 of 4.
fn midway() -> Store<PipelineState, A> {
    let s = store();
    start(&s, "discover", 1, 0.0);
    log(&s, "discover", "found 8 pages", 0.5);
    complete(&s, "discover", 1.0);
    start(&s, "lint", 1, 1.0);
    log(&s, "lint", "style violations", 1.2);
    s.dispatch(A::PhaseSkipped {
        name: "lint".into(),
        error: "command exited with status 1".into(),
        timestamp: 1.5,
    })
    .unwrap();
    start(&s, "render", 1, 1.0);
    log(&s, "render", "rendered page1.html", 1.5);
    log(&s, "render", "rendered page2.html", 2.0);
    start(&s, "fetch", 1, 1.0);
    s.dispatch(A::PhaseRetry {
        name: "fetch".into(),
        attempt: 1,
        error: "network unreachable".into(),
        max_retries: 3,
        delay: 0.2,
        timestamp: 1.2,
    })
    .unwrap();
    start(&s, "fetch", 2, 1.4);
    log(&s, "fetch", "connecting to mirror", 1.5);
    s
}

/// A `Vec<u8>` the test can read while the drawer owns a handle to it.
#[derive(Clone, Default)]
struct Shared(Rc<RefCell<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A terminal the drawer writes to: the bytes go through the tty's `\n` → `\r\n` (ONLCR)
/// into a vt100 screen.
struct Term {
    drawer: Drawer<Shared>,
    bytes: Shared,
    parser: vt100::Parser,
}

impl Term {
    fn new() -> Self {
        let bytes = Shared::default();
        Self {
            drawer: Drawer::new(bytes.clone()),
            bytes,
            parser: vt100::Parser::new(ROWS, COLS, 0),
        }
    }

    /// Draws a frame and returns the screen's text.
    fn frame(&mut self, state: &PipelineState, now: f64, last: bool) -> String {
        self.drawer.frame(state, now, COLS as usize, last).unwrap();
        let bytes = std::mem::take(&mut *self.bytes.0.borrow_mut());
        let text = String::from_utf8(bytes).expect("the drawer writes UTF-8");
        // Besides text and colours, the drawer only writes its own `ESC [ n A \r ESC [ J`.
        let own = text.replace("A\r\x1b[J", "");
        for forbidden in ["\x1b]", "\x07", "\x1b[2J", "\x1b[H", "\r"] {
            assert!(!own.contains(forbidden), "the drawer wrote {forbidden:?}: {text:?}");
        }
        self.parser.process(text.replace('\n', "\r\n").as_bytes());
        self.screen()
    }

    fn screen(&self) -> String {
        self.parser.screen().contents()
    }

    fn rows(&self) -> Vec<String> {
        self.parser.screen().rows(0, COLS).collect()
    }
}

#[test]
fn live_lines_show_the_bar_and_running_phases() {
    let s = midway();
    let lines = live_lines(&s.get_state(), 3.0, COLS as usize, 0);
    insta::assert_snapshot!(lines.join("\n"), @r"
    site [████████████░░░░░░░░]  61%  3s  ETA 3s
    ⠋ fetch  2s (2/4)  connecting to mirror
    ⠋ render  2s  rendered page2.html
    ");
    for l in &lines {
        assert!(l.chars().count() <= COLS as usize, "too wide: {l}");
    }
}

#[test]
fn narrow_terminals_cut_lines_with_an_ellipsis() {
    let s = midway();
    log(&s, "render", &"x".repeat(200), 2.5);
    for width in [20, 30, 45] {
        for l in live_lines(&s.get_state(), 3.0, width, 0) {
            assert!(l.chars().count() <= width, "wider than {width}: {l}");
        }
    }
    let lines = live_lines(&s.get_state(), 3.0, 30, 0);
    assert!(lines[1].ends_with('…'), "{lines:?}");
}

#[test]
fn the_screen_shows_finished_and_running_phases() {
    let s = midway();
    let mut term = Term::new();
    let screen = term.frame(&s.get_state(), 3.0, false);
    let rows = term.rows();
    assert!(rows[0].starts_with("✓ discover  1s"), "{screen}");
    assert!(
        rows[1].starts_with("↷ lint  500ms: command exited with status 1"),
        "{screen}"
    );
    // 2 of 8 finished, render 2 s into its expected 3 s (1 s per unit of weight, from
    // discover), fetch past its expected second (counted as 95% done).
    assert!(rows[2].starts_with("site [") && rows[2].contains(" 61%"), "{screen}");
    assert!(rows[3].contains("fetch  2s (2/4)  connecting to mirror"), "{screen}");
    assert!(rows[4].contains("render  2s  rendered page2.html"), "{screen}");
    assert!(rows[5..].iter().all(|r| r.trim().is_empty()), "{screen}");
}

#[test]
fn a_retrying_phase_shows_its_attempt_while_it_waits() {
    let s = store();
    start(&s, "discover", 1, 0.0);
    s.dispatch(A::PhaseRetry {
        name: "discover".into(),
        attempt: 1,
        error: "boom".into(),
        max_retries: 0,
        delay: 1.0,
        timestamp: 0.5,
    })
    .unwrap();
    let lines = live_lines(&s.get_state(), 1.0, COLS as usize, 3);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[1].starts_with("↻ discover  1s (1/1)"), "{lines:?}");
}

#[test]
fn redraws_replace_the_live_area_instead_of_scrolling() {
    let s = midway();
    let mut term = Term::new();
    let first = term.frame(&s.get_state(), 3.0, false);
    for i in 1..=30 {
        log(
            &s,
            "render",
            &format!("rendered page{}.html", i + 2),
            3.0 + i as f64 * 0.1,
        );
        term.frame(&s.get_state(), 3.0 + i as f64 * 0.1, false);
    }
    let screen = term.screen();
    assert_eq!(screen.matches("site [").count(), 1, "the bar is drawn once:\n{screen}");
    assert_eq!(screen.matches("✓ discover").count(), 1, "{screen}");
    assert_eq!(screen.matches("render  ").count(), 1, "{screen}");
    assert!(screen.contains("rendered page32.html"), "{screen}");
    assert!(!screen.contains("rendered page31.html"), "{screen}");
    assert_eq!(
        screen.lines().filter(|l| !l.trim().is_empty()).count(),
        first.lines().filter(|l| !l.trim().is_empty()).count(),
        "the screen grew:\nbefore:\n{first}\nafter:\n{screen}"
    );
    assert_eq!(term.parser.screen().cursor_position(), (5, 0));
    // The spinner moves between frames.
    let spinner = |t: &Term| t.rows()[3].chars().next();
    let before = spinner(&term);
    term.frame(&s.get_state(), 7.0, false);
    assert_ne!(spinner(&term), before, "{}", term.screen());
}

#[test]
fn finished_phases_move_above_the_bar_with_symbols_and_durations() {
    let s = midway();
    let mut term = Term::new();
    term.frame(&s.get_state(), 3.0, false);
    start(&s, "broken", 1, 3.0);
    for i in 1..=12 {
        log(&s, "broken", &format!("error line {i}"), 3.0 + i as f64 * 0.01);
    }
    s.dispatch(A::PhaseFailed {
        name: "broken".into(),
        error: "command exited with status 2".into(),
        timestamp: 3.5,
    })
    .unwrap();
    term.frame(&s.get_state(), 3.5, false);
    start(&s, "slow", 1, 3.5);
    term.frame(&s.get_state(), 3.6, false);
    s.dispatch(A::PhaseCancelled {
        name: "slow".into(),
        timestamp: 4.0,
    })
    .unwrap();
    complete(&s, "render", 4.25);
    term.frame(&s.get_state(), 4.3, false);
    let screen = term.screen();
    let rows = term.rows();
    let expected_top = [
        "✓ discover  1s",
        "↷ lint  500ms: command exited with status 1",
        "✗ broken  500ms: command exited with status 2",
        "    │ error line 3",
    ];
    for (row, want) in rows.iter().zip(expected_top) {
        assert!(row.starts_with(want), "{row:?} should start with {want:?}:\n{screen}");
    }
    // The failed phase's last 10 lines, and only those.
    assert!(!screen.contains("error line 2\n"), "{screen}");
    assert!(screen.contains("    │ error line 12"), "{screen}");
    let pos = |s: &str| {
        rows.iter()
            .position(|r| r.starts_with(s))
            .unwrap_or_else(|| panic!("{s}:\n{screen}"))
    };
    assert!(pos("⊘ slow  500ms") > pos("    │ error line 12"));
    assert!(pos("✓ render  3.25s") > pos("    │ error line 12"));
    let bar = pos("site [");
    assert!(bar > pos("✓ render"), "finished lines stay above the bar:\n{screen}");
    // 1 + 1 + 3 of 8 done = 62.5%; only fetch is still running.
    assert!(rows[bar].contains(" 62%"), "{screen}");
    assert!(rows[bar + 1].contains("fetch  3.3s (2/4)"), "{screen}");
    assert!(rows[bar + 2].trim().is_empty(), "{screen}");
    assert_eq!(screen.matches("✗ broken").count(), 1);
}

#[test]
fn the_last_frame_drops_the_live_area() {
    let s = midway();
    let mut term = Term::new();
    term.frame(&s.get_state(), 3.0, false);
    complete(&s, "render", 3.5);
    start(&s, "fetch", 2, 3.5);
    complete(&s, "fetch", 3.6);
    s.dispatch(A::PipelineComplete { timestamp: 3.7 }).unwrap();
    let screen = term.frame(&s.get_state(), 3.7, true);
    assert!(!screen.contains("site ["), "{screen}");
    assert!(screen.contains("✓ render  2.5s"), "{screen}");
    assert!(screen.contains("✓ fetch  2.6s  (2 attempts)"), "{screen}");
    assert_eq!(term.parser.screen().cursor_position(), (4, 0), "{screen}");
}

/// A phase named with ESC and BEL (OSC 0, a window title), failing with an error and logging
/// lines that hold a screen erase, an OSC 52 clipboard write and a bare `\r`.
fn hostile() -> Store<PipelineState, A> {
    let evil = "ev\x1b]0;title\x07il\x1b[2J";
    let pipeline = Pipeline::new("p\x1b[Hwn", [Phase::new(evil, ok)]).unwrap();
    let s = Store::new(pipeline.build_reducer(), None).unwrap();
    s.dispatch(A::PipelineStart {
        started_at: None,
        name: "p\x1b[Hwn".into(),
        timestamp: 0.0,
    })
    .unwrap();
    start(&s, evil, 1, 0.0);
    log(&s, evil, "\x1b]52;c;ZXZpbA==\x07clip\x1b[2J\x1b[Hboard", 0.1);
    log(&s, evil, "junk\r[x] completed in 1s", 0.2);
    s
}

#[test]
fn names_errors_and_logs_cannot_drive_the_terminal() {
    let s = hostile();
    let mut term = Term::new();
    term.frame(&s.get_state(), 0.5, false);
    s.dispatch(A::PhaseFailed {
        name: "ev\x1b]0;title\x07il\x1b[2J".into(),
        error: "bad\x1b[1A\x1b[Kthing\x07".into(),
        timestamp: 1.0,
    })
    .unwrap();
    term.frame(&s.get_state(), 1.0, true);
    let rows = term.rows();
    let screen = term.screen();
    assert!(rows[0].starts_with("✗ evil  1s: badthing"), "{screen}");
    assert!(rows.iter().any(|r| r.contains("│ clipboard")), "{screen}");
    assert!(rows.iter().any(|r| r.contains("│ junk[x] completed in 1s")), "{screen}");
    assert_eq!(term.parser.screen().title(), "", "the title was set");
    // Three lines printed, the cursor under them: nothing moved it.
    assert_eq!(term.parser.screen().cursor_position(), (3, 0), "{screen}");
}

#[test]
fn the_plain_view_sanitises_names_and_errors_and_marks_output() {
    use milo::capture::Stream;
    use milo_cli::color::Palette;
    use milo_cli::views::plain::{line, log_line};
    let s = hostile();
    let state = s.get_state();
    let failed = A::PhaseFailed {
        name: "ev\x1b]0;title\x07il\x1b[2J".into(),
        error: "bad\x1b[1A\rthing\x07".into(),
        timestamp: 1.0,
    };
    assert_eq!(
        line(&failed, &state, Palette::plain()).as_deref(),
        Some("[evil] failed after 0ms: badthing")
    );
    let start = A::PipelineStart {
        started_at: None,
        name: "p\x1b[Hwn".into(),
        timestamp: 0.0,
    };
    assert_eq!(
        line(&start, &state, Palette::plain()).as_deref(),
        Some("milo: running pwn (1 phase)")
    );
    assert_eq!(
        log_line("ev\x1b]0;t\x07il", Stream::Stdout, "a\rb\x1b[2Jc", Palette::plain()),
        "[evil] │ abc"
    );
    assert_eq!(
        log_line("evil", Stream::Stderr, "\x1b[31mred\x1b[0m", Palette::plain()),
        "[evil] ! red"
    );
    // On a colour terminal the phase's own colours stay, closed at the end of the line.
    let coloured = log_line("evil", Stream::Stdout, "\x1b[31mred", Palette::new(true));
    assert!(coloured.ends_with("\x1b[31mred\x1b[0m"), "{coloured:?}");
}

/// `build`, then `test` as a matrix of four instances (one group), then `publish`.
fn matrix_store() -> Store<PipelineState, A> {
    let group = Arc::new(milo::pipeline::PhaseGroup {
        name: "test".into(),
        max_parallel: None,
        fail_fast: false,
    });
    let names = ["test[n=1]", "test[n=2]", "test[n=3]", "test[n=4]"];
    let mut phases = vec![Phase::new("build", ok)];
    for n in names {
        phases.push(
            Phase::new(n, ok)
                .depends_on(["build"])
                .parallel(true)
                .group(group.clone()),
        );
    }
    phases.push(Phase::new("publish", ok).depends_on(names));
    let pipeline = Pipeline::new("m", phases).unwrap();
    let store = Store::new(pipeline.build_reducer(), None).unwrap();
    store
        .dispatch(A::PipelineStart {
            started_at: None,
            name: "m".into(),
            timestamp: 0.0,
        })
        .unwrap();
    start(&store, "build", 1, 0.0);
    complete(&store, "build", 1.0);
    store
}

#[test]
fn matrix_instances_are_listed_under_their_phase_with_counts() {
    let s = matrix_store();
    start(&s, "test[n=1]", 1, 1.0);
    start(&s, "test[n=2]", 1, 1.0);
    start(&s, "test[n=3]", 1, 1.0);
    complete(&s, "test[n=1]", 1.5);
    s.dispatch(A::PhaseFailed {
        name: "test[n=3]".into(),
        error: "command exited with status 1".into(),
        timestamp: 1.6,
    })
    .unwrap();
    let lines = live_lines(&s.get_state(), 2.0, COLS as usize, 0);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[1], "⠋ test (2/4 done, 1 failed, 1 running)");
    assert_eq!(lines[2], "  ⠋ test[n=2]  1s");
    // Until the group ends, its finished instances are not printed one by one.
    let mut term = Term::new();
    let screen = term.frame(&s.get_state(), 2.0, false);
    assert!(screen.starts_with("✓ build  1s\nm ["), "{screen}");
    assert!(
        !screen.contains("test[n=1]") && !screen.contains("test[n=3]"),
        "{screen}"
    );
}

#[test]
fn a_finished_matrix_phase_collapses_to_one_line_with_its_failures_beneath() {
    let s = matrix_store();
    let mut term = Term::new();
    for n in 1..=4 {
        start(&s, &format!("test[n={n}]"), 1, 1.0);
    }
    term.frame(&s.get_state(), 1.2, false);
    for n in [1, 2, 4] {
        complete(&s, &format!("test[n={n}]"), 1.5);
    }
    s.dispatch(A::PhaseFailed {
        name: "test[n=3]".into(),
        error: "command exited with status 1".into(),
        timestamp: 2.0,
    })
    .unwrap();
    start(&s, "publish", 1, 2.0);
    let screen = term.frame(&s.get_state(), 2.5, false);
    let rows = term.rows();
    assert_eq!(rows[0].trim_end(), "✓ build  1s", "{screen}");
    assert_eq!(
        rows[1].trim_end(),
        "✗ test  4 instances: 3 completed, 1 failed",
        "{screen}"
    );
    assert_eq!(
        rows[2].trim_end(),
        "    ✗ test[n=3]  1s: command exited with status 1",
        "{screen}"
    );
    assert!(rows[3].starts_with("m ["), "{screen}");
    assert!(rows[4].starts_with("⠙ publish"), "{screen}");
    assert!(rows[5].trim().is_empty(), "{screen}");
    assert_eq!(
        screen.matches("test[").count(),
        1,
        "only the failure is named:\n{screen}"
    );
    // Later frames do not print the group again.
    complete(&s, "publish", 3.0);
    let screen = term.frame(&s.get_state(), 3.0, true);
    assert_eq!(screen.matches("✗ test  4 instances").count(), 1, "{screen}");
}
