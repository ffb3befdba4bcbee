//! Snapshots of the detail TUI drawn by `milo_tui::render` into ratatui's `TestBackend`, from
//! states built by dispatching pipeline actions and keys into a view store.

use std::sync::Arc;

use milo::Store;
use milo::capture::Stream;
use milo::pipeline::{
    Key, OnFail, Phase, PhasePolicy, Pipeline, PipelineAction, PipelineViewState, ViewAction, ViewEvent,
    make_detail_reducer,
};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::layout::Rect;
use ratatui::style::Color;

/// The example pipeline: discover → parse → {assets, render} → write.
fn pipeline() -> Pipeline {
    let noop = |_cx| async { Ok::<_, String>(()) };
    Pipeline::new(
        "site",
        [
            Phase::new_async("discover", noop).description("Find the source files"),
            Phase::new_async("parse", noop)
                .depends_on(["discover"])
                .description("Parse front matter and markdown")
                .weight(3),
            Phase::new_async("render", noop)
                .depends_on(["parse"])
                .parallel(true)
                .description("Render the pages")
                .weight(4),
            Phase::new_async("assets", noop)
                .depends_on(["parse"])
                .parallel(true)
                .description("Copy static assets")
                .policy(PhasePolicy {
                    on_fail: OnFail::Retry,
                    max_retries: 3,
                    ..PhasePolicy::default()
                }),
            Phase::new_async("write", noop)
                .depends_on(["render", "assets"])
                .description("Write the output directory"),
        ],
    )
    .expect("a valid pipeline")
}

/// A view store over [`pipeline`], driven by hand.
struct Harness {
    store: Store<PipelineViewState, ViewAction>,
}

impl Harness {
    fn new() -> Self {
        let store = Store::new(make_detail_reducer(pipeline().build_reducer()), None).expect("a store");
        Self { store }
    }

    fn put(&self, action: PipelineAction) -> &Self {
        self.store.dispatch(action.into()).expect("dispatch");
        self
    }

    fn key(&self, key: Key) -> &Self {
        self.store.dispatch(key.into()).expect("dispatch");
        self
    }

    fn start(&self) -> &Self {
        self.put(PipelineAction::PipelineStart {
            started_at: None,
            name: "site".into(),
            timestamp: 0.0,
        })
    }

    fn phase_start(&self, name: &str, attempt: u32, timestamp: f64) -> &Self {
        self.put(PipelineAction::PhaseStart {
            name: name.into(),
            attempt,
            timestamp,
        })
    }

    fn complete(&self, name: &str, timestamp: f64) -> &Self {
        self.put(PipelineAction::PhaseComplete {
            name: name.into(),
            result: Arc::new(serde_json::Value::Null),
            timestamp,
            reused_from: None,
        })
    }

    fn log(&self, name: &str, stream: Stream, line: &str, timestamp: f64) -> &Self {
        self.put(PipelineAction::PhaseLog {
            name: name.into(),
            line: line.into(),
            stream,
            timestamp,
        })
    }

    /// Sends `@@RESIZE` for a terminal of `width`×`height`, as the TUI does after a draw.
    fn resize(&self, width: u16, height: u16) -> &Self {
        let rows = milo_tui::log_pane_height(Rect::new(0, 0, width, height), &self.view());
        self.store
            .dispatch(ViewAction::View(ViewEvent::Resize { log_height: rows }))
            .expect("dispatch");
        self
    }

    fn view(&self) -> Arc<PipelineViewState> {
        self.store.get_state()
    }
}

/// Draws `view` into a `width`×`height` test terminal.
fn draw(view: &PipelineViewState, width: u16, height: u16, now: f64, tick: u64) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("a test terminal");
    terminal
        .draw(|frame| milo_tui::render(frame, view, now, tick))
        .expect("draw");
    terminal
}

fn screen(view: &PipelineViewState, width: u16, height: u16, now: f64, tick: u64) -> String {
    draw(view, width, height, now, tick).backend().to_string()
}

