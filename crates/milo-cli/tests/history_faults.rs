//! The run history through the real `milo` binary: every history command round-trips what a
//! run recorded (`milo history`, `show`, `logs`, `replay`, `run --resume`, `--no-history`,
//! `--db`), and a history that cannot be written (locked by another process, on a full disk)
//! or is shared by two runs at once never stops a run: it completes with the right exit
//! status and at most one clear warning.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

const MILO: &str = env!("CARGO_BIN_EXE_milo");

/// How long any `milo` invocation may take before the test fails instead of hanging.
const LIMIT: Duration = Duration::from_secs(120);

fn dir_with(toml: &str) -> TempDir {
    let dir = tempfile::Builder::new().prefix("milo-history-test").tempdir().unwrap();
    std::fs::write(dir.path().join("milo.toml"), toml).unwrap();
    dir
}

/// Runs `milo args…` in `dir` and waits for it (at most [`LIMIT`]).
fn milo(dir: &Path, args: &[&str]) -> Output {
    let child = Command::new(MILO)
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait(child)
}

fn wait(mut child: std::process::Child) -> Output {
    let deadline = Instant::now() + LIMIT;
    // Drain the pipes on threads so a chatty run cannot block on a full pipe.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut v).unwrap();
        v
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut stderr, &mut v).unwrap();
        v
    });
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("milo did not finish within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Asserts the exit status, printing everything milo said when it is wrong.
fn expect(out: &Output, code: i32) -> &Output {
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit status\n--- stdout\n{}\n--- stderr\n{}",
        tail(&text(&out.stdout)),
        text(&out.stderr)
    );
    out
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&out.stdout)))
}

fn warnings(out: &Output) -> Vec<String> {
    text(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("warning"))
        .map(str::to_owned)
        .collect()
}

fn runs(dir: &Path, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["history", "--json"];
    args.extend_from_slice(extra);
    let out = milo(dir, &args);
    expect(&out, 0);
    json(&out).as_array().unwrap().clone()
}

const LOGGER: &str = r#"
name = "logger"

[[phase]]
name = "talk"
run = '''for i in 1 2 3 4 5; do echo "out line $i"; echo "err line $i" >&2; done'''

[[phase]]
name = "boom"
depends_on = ["talk"]
run = "echo about to fail; exit 3"
"#;

#[test]
fn history_show_logs_and_replay_round_trip_a_run() {
    let dir = dir_with(LOGGER);
    let d = dir.path();
    expect(&milo(d, &["run", "--ui", "plain"]), 1);
    assert!(d.join(".milo/history.db").exists());

    let list = runs(d, &[]);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["id"], 1);
    assert_eq!(list[0]["pipeline"], "logger");
    assert_eq!(list[0]["status"], "failed");
    assert_eq!(list[0]["exit_code"], 1);
    assert_eq!(list[0]["failed_phase"], "boom");
    let table = text(&expect(&milo(d, &["history"]), 0).stdout);
    assert!(table.contains("RUN") && table.contains("logger"), "{table}");
    assert!(
        table.lines().any(|l| l.contains("failed") && l.ends_with("boom")),
        "{table}"
    );

    // A second run: -n limits the list, newest first.
    expect(&milo(d, &["run", "--ui", "plain"]), 1);
    let two = runs(d, &[]);
    assert_eq!(
        two.iter().map(|r| r["id"].as_i64().unwrap()).collect::<Vec<_>>(),
        [2, 1]
    );
    let one = runs(d, &["-n", "1"]);
    assert_eq!(one.len(), 1);
    assert_eq!(one[0]["id"], 2);

    // show: the phases, in order, with their statuses and line counts.
    let show = json(expect(&milo(d, &["show", "1", "--json"]), 0));
    assert_eq!(show["id"], 1);
    let phases = show["phases"].as_array().unwrap();
    assert_eq!(phases.len(), 2);
    assert_eq!(
        (&phases[0]["name"], &phases[0]["status"], &phases[0]["log_count"]),
        (&Value::from("talk"), &Value::from("completed"), &Value::from(10))
    );
    assert_eq!(
        (&phases[1]["name"], &phases[1]["status"], &phases[1]["attempts"]),
        (&Value::from("boom"), &Value::from("failed"), &Value::from(1))
    );
    let shown = text(&expect(&milo(d, &["show"]), 0).stdout);
    assert!(shown.starts_with("run 2 · logger · failed (exit 1)"), "{shown}");
    assert!(
        shown.lines().any(|l| l.starts_with("talk") && l.contains("completed")),
        "{shown}"
    );

    // logs: every line, in order; --stream picks one stream; RUN is optional.
    let all = text(&expect(&milo(d, &["logs", "talk"]), 0).stdout);
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(lines.len(), 10, "{all}");
    let mut outs: Vec<&str> = lines.iter().copied().filter(|l| l.starts_with("out")).collect();
    outs.dedup();
    assert_eq!(
        outs,
        ["out line 1", "out line 2", "out line 3", "out line 4", "out line 5"]
    );
    let errs = text(&expect(&milo(d, &["logs", "1", "talk", "--stream", "stderr"]), 0).stdout);
    assert_eq!(errs, "err line 1\nerr line 2\nerr line 3\nerr line 4\nerr line 5\n");
    let boom = text(&expect(&milo(d, &["logs", "1", "boom"]), 0).stdout);
    assert_eq!(boom, "about to fail\n");
    let unknown = milo(d, &["logs", "1", "nope"]);
    expect(&unknown, 2);
    assert!(text(&unknown.stderr).contains("`talk`"), "{}", text(&unknown.stderr));
    expect(&milo(d, &["show", "9"]), 2);

    // replay: verified, then the reduced timeline.
    let replay = text(&expect(&milo(d, &["replay", "1"]), 0).stdout);
    assert!(
        replay.starts_with("run 1: journal verified: MAC chain intact"),
        "{replay}"
    );
    assert!(replay.contains("failed"), "{replay}");
    let timeline = json(expect(&milo(d, &["replay", "--json"]), 0));
    assert_eq!(timeline["status"], "failed");
}

