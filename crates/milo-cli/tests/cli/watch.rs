//! `milo watch` through the real binary: it is started in the background, files are edited,
//! and its output is read until what is expected shows up (generous limits, never a speed
//! claim). A "no more cycles" check waits for the watch to be idle, then a while longer, and
//! is paired with a change that does start a cycle, so it cannot pass with a dead watcher.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::common::processes_with;
use crate::signals::{marker, wait_for};
use crate::util::Test;

const WAIT: Duration = Duration::from_secs(60);
/// How long an idle watch is watched for a cycle that should not come.
const QUIET: Duration = Duration::from_millis(1500);
const IDLE: &str = "milo: watching for changes";

/// A `milo watch --ui plain --no-history` in the background, output in files.
struct Watching {
    child: Child,
    stdin: Option<ChildStdin>,
    dir: std::path::PathBuf,
}

impl Watching {
    fn start(t: &Test, extra: &[&str]) -> Self {
        Self::spawn(t, &[&["watch", "--no-history"], extra].concat())
    }

    /// `milo watch` recording its cycles in the history.
    fn recorded(t: &Test, extra: &[&str]) -> Self {
        Self::spawn(t, &[&["watch"], extra].concat())
    }

    fn spawn(t: &Test, args: &[&str]) -> Self {
        let out = File::create(t.path("stdout.txt")).unwrap();
        let err = File::create(t.path("stderr.txt")).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_milo"))
            .current_dir(t.dir())
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn milo watch");
        let stdin = child.stdin.take();
        Self {
            child,
            stdin,
            dir: t.dir().to_owned(),
        }
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.join("stdout.txt")).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.txt")).unwrap_or_default()
    }

    fn output(&self) -> String {
        format!("--- stdout ---\n{}--- stderr ---\n{}", self.stdout(), self.stderr())
    }

    /// Waits until the watch has been idle `n` times (after `n` cycles).
    fn idle(&self, n: usize) {
        let ok = wait_for(WAIT, || self.stderr().matches(IDLE).count() >= n);
        assert!(ok, "the watch did not go idle {n} times\n{}", self.output());
    }

    fn wait_stdout(&self, text: &str) {
        let ok = wait_for(WAIT, || self.stdout().contains(text));
        assert!(ok, "no {text:?} in the output\n{}", self.output());
    }

    fn wait_stderr(&self, text: &str) {
        let ok = wait_for(WAIT, || self.stderr().contains(text));
        assert!(ok, "no {text:?} on stderr\n{}", self.output());
    }

    /// The output of cycle `n` (from its header to the next one).
    fn cycle(&self, n: usize) -> String {
        let out = self.stdout();
        let start = out
            .find(&format!("milo: cycle {n}"))
            .unwrap_or_else(|| panic!("no cycle {n}\n{}", self.output()));
        let rest = &out[start..];
        let end = rest[1..].find("milo: cycle ").map_or(rest.len(), |e| e + 1);
        rest[..end].to_owned()
    }

    fn cycles(&self) -> usize {
        self.stdout().matches("milo: cycle ").count()
    }

    /// Sends `q` and waits for milo to exit; its exit code.
    fn quit(&mut self) -> Option<i32> {
        if let Some(stdin) = &mut self.stdin {
            let _ = stdin.write_all(b"q\n");
        }
        self.wait()
    }

    fn interrupt(&mut self) -> Option<i32> {
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGINT).expect("kill");
        self.wait()
    }

    fn wait(&mut self) -> Option<i32> {
        let mut code = None;
        let exited = wait_for(WAIT, || match self.child.try_wait() {
            Ok(Some(status)) => {
                code = status.code();
                true
            }
            _ => false,
        });
        assert!(exited, "milo watch did not exit\n{}", self.output());
        code
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn write(t: &Test, name: &str, text: &str) {
    let path = t.path(name);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(Path::new(&path), text).unwrap();
}

const TWO_BUILDS: &str = r#"
name = "w"

[[phase]]
name = "build_a"
run = "cat src/a.txt > out_a.txt"
sources = ["src/a.txt"]
outputs = ["out_a.txt"]

[[phase]]
name = "build_b"
run = "cat src/b.txt > out_b.txt"
sources = ["src/b.txt"]
outputs = ["out_b.txt"]

[[phase]]
name = "test_a"
run = "echo testing $(cat out_a.txt)"
depends_on = ["build_a"]
"#;

fn two_builds() -> Test {
    Test::with(TWO_BUILDS)
        .file("src/a.txt", "a1\n")
        .file("src/b.txt", "b1\n")
}

#[test]
fn an_edit_reruns_only_the_affected_phases_and_their_dependents() {
    let t = two_builds();
    let mut w = Watching::start(&t, &["--ui", "plain"]);
    w.idle(1);
    let first = w.cycle(1);
    assert!(
        first.contains("[build_a] started") && first.contains("[build_b] started"),
        "{first}"
    );
    write(&t, "src/a.txt", "a2\n");
    w.idle(2);
    let second = w.cycle(2);
    assert!(second.starts_with("milo: cycle 2: src/a.txt changed"), "{second}");
    assert!(second.contains("[build_a] started (src/a.txt changed)"), "{second}");
    assert!(second.contains("[build_b] up to date"), "{second}");
    assert!(second.contains("[test_a] │ testing a2"), "{second}");
    assert!(second.contains("2 ran, 1 up to date"), "{second}");
    assert_eq!(w.quit(), Some(0), "{}", w.output());
    assert!(
        w.stderr().contains("milo: watch stopped after 2 cycles"),
        "{}",
        w.output()
    );
}

#[test]
fn the_json_stream_reports_each_cycle_and_its_changed_paths() {
    let t = two_builds();
    let mut w = Watching::start(&t, &["--ui", "json"]);
    w.idle(1);
    write(&t, "src/b.txt", "b2\n");
    w.idle(2);
    let out = w.stdout();
    let cycles: Vec<serde_json::Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["type"] == "@@WATCH_CYCLE")
        .collect();
    assert_eq!(cycles.len(), 2, "{out}");
    assert_eq!(cycles[0]["payload"], serde_json::json!({"cycle": 1, "changed": []}));
    assert_eq!(
        cycles[1]["payload"],
        serde_json::json!({"cycle": 2, "changed": ["src/b.txt"]})
    );
    // Every other line is an action of a run, as `milo run --ui json` prints them.
    assert_eq!(out.matches("\"@@PIPELINE_START\"").count(), 2, "{out}");
    assert_eq!(w.quit(), Some(0));
}