/// discover and parse done, render running with output, assets waiting to retry.
fn running() -> Harness {
    let h = Harness::new();
    h.start()
        .phase_start("discover", 1, 0.0)
        .log("discover", Stream::Stdout, "found 42 pages", 0.4)
        .complete("discover", 0.8)
        .phase_start("parse", 1, 0.8)
        .complete("parse", 2.5)
        .phase_start("assets", 1, 2.5)
        .phase_start("render", 1, 2.5)
        .put(PipelineAction::PhaseRetry {
            name: "assets".into(),
            attempt: 1,
            error: "cp: static/logo.svg: No such file".into(),
            max_retries: 3,
            delay: 1.0,
            timestamp: 3.1,
        });
    for i in 1..=30 {
        let t = 2.5 + f64::from(i) * 0.05;
        if i % 7 == 0 {
            h.log("render", Stream::Stderr, &format!("warning: page {i} has no title"), t);
        } else {
            h.log("render", Stream::Stdout, &format!("rendered posts/{i:02}.md"), t);
        }
    }
    h
}

#[test]
fn a_running_pipeline() {
    let h = running();
    insta::assert_snapshot!(screen(&h.view(), 80, 14, 4.25, 3));
}

#[test]
fn the_spinner_and_live_durations_move_with_time() {
    let h = running();
    let a = screen(&h.view(), 80, 14, 4.25, 3);
    let b = screen(&h.view(), 80, 14, 6.0, 4);
    assert_ne!(a, b);
    assert!(b.contains("3.5s"), "render has run 3.5 s at now = 6:\n{b}");
}

#[test]
fn expanded_logs_with_stderr_follow_on() {
    let h = running();
    h.resize(80, 20)
        .key(Key::Down)
        .key(Key::Down)
        .key(Key::Down)
        .key(Key::Enter);
    let view = h.view();
    assert!(view.expanded && view.auto_follow);
    assert_eq!(view.log_scroll, view.max_scroll());
    // A new line keeps the view on the newest line.
    h.log("render", Stream::Stderr, "error: template `post.html` not found", 4.2);
    let view = h.view();
    assert_eq!(view.log_scroll, view.max_scroll());
    insta::assert_snapshot!(screen(&view, 80, 20, 4.25, 3));
}

#[test]
fn expanded_logs_follow_off_after_going_to_the_top() {
    let h = running();
    h.resize(80, 20)
        .key(Key::Down)
        .key(Key::Down)
        .key(Key::Down)
        .key(Key::Enter)
        .key(Key::Char('g'));
    h.log("render", Stream::Stdout, "rendered posts/31.md", 4.2);
    let view = h.view();
    assert!(!view.auto_follow);
    assert_eq!(view.log_scroll, 0);
    insta::assert_snapshot!(screen(&view, 80, 20, 4.25, 3));
}

#[test]
fn stderr_lines_are_marked_and_red() {
    let h = running();
    h.resize(80, 20)
        .key(Key::Down)
        .key(Key::Down)
        .key(Key::Down)
        .key(Key::Enter);
    let terminal = draw(&h.view(), 80, 20, 4.25, 3);
    let buffer = terminal.backend().buffer();
    let row = (0..20)
        .find(|&y| buffer[(2, y)].symbol() == "w" && buffer[(0, y)].symbol() == "!")
        .expect("a stderr line starting with `! warning`");
    assert_eq!(buffer[(0, row)].fg, Color::Red);
    assert_eq!(buffer[(2, row)].fg, Color::LightRed);
    let stdout_row = (0..20)
        .find(|&y| buffer[(2, y)].symbol() == "r" && buffer[(3, y)].symbol() == "e")
        .expect("a stdout line");
    assert_ne!(buffer[(2, stdout_row)].fg, Color::LightRed);
}