/// The journal sequence numbers of run `run`'s captured lines, in order: the entries that are
/// not `journal` rows (whatever the log chunk encoding).
fn line_seqs(conn: &rusqlite::Connection, run: i64) -> Vec<i64> {
    let len: i64 = conn
        .query_row("SELECT journal_len FROM runs WHERE id = ?1", [run], |r| r.get(0))
        .unwrap();
    let mut stmt = conn.prepare("SELECT seq FROM journal WHERE run_id = ?1").unwrap();
    let rows: std::collections::HashSet<i64> = stmt
        .query_map([run], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    (1..=len).filter(|s| !rows.contains(s)).collect()
}

#[test]
fn replay_names_the_first_tampered_entry() {
    let toml = "name = \"t\"\n[[phase]]\nname = \"count\"\nrun = 'for i in $(seq 1 50); do echo \"line $i\"; done'\n";
    let dir = dir_with(toml);
    let d = dir.path();
    expect(&milo(d, &["run", "--ui", "plain"]), 0);
    expect(&milo(d, &["run", "--ui", "plain"]), 0);
    let conn = rusqlite::Connection::open(d.join(".milo/history.db")).unwrap();

    // Run 1: a captured line edited inside its log chunk.
    let (first_seq, mut data): (i64, Vec<u8>) = conn
        .query_row(
            "SELECT first_seq, data FROM logs WHERE run_id = 1 AND phase = 'count' ORDER BY first_seq LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(first_seq > 0);
    let at = data.windows(7).position(|w| w == b"line 17").unwrap();
    data[at + 6] = b'8';
    conn.execute(
        "UPDATE logs SET data = ?1 WHERE run_id = 1 AND phase = 'count' AND first_seq = ?2",
        rusqlite::params![data, first_seq],
    )
    .unwrap();
    let seqs = line_seqs(&conn, 1);
    assert_eq!(seqs.len(), 50);
    let bad = seqs[16]; // "line 17"
    let out = milo(d, &["replay", "1"]);
    expect(&out, 1);
    let said = text(&out.stdout);
    assert!(
        said.contains(&format!("entry {bad} (@@PHASE_LOG) does not match its hash")),
        "{said}"
    );
    // The logs show the edit: the history does not hide it, replay flags it.
    let logs = text(&expect(&milo(d, &["logs", "1", "count"]), 0).stdout);
    assert!(logs.contains("line 18\nline 18\n"), "{logs}");

    // Run 2: an action's JSON edited, and a later one too: the first is named.
    let target: i64 = conn
        .query_row(
            "SELECT seq FROM journal WHERE run_id = 2 AND action LIKE '%@@PHASE_COMPLETE%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let later: i64 = conn
        .query_row("SELECT max(seq) FROM journal WHERE run_id = 2", [], |r| r.get(0))
        .unwrap();
    assert!(later > target);
    for seq in [target, later] {
        conn.execute(
            "UPDATE journal SET action = replace(action, 'timestamp\":', 'timestamp\": 1') WHERE run_id = 2 AND seq = ?1",
            [seq],
        )
        .unwrap();
    }
    let out = milo(d, &["replay"]);
    expect(&out, 1);
    let said = text(&out.stdout);
    assert!(
        said.contains(&format!(
            "run 2: the journal was tampered with: entry {target} (@@PHASE_COMPLETE)"
        )),
        "{said}"
    );
}

const RESUMABLE: &str = r#"
name = "resumable"

[[phase]]
name = "produce"
run = '''echo ran >> produce.count; echo '{"answer": 42}' > "$MILO_OUTPUT"'''

[[phase]]
name = "consume"
depends_on = ["produce"]
run = '''cp "$MILO_INPUTS" consume-inputs.json; test -f go'''
"#;

#[test]
fn resume_skips_completed_phases_and_passes_their_results() {
    let dir = dir_with(RESUMABLE);
    let d = dir.path();
    expect(&milo(d, &["run", "--ui", "plain"]), 1);
    assert_eq!(std::fs::read_to_string(d.join("produce.count")).unwrap(), "ran\n");

    std::fs::write(d.join("go"), "").unwrap();
    std::fs::remove_file(d.join("consume-inputs.json")).unwrap();
    let out = milo(d, &["run", "--ui", "plain", "--resume"]);
    expect(&out, 0);
    let err = text(&out.stderr);
    assert!(
        err.contains("resuming run 1: 1 phase reused (produce), 1 to run (consume)"),
        "{err}"
    );
    assert!(
        text(&out.stdout).contains("[produce] completed (reused from run 1)"),
        "{}",
        text(&out.stdout)
    );
    // Not run again, and its recorded result reached the dependent.
    assert_eq!(std::fs::read_to_string(d.join("produce.count")).unwrap(), "ran\n");
    let inputs: Value = serde_json::from_str(&std::fs::read_to_string(d.join("consume-inputs.json")).unwrap()).unwrap();
    assert_eq!(inputs, serde_json::json!({"produce": {"answer": 42}}));

    let list = runs(d, &[]);
    assert_eq!(list[0]["id"], 2);
    assert_eq!(list[0]["status"], "completed");
    assert_eq!(list[0]["resumed_from"], 1);
    let show = json(expect(&milo(d, &["show", "--json"]), 0));
    let produce = &show["phases"][0];
    assert_eq!(produce["name"], "produce");
    assert_eq!(produce["status"], "completed");
    assert_eq!(produce["reused_from"], "1");
    assert_eq!(produce["result"], serde_json::json!({"answer": 42}));
    let shown = text(&expect(&milo(d, &["show"]), 0).stdout);
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("produce") && l.ends_with("from run 1")),
        "{shown}"
    );
    assert!(shown.contains("resumes run 1"), "{shown}");

    // A completed run is not resumable: a usage error, nothing run.
    let again = milo(d, &["run", "--ui", "plain", "--resume"]);
    expect(&again, 2);
    assert!(text(&again.stderr).contains("completed"), "{}", text(&again.stderr));
    assert_eq!(runs(d, &[]).len(), 2);
}

#[test]
fn no_history_creates_no_database_and_db_picks_the_file() {
    let toml = "name = \"p\"\n[[phase]]\nname = \"a\"\nrun = \"echo hello\"\n";
    let dir = dir_with(toml);
    let d = dir.path();
    let out = milo(d, &["run", "--ui", "plain", "--no-history"]);
    expect(&out, 0);
    assert!(!d.join(".milo").exists(), "--no-history created .milo");
    assert!(warnings(&out).is_empty(), "{}", text(&out.stderr));
    let missing = milo(d, &["history"]);
    assert_ne!(missing.status.code(), Some(0));
    assert!(
        text(&missing.stderr).contains("no run history"),
        "{}",
        text(&missing.stderr)
    );

    // --resume needs the history.
    expect(&milo(d, &["run", "--ui", "plain", "--no-history", "--resume"]), 2);

    let out = milo(d, &["run", "--ui", "plain", "--db", "elsewhere/runs.db"]);
    expect(&out, 0);
    assert!(d.join("elsewhere/runs.db").exists());
    assert!(!d.join(".milo").exists(), "--db still wrote .milo");
    let list = runs(d, &["--db", "elsewhere/runs.db"]);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["status"], "completed");
    let logs = text(&expect(&milo(d, &["logs", "a", "--db", "elsewhere/runs.db"]), 0).stdout);
    assert_eq!(logs, "hello\n");
}