#[test]
fn a_burst_of_100_writes_gives_one_cycle() {
    let t = two_builds();
    let mut w = Watching::start(&t, &["--ui", "plain", "--debounce", "300"]);
    w.idle(1);
    for n in 0..100 {
        write(&t, "src/a.txt", &format!("burst {n}\n"));
    }
    w.idle(2);
    std::thread::sleep(QUIET);
    assert_eq!(w.cycles(), 2, "{}", w.output());
    assert!(w.cycle(2).contains("[test_a] │ testing burst 99"), "{}", w.output());
    assert_eq!(w.quit(), Some(0));
}

#[test]
fn a_change_during_a_cycle_gives_exactly_one_more_cycle() {
    let t = Test::with(
        r#"
name = "w"

[[phase]]
name = "slow"
run = "echo started >> log.txt; sleep 2; cat src/a.txt"
sources = ["src/**"]
"#,
    )
    .file("src/a.txt", "v1\n");
    let mut w = Watching::start(&t, &["--ui", "plain"]);
    assert!(wait_for(WAIT, || t.path("log.txt").exists()), "{}", w.output());
    // Two changes while the first cycle runs.
    write(&t, "src/a.txt", "v2\n");
    std::thread::sleep(Duration::from_millis(300));
    write(&t, "src/a.txt", "v3\n");
    // The watch is idle only once no change waits: after cycle 2.
    w.idle(1);
    std::thread::sleep(QUIET);
    assert_eq!(w.cycles(), 2, "{}", w.output());
    assert!(w.cycle(1).contains("[slow] completed"), "{}", w.output());
    let second = w.cycle(2);
    assert!(second.starts_with("milo: cycle 2: src/a.txt changed"), "{second}");
    assert!(second.contains("[slow] │ v3"), "{second}");
    // The watch still sees changes after that.
    write(&t, "src/a.txt", "v4\n");
    w.idle(2);
    assert_eq!(w.cycles(), 3, "{}", w.output());
    assert_eq!(w.quit(), Some(0));
}