#[test]
fn the_selected_row_is_highlighted() {
    let h = running();
    h.key(Key::Down);
    let terminal = draw(&h.view(), 80, 14, 4.25, 3);
    let buffer = terminal.backend().buffer();
    // Row 2 is the first phase (discover), row 3 the selected one (parse).
    assert_eq!(buffer[(0, 3)].symbol(), "›");
    assert_ne!(buffer[(10, 3)].bg, buffer[(10, 2)].bg);
}

#[test]
fn a_failed_pipeline() {
    let h = Harness::new();
    h.start()
        .phase_start("discover", 1, 0.0)
        .complete("discover", 0.5)
        .phase_start("parse", 1, 0.5)
        .log("parse", Stream::Stdout, "parsing 42 files", 0.6)
        .log("parse", Stream::Stderr, "posts/7.md:3: unterminated front matter", 1.4)
        .put(PipelineAction::PhaseFailed {
            name: "parse".into(),
            error: "exit status 1".into(),
            timestamp: 1.5,
        })
        .put(PipelineAction::PipelineFailed {
            error: "phase `parse` failed: exit status 1".into(),
            timestamp: 1.5,
        })
        .key(Key::Down);
    let view = h.view();
    assert!(view.pipeline.is_finished());
    insta::assert_snapshot!(screen(&view, 80, 12, 99.0, 7));
    h.resize(80, 12).key(Key::Enter);
    insta::assert_snapshot!("a_failed_pipeline_logs", screen(&h.view(), 80, 12, 99.0, 7));
}

#[test]
fn a_completed_pipeline() {
    let h = Harness::new();
    h.start();
    let mut t = 0.0;
    for name in ["discover", "parse", "assets", "render", "write"] {
        h.phase_start(name, 1, t);
        t += 0.75;
        h.complete(name, t);
    }
    h.put(PipelineAction::PipelineComplete { timestamp: t });
    insta::assert_snapshot!(screen(&h.view(), 60, 10, 99.0, 0));
}

#[test]
fn a_40x10_terminal() {
    let h = running();
    insta::assert_snapshot!(screen(&h.view(), 40, 10, 4.25, 3));
    h.resize(40, 10)
        .key(Key::Down)
        .key(Key::Down)
        .key(Key::Down)
        .key(Key::Enter);
    assert_eq!(h.view().log_height, 4);
    insta::assert_snapshot!("a_40x10_terminal_logs", screen(&h.view(), 40, 10, 4.25, 3));
}

#[test]
fn the_selection_stays_visible_in_a_short_list() {
    let h = running();
    for _ in 0..4 {
        h.key(Key::Down);
    }
    // 5 rows: header, gauge, two phase rows, footer.
    let text = screen(&h.view(), 60, 5, 4.25, 3);
    assert!(text.contains("›· write"), "{text}");
}

#[test]
fn every_size_draws_without_panicking() {
    let h = running();
    let collapsed = h.view();
    h.resize(80, 24)
        .key(Key::Down)
        .key(Key::Down)
        .key(Key::Down)
        .key(Key::Enter);
    let expanded = h.view();
    let fresh = Harness::new().view();
    let failed = Harness::new();
    failed.start().put(PipelineAction::PipelineFailed {
        error: "a very long error message that goes on and on\nand has a second line".into(),
        timestamp: 1.0,
    });
    let failed = failed.view();
    for view in [&collapsed, &expanded, &fresh, &failed] {
        for width in [0, 1, 2, 3, 5, 8, 13, 21, 40, 80, 200] {
            for height in [0, 1, 2, 3, 4, 5, 6, 7, 10, 30] {
                for (now, tick) in [(0.0, 0), (4.25, 3), (f64::NAN, u64::MAX), (-5.0, 1), (1e300, 2)] {
                    draw(view, width, height, now, tick);
                }
                let rows = milo_tui::log_pane_height(Rect::new(0, 0, width, height), view);
                assert!(rows >= 1);
            }
        }
    }
}

