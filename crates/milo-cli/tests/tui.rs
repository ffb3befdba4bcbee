//! `milo run --ui tui` end to end: the real binary in a pseudo-terminal, keys typed into it,
//! and the screen read back through a VT100 emulator after each key.
//!
//! Every expected state is polled for (up to [`WAIT`]) rather than slept for, so a loaded
//! machine only makes the tests slower, not flaky; the child is killed if a test fails.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use portable_pty::{Child, CommandBuilder, MasterPty, PtySize, native_pty_system};
use tempfile::TempDir;

/// The longest any expected screen (or exit) may take to show up.
const WAIT: Duration = Duration::from_secs(15);
const ROWS: u16 = 30;
const COLS: u16 = 100;
/// Log lines the log pane shows at [`ROWS`]: 30 rows less the header, gauge and footer, less
/// the three phase rows, less the pane's title.
const PANE: usize = 23;

const DOWN: &str = "\x1b[B";
const UP: &str = "\x1b[A";
const RIGHT: &str = "\x1b[C";
const LEFT: &str = "\x1b[D";
const ENTER: &str = "\r";

/// `talk` prints 400 numbered lines to stdout and as many to stderr, 50 ms apart: 20 s, far
/// more than the keys below need, so `q` always finds it running.
const LONG: &str = r#"name = "tuidemo"

[[phase]]
name = "setup"
description = "Set things up"
run = "echo set up"

[[phase]]
name = "talk"
description = "Talk a lot"
depends_on = ["setup"]
max_logs = 5000
run = """
i=1
while [ $i -le 400 ]; do echo "out $i"; echo "err $i" >&2; i=$((i + 1)); sleep 0.05; done
"""

[[phase]]
name = "wrap"
description = "Wrap up"
depends_on = ["talk"]
run = "echo wrapped"
"#;

/// Ends in about a second.
const SHORT: &str = r#"name = "tuidemo"

[[phase]]
name = "setup"
description = "Set things up"
run = "echo set up"

[[phase]]
name = "talk"
description = "Talk a little"
depends_on = ["setup"]
run = """
i=1
while [ $i -le 10 ]; do echo "out $i"; echo "err $i" >&2; i=$((i + 1)); sleep 0.1; done
"""

[[phase]]
name = "wrap"
description = "Wrap up"
depends_on = ["talk"]
run = "echo wrapped"
"#;

