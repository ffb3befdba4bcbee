//! What a terminal shows and is told to do: phase output cannot forge milo's lines or reach
//! the terminal's controls, the progress view fits the terminal's width, colour follows
//! `--color`/`NO_COLOR`/`CLICOLOR_FORCE`, `--no-capture` falls back to plain lines, and the
//! ETA reads the history even with `--no-history`. Runs in a pseudo-terminal ([`Pty`]) where
//! the behaviour depends on one, else through the [`Test`] builder.

use std::process::{Command, Stdio};

use crate::pty::Pty;
use crate::util::Test;

/// Clears the screen, homes the cursor and prints a fake success line, sets the window title
/// (OSC 0) and writes the clipboard (OSC 52), then fails.
const FORGER: &str = r#"name = "release"

[[phase]]
name = "build"
run = "echo built"

[[phase]]
name = "forge"
depends_on = ["build"]
run = '''
printf '\033]0;pwned-title\007'
printf '\033]52;c;cm0gLXJmIH4=\007'
printf 'junk\r[build] completed in 0s\n'
printf '\033[2J\033[H\033[32m✓\033[0m release completed in 4.2s — 2 completed'
exit 1
'''
"#;

/// The escape sequences of `raw` ending in `m` (SGR: colours and styles).
fn sgr_count(raw: &[u8]) -> usize {
    let text = String::from_utf8_lossy(raw);
    text.split('\x1b')
        .skip(1)
        .filter(|s| {
            s.strip_prefix('[')
                .and_then(|rest| rest.find(|c: char| !(c.is_ascii_digit() || c == ';' || c == ':')))
                .is_some_and(|end| s[1 + end..].starts_with('m'))
        })
        .count()
}

/// Asserts the terminal was told nothing but text, colours, and the progress view's own
/// cursor-up/erase-below.
#[track_caller]
fn assert_no_injection(pty: &Pty) {
    for (what, seq) in [
        ("OSC 0 (window title)", &b"\x1b]0;"[..]),
        ("OSC 52 (clipboard)", b"\x1b]52;"),
        ("the title text", b"pwned-title"),
        ("erase screen", b"\x1b[2J"),
        ("cursor home", b"\x1b[H"),
    ] {
        assert!(!pty.wrote(seq), "{what} reached the terminal:\n{}", pty.dump());
    }
    // No bare `\r` from the phase: the pty turns every `\n` into `\r\n`, milo's redraws use
    // `ESC [ n A \r`; any other `\r` came from the phase.
    let raw = &pty.raw;
    for (i, w) in raw.windows(2).enumerate() {
        if w[0] == b'\r' && w[1] != b'\n' {
            assert!(
                i > 0 && raw[..i].ends_with(b"A"),
                "a bare \\r reached the terminal at byte {i}:\n{}",
                pty.dump()
            );
        }
    }
}

#[test]
fn phase_output_cannot_forge_the_progress_screen_or_reach_the_terminal() {
    let t = Test::with(FORGER);
    let pty = Pty::run(t.dir(), &["run", "--ui", "progress", "--no-history"], 100, 30, &[]);
    assert_eq!(pty.code, 1, "{}", pty.dump());
    assert_no_injection(&pty);
    let rows = pty.rows();
    assert!(
        rows.iter().any(|r| r.starts_with("✗ release failed")),
        "the real summary is on the screen:\n{}",
        pty.dump()
    );
    assert!(
        !rows
            .iter()
            .any(|r| r.starts_with("✓ release completed") || r.starts_with("[build] completed")),
        "a forged line stands on its own:\n{}",
        pty.dump()
    );
    // The forged text is shown, as the failed phase's output.
    assert!(
        rows.iter().any(|r| r.contains("│ ✓ release completed in 4.2s")),
        "{}",
        pty.dump()
    );
}

#[test]
fn phase_output_cannot_forge_plain_lines_or_reach_the_terminal() {
    let t = Test::with(FORGER);
    let pty = Pty::run(t.dir(), &["run", "--ui", "plain", "--no-history"], 100, 30, &[]);
    assert_eq!(pty.code, 1, "{}", pty.dump());
    assert_no_injection(&pty);
    let rows = pty.rows();
    assert!(rows.iter().any(|r| r.starts_with("✗ release failed")), "{}", pty.dump());
    // Output lines carry the marker: `[build] completed` after a `\r` stays inside one.
    assert!(
        rows.iter().any(|r| r == "[forge] │ junk[build] completed in 0s"),
        "{}",
        pty.dump()
    );
    assert!(
        rows.iter()
            .any(|r| r == "[forge] │ ✓ release completed in 4.2s — 2 completed"),
        "{}",
        pty.dump()
    );
    assert!(rows.iter().any(|r| r == "[build] │ built"), "{}", pty.dump());
}