#[test]
fn log_lines_cannot_inject_escape_sequences() {
    let h = running();
    h.log("render", Stream::Stdout, "\u{1b}[2J\u{1b}[31mred\u{1b}[0m\tdone\r", 4.2)
        .resize(80, 20)
        .key(Key::Down)
        .key(Key::Down)
        .key(Key::Down)
        .key(Key::Enter);
    let text = screen(&h.view(), 80, 20, 4.25, 3);
    assert!(text.contains("  red    done"), "{text}");
    assert!(!text.contains('\u{1b}'));
}

/// 40 phases in a chain of levels: `p00`…`p11` first, then `w00`…`w07` all after `p11` (they run
/// together), then `q00`…`q19` after all of them.
fn wide() -> Store<PipelineViewState, ViewAction> {
    let noop = |_cx| async { Ok::<_, String>(()) };
    let mut phases = Vec::new();
    for i in 0..12 {
        let mut p = Phase::new_async(format!("p{i:02}"), noop);
        if i > 0 {
            p = p.depends_on([format!("p{:02}", i - 1)]);
        }
        phases.push(p);
    }
    for i in 0..8 {
        phases.push(
            Phase::new_async(format!("w{i:02}"), noop)
                .depends_on(["p11"])
                .parallel(true),
        );
    }
    let workers: Vec<String> = (0..8).map(|i| format!("w{i:02}")).collect();
    for i in 0..20 {
        phases.push(Phase::new_async(format!("q{i:02}"), noop).depends_on(workers.clone()));
    }
    let pipeline = Pipeline::new("wide", phases).expect("a valid pipeline");
    let store = Store::new(make_detail_reducer(pipeline.build_reducer()), None).expect("a store");
    let put = |a: PipelineAction| store.dispatch(a.into()).expect("dispatch");
    put(PipelineAction::PipelineStart {
        started_at: None,
        name: "wide".into(),
        timestamp: 0.0,
    });
    for i in 0..12 {
        let name = format!("p{i:02}");
        put(PipelineAction::PhaseStart {
            name: name.as_str().into(),
            attempt: 1,
            timestamp: f64::from(i),
        });
        put(PipelineAction::PhaseComplete {
            name: name.as_str().into(),
            result: Arc::new(serde_json::Value::Null),
            timestamp: f64::from(i) + 0.5,
            reused_from: None,
        });
    }
    for i in 0..8 {
        put(PipelineAction::PhaseStart {
            name: format!("w{i:02}").as_str().into(),
            attempt: 1,
            timestamp: 12.0,
        });
    }
    store
}

/// Draws like the TUI does: the follow keys dispatched first, then a frame through `list`.
fn frame(store: &Store<PipelineViewState, ViewAction>, list: &mut milo_tui::PhaseList, w: u16, h: u16) -> String {
    for key in list.follow_keys(&store.get_state()) {
        store.dispatch(key.into()).expect("dispatch");
    }
    let mut terminal = Terminal::new(TestBackend::new(w, h)).expect("a test terminal");
    terminal
        .draw(|f| milo_tui::render_list(f, &store.get_state(), 13.0, 0, list))
        .expect("draw");
    terminal.backend().to_string()
}