#[test]
fn on_change_restart_interrupts_the_phase_and_runs_it_again() {
    let sleep = marker();
    let t = Test::with(&format!(
        r#"
name = "w"

[[phase]]
name = "serve-ish"
run = "echo begin >> log.txt; cat src/a.txt; sleep {sleep}"
sources = ["src/**"]
on_change = "restart"
"#
    ))
    .file("src/a.txt", "v1\n");
    let mut w = Watching::start(&t, &["--ui", "plain"]);
    w.wait_stdout("[serve-ish] │ v1");
    write(&t, "src/a.txt", "v2\n");
    w.wait_stderr("milo: `serve-ish` interrupted (on_change = \"restart\"): src/a.txt changed");
    w.wait_stdout("[serve-ish] │ v2");
    let first = w.cycle(1);
    assert!(first.contains("[serve-ish] cancelled after"), "{first}");
    assert!(
        w.cycle(2).starts_with("milo: cycle 2: src/a.txt changed"),
        "{}",
        w.output()
    );
    assert_eq!(t.read("log.txt").lines().count(), 2);
    // `q` stops the running cycle and its processes.
    assert_eq!(w.quit(), Some(0), "{}", w.output());
    assert!(processes_with(&sleep).is_empty(), "{}", w.output());
}

#[test]
fn a_service_is_restarted_when_its_dependency_is_rebuilt_and_gone_after_ctrl_c() {
    let sleep = marker();
    let t = Test::with(&format!(
        r#"
name = "w"

[[phase]]
name = "build"
run = "cp src/app.txt app.out"
sources = ["src/app.txt"]
outputs = ["app.out"]

[[phase]]
name = "server"
run = "echo serving $(cat app.out); sleep {sleep} & sleep {sleep}"
service = true
ready = {{ log = "serving" }}
depends_on = ["build"]

[[phase]]
name = "other"
run = "cat notes.txt"
sources = ["notes.txt"]
"#
    ))
    .file("src/app.txt", "v1\n")
    .file("notes.txt", "n1\n");
    let mut w = Watching::start(&t, &["--ui", "plain"]);
    w.idle(1);
    assert!(w.cycle(1).contains("[server] │ serving v1"), "{}", w.output());
    assert!(w.stderr().contains("services up: `server`"), "{}", w.output());
    // The service's shell and its two sleeps.
    let first: Vec<i32> = processes_with(&sleep);
    assert!(!first.is_empty(), "{}", w.output());
    // An unrelated change leaves the service as it is.
    write(&t, "notes.txt", "n2\n");
    w.idle(2);
    let second = w.cycle(2);
    assert!(second.contains("[other] │ n2"), "{second}");
    assert!(!second.contains("[server] │ serving"), "{second}");
    assert!(!second.contains("[server] starting"), "{second}");
    assert_eq!(processes_with(&sleep), first, "{}", w.output());
    // Rebuilding its dependency restarts it.
    write(&t, "src/app.txt", "v2\n");
    w.idle(3);
    let third = w.cycle(3);
    assert!(third.contains("[build] started (src/app.txt changed)"), "{third}");
    assert!(third.contains("[server] starting (service)"), "{third}");
    assert!(third.contains("[server] │ serving v2"), "{third}");
    let now = processes_with(&sleep);
    assert!(!now.is_empty(), "{}", w.output());
    assert!(
        now.iter().all(|p| !first.contains(p)),
        "the old server is still running"
    );
    assert_eq!(w.interrupt(), Some(0), "{}", w.output());
    assert!(
        processes_with(&sleep).is_empty(),
        "the service or its child outlived milo watch\n{}",
        w.output()
    );
}