#[test]
fn plain_output_lines_are_marked_and_sanitised_when_piped_too() {
    Test::with(FORGER)
        .args(["run", "--ui", "plain", "--no-history"])
        .run()
        .code(1)
        .stdout_line("[forge] │ junk[build] completed in 0s")
        .stdout_line("[forge] │ ✓ release completed in 4.2s — 2 completed")
        .stdout_lacks("\x1b")
        .stdout_lacks("\r");
}

/// Phases whose output lines are wider than any terminal below, for a few hundred ms each.
const WIDE: &str = r#"name = "wide-pipeline-with-a-long-name"

[[phase]]
name = "first-phase-with-a-long-name"
run = """
for i in 1 2 3 4 5 6; do echo "line $i: the quick brown fox jumps over the lazy dog, again and again and again"; sleep 0.1; done
"""

[[phase]]
name = "second-phase-with-a-long-name"
depends_on = ["first-phase-with-a-long-name"]
run = """
for i in 1 2 3 4 5 6; do echo "日本語の行 $i: 全角の文字は二つの列を使います、全角の文字は二つの列を使います"; sleep 0.1; done
"""

[[phase]]
name = "third"
depends_on = ["second-phase-with-a-long-name"]
run = "sleep 0.3"
"#;

/// Asserts the progress view left no stale copy of its live area at `cols` columns.
#[track_caller]
fn assert_no_leftover_bars(cols: u16, toml: &str) {
    let t = Test::with(toml);
    let pty = Pty::run(t.dir(), &["run", "--ui", "progress", "--no-history"], cols, 40, &[]);
    assert_eq!(pty.code, 0, "{}", pty.dump());
    let rows = pty.rows();
    // The last frame drops the live area: any bar or spinner row left is a stale copy.
    let stale: Vec<&String> = rows
        .iter()
        .filter(|r| r.contains('░') || r.contains('█') || r.contains("ETA") || r.starts_with('⠋'))
        .collect();
    assert!(
        stale.is_empty(),
        "stale live lines at {cols} columns: {stale:?}\n{}",
        pty.dump()
    );
    for phase in [
        "✓ first-phase-with-a-long-name",
        "✓ second-phase-with-a-long-name",
        "✓ third",
    ] {
        let n = rows.iter().filter(|r| r.starts_with(phase)).count();
        assert_eq!(n, 1, "{phase} shown {n} times at {cols} columns:\n{}", pty.dump());
    }
    assert!(
        rows.iter()
            .any(|r| r.starts_with("✓ wide-pipeline-with-a-long-name completed"))
    );
    // Nothing the view redraws or prints per phase reached the last column (where a line
    // would wrap); the summary after it is printed once and may wrap.
    let summary = rows
        .iter()
        .position(|r| r.starts_with("✓ wide-pipeline"))
        .unwrap_or(rows.len());
    let screen = pty.screen.screen();
    for row in 0..u16::try_from(summary).unwrap_or(0) {
        let cell = screen.cell(row, cols - 1).map(|c| c.contents()).unwrap_or_default();
        assert!(
            cell.trim().is_empty(),
            "row {row} reaches the last column:\n{}",
            pty.dump()
        );
    }
}

#[test]
fn the_progress_view_fits_an_80_column_terminal() {
    assert_no_leftover_bars(80, WIDE);
}

#[test]
fn the_progress_view_fits_a_60_column_terminal() {
    assert_no_leftover_bars(60, WIDE);
}