#[test]
fn a_long_list_follows_the_running_phases_until_the_user_moves() {
    let store = wide();
    let mut list = milo_tui::PhaseList::default();
    let text = frame(&store, &mut list, 60, 20);
    for i in 0..8 {
        assert!(
            text.contains(&format!("w{i:02}")),
            "w{i:02} is running but not shown:\n{text}"
        );
    }
    // The selection follows the run: it is on the first running phase, in view.
    assert_eq!(store.get_state().selected_row, 12);
    assert!(text.contains("›⠋ w00"), "{text}");
    // One finished phase above them for context.
    assert!(text.contains("p11") && !text.contains("p10"), "{text}");

    // The workers finish and the next level starts: the list moves on to it.
    for i in 0..8 {
        store
            .dispatch(
                PipelineAction::PhaseComplete {
                    name: format!("w{i:02}").as_str().into(),
                    result: Arc::new(serde_json::Value::Null),
                    timestamp: 13.0,
                    reused_from: None,
                }
                .into(),
            )
            .expect("dispatch");
    }
    store
        .dispatch(
            PipelineAction::PhaseStart {
                name: "q15".into(),
                attempt: 1,
                timestamp: 13.0,
            }
            .into(),
        )
        .expect("dispatch");
    let text = frame(&store, &mut list, 60, 20);
    assert!(text.contains("›⠋ q15"), "{text}");

    // The user moves up: the selection stays visible and the list stops following.
    list.follow = false;
    for _ in 0..40 {
        store.dispatch(Key::Up.into()).expect("dispatch");
    }
    let text = frame(&store, &mut list, 60, 20);
    assert!(text.contains("›✓ p00"), "{text}");
    assert!(!text.contains("q15"), "{text}");
    assert!(text.contains("f follow the run"), "{text}");
}

#[test]
fn running_phases_show_their_latest_output_line() {
    let h = running();
    let text = screen(&h.view(), 80, 14, 4.25, 3);
    // Room for everything: the newest line on a row of its own under the phase.
    let rows: Vec<&str> = text.lines().collect();
    let at = rows
        .iter()
        .position(|r| r.contains("⠸ render"))
        .expect("the render row");
    assert!(rows[at + 1].contains("↳ rendered posts/30.md"), "{text}");
    // Not for the phase waiting to retry, nor for finished ones.
    assert!(!text.contains("found 42 pages"), "{text}");
    // No room for a row of its own: after the description.
    let text = screen(&h.view(), 80, 7, 4.25, 3);
    assert!(text.contains("Render the pages  ↳ rendered posts/30.md"), "{text}");
}

#[test]
fn the_finished_list_keeps_the_attempts() {
    let h = Harness::new();
    h.start()
        .phase_start("assets", 1, 0.0)
        .put(PipelineAction::PhaseRetry {
            name: "assets".into(),
            attempt: 1,
            error: "flaky".into(),
            max_retries: 3,
            delay: 0.1,
            timestamp: 0.5,
        })
        .phase_start("assets", 2, 0.6)
        .put(PipelineAction::PhaseRetry {
            name: "assets".into(),
            attempt: 2,
            error: "flaky".into(),
            max_retries: 3,
            delay: 0.1,
            timestamp: 1.0,
        })
        .phase_start("assets", 3, 1.1)
        .complete("assets", 1.5);
    let text = screen(&h.view(), 80, 12, 2.0, 0);
    let row = text.lines().find(|r| r.contains("assets")).expect("the assets row");
    assert!(row.contains("✓") && row.contains("(3 attempts)"), "{text}");
}

#[test]
fn a_followed_list_ends_on_the_failed_phase() {
    let h = Harness::new();
    h.start()
        .phase_start("discover", 1, 0.0)
        .complete("discover", 0.5)
        .phase_start("parse", 1, 0.5)
        .put(PipelineAction::PhaseFailed {
            name: "parse".into(),
            error: "exit status 1".into(),
            timestamp: 1.5,
        })
        .put(PipelineAction::PipelineFailed {
            error: "phase `parse` failed: exit status 1".into(),
            timestamp: 1.5,
        });
    let list = milo_tui::PhaseList::default();
    assert_eq!(list.follow_keys(&h.view()), [Key::Down]);
    // Not once the user moved.
    let moved = milo_tui::PhaseList { follow: false, ..list };
    assert!(moved.follow_keys(&h.view()).is_empty());
}

fn decision(name: &str, verdict: milo::pipeline::Verdict, reason: &str, timestamp: f64) -> PipelineAction {
    PipelineAction::PhaseDecision {
        name: name.into(),
        decision: milo::pipeline::Decision {
            key: format!("key-{name}").into(),
            verdict,
            reason: reason.into(),
        },
        timestamp,
    }
}