#[test]
fn an_output_written_by_a_phase_or_a_gitignored_file_does_not_start_a_cycle() {
    let t = Test::with(
        r#"
name = "w"

[[phase]]
name = "gen"
run = "cat src/in.txt > src/gen.txt; date > src/scratch.tmp"
sources = ["src/**"]
outputs = ["src/gen.txt"]
"#,
    )
    .file(".gitignore", "*.tmp\n")
    .file("src/in.txt", "one\n");
    let mut w = Watching::start(&t, &["--ui", "plain"]);
    w.idle(1);
    assert!(t.path("src/gen.txt").exists() && t.path("src/scratch.tmp").exists());
    std::thread::sleep(QUIET);
    assert_eq!(w.cycles(), 1, "{}", w.output());
    // A real edit does.
    write(&t, "src/in.txt", "two\n");
    w.idle(2);
    assert!(
        w.cycle(2).starts_with("milo: cycle 2: src/in.txt changed"),
        "{}",
        w.output()
    );
    std::thread::sleep(QUIET);
    assert_eq!(w.cycles(), 2, "{}", w.output());
    assert_eq!(t.read("src/gen.txt"), "two\n");
    assert_eq!(w.quit(), Some(0));
}

#[test]
fn poll_mode_sees_changes_too() {
    let t = two_builds();
    let mut w = Watching::start(&t, &["--ui", "plain", "--poll", "--poll-interval", "100"]);
    w.idle(1);
    // Polling compares modification times in whole seconds (notify's poll watcher): the
    // edit must fall in a later second than the file's creation.
    std::thread::sleep(Duration::from_millis(1100));
    write(&t, "src/b.txt", "b2 longer\n");
    w.idle(2);
    assert!(
        w.cycle(2).contains("[build_b] started (src/b.txt changed)"),
        "{}",
        w.output()
    );
    assert_eq!(w.quit(), Some(0));
}

#[test]
fn watch_needs_sources() {
    Test::with("name = \"x\"\n[[phase]]\nname = \"a\"\nrun = \"true\"\n")
        .run_args(["watch", "--no-history"])
        .code(2)
        .stderr_has("`milo watch` has nothing to watch: no phase of milo.toml has `sources`");
}

/// A build and a service that depends on it, for the tests in a terminal.
fn build_and_service(sleep: &str) -> Test {
    Test::with(&format!(
        r#"
name = "w"

[[phase]]
name = "build"
run = "cp src/app.txt app.out"
sources = ["src/app.txt"]
outputs = ["app.out"]

[[phase]]
name = "server"
run = "echo serving $(cat app.out); sleep {sleep} & sleep {sleep}"
service = true
ready = {{ log = "serving" }}
depends_on = ["build"]
"#
    ))
    .file("src/app.txt", "v1\n")
}

/// Whether a pty's modes are the ones a shell leaves it in: line editing, echo, signals from
/// Ctrl-C and `\n` written as `\r\n`.
fn cooked((local, output): (libc::tcflag_t, libc::tcflag_t)) -> bool {
    let all = |flags: libc::tcflag_t, want: libc::tcflag_t| flags & want == want;
    all(local, libc::ICANON | libc::ECHO | libc::ISIG) && all(output, libc::OPOST | libc::ONLCR)
}