#[test]
fn the_progress_view_fits_a_60_column_terminal_without_long_output() {
    // Only the bar line is wider than 60 columns (a long pipeline name); output is short.
    let short = r#"name = "documentation-site-build"

[[phase]]
name = "one"
run = "echo hi; sleep 0.3"

[[phase]]
name = "two"
depends_on = ["one"]
run = "echo ho; sleep 0.3"
"#;
    let t = Test::with(short);
    let pty = Pty::run(t.dir(), &["run", "--ui", "progress", "--no-history"], 60, 30, &[]);
    assert_eq!(pty.code, 0, "{}", pty.dump());
    let rows = pty.rows();
    assert!(
        !rows.iter().any(|r| r.contains('░') || r.contains('█')),
        "{}",
        pty.dump()
    );
    assert_eq!(
        rows.iter().filter(|r| r.starts_with("✓ one")).count(),
        1,
        "{}",
        pty.dump()
    );
    assert_eq!(
        rows.iter().filter(|r| r.starts_with("✓ two")).count(),
        1,
        "{}",
        pty.dump()
    );
}

#[test]
fn no_capture_with_the_progress_view_falls_back_to_plain_lines_and_says_so() {
    let toml = r#"name = "chatty"

[[phase]]
name = "talk"
run = "echo passthrough-line; sleep 0.3; echo second-line"
"#;
    let in_file = toml.replace("name = \"chatty\"", "name = \"chatty\"\ncapture_output = false");
    let cases: [(&str, &[&str], &str); 3] = [
        (toml, &["--no-capture", "--ui", "progress"], "--no-capture"),
        (toml, &["--no-capture"], "--no-capture"),
        (&in_file, &[], "capture_output = false"),
    ];
    for (file, flags, why) in cases {
        let t = Test::with(file);
        let args: Vec<&str> = ["run", "--no-history"].iter().chain(flags).copied().collect();
        let pty = Pty::run(t.dir(), &args, 80, 30, &[]);
        assert_eq!(pty.code, 0, "{}", pty.dump());
        let rows = pty.rows();
        let note = format!("milo: {why}: showing plain lines, not the progress display");
        assert!(
            rows.contains(&note),
            "{args:?}: no note about the fallback:\n{}",
            pty.dump()
        );
        assert!(rows.iter().any(|r| r == "passthrough-line"), "{}", pty.dump());
        assert!(rows.iter().any(|r| r == "second-line"), "{}", pty.dump());
        assert!(rows.iter().any(|r| r == "[talk] started"), "{}", pty.dump());
        assert!(
            !rows.iter().any(|r| r.contains('░') || r.contains('█')),
            "{args:?}: a progress bar was drawn:\n{}",
            pty.dump()
        );
    }
}

const TWO: &str = r#"name = "duo"

[[phase]]
name = "ok"
run = "echo fine"

[[phase]]
name = "bad"
depends_on = ["ok"]
run = "echo broken >&2; exit 3"
"#;

#[test]
fn a_colour_terminal_gets_coloured_progress_and_summary() {
    let t = Test::with(TWO);
    let pty = Pty::run(t.dir(), &["run", "--ui", "progress", "--no-history"], 100, 30, &[]);
    assert_eq!(pty.code, 1, "{}", pty.dump());
    assert!(pty.wrote(b"\x1b[32m\xe2\x9c\x93"), "no green ✓:\n{}", pty.dump());
    assert!(
        pty.wrote(b"\x1b[1m\x1b[31m\xe2\x9c\x97")
            || pty.wrote(b"\x1b[31m\xe2\x9c\x97")
            || pty.wrote(b"\x1b[1;31m\xe2\x9c\x97"),
        "no red ✗:\n{}",
        pty.dump()
    );
}

#[test]
fn no_color_and_color_never_turn_colour_off_on_a_terminal() {
    let t = Test::with(TWO);
    for (args, env) in [(&["--color", "never"][..], &[][..]), (&[], &[("NO_COLOR", "1")][..])] {
        let all: Vec<&str> = ["run", "--ui", "progress", "--no-history"]
            .iter()
            .chain(args)
            .copied()
            .collect();
        let pty = Pty::run(t.dir(), &all, 100, 30, env);
        assert_eq!(pty.code, 1, "{}", pty.dump());
        assert_eq!(
            sgr_count(&pty.raw),
            0,
            "{args:?} {env:?} still coloured:\n{}",
            pty.dump()
        );
        assert!(
            pty.rows().iter().any(|r| r.starts_with("✗ duo failed")),
            "{}",
            pty.dump()
        );
    }
    // The same for the plain view.
    let pty = Pty::run(
        t.dir(),
        &["run", "--ui", "plain", "--no-history"],
        100,
        30,
        &[("NO_COLOR", "1")],
    );
    assert_eq!(sgr_count(&pty.raw), 0, "{}", pty.dump());
    let pty = Pty::run(t.dir(), &["run", "--ui", "plain", "--no-history"], 100, 30, &[]);
    assert!(
        sgr_count(&pty.raw) > 0,
        "plain on a terminal is coloured:\n{}",
        pty.dump()
    );
}