/// An incremental run: discover up to date, parse restored (both with replayed lines), render
/// running because a file changed (its name holds an escape), the others not incremental.
fn incremental() -> Harness {
    use milo::pipeline::Verdict;
    let h = Harness::new();
    h.start()
        .put(decision("discover", Verdict::UpToDate, "up to date", 0.0))
        .log("discover", Stream::Stdout, "found 42 pages", 0.0)
        .complete("discover", 0.0)
        .put(decision(
            "parse",
            Verdict::Restored,
            "output build/parse.json was deleted (restored from cache)",
            0.1,
        ))
        .log("parse", Stream::Stdout, "parsed 42 files", 0.1)
        .log("parse", Stream::Stderr, "posts/7.md: no title", 0.1)
        .complete("parse", 0.1)
        .put(decision("render", Verdict::Run, "posts/\u{1b}[2J01.md changed", 0.2))
        .phase_start("render", 1, 0.2)
        .log("render", Stream::Stdout, "rendered posts/01.md", 0.3);
    h
}

#[test]
fn up_to_date_and_restored_phases_look_apart_and_are_counted() {
    let h = incremental();
    let terminal = draw(&h.view(), 80, 12, 1.0, 0);
    let text = terminal.backend().to_string();
    let line = |name: &str| {
        text.lines()
            .find(|l| l.contains(&format!(" {name} ")))
            .unwrap_or_else(|| panic!("no row for {name}:\n{text}"))
            .to_owned()
    };
    assert!(
        line("discover").contains("≡ discover") && line("discover").contains("up to date"),
        "{text}"
    );
    assert!(
        !line("discover").contains('✓') && !line("discover").contains("0ms"),
        "{text}"
    );
    assert!(
        line("parse").contains("⇣ parse") && line("parse").contains("restored"),
        "{text}"
    );
    assert!(text.contains("2/5 · 2 up to date (1 restored)"), "{text}");
    // Distinct colours: neither is the green of a phase that ran.
    let buffer = terminal.backend().buffer();
    let row_of = |name: &str| text.lines().position(|l| l.contains(&format!(" {name} "))).unwrap() as u16;
    assert_eq!(buffer[(1, row_of("discover"))].fg, Color::Blue);
    assert_eq!(buffer[(1, row_of("parse"))].fg, Color::LightBlue);
    // A phase that ran completes as before.
    h.complete("render", 1.0);
    let text = screen(&h.view(), 80, 12, 1.0, 0);
    assert!(text.contains("✓ render"), "{text}");
    assert!(text.contains("3/5 · 2 up to date (1 restored)"), "{text}");
}

#[test]
fn the_log_pane_gives_the_reason_and_marks_replayed_lines() {
    let h = incremental();
    // parse: restored, its lines replayed.
    h.resize(130, 20).key(Key::Down).key(Key::Enter);
    let terminal = draw(&h.view(), 130, 20, 1.0, 0);
    let text = terminal.backend().to_string();
    assert!(
        text.contains(
            " parse · restored · 1-2/2 · follow: on · ↺ replayed from an earlier run · output build/parse.json was deleted"
        ),
        "{text}"
    );
    assert!(text.contains("↺ parsed 42 files"), "{text}");
    assert!(text.contains("!↺posts/7.md: no title"), "{text}");
    // discover: up to date, the reason only says so.
    h.key(Key::Enter).key(Key::Up).key(Key::Enter);
    let text = screen(&h.view(), 130, 20, 1.0, 0);
    assert!(
        text.contains(" discover · up to date · 1-1/1 · follow: on · ↺ replayed from an earlier run ─"),
        "{text}"
    );
    assert!(text.contains("↺ found 42 pages"), "{text}");
    // render: ran, and why (the file name cannot drive the terminal); its lines are its own.
    h.key(Key::Enter)
        .key(Key::Down)
        .key(Key::Down)
        .key(Key::Down)
        .key(Key::Enter);
    let text = screen(&h.view(), 130, 20, 1.0, 0);
    assert!(
        text.contains(" render · 1-1/1 · follow: on · posts/01.md changed ─"),
        "{text}"
    );
    assert!(!text.contains('\u{1b}'), "{text:?}");
    assert!(!text.contains("replayed") && !text.contains('↺'), "{text}");
    assert!(text.contains("  rendered posts/01.md"), "{text}");
}