/// Whether the pty is in raw mode with output processing kept: no line editing, no echo,
/// Ctrl-C a byte, and `\n` still written as `\r\n`.
fn raw_with_output((local, output): (libc::tcflag_t, libc::tcflag_t)) -> bool {
    local & (libc::ICANON | libc::ECHO | libc::ISIG) == 0
        && output & (libc::OPOST | libc::ONLCR) == libc::OPOST | libc::ONLCR
}

/// Starts `milo watch` on [`build_and_service`] in a pty and waits for its first idle line.
fn watching_in_a_pty(t: &Test, ui: &str) -> crate::pty::Live {
    let live = crate::pty::Live::start(t.dir(), &["watch", "--no-history", "--ui", ui], 100, 30);
    assert!(
        live.wait_for(IDLE.as_bytes(), 1, WAIT),
        "the watch did not go idle\n{}",
        live.dump()
    );
    live
}

/// Types `key` into the watch in `live` (`what` names it in messages) and checks that milo
/// exits 0 within a few seconds, leaves no process whose command line has `sleep`, and gives
/// the terminal back in its usual modes.
fn stops_cleanly(live: &mut crate::pty::Live, key: &[u8], what: &str, sleep: &str) {
    live.send(key);
    let code = live.exit_within(Duration::from_secs(10));
    assert_eq!(code, Some(0), "{what} did not stop the watch\n{}", live.dump());
    assert!(
        processes_with(sleep).is_empty(),
        "{what}: the service outlived milo watch\n{}",
        live.dump()
    );
    let modes = live.modes().expect("the pty's modes");
    assert!(cooked(modes), "{what}: the terminal was left in raw mode: {modes:x?}");
}

#[test]
fn q_alone_stops_the_watch_in_a_terminal_and_leaves_no_process_or_raw_mode() {
    for ui in ["plain", "progress"] {
        let sleep = marker();
        let t = build_and_service(&sleep);
        let mut live = watching_in_a_pty(&t, ui);
        assert!(!processes_with(&sleep).is_empty(), "{ui}: no service\n{}", live.dump());
        // While it watches, the terminal does not wait for Enter and does not echo.
        let modes = live.modes().expect("the pty's modes");
        assert!(
            raw_with_output(modes),
            "{ui}: not raw mode with output processing: {modes:x?}\n{}",
            live.dump()
        );
        // One byte, no newline.
        stops_cleanly(&mut live, b"q", &format!("{ui}: `q`"), &sleep);
        // Every line starts in the first column (no staircase from a bare `\n` in raw mode),
        // and the `q` was not echoed.
        let rows = live.rows();
        let idle = rows.iter().find(|r| r.contains(IDLE)).cloned().unwrap_or_default();
        assert!(idle.starts_with(IDLE), "{ui}: {idle:?}\n{}", live.dump());
        assert!(idle.contains("(q or Ctrl-C stops)"), "{ui}: {idle:?}\n{}", live.dump());
        let stopped = rows
            .iter()
            .find(|r| r.contains("watch stopped"))
            .cloned()
            .unwrap_or_default();
        assert_eq!(stopped, "milo: watch stopped after 1 cycle", "{ui}\n{}", live.dump());
        if ui == "plain" {
            let serving = rows
                .iter()
                .find(|r| r.contains("serving v1"))
                .cloned()
                .unwrap_or_default();
            assert!(serving.starts_with("[server]"), "{serving:?}\n{}", live.dump());
        }
    }
}

#[test]
fn ctrl_c_in_a_terminal_stops_the_watch_like_sigint() {
    let sleep = marker();
    let t = build_and_service(&sleep);
    let mut live = watching_in_a_pty(&t, "plain");
    // Raw mode turns Ctrl-C into the byte 0x03 instead of a SIGINT from the kernel.
    stops_cleanly(&mut live, b"\x03", "Ctrl-C", &sleep);
}