#[test]
fn color_always_and_clicolor_force_colour_a_pipe() {
    let plain = || Test::with(TWO).args(["run", "--ui", "plain", "--no-history"]);
    let run = plain().run();
    run.code(1);
    assert_eq!(sgr_count(run.stdout.as_bytes()), 0, "{}", run.report());
    for t in [
        plain().args(["--color", "always"]),
        plain().env("CLICOLOR_FORCE", Some("1")),
    ] {
        let run = t.run();
        run.code(1).stdout_has("\x1b[32mcompleted\x1b[0m");
        assert!(sgr_count(run.stdout.as_bytes()) > 0, "{}", run.report());
    }
    // NO_COLOR beats CLICOLOR_FORCE; --color always beats NO_COLOR.
    let run = plain()
        .env("CLICOLOR_FORCE", Some("1"))
        .env("NO_COLOR", Some("1"))
        .run();
    assert_eq!(sgr_count(run.stdout.as_bytes()), 0, "{}", run.report());
    let run = plain().args(["--color", "always"]).env("NO_COLOR", Some("1")).run();
    assert!(sgr_count(run.stdout.as_bytes()) > 0, "{}", run.report());
}

#[test]
fn error_messages_are_coloured_with_color_always_only() {
    let run = Test::empty().args(["run", "--color", "always"]).run();
    run.code(2).stderr_has("\x1b[1m\x1b[31merror:\x1b[0m no pipeline file");
    let run = Test::empty().args(["run"]).run();
    run.code(2).stderr_has("error: no pipeline file");
    assert_eq!(sgr_count(run.stderr.as_bytes()), 0, "{}", run.report());
}