/// `build`, a matrix phase `test` of four instances, then `publish`; build done, `test[py=1]`
/// done, `test[py=2]` failed, `test[py=3]` running with output, `test[py=4]` waiting.
fn matrix() -> Store<PipelineViewState, ViewAction> {
    let noop = |_cx| async { Ok::<_, String>(()) };
    let group = Arc::new(milo::pipeline::PhaseGroup {
        name: "test".into(),
        max_parallel: None,
        fail_fast: false,
    });
    let instances = ["test[py=1]", "test[py=2]", "test[py=3]", "test[py=4]"];
    let mut phases = vec![Phase::new_async("build", noop).description("Compile")];
    for name in instances {
        phases.push(
            Phase::new_async(name, noop)
                .depends_on(["build"])
                .parallel(true)
                .group(group.clone()),
        );
    }
    phases.push(Phase::new_async("publish", noop).depends_on(instances));
    let pipeline = Pipeline::new("ci", phases).expect("a valid pipeline");
    let store = Store::new(make_detail_reducer(pipeline.build_reducer()), None).expect("a store");
    let put = |a: PipelineAction| store.dispatch(a.into()).expect("dispatch");
    let start = |name: &str, t: f64| {
        put(PipelineAction::PhaseStart {
            name: name.into(),
            attempt: 1,
            timestamp: t,
        })
    };
    put(PipelineAction::PipelineStart {
        started_at: None,
        name: "ci".into(),
        timestamp: 0.0,
    });
    start("build", 0.0);
    put(PipelineAction::PhaseComplete {
        name: "build".into(),
        result: Arc::new(serde_json::Value::Null),
        timestamp: 1.0,
        reused_from: None,
    });
    for name in &instances[..3] {
        start(name, 1.0);
    }
    put(PipelineAction::PhaseComplete {
        name: "test[py=1]".into(),
        result: Arc::new(serde_json::Value::Null),
        timestamp: 2.0,
        reused_from: None,
    });
    put(PipelineAction::PhaseFailed {
        name: "test[py=2]".into(),
        error: "2 tests failed".into(),
        timestamp: 2.5,
    });
    put(PipelineAction::PhaseLog {
        name: "test[py=3]".into(),
        line: "collected 40 items".into(),
        stream: Stream::Stdout,
        timestamp: 2.6,
    });
    store
}

fn key(store: &Store<PipelineViewState, ViewAction>, key: Key) {
    store.dispatch(key.into()).expect("dispatch");
}