#[test]
fn every_cycle_is_one_run_in_the_history_with_the_phases_that_ran() {
    let t = two_builds();
    let mut w = Watching::recorded(&t, &["--ui", "plain"]);
    w.idle(1);
    write(&t, "src/a.txt", "a2\n");
    w.idle(2);
    write(&t, "src/b.txt", "b2\n");
    w.idle(3);
    assert_eq!(w.quit(), Some(0), "{}", w.output());
    let history = t.run_args(["history", "--json"]).code(0).stdout.clone();
    let runs: Vec<serde_json::Value> = serde_json::from_str(&history).expect("history json");
    assert_eq!(runs.len(), 3, "{history}");
    // Newest first: the second edit's cycle, the first edit's, the initial run.
    let ids: Vec<i64> = runs.iter().filter_map(|r| r["id"].as_i64()).collect();
    assert_eq!(ids, [3, 2, 1], "{history}");
    assert!(runs.iter().all(|r| r["status"] == "completed"), "{history}");
    let ran = |id: &serde_json::Value| -> Vec<(String, String)> {
        let show = t.run_args(["show", &id.to_string(), "--json"]).code(0).stdout.clone();
        let detail: serde_json::Value = serde_json::from_str(&show).expect("show json");
        let mut phases: Vec<(String, String)> = detail["phases"]
            .as_array()
            .expect("phases")
            .iter()
            .map(|p| {
                assert_eq!(p["status"], "completed", "{show}");
                // A phase without `sources` has no verdict: it ran if it was attempted.
                let how = match (p["verdict"].as_str(), p["attempts"].as_u64()) {
                    (Some("up_to_date"), _) => "up_to_date",
                    (_, Some(1..)) => "run",
                    _ => "not run",
                };
                (p["name"].as_str().unwrap_or("").to_owned(), how.to_owned())
            })
            .collect();
        phases.sort();
        phases
    };
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
    };
    assert_eq!(
        ran(&runs[2]["id"]),
        pairs(&[("build_a", "run"), ("build_b", "run"), ("test_a", "run")])
    );
    assert_eq!(
        ran(&runs[1]["id"]),
        pairs(&[("build_a", "run"), ("build_b", "up_to_date"), ("test_a", "run")])
    );
    // `test_a` has no `sources`: not incremental, it runs in every cycle.
    assert_eq!(
        ran(&runs[0]["id"]),
        pairs(&[("build_a", "up_to_date"), ("build_b", "run"), ("test_a", "run")])
    );
}

/// Polls `live`'s screen until `check` holds for it (up to [`WAIT`]).
fn wait_screen(live: &crate::pty::Live, what: &str, check: impl Fn(&[String]) -> bool) {
    let ok = wait_for(WAIT, || check(&live.rows()));
    assert!(ok, "no {what} on the screen\n{}", live.dump());
}