const SMALL: &str = r#"
name = "small"

[[phase]]
name = "a"
run = "echo fine"

[[phase]]
name = "b"
depends_on = ["a"]
run = "exit 4"
"#;

#[test]
fn a_locked_history_warns_once_and_the_run_goes_on() {
    let dir = dir_with(SMALL);
    let d = dir.path();
    expect(&milo(d, &["run", "--ui", "plain"]), 1);
    // Another process holds the write lock for the whole run.
    let holder = rusqlite::Connection::open(d.join(".milo/history.db")).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    holder
        .execute("UPDATE runs SET error = error WHERE id = 1", [])
        .unwrap();
    let started = Instant::now();
    let out = milo(d, &["run", "--ui", "plain"]);
    let took = started.elapsed();
    expect(&out, 1);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("[a] completed"), "{stdout}");
    assert!(stdout.contains("[b] failed"), "{stdout}");
    let w = warnings(&out);
    assert_eq!(w.len(), 1, "{}", text(&out.stderr));
    assert!(w[0].contains("locked"), "{}", w[0]);
    // The run waited for the lock about milo_history::cli::RUN_START_WAIT (2 s), not the
    // writer's 10 s busy timeout.
    assert!(took < Duration::from_secs(8), "the run took {took:?}");
    holder.execute_batch("COMMIT").unwrap();
    drop(holder);
    // The history still works afterwards.
    expect(&milo(d, &["run", "--ui", "plain"]), 1);
    let list = runs(d, &[]);
    assert!(list.iter().all(|r| r["status"] == "failed"), "{list:?}");
    assert_eq!(list[0]["id"].as_i64(), Some(list.len() as i64));
}