/// Runs `milo args` in `t`'s directory with stdout on /dev/full.
fn to_dev_full(t: &Test, args: &[&str]) -> (Option<i32>, String) {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let out = Command::new(env!("CARGO_BIN_EXE_milo"))
        .args(args)
        .current_dir(t.dir())
        .stdout(Stdio::from(full))
        .stderr(Stdio::piped())
        .output()
        .expect("run milo");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_full_stdout_is_reported_by_the_json_and_plain_views() {
    let t = Test::with(
        r#"name = "p"

[[phase]]
name = "a"
run = "echo hello"
"#,
    );
    for ui in ["json", "plain"] {
        let (code, stderr) = to_dev_full(&t, &["run", "--ui", ui, "--no-history"]);
        assert_eq!(code, Some(1), "--ui {ui}: {stderr}");
        assert!(
            stderr.contains("error: could not write the run's output to `stdout`")
                && stderr.contains("No space left on device"),
            "--ui {ui}: {stderr}"
        );
    }
}

#[test]
fn a_failed_run_keeps_its_status_when_stdout_is_full_too() {
    let t = Test::with(TWO);
    let (code, stderr) = to_dev_full(&t, &["run", "--ui", "json", "--no-history"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
}

/// The running phases drawn under each bar line of `pty` that shows an ETA.
fn running_under_an_eta(pty: &Pty) -> Vec<String> {
    let text = String::from_utf8_lossy(&pty.raw).into_owned();
    let lines: Vec<&str> = text.split("\r\n").collect();
    lines
        .windows(2)
        .filter(|w| w[0].contains("ETA"))
        .map(|w| w[1].split_whitespace().nth(1).unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn no_history_still_reads_the_history_for_the_eta() {
    let toml = r#"name = "timed"

[[phase]]
name = "first"
run = "sleep 1"

[[phase]]
name = "second"
depends_on = ["first"]
run = "sleep 0.2"
"#;
    // A first, recorded run: the history now knows how long the phases take.
    let t = Test::with(toml).args(["run", "--ui", "plain"]);
    t.run().code(0);
    let pty = Pty::run(
        t.dir(),
        &["run", "--ui", "progress", "--no-history"],
        100,
        30,
        &[("NO_COLOR", "1")],
    );
    assert_eq!(pty.code, 0, "{}", pty.dump());
    // Without the history nothing would be known while `first` runs.
    assert!(
        running_under_an_eta(&pty).iter().any(|p| p == "first"),
        "no ETA while the first phase ran:\n{}",
        pty.dump()
    );
    // And the run was not recorded.
    let t = t.then(["history", "--json"]);
    let run = t.run();
    run.code(0);
    let runs: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(runs.as_array().map(Vec::len), Some(1), "{runs:#}");
}

#[test]
fn without_any_history_no_eta_is_guessed_before_a_phase_completes() {
    let toml = r#"name = "fresh"

[[phase]]
name = "first"
run = "sleep 1"

[[phase]]
name = "second"
run = "sleep 0.5"
depends_on = ["first"]
"#;
    let t = Test::with(toml);
    let pty = Pty::run(
        t.dir(),
        &["run", "--ui", "progress", "--no-history"],
        100,
        30,
        &[("NO_COLOR", "1")],
    );
    assert_eq!(pty.code, 0, "{}", pty.dump());
    let running = running_under_an_eta(&pty);
    assert!(
        !running.iter().any(|p| p == "first"),
        "an ETA was shown with nothing to base it on:\n{}",
        pty.dump()
    );
    // Once `first` completed, its pace gives one.
    assert!(running.iter().any(|p| p == "second"), "{}", pty.dump());
}

#[test]
fn inspect_and_history_commands_sanitise_what_they_print_on_a_terminal() {
    let toml = r#"name = "p"

[[phase]]
name = "a"
description = "description"
run = "printf '\\033]52;c;eA==\\007clip\\033[2Jboard\\n'"
"#;
    let t = Test::with(toml).args(["run", "--ui", "plain"]);
    t.run().code(0);
    for args in [&["logs", "a"][..], &["phases"], &["show"]] {
        let pty = Pty::run(t.dir(), args, 100, 30, &[]);
        assert_eq!(pty.code, 0, "{args:?}: {}", pty.dump());
        for seq in [&b"\x1b]"[..], b"\x1b[2J", b"\x07"] {
            assert!(!pty.wrote(seq), "milo {args:?} wrote {seq:?}:\n{}", pty.dump());
        }
    }
    let pty = Pty::run(t.dir(), &["logs", "a"], 100, 30, &[]);
    assert!(pty.rows().iter().any(|r| r.contains("clipboard")), "{}", pty.dump());
    let pty = Pty::run(t.dir(), &["phases"], 100, 30, &[]);
    assert!(pty.rows().iter().any(|r| r.contains("description")), "{}", pty.dump());
    // Into a file or a pipe, `milo logs` keeps the bytes as they were.
    let t = t.then(["logs", "a"]);
    t.run().code(0).stdout_has("\x1b]52;c;eA==\x07clip\x1b[2Jboard");
}

#[test]
fn the_progress_view_follows_a_resized_terminal() {
    let toml = r#"name = "a-pipeline-with-a-rather-long-name"

[[phase]]
name = "talk"
run = "echo resize-me-now: and a long line of output that is cut to the terminal width; sleep 4"
"#;
    let t = Test::with(toml);
    let (raw, resized_at) = crate::pty::run_resized(
        t.dir(),
        &["run", "--ui", "progress", "--no-history"],
        (100, 30),
        b"resize-me-now",
        (60, 30),
    );
    // The running phase's line, in every frame: `⠋ talk  1.2s  resize-me-now…`.
    let widths = |bytes: &[u8]| -> Vec<usize> {
        String::from_utf8_lossy(bytes)
            .split("\r\n")
            .filter(|l| l.contains(" talk  "))
            .map(|l| l.rsplit("\x1b[J").next().unwrap_or(l).chars().count())
            .collect()
    };
    let before = widths(&raw[..resized_at]);
    let after = widths(&raw[resized_at..]);
    assert!(
        before.iter().any(|&w| w > 60 && w < 100),
        "at 100 columns the line was not cut to 99: {before:?}"
    );
    // The phase runs 4 s after the resize, at 10 frames a second: the last frames are at 60.
    let last = after
        .last()
        .copied()
        .unwrap_or_else(|| panic!("no frame after the resize"));
    assert!(last <= 59, "the last frame still drew {last} columns: {after:?}");
}