/// The `milo` binary running in a pseudo-terminal, with a thread feeding everything it
/// writes into a VT100 parser (the screen) and a byte log (for the escape sequences).
struct Tui {
    _dir: TempDir,
    master: Box<dyn MasterPty + Send>,
    writer: Box<dyn Write + Send>,
    child: Box<dyn Child + Send + Sync>,
    parser: Arc<Mutex<vt100::Parser>>,
    raw: Arc<Mutex<Vec<u8>>>,
    reader: Option<JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Tui {
    /// Starts `milo run --ui tui -f milo.toml` with `pipeline` as the file.
    fn start(pipeline: &str) -> Tui {
        let dir = tempfile::Builder::new()
            .prefix("milo-tui-test")
            .tempdir()
            .expect("tempdir");
        let file: PathBuf = dir.path().join("milo.toml");
        std::fs::write(&file, pipeline).expect("write milo.toml");
        let pair = native_pty_system()
            .openpty(PtySize {
                rows: ROWS,
                cols: COLS,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("open a pty");
        let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_milo"));
        cmd.args(["run", "--ui", "tui", "-f"]);
        cmd.arg(&file);
        cmd.cwd(dir.path());
        cmd.env("TERM", "xterm-256color");
        cmd.env_remove("MILO_LOG");
        let child = pair.slave.spawn_command(cmd).expect("spawn milo in the pty");
        // Only the child holds the slave now: reads end when it exits.
        drop(pair.slave);
        let mut reader = pair.master.try_clone_reader().expect("pty reader");
        let writer = pair.master.take_writer().expect("pty writer");
        let parser = Arc::new(Mutex::new(vt100::Parser::new(ROWS, COLS, 0)));
        let raw = Arc::new(Mutex::new(Vec::new()));
        let reader = std::thread::spawn({
            let (parser, raw) = (parser.clone(), raw.clone());
            move || {
                let mut buf = [0u8; 8192];
                loop {
                    match reader.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            lock(&raw).extend_from_slice(&buf[..n]);
                            lock(&parser).process(&buf[..n]);
                        }
                    }
                }
            }
        });
        Tui {
            _dir: dir,
            master: pair.master,
            writer,
            child,
            parser,
            raw,
            reader: Some(reader),
        }
    }

    /// The screen's text, one string per row (trailing spaces trimmed).
    fn rows(&self) -> Vec<String> {
        let parser = lock(&self.parser);
        let (_, cols) = parser.screen().size();
        parser.screen().rows(0, cols).map(|r| r.trim_end().to_owned()).collect()
    }

    fn dump(rows: &[String]) -> String {
        rows.iter().enumerate().map(|(i, r)| format!("{i:>2}|{r}\n")).collect()
    }

    /// Polls the screen until `check` returns `Some`, and returns that.
    fn wait_for<T>(&mut self, what: &str, check: impl Fn(&[String]) -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT;
        loop {
            let rows = self.rows();
            if let Some(found) = check(&rows) {
                return found;
            }
            if Instant::now() >= deadline {
                let status = self.child.try_wait();
                let raw = lock(&self.raw);
                let tail = String::from_utf8_lossy(&raw[raw.len().saturating_sub(2000)..]).into_owned();
                panic!(
                    "timed out waiting for {what} (milo: {status:?}); the screen:\n{}\nthe last output: {tail:?}",
                    Self::dump(&rows)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The newest run in the run history, as `milo history --json` prints it.
    fn last_run(&self) -> serde_json::Value {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_milo"))
            .args(["history", "--json", "-n", "1"])
            .current_dir(self._dir.path())
            .output()
            .expect("run milo history");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let runs: serde_json::Value = serde_json::from_slice(&out.stdout).expect("history JSON");
        runs[0].clone()
    }

    /// Polls the run history until its newest run has `status`, and returns it.
    fn wait_for_run(&self, status: &str) -> serde_json::Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let run = self.last_run();
            if run["status"] == status {
                return run;
            }
            assert!(
                Instant::now() < deadline,
                "the run history never showed the run {status}: {run}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends `signal` (`HUP`, `KILL`…) to milo.
    fn signal(&mut self, signal: &str) {
        let pid = self.child.process_id().expect("milo's pid");
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Resizes the terminal (the kernel sends the child SIGWINCH) and the emulated screen.
    fn resize(&mut self, rows: u16, cols: u16) {
        lock(&self.parser).set_size(rows, cols);
        self.master
            .resize(PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("resize the pty");
    }

    fn press(&mut self, keys: &str) {
        self.writer.write_all(keys.as_bytes()).expect("type into the pty");
        self.writer.flush().expect("flush the pty");
    }

    /// Waits for the child to exit; returns its exit code.
    fn exit_code(&mut self) -> u32 {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.exit_code();
            }
            if Instant::now() >= deadline {
                panic!("milo did not exit; the screen:\n{}", Self::dump(&self.rows()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// After the child exited: waits for the last of its output, then checks it left the
    /// terminal as it found it (normal screen, cursor shown, canonical mode with echo) and
    /// returns the normal screen's text.
    fn check_restored(&mut self) -> String {
        if let Some(reader) = self.reader.take() {
            reader.join().expect("the reader thread");
        }
        let raw = lock(&self.raw).clone();
        let last = |needle: &[u8]| raw.windows(needle.len()).rposition(|w| w == needle);
        let entered = last(b"\x1b[?1049h").expect("the TUI entered the alternate screen");
        let left = last(b"\x1b[?1049l").expect("the TUI left the alternate screen");
        assert!(left > entered, "the output ends on the alternate screen");
        let hidden = last(b"\x1b[?25l").expect("the TUI hid the cursor");
        let shown = last(b"\x1b[?25h").expect("the TUI showed the cursor again");
        assert!(shown > hidden, "the output ends with the cursor hidden");
        let parser = lock(&self.parser);
        assert!(!parser.screen().alternate_screen());
        assert!(!parser.screen().hide_cursor());
        let termios = self.master.get_termios().expect("the pty's modes");
        let flags = format!("{:?}", termios.local_flags);
        let flags: Vec<&str> = flags.split(|c: char| !c.is_ascii_alphanumeric()).collect();
        assert!(
            flags.contains(&"ICANON") && flags.contains(&"ECHO"),
            "raw mode was left on: {flags:?}"
        );
        parser.screen().contents()
    }
}

impl Drop for Tui {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The words of a phase row after its marker and status symbol: its name first.
fn phase_words(row: &str) -> impl Iterator<Item = &str> {
    row.split_whitespace()
        .skip_while(|w| !w.chars().any(char::is_alphanumeric))
}

/// The row of phase `name` in the phase list.
fn phase_row<'a>(rows: &'a [String], name: &str) -> Option<&'a String> {
    rows.iter().find(|r| phase_words(r).next() == Some(name))
}

/// Which phase the `›` marker is on.
fn selected(rows: &[String]) -> Option<String> {
    rows.iter()
        .find(|r| r.starts_with('›'))
        .and_then(|r| phase_words(r).next().map(str::to_owned))
}

/// The log pane's title: (phase, first, last, total, follow).
#[derive(Debug, Clone, PartialEq)]
struct Pane {
    phase: String,
    first: usize,
    last: usize,
    total: usize,
    follow: bool,
    /// The pane's rows after the title.
    lines: Vec<String>,
}

fn pane(rows: &[String]) -> Option<Pane> {
    let at = rows.iter().position(|r| r.contains(" · follow: "))?;
    let title = &rows[at];
    // "── talk · 1-23/57 · follow: on ─────"
    let mut parts = title.split(" · ");
    let phase = parts
        .next()?
        .trim_matches(|c: char| c == '─' || c.is_whitespace())
        .to_owned();
    let range = parts.next()?;
    let follow = parts.next()?.starts_with("follow: on");
    let range = range.split(' ').next()?;
    let (span, total) = range.split_once('/')?;
    let (first, last) = span.split_once('-')?;
    let footer = rows.len() - 1;
    Some(Pane {
        phase,
        first: first.parse().ok()?,
        last: last.parse().ok()?,
        total: total.parse().ok()?,
        follow,
        lines: rows[at + 1..footer].iter().map(|r| r.trim().to_owned()).collect(),
    })
}

/// The number of a `talk` log row (`out N` or `! err N`).
fn line_number(row: &str) -> Option<usize> {
    let row = row.trim_start_matches('!').trim();
    let n = row.strip_prefix("out ").or_else(|| row.strip_prefix("err "))?;
    n.parse().ok()
}

#[test]
fn keys_drive_the_view_and_q_cancels_a_running_pipeline() {
    let mut tui = Tui::start(LONG);

    // The phase list, in execution order, the first phase selected.
    let first = tui.wait_for("the phase list", |rows| {
        let header = rows.first()?;
        if !header.contains("tuidemo") {
            return None;
        }
        let at = |name| rows.iter().position(|r| phase_words(r).next() == Some(name));
        let (setup, talk, wrap) = (at("setup")?, at("talk")?, at("wrap")?);
        (setup < talk && talk < wrap).then_some(())?;
        selected(rows)
    });
    // The selection follows the run: on `setup` or, once it is done, on `talk`.
    assert!(first == "setup" || first == "talk", "{first}");
    let rows = tui.rows();
    assert!(rows.iter().any(|r| r.contains("Talk a lot")), "{}", Tui::dump(&rows));
    assert!(
        rows.last().is_some_and(|f| f.contains("select") && f.contains("quit")),
        "{}",
        Tui::dump(&rows)
    );
    // The TUI is in raw mode meanwhile.
    let termios = tui.master.get_termios().expect("the pty's modes");
    assert!(!format!("{:?}", termios.local_flags).contains("ICANON"));

    // The selection follows the run onto `talk`; ↓ moves it on to `wrap` and ↑ back, and the
    // list stops following.
    tui.wait_for("`talk` to be selected", |rows| {
        (selected(rows)? == "talk").then_some(())
    });
    tui.press(DOWN);
    tui.wait_for("`wrap` to be selected", |rows| {
        (selected(rows)? == "wrap").then_some(())
    });
    tui.press(UP);
    tui.wait_for("`talk` to be selected again", |rows| {
        (selected(rows)? == "talk").then_some(())
    });

    // Enter opens its logs, following the newest line.
    tui.press(ENTER);
    let opened = tui.wait_for("talk's log pane with enough lines to scroll", |rows| {
        let pane = pane(rows)?;
        (pane.total > 2 * PANE).then_some(pane)
    });
    assert_eq!(opened.phase, "talk");
    assert!(opened.follow, "{opened:?}");
    let rows = tui.rows();
    assert!(
        rows.last()
            .is_some_and(|f| f.contains("top/bottom") && f.contains("follow")),
        "{}",
        Tui::dump(&rows)
    );
    // The pane shows talk's stdout and (marked) stderr lines, and only those.
    let numbered: Vec<&String> = opened.lines.iter().filter(|l| !l.is_empty()).collect();
    assert!(
        numbered.iter().all(|l| line_number(l).is_some()),
        "{}",
        Tui::dump(&rows)
    );
    assert!(numbered.iter().any(|l| l.starts_with("out ")), "{numbered:?}");
    assert!(numbered.iter().any(|l| l.starts_with("! err ")), "{numbered:?}");

    // g: the top, auto-follow off.
    tui.press("g");
    let top = tui.wait_for("the top of the logs", |rows| {
        let pane = pane(rows)?;
        (pane.first == 1 && !pane.follow).then_some(pane)
    });
    assert_eq!(top.last, PANE, "{top:?}");
    assert!(
        top.lines.iter().any(|l| l == "out 1") && top.lines.iter().any(|l| l == "! err 1"),
        "{top:?}"
    );

    // G: the bottom, still not following.
    tui.press("G");
    let bottom = tui.wait_for("the bottom of the logs", |rows| {
        let pane = pane(rows)?;
        (pane.first > 1).then_some(pane)
    });
    assert!(!bottom.follow, "{bottom:?}");
    assert_eq!(bottom.last - bottom.first + 1, PANE, "{bottom:?}");
    assert!(
        bottom.first > top.total.saturating_sub(PANE),
        "{bottom:?} after {top:?}"
    );
    assert!(!bottom.lines.iter().any(|l| l == "out 1"), "{bottom:?}");
    let lowest = bottom.lines.iter().filter_map(|l| line_number(l)).min();
    assert!(lowest.is_some_and(|n| n > 1), "{bottom:?}");

    // f: follow on (the pane sticks to the newest line as more arrive), f again: off.
    tui.press("f");
    let following = tui.wait_for("follow to turn on", |rows| {
        let pane = pane(rows)?;
        (pane.follow && pane.last == pane.total).then_some(pane)
    });
    tui.wait_for("the pane to follow new lines", |rows| {
        let pane = pane(rows)?;
        (pane.follow && pane.total > following.total && pane.last == pane.total).then_some(())
    });
    tui.press("f");
    tui.wait_for("follow to turn off", |rows| {
        pane(rows).filter(|p| !p.follow).map(|_| ())
    });

    // → and ← switch the open log pane to the next and previous phase.
    tui.press(RIGHT);
    tui.wait_for("wrap's log pane", |rows| {
        let rows: Vec<String> = rows.to_vec();
        rows.iter().any(|r| r.contains("wrap · no output")).then_some(())
    });
    tui.press(LEFT);
    tui.wait_for("talk's log pane again", |rows| pane(rows).filter(|p| p.phase == "talk"));

    // q while the pipeline runs cancels it: exit status 130, the summary on the normal screen.
    tui.press("q");
    let code = tui.exit_code();
    let screen = tui.check_restored();
    assert_eq!(code, 130, "{screen}");
    assert!(screen.contains("tuidemo cancelled in"), "{screen}");
    assert!(!screen.contains("follow:"), "the TUI's screen leaked: {screen}");
}

#[test]
fn a_pipeline_that_ends_leaves_the_tui_open_until_q() {
    let mut tui = Tui::start(SHORT);
    // The selection follows the running phase until the user moves it.
    tui.wait_for("`talk` running and selected", |rows| {
        selected(rows).filter(|s| s == "talk")
    });

    // The pipeline completes; the TUI says so and stays.
    tui.wait_for("the pipeline to complete", |rows| {
        let header = rows.first()?;
        let footer = rows.last()?;
        (header.contains("tuidemo completed") && footer.contains("✓ completed")).then_some(())
    });
    let rows = tui.rows();
    for name in ["setup", "talk", "wrap"] {
        let row = phase_row(&rows, name).unwrap_or_else(|| panic!("no row for {name}:\n{}", Tui::dump(&rows)));
        assert!(row.contains('✓'), "{name} did not complete:\n{}", Tui::dump(&rows));
    }
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        matches!(tui.child.try_wait(), Ok(None)),
        "the TUI closed by itself when the pipeline ended"
    );

    // A smaller terminal: everything is drawn again to fit.
    tui.resize(24, 80);
    tui.wait_for("a redraw at 24×80", |rows| {
        let footer = rows.get(23)?;
        let setup = phase_row(rows, "setup")?;
        (rows.len() == 24 && footer.contains("✓ completed") && setup.contains("Set things up")).then_some(())
    });

    // The logs of a finished phase can still be read: all of them. The selection stayed on a
    // phase the list followed (`talk`, or `wrap` if a frame showed it running).
    match selected(&tui.rows()).as_deref() {
        Some("wrap") => tui.press(UP),
        Some("talk") => {}
        other => panic!("the selection is on {other:?}:\n{}", Tui::dump(&tui.rows())),
    }
    tui.wait_for("`talk` to be selected", |rows| {
        (selected(rows)? == "talk").then_some(())
    });
    tui.press(ENTER);
    // At 24 rows the pane shows 17 of the 20 lines: the newest, as it follows; g shows the top.
    let small = 24 - 3 - 3 - 1;
    let newest = tui.wait_for("talk's logs", |rows| pane(rows).filter(|p| p.phase == "talk"));
    assert_eq!(
        (newest.first, newest.last, newest.total),
        (20 - small + 1, 20, 20),
        "{newest:?}"
    );
    assert!(newest.lines.contains(&"out 10".to_owned()), "{newest:?}");
    assert!(newest.lines.contains(&"! err 10".to_owned()), "{newest:?}");
    tui.press("g");
    let oldest = tui.wait_for("the top of talk's logs", |rows| pane(rows).filter(|p| p.first == 1));
    assert_eq!((oldest.last, oldest.total), (small, 20), "{oldest:?}");
    assert!(oldest.lines.contains(&"out 1".to_owned()), "{oldest:?}");
    assert!(oldest.lines.contains(&"! err 1".to_owned()), "{oldest:?}");

    tui.press("q");
    let code = tui.exit_code();
    let screen = tui.check_restored();
    assert_eq!(code, 0, "{screen}");
    assert!(screen.contains("tuidemo completed in"), "{screen}");
}

/// A phase that reads the terminal fails at once: it has no controlling terminal (its own
/// session), where it used to be stopped by SIGTTIN and shown running forever.
#[test]
fn a_phase_reading_the_terminal_fails_at_once() {
    let mut tui = Tui::start("name = \"tty\"\n[[phase]]\nname = \"ask\"\nrun = \"read pw < /dev/tty\"\n");
    tui.wait_for("the pipeline to fail", |rows| {
        rows.first().is_some_and(|h| h.contains("tty failed")).then_some(())
    });
    tui.press("q");
    assert_eq!(tui.exit_code(), 1);
}

#[test]
fn the_run_is_recorded_as_ended_when_it_ends_not_when_the_tui_closes() {
    let mut tui = Tui::start(SHORT);
    tui.wait_for("the pipeline to complete", |rows| {
        rows.first()?.contains("tuidemo completed").then_some(())
    });
    // The TUI is still open, and the history already has the run as completed.
    let run = tui.wait_for_run("completed");
    assert!(matches!(tui.child.try_wait(), Ok(None)), "the TUI closed by itself");
    let duration = run["duration"].as_f64().expect("a duration");
    // Leave the TUI open a while: the recorded duration must not grow.
    std::thread::sleep(Duration::from_secs(3));
    tui.press("q");
    assert_eq!(tui.exit_code(), 0);
    let after = tui.last_run();
    assert_eq!(after["status"], "completed", "{after}");
    assert_eq!(after["duration"].as_f64(), Some(duration), "{after}");
}

#[test]
fn closing_the_terminal_after_the_run_keeps_it_completed() {
    let mut tui = Tui::start(SHORT);
    tui.wait_for("the pipeline to complete", |rows| {
        rows.first()?.contains("tuidemo completed").then_some(())
    });
    tui.wait_for_run("completed");
    // Hang up, as the kernel does when the terminal window closes: milo leaves.
    tui.signal("HUP");
    tui.exit_code();
    let run = tui.last_run();
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["exit_code"], 0, "{run}");
}

#[test]
fn a_tui_killed_after_the_run_leaves_it_completed() {
    let mut tui = Tui::start(SHORT);
    tui.wait_for("the pipeline to complete", |rows| {
        rows.first()?.contains("tuidemo completed").then_some(())
    });
    // Give the history time to record the end (it must not wait for the TUI), then kill milo
    // as a closing terminal session may: the run stays completed, not interrupted.
    std::thread::sleep(Duration::from_secs(2));
    tui.signal("KILL");
    tui.exit_code();
    let run = tui.last_run();
    assert_eq!(run["status"], "completed", "{run}");
}

#[test]
fn a_long_list_keeps_the_running_phases_in_view() {
    // 12 quick phases one after the other, then 8 that run together for a long time, then 20
    // waiting for them: 40 phases in a 20-row terminal.
    let mut toml = String::from("name = \"wide\"\njobs = 8\n");
    for i in 0..12 {
        toml.push_str(&format!("\n[[phase]]\nname = \"p{i:02}\"\nrun = \"true\"\n"));
        if i > 0 {
            toml.push_str(&format!("depends_on = [\"p{:02}\"]\n", i - 1));
        }
    }
    for i in 0..8 {
        toml.push_str(&format!(
            "\n[[phase]]\nname = \"w{i:02}\"\nrun = \"echo working {i}; sleep 30\"\nparallel = true\ndepends_on = [\"p11\"]\n"
        ));
    }
    let workers: Vec<String> = (0..8).map(|i| format!("\"w{i:02}\"")).collect();
    for i in 0..20 {
        toml.push_str(&format!(
            "\n[[phase]]\nname = \"q{i:02}\"\nrun = \"true\"\ndepends_on = [{}]\n",
            workers.join(", ")
        ));
    }
    let mut tui = Tui::start(&toml);
    tui.resize(20, 100);
    let rows = tui.wait_for("all 8 running phases on a 20-row screen", |rows| {
        (rows.len() == 20
            && (0..8)
                .all(|i| phase_row(rows, &format!("w{i:02}")).is_some_and(|r| r.contains(&format!("working {i}")))))
        .then(|| rows.to_vec())
    });
    assert_eq!(selected(&rows).as_deref(), Some("w00"), "{}", Tui::dump(&rows));
    tui.press("q");
    assert_eq!(tui.exit_code(), 130);
}

#[test]
fn a_matrix_phase_is_one_row_that_space_unfolds_and_folds() {
    // Three instances that run a while (one fails after a second, once all have started),
    // then a phase after them.
    let mut tui = Tui::start(
        r#"name = "mx"
jobs = 4

[[phase]]
name = "test"
parallel = true
run = "echo v{{ matrix.v }}; if [ {{ matrix.v }} = 2 ]; then sleep 1; exit 1; fi; sleep 30"
matrix = { v = ["1", "2", "3"] }

[[phase]]
name = "publish"
depends_on = ["test"]
run = "true"
"#,
    );
    // Folded: one row for the three instances, with where they stand.
    let rows = tui.wait_for("the folded group with a failed and two running instances", |rows| {
        let group = rows.iter().find(|r| r.contains("▸ test"))?;
        group.contains("1/3 done, 1 failed, 2 running").then(|| rows.to_vec())
    });
    assert!(!rows.iter().any(|r| r.contains("test[v=")), "{}", Tui::dump(&rows));
    // The list follows the run onto the group's row.
    tui.wait_for("the group's row selected", |rows| {
        (selected(rows)? == "test").then_some(())
    });
    assert!(
        rows.last().is_some_and(|f| f.contains("⏎ unfold")),
        "{}",
        Tui::dump(&rows)
    );

    // Space unfolds it: the instances beneath it, indented; ↓ selects one, Enter opens its logs.
    tui.press(" ");
    let rows = tui.wait_for("the unfolded group", |rows| {
        let at = rows.iter().position(|r| r.contains("▾ test"))?;
        let members: Vec<&String> = rows[at + 1..].iter().filter(|r| r.contains("test[v=")).collect();
        (members.len() == 3).then(|| rows.to_vec())
    });
    let at = |needle: &str| rows.iter().position(|r| r.contains(needle));
    assert!(
        at("▾ test") < at("test[v=1]") && at("test[v=3]") < at("publish"),
        "{}",
        Tui::dump(&rows)
    );
    assert!(rows.iter().any(|r| r.contains("✗   test[v=2]")), "{}", Tui::dump(&rows));
    tui.press(DOWN);
    tui.wait_for("test[v=1] selected", |rows| {
        (selected(rows)? == "test[v=1]").then_some(())
    });
    tui.press(ENTER);
    tui.wait_for("test[v=1]'s logs", |rows| {
        pane(rows).filter(|p| p.phase == "test[v=1]" && p.lines.iter().any(|l| l == "v1"))
    });

    // Back, up onto the group, Enter folds it again.
    tui.press(ENTER);
    tui.press(UP);
    tui.wait_for("the group's row selected again", |rows| {
        (selected(rows)? == "test" && pane(rows).is_none()).then_some(())
    });
    tui.press(ENTER);
    tui.wait_for("the folded group", |rows| {
        (rows.iter().any(|r| r.contains("▸ test")) && !rows.iter().any(|r| r.contains("test[v="))).then_some(())
    });
    tui.press("q");
    assert_eq!(tui.exit_code(), 130);
}