/// A tmpfs of `size` mounted on a fresh directory, unmounted on drop; `None` where mounting
/// is not permitted (not root).
struct Tmpfs {
    path: PathBuf,
    _dir: TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::Builder::new().prefix("milo-full-disk").tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Self {
            path: dir.path().to_owned(),
            _dir: dir,
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

#[test]
#[allow(clippy::print_stdout)]
fn a_full_disk_warns_once_and_the_run_goes_on() {
    let Some(disk) = Tmpfs::mount("512k") else {
        println!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let toml = r#"
name = "full"

[[phase]]
name = "spam"
run = "seq 1 200000"

[[phase]]
name = "last"
depends_on = ["spam"]
run = "exit 5"
"#;
    let dir = dir_with(toml);
    let d = dir.path();
    let db = disk.path.join("history.db");
    let db = db.to_str().unwrap();
    // Filling up mid-run: the lines need several MiB.
    let out = milo(d, &["run", "--ui", "json", "--db", db]);
    expect(&out, 1);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("\"@@PHASE_FAILED\""), "{}", tail(&stdout));
    assert_eq!(stdout.matches("\"@@PHASE_LOG\"").count(), 200_000);
    let w = warnings(&out);
    assert_eq!(w.len(), 1, "{}", text(&out.stderr));
    assert!(w[0].contains("full"), "{}", w[0]);
    assert!(
        text(&out.stderr).contains("the run history holds only part of it"),
        "{}",
        text(&out.stderr)
    );
    // The run is not left `running`: interrupted, saying why, the disk still full. The writer
    // records the reason when the disk still takes one more small write; otherwise this open
    // (the next one) marks it with the general reason.
    let list = runs(d, &["--db", db]);
    assert_eq!(list[0]["status"], "interrupted", "{list:?}");
    let why = list[0]["recording_error"].as_str().unwrap_or_default();
    assert!(
        (why.contains("stopped recording this run mid-way") && why.contains("full"))
            || why.contains("its history could not be written"),
        "{why}"
    );
    let shown = text(&expect(&milo(d, &["show", "--db", db]), 0).stdout);
    assert!(
        shown.contains("incomplete: the history holds only part of this run"),
        "{shown}"
    );

    // Full from the start: the database cannot even be set up.
    let filler = disk.path.join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=4k", "count=1000"])
        .arg(format!("of={}", filler.display()))
        .stderr(Stdio::null())
        .status();
    let out = milo(
        d,
        &[
            "run",
            "--ui",
            "plain",
            "--db",
            disk.path.join("other.db").to_str().unwrap(),
        ],
    );
    expect(&out, 1);
    assert!(
        text(&out.stdout).contains("[last] failed"),
        "{}",
        tail(&text(&out.stdout))
    );
    let w = warnings(&out);
    assert_eq!(w.len(), 1, "{}", text(&out.stderr));
    assert!(w[0].contains("full"), "{}", w[0]);
}

#[test]
fn two_runs_in_one_directory_at_once_are_both_recorded() {
    let toml = r#"
name = "twice"

[[phase]]
name = "spam"
run = "seq 1 20000; sleep 0.3; seq 20001 40000"
"#;
    let dir = dir_with(toml);
    let d = dir.path();
    let spawn = || {
        Command::new(MILO)
            .args(["run", "--ui", "plain"])
            .current_dir(d)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    for out in [wait(a), wait(b)] {
        expect(&out, 0);
        assert!(warnings(&out).is_empty(), "{}", text(&out.stderr));
    }
    let list = runs(d, &[]);
    assert_eq!(list.len(), 2, "{list:?}");
    for run in &list {
        assert_eq!(run["status"], "completed", "{run}");
        let id = run["id"].to_string();
        let logs = text(&expect(&milo(d, &["logs", &id, "spam"]), 0).stdout);
        assert_eq!(logs.lines().count(), 40_000);
        let replay = text(&expect(&milo(d, &["replay", &id]), 0).stdout);
        assert!(replay.contains("journal verified: MAC chain intact"), "{replay}");
    }
}

#[test]
fn out_of_range_times_in_the_history_are_clear_errors_not_panics() {
    let dir = dir_with(SMALL);
    let d = dir.path();
    expect(&milo(d, &["run", "--ui", "plain"]), 1);
    let conn = rusqlite::Connection::open(d.join(".milo/history.db")).unwrap();
    conn.execute("UPDATE runs SET ended_at = 1e300", []).unwrap();
    for args in [&["history"][..], &["show"], &["report", "-o", "r.html"]] {
        let out = milo(d, args);
        expect(&out, 1);
        let err = text(&out.stderr);
        assert!(
            err.contains("run 1's recorded end time is unreadable (1e300 is not a time"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    // The durations a history command takes: clear usage errors (exit 2), never a panic.
    for age in ["1e300", "1e300d", "99999999999999999999999d", "inf", "NaNs"] {
        let out = milo(d, &["history", "prune", "--older-than", age]);
        expect(&out, 2);
        let err = text(&out.stderr);
        assert!(err.contains("is not a duration"), "{age}: {err}");
    }
    for keep in ["1e300", "-1", "99999999999999999999999"] {
        let out = milo(d, &["history", "prune", "--keep", keep]);
        expect(&out, 2);
        assert!(!text(&out.stderr).contains("panicked"), "{}", text(&out.stderr));
    }
    conn.execute("UPDATE runs SET ended_at = started_at + 1", []).unwrap();
    conn.execute("UPDATE phases SET finished_at = 1e300 WHERE name = 'a'", [])
        .unwrap();
    let out = milo(d, &["show"]);
    expect(&out, 1);
    let err = text(&out.stderr);
    assert!(err.contains("phase `a`: 1e300 is not a time"), "{err}");
    // A recorded timeout out of range does not stop a replay either.
    conn.execute("UPDATE phases SET finished_at = started_at", []).unwrap();
    conn.execute(
        "UPDATE defs SET def_json = replace(def_json, '\"timeout\":null', '\"timeout\":1e300')",
        [],
    )
    .unwrap();
    let out = milo(d, &["replay"]);
    assert_ne!(out.status.code(), Some(101), "{}", text(&out.stderr));
    assert!(!text(&out.stderr).contains("panicked"), "{}", text(&out.stderr));
}

/// The permission bits of `path`.
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Runs `milo args…` in `dir` under `umask`.
fn milo_with_umask(dir: &Path, umask: &str, args: &[&str]) -> Output {
    let script = format!("umask {umask}; exec \"$0\" \"$@\"");
    let child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(MILO)
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait(child)
}

#[test]
fn the_history_directory_and_database_files_are_private_whatever_the_umask() {
    // A slow phase, so the -wal and -shm files exist while it runs.
    let toml = "name = \"p\"\n[[phase]]\nname = \"a\"\nrun = \"echo hi; sleep 1; ls -l .milo > during.txt\"\n";
    for umask in ["000", "022"] {
        let dir = dir_with(toml);
        let d = dir.path();
        expect(&milo_with_umask(d, umask, &["run", "--ui", "plain"]), 0);
        assert_eq!(mode(&d.join(".milo")), 0o700, "umask {umask}");
        assert_eq!(mode(&d.join(".milo/history.db")), 0o600, "umask {umask}");
        let during = std::fs::read_to_string(d.join("during.txt")).unwrap();
        let files: Vec<&str> = during.lines().filter(|l| l.contains("history.db")).collect();
        assert!(files.len() >= 3, "no -wal / -shm while running: {during}");
        for l in files {
            assert!(l.starts_with("-rw------- "), "umask {umask}: {l}");
        }
    }
    // An older milo's history (0755 / 0644) is made private by the next run.
    let dir = dir_with(toml);
    let d = dir.path();
    expect(&milo_with_umask(d, "022", &["run", "--ui", "plain"]), 0);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d.join(".milo"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(d.join(".milo/history.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
    expect(&milo_with_umask(d, "022", &["run", "--ui", "plain"]), 0);
    assert_eq!(mode(&d.join(".milo")), 0o700);
    assert_eq!(mode(&d.join(".milo/history.db")), 0o600);
    // --db in a directory of the user's: the file is private, the directory left alone.
    std::fs::create_dir(d.join("shared")).unwrap();
    std::fs::set_permissions(d.join("shared"), std::fs::Permissions::from_mode(0o755)).unwrap();
    expect(
        &milo_with_umask(d, "000", &["run", "--ui", "plain", "--db", "shared/h.db"]),
        0,
    );
    assert_eq!(mode(&d.join("shared")), 0o755);
    assert_eq!(mode(&d.join("shared/h.db")), 0o600);
}

/// Whether any file under `dir` but the pipeline file holds `needle` (bytes).
fn any_file_holds(dir: &Path, needle: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().is_some_and(|n| n == "milo.toml") {
            continue;
        }
        if path.is_dir() {
            if let Some(p) = any_file_holds(&path, needle) {
                return Some(p);
            }
        } else if std::fs::read(&path)
            .unwrap()
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
        {
            return Some(path);
        }
    }
    None
}

const SECRETIVE: &str = r#"
name = "secretive"
secrets = ["DEPLOY_ID"]

[defaults]
env = { API_TOKEN = "tok-8b1f-0000", DEPLOY_ID = "dpl9", PLAIN = "visible-value" }

[[phase]]
name = "leak"
run = '''
echo "token is $API_TOKEN, id $DEPLOY_ID, inherited $CI_SECRET_VALUE, plain $PLAIN"
echo "to stderr: $API_TOKEN" >&2
echo "{\"t\": \"$API_TOKEN\"}" > "$MILO_OUTPUT"
'''

[[phase]]
name = "literal"
description = "deploys dpl9"
run = "echo literal dpl9"

[[phase]]
name = "fail"
depends_on = ["leak", "literal"]
run = 'echo "failing with $API_TOKEN"; exit 3'
"#;

#[test]
fn secret_values_are_masked_in_every_output_and_never_recorded() {
    let dir = dir_with(SECRETIVE);
    let d = dir.path();
    let secrets = ["tok-8b1f-0000", "dpl9", "inherited-s3cr3t"];
    let run = |args: &[&str]| {
        let child = Command::new(MILO)
            .args(args)
            .current_dir(d)
            .env_remove("RUST_LOG")
            .env("CI_SECRET_VALUE", "inherited-s3cr3t")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait(child)
    };
    let plain = run(&["run", "--ui", "plain", "--timeline", "timeline.json"]);
    expect(&plain, 1);
    let json = run(&["run", "--ui", "json"]);
    expect(&json, 1);
    // Uncaptured output goes from the phases straight to the terminal, unseen by milo: it
    // says that it cannot mask it.
    let raw = run(&["run", "--ui", "plain", "--no-capture", "--no-history"]);
    expect(&raw, 1);
    assert!(
        text(&raw.stderr).contains(
            "output is not captured (--no-capture or capture_output = false), so secret values in it are not masked"
        ),
        "{}",
        text(&raw.stderr)
    );
    let out = format!(
        "{}{}{}{}",
        text(&plain.stdout),
        text(&plain.stderr),
        text(&json.stdout),
        text(&json.stderr)
    );
    assert!(
        out.contains("token is ***, id ***, inherited ***, plain visible-value"),
        "{out}"
    );
    assert!(out.contains("to stderr: ***"), "{out}");
    assert!(out.contains("literal ***"), "{out}");
    let phases = text(&expect(&milo(d, &["phases", "--json"]), 0).stdout);
    assert!(
        phases.contains("echo literal ***") && phases.contains("deploys ***"),
        "{phases}"
    );
    assert!(!phases.contains("dpl9"), "{phases}");
    for s in secrets {
        assert!(!out.contains(s), "{s} shown: {out}");
    }
    expect(&milo(d, &["report", "-o", "report.html"]), 0);
    let logs = text(&expect(&milo(d, &["logs", "leak"]), 0).stdout);
    assert!(logs.contains("token is ***"), "{logs}");
    let show = text(&expect(&milo(d, &["show", "--json"]), 0).stdout);
    assert!(show.contains(r#""t": "***""#), "{show}");
    let replay = text(&expect(&milo(d, &["replay", "--json"]), 0).stdout);
    assert!(replay.contains("***"), "{replay}");
    drop(milo(d, &["history"]));
    for s in secrets {
        assert_eq!(any_file_holds(d, s), None, "{s} written to a file");
    }
    // The recorded definition holds *** for secret env values, and the rest as is.
    let conn = rusqlite::Connection::open(d.join(".milo/history.db")).unwrap();
    let def: String = conn.query_row("SELECT def_json FROM defs", [], |r| r.get(0)).unwrap();
    assert!(def.contains(r#"["API_TOKEN","***"]"#), "{def}");
    assert!(def.contains(r#"["DEPLOY_ID","***"]"#), "{def}");
    assert!(def.contains(r#"["PLAIN","visible-value"]"#), "{def}");

    // secret_patterns replaces the defaults: with none, only `secrets` are masked.
    let dir = dir_with(&SECRETIVE.replace("secrets = [", "secret_patterns = []\nsecrets = ["));
    let out = milo(dir.path(), &["run", "--ui", "plain", "--no-history"]);
    expect(&out, 1);
    assert!(
        text(&out.stdout).contains("token is tok-8b1f-0000, id ***"),
        "{}",
        text(&out.stdout)
    );
}

/// Runs `milo args…` in `dir` with the journal key at `key`.
fn milo_keyed(dir: &Path, key: &Path, args: &[&str]) -> Output {
    let child = Command::new(MILO)
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env("MILO_JOURNAL_KEY", key)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait(child)
}

/// No output lines, so every journal entry is a JSON row: the easiest journal to forge.
const QUIET: &str = r#"
name = "quiet"

[[phase]]
name = "a"
run = "true"

[[phase]]
name = "b"
depends_on = ["a"]
run = "exit 4"
"#;

/// What an attacker who can write the database does: rewrite the failed run as successful
/// and recompute the unkeyed chain `sha256(prev ‖ json)` from 32 zero bytes, and the head.
fn forge_as_successful(conn: &rusqlite::Connection) {
    use sha2::{Digest, Sha256};
    let rows: Vec<(i64, String)> = conn
        .prepare("SELECT seq, action FROM journal WHERE run_id = 1 ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut head = [0u8; 32];
    for (seq, action) in rows {
        let mut v: Value = serde_json::from_str(&action).unwrap();
        match v["type"].as_str().unwrap() {
            "@@PHASE_FAILED" => {
                let p = &v["payload"];
                v = serde_json::json!({"type": "@@PHASE_COMPLETE", "payload": {"name": p["name"], "result": null, "timestamp": p["timestamp"]}});
            }
            "@@PIPELINE_FAILED" => {
                v = serde_json::json!({"type": "@@PIPELINE_COMPLETE", "payload": {"timestamp": v["payload"]["timestamp"]}});
            }
            _ => {}
        }
        let json = v.to_string();
        let mut h = Sha256::new();
        h.update(head);
        h.update(json.as_bytes());
        head = h.finalize().into();
        conn.execute(
            "UPDATE journal SET action = ?2, hash = ?3 WHERE run_id = 1 AND seq = ?1",
            rusqlite::params![seq, json, &head[..]],
        )
        .unwrap();
    }
    conn.execute_batch(
        "UPDATE phases SET status = 'completed', error = NULL, result = 'null' WHERE run_id = 1 AND name = 'b';
         UPDATE runs SET status = 'completed', error = NULL, exit_code = 0 WHERE id = 1;",
    )
    .unwrap();
    conn.execute("UPDATE runs SET journal_head = ?1 WHERE id = 1", [&head[..]])
        .unwrap();
}

#[test]
fn a_forged_journal_recomputed_without_the_key_is_caught() {
    let keys = TempDir::new().unwrap();
    let key = keys.path().join("milo").join("journal.key");
    let dir = dir_with(QUIET);
    let d = dir.path();
    expect(&milo_keyed(d, &key, &["run", "--ui", "plain"]), 1);
    // The key was created for the run, private, outside the project.
    assert_eq!(std::fs::read(&key).unwrap().len(), 32);
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(key.parent().unwrap()), 0o700);
    let good = milo_keyed(d, &key, &["replay"]);
    expect(&good, 0);
    assert!(
        text(&good.stdout).starts_with("run 1: journal verified"),
        "{}",
        text(&good.stdout)
    );

    let conn = rusqlite::Connection::open(d.join(".milo/history.db")).unwrap();
    forge_as_successful(&conn);
    let out = milo_keyed(d, &key, &["replay"]);
    expect(&out, 1);
    let said = text(&out.stdout);
    assert!(
        said.starts_with("run 1: the journal was tampered with: entry 1 (@@PIPELINE_START) does not match its hash"),
        "{said}"
    );
    assert!(!said.contains("intact"), "{said}");
    // Claiming the run is an older milo's (unkeyed) does not make it intact either.
    conn.execute("UPDATE runs SET chain = NULL, seal = NULL", []).unwrap();
    let out = milo_keyed(d, &key, &["replay"]);
    expect(&out, 1);
    let said = text(&out.stdout);
    assert!(said.contains("NOT VERIFIED"), "{said}");
    assert!(said.contains("older milo with an unkeyed hash chain"), "{said}");
    assert!(!said.contains("journal verified"), "{said}");
    // And --resume does not take its results.
    let out = milo_keyed(d, &key, &["run", "--ui", "plain", "--resume", "1"]);
    expect(&out, 2);
    assert!(
        text(&out.stderr).contains("run 1 cannot be resumed"),
        "{}",
        text(&out.stderr)
    );

    // A key other users can read is refused, for recording and for verifying.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = milo_keyed(d, &key, &["run", "--ui", "plain"]);
    expect(&out, 1);
    let w = warnings(&out);
    assert_eq!(w.len(), 1, "{}", text(&out.stderr));
    assert!(w[0].contains("is readable by other users (mode 644)"), "{}", w[0]);
    conn.execute("UPDATE runs SET chain = 'hmac-sha256:0011223344556677'", [])
        .unwrap();
    let out = milo_keyed(d, &key, &["replay"]);
    expect(&out, 1);
    assert!(text(&out.stderr).contains("chmod 600"), "{}", text(&out.stderr));
}

#[test]
fn edits_to_the_rows_derived_from_the_journal_are_caught() {
    let keys = TempDir::new().unwrap();
    let key = keys.path().join("journal.key");
    let dir = dir_with(LOGGER);
    let d = dir.path();
    expect(&milo_keyed(d, &key, &["run", "--ui", "plain"]), 1);
    let db = d.join(".milo/history.db");
    let snapshot = std::fs::read(&db).unwrap();
    let cases: &[(&str, &str)] = &[
        (
            "UPDATE phases SET status = 'completed', error = NULL WHERE name = 'boom'",
            "phase `boom`'s status is `completed` in the phases table, but `failed` in the journal",
        ),
        (
            "UPDATE phases SET result = '{\"forged\": true}' WHERE name = 'talk'",
            "phase `talk`'s result",
        ),
        (
            "UPDATE phases SET log_count = 3 WHERE name = 'talk'",
            "phase `talk`'s line count is 3",
        ),
        (
            "UPDATE runs SET status = 'completed'",
            "the run row says the run is `completed`, but its journal ends with the pipeline failed",
        ),
        ("UPDATE runs SET error = 'nothing to see'", "the run row's error"),
        ("UPDATE runs SET exit_code = 0", "does not match its seal"),
        (
            "UPDATE runs SET pipeline_file = 'other.toml'",
            "the facts of the run row it chains from",
        ),
        (
            "UPDATE defs SET def_json = replace(def_json, 'exit 3', 'exit 0')",
            "the recorded pipeline definition does not match its hash",
        ),
        (
            "UPDATE logs SET lines = lines + 1 WHERE phase = 'talk'",
            "a log chunk of phase `talk` says it holds",
        ),
        (
            "DELETE FROM journal; DELETE FROM logs; UPDATE runs SET journal_len = 0",
            "the journal is empty, but the run's chain head shows that entries were recorded",
        ),
        ("DELETE FROM journal; DELETE FROM logs", "is missing"),
    ];
    for (sql, expected) in cases {
        std::fs::write(&db, &snapshot).unwrap();
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(sql).unwrap();
        drop(conn);
        let out = milo_keyed(d, &key, &["replay"]);
        let said = text(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{sql}: {said}{}", text(&out.stderr));
        assert!(said.contains("was tampered with"), "{sql}: {said}");
        assert!(said.contains(expected), "{sql}: expected {expected:?} in {said}");
    }
    // Another user's key (or a replaced one) cannot verify it, and says so.
    std::fs::write(&db, &snapshot).unwrap();
    let other = keys.path().join("other.key");
    let out = milo_keyed(d, &other, &["run", "--ui", "plain", "--no-history"]);
    expect(&out, 1);
    assert!(!other.exists(), "--no-history created a key");
    expect(&milo_keyed(d, &other, &["run", "--ui", "plain", "--db", "x.db"]), 1);
    let out = milo_keyed(d, &other, &["replay", "1"]);
    expect(&out, 1);
    assert!(
        text(&out.stdout).contains("recorded with another journal key"),
        "{}",
        text(&out.stdout)
    );
    let out = milo_keyed(d, &keys.path().join("missing.key"), &["replay", "1"]);
    expect(&out, 1);
    assert!(text(&out.stdout).contains("is not here"), "{}", text(&out.stdout));
}

#[test]
fn resume_takes_results_only_from_a_verified_journal() {
    let keys = TempDir::new().unwrap();
    let key = keys.path().join("journal.key");
    let dir = dir_with(RESUMABLE);
    let d = dir.path();
    expect(&milo_keyed(d, &key, &["run", "--ui", "plain"]), 1);
    let conn = rusqlite::Connection::open(d.join(".milo/history.db")).unwrap();
    conn.execute(
        "UPDATE phases SET result = '{\"answer\": 666}' WHERE name = 'produce'",
        [],
    )
    .unwrap();
    std::fs::write(d.join("go"), "").unwrap();
    let _ = std::fs::remove_file(d.join("consume-inputs.json"));
    let out = milo_keyed(d, &key, &["run", "--ui", "plain", "--resume"]);
    expect(&out, 2);
    let err = text(&out.stderr);
    assert!(
        err.contains("run 1 cannot be resumed: its results cannot be trusted"),
        "{err}"
    );
    assert!(err.contains("phase `produce`'s result"), "{err}");
    assert!(!d.join("consume-inputs.json").exists(), "a phase ran");
    // Put back, the journal verifies and its result (not the row's) is what goes on.
    conn.execute(
        "UPDATE phases SET result = '{\"answer\":42}' WHERE name = 'produce'",
        [],
    )
    .unwrap();
    let out = milo_keyed(d, &key, &["run", "--ui", "plain", "--resume"]);
    expect(&out, 0);
    let inputs: Value = serde_json::from_str(&std::fs::read_to_string(d.join("consume-inputs.json")).unwrap()).unwrap();
    assert_eq!(inputs, serde_json::json!({"produce": {"answer": 42}}));
}

/// `milo mcp` (a real rmcp client over the child-process transport): a run started with
/// `run_pipeline` shows only masked values in its timeline, logs and graph resources.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_values_are_masked_in_the_mcp_resources() {
    use milo_mcp::testing::{call, ok, read_json, wait_timeline};
    use rmcp::ServiceExt;
    let dir = dir_with(SECRETIVE);
    let mut cmd = tokio::process::Command::new(MILO);
    cmd.arg("mcp")
        .current_dir(dir.path())
        .env("CI_SECRET_VALUE", "inherited-s3cr3t")
        .env("MILO_JOURNAL_KEY", dir.path().join("journal.key"))
        .kill_on_drop(true);
    let transport = rmcp::transport::TokioChildProcess::new(cmd).unwrap();
    let client = tokio::time::timeout(LIMIT, ().serve(transport)).await.unwrap().unwrap();
    ok(call(&client, "run_pipeline", serde_json::json!({})).await.unwrap());
    let timeline = wait_timeline(&client, LIMIT, "the run to fail", |t| t["status"] == "failed").await;
    let mut seen = timeline.to_string();
    for uri in [
        "milo://pipeline/phases/leak/logs",
        "milo://pipeline/phases/literal/logs",
        "milo://pipeline/phases/fail/logs",
        "milo://pipeline/graph",
    ] {
        seen.push_str(&read_json(&client, uri).await.unwrap().to_string());
    }
    seen.push_str(
        &ok(call(&client, "phase_logs", serde_json::json!({"name": "leak"}))
            .await
            .unwrap())
        .to_string(),
    );
    assert!(seen.contains("token is ***, id ***, inherited ***"), "{seen}");
    assert!(seen.contains("literal ***"), "{seen}");
    for s in ["tok-8b1f-0000", "dpl9", "inherited-s3cr3t"] {
        assert!(!seen.contains(s), "{s} in the MCP resources: {seen}");
    }
    let _ = client.cancel().await;
}