#[test]
fn a_folded_matrix_phase_is_one_row_with_its_counts() {
    let store = matrix();
    let text = screen(&store.get_state(), 80, 10, 3.0, 0);
    let rows: Vec<&str> = text.lines().collect();
    let group = rows
        .iter()
        .find(|r| r.contains("▸ test"))
        .unwrap_or_else(|| panic!("no group row:\n{text}"));
    // The group's status (running: one member runs) and where its members stand.
    assert!(group.contains("⠋ ▸ test"), "{text}");
    assert!(group.contains("2/4 done, 1 failed, 1 running"), "{text}");
    // Its instances have no rows of their own while folded.
    assert!(!text.contains("test[py="), "{text}");
    let at = |needle: &str| rows.iter().position(|r| r.contains(needle));
    assert!(at("build") < at("▸ test") && at("▸ test") < at("publish"), "{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn an_unfolded_matrix_phase_lists_its_members_indented() {
    let store = matrix();
    key(&store, Key::Down);
    let folded = screen(&store.get_state(), 80, 12, 3.0, 0);
    assert!(folded.contains("›⠋ ▸ test"), "the group row is selected:\n{folded}");
    assert!(folded.contains("⏎ unfold"), "{folded}");
    key(&store, Key::Space);
    let text = screen(&store.get_state(), 80, 12, 3.0, 0);
    let rows: Vec<&str> = text.lines().collect();
    let group = rows.iter().position(|r| r.contains("▾ test")).expect("the group row");
    assert!(
        rows[group].contains("›⠋ ▾ test"),
        "the selection stays on the group:\n{text}"
    );
    assert!(text.contains("⏎ fold"), "{text}");
    // The members beneath it, in declaration order, indented: their names start where the
    // group's does, after its fold mark, right of a phase's own.
    let col = |row: &str, needle: &str| {
        let byte = row.find(needle)?;
        Some(row[..byte].chars().count())
    };
    let name_col = col(rows[group], "test").expect("the group's name");
    assert!(col(rows[group - 1], "build") < Some(name_col), "{text}");
    for (i, member) in ["✓   test[py=1]", "✗   test[py=2]", "⠋   test[py=3]", "·   test[py=4]"]
        .iter()
        .enumerate()
    {
        let row = rows[group + 1 + i + usize::from(i == 3)];
        assert!(
            row.contains(member),
            "row {} should be {member}:\n{text}",
            group + 1 + i
        );
        assert_eq!(col(row, "test"), Some(name_col), "not indented:\n{text}");
    }
    // The running member's newest line goes under it, and the failed one says why.
    assert!(rows[group + 4].contains("↳ collected 40 items"), "{text}");
    assert!(rows[group + 2].contains("2 tests failed"), "{text}");
    insta::assert_snapshot!(text);

    // A member is selected and opened as any phase.
    key(&store, Key::Down);
    key(&store, Key::Down);
    key(&store, Key::Enter);
    let text = screen(&store.get_state(), 80, 16, 3.0, 0);
    assert!(text.contains("test[py=2] · no output"), "{text}");
}

#[test]
fn a_followed_list_selects_the_row_of_a_folded_group_with_a_member_running() {
    let store = matrix();
    let mut list = milo_tui::PhaseList::default();
    let text = frame(&store, &mut list, 80, 10);
    assert_eq!(store.get_state().selected_row, 1, "{text}");
    assert!(text.contains("›⠋ ▸ test"), "{text}");
    // Unfolded, the running member itself is followed.
    key(&store, Key::Enter);
    let text = frame(&store, &mut list, 80, 10);
    assert!(text.contains("›⠋   test[py=3]"), "{text}");
    // In a list too short for all, the running member stays in view.
    let text = frame(&store, &mut list, 80, 5);
    assert!(text.contains("test[py=3]"), "{text}");
}

#[test]
fn a_followed_list_ends_on_the_folded_group_holding_the_failed_instance() {
    let store = matrix();
    let put = |a: PipelineAction| store.dispatch(a.into()).expect("dispatch");
    put(PipelineAction::PhaseComplete {
        name: "test[py=3]".into(),
        result: Arc::new(serde_json::Value::Null),
        timestamp: 3.0,
        reused_from: None,
    });
    put(PipelineAction::PipelineFailed {
        error: "phase `test[py=2]` failed: 2 tests failed".into(),
        timestamp: 3.0,
    });
    let mut list = milo_tui::PhaseList::default();
    let text = frame(&store, &mut list, 80, 10);
    assert_eq!(store.get_state().selected_row, 1, "{text}");
    assert!(text.contains("›✗ ▸ test"), "{text}");
    assert!(text.contains("3/4 done, 1 failed"), "{text}");
}