#[test]
fn the_tui_stays_up_across_cycles_and_q_or_ctrl_c_stops_the_watch_and_its_services() {
    for (key, how) in [(&b"q"[..], "q"), (&b"\x03"[..], "Ctrl-C")] {
        let sleep = marker();
        let t = build_and_service(&sleep);
        let mut live = crate::pty::Live::start(t.dir(), &["watch", "--no-history", "--ui", "tui"], 100, 30);
        let has = |rows: &[String], text: &str| rows.iter().any(|r| r.contains(text));
        let selected = |rows: &[String], name: &str| rows.iter().any(|r| r.starts_with('›') && r.contains(name));
        wait_screen(&live, "cycle 1, waiting with the service up", |rows| {
            rows[0].trim() == "cycle 1" && rows[1].contains("watching for changes · services up: server")
        });
        let first = processes_with(&sleep);
        assert!(!first.is_empty(), "{how}: no service\n{}", live.dump());
        // Select the second phase: the next cycle keeps it selected.
        live.send(b"j");
        wait_screen(&live, "`server` selected", |rows| selected(rows, "server"));
        write(&t, "src/app.txt", "v2\n");
        wait_screen(&live, "cycle 2 with the changed path, then waiting", |rows| {
            rows[0].trim() == "cycle 2 — src/app.txt changed" && rows[1].contains("watching for changes")
        });
        assert!(
            selected(&live.rows(), "server"),
            "{how}: the selection moved\n{}",
            live.dump()
        );
        // The service was restarted in cycle 2.
        let now = processes_with(&sleep);
        assert!(
            !now.is_empty() && now.iter().all(|p| !first.contains(p)),
            "{how}: the service was not restarted\n{}",
            live.dump()
        );
        // The watch's own lines never went to the screen under the TUI.
        let text = String::from_utf8_lossy(&live.raw()).into_owned();
        assert!(!text.contains("milo: cycle"), "{how}\n{}", live.dump());
        assert!(!text.contains("milo: watching"), "{how}\n{}", live.dump());
        stops_cleanly(&mut live, key, how, &sleep);
        // Back on the normal screen, where the watch says how it ended.
        let rows = live.rows();
        assert!(
            has(&rows, "milo: watch stopped after 2 cycles"),
            "{how}\n{}",
            live.dump()
        );
        assert!(!has(&rows, "watching for changes"), "{how}\n{}", live.dump());
    }
}

#[test]
fn the_tui_needs_a_terminal() {
    // Standard output is a pipe here: refused before anything runs.
    two_builds()
        .run_args(["watch", "--no-history", "--ui", "tui"])
        .code(2)
        .stderr_has("--ui tui needs a terminal, but standard output is not one");
}

const WATCHED_TREE: &str = r#"
name = "w"

[[phase]]
name = "copy"
run = "cat src/*.txt > out.txt"
sources = ["src/**"]
outputs = ["out.txt"]
"#;

#[test]
fn show_names_the_changed_path_that_triggered_a_watch_cycle() {
    let t = Test::with(WATCHED_TREE)
        .file("src/x.txt", "x1\n")
        .file("src/y.txt", "y1\n");
    let mut w = Watching::recorded(&t, &["--ui", "plain"]);
    w.idle(1);
    write(&t, "src/x.txt", "x2\n");
    w.idle(2);
    assert_eq!(w.quit(), Some(0), "{}", w.output());

    let first = t.run_args(["show", "1"]);
    first.code(0).stdout_line("trigger: watch cycle 1");
    let second = t.run_args(["show", "2"]);
    second.code(0).stdout_line("trigger: watch cycle 2 — src/x.txt changed");
    let json: serde_json::Value = serde_json::from_str(&t.run_args(["show", "2", "--json"]).stdout).expect("show json");
    assert_eq!(
        json["trigger"],
        serde_json::json!({"watch_cycle": 2, "changed": ["src/x.txt"]}),
        "{json}"
    );
    let history = t.run_args(["history"]);
    history
        .code(0)
        .stdout_has("completed watch #2")
        .stdout_has("completed watch #1");
    let report = t.run_args(["report", "2", "-o", "report.html"]);
    report.code(0);
    let html = t.read("report.html");
    assert!(
        html.contains("watch cycle 2 — <code>src/x.txt</code> changed"),
        "{html}"
    );
    // A plain run is not marked.
    let run = t.run_args(["run", "--ui", "plain"]);
    run.code(0);
    t.run_args(["show", "3"]).code(0).stdout_lacks("trigger:");

    // The trigger is part of what the journal's chain vouches for: an edit is found.
    t.run_args(["replay", "2"]).code(0);
    let conn = rusqlite::Connection::open(t.path(".milo/history.db")).expect("open the history");
    conn.execute(
        r#"UPDATE runs SET trigger = '{"watch_cycle":2,"changed":["src/y.txt"]}' WHERE id = 2"#,
        [],
    )
    .expect("edit");
    drop(conn);
    let forged = t.run_args(["replay", "2"]);
    forged.code(1).stdout_has("tampered");
}
