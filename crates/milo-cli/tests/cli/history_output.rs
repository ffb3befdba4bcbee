//! `milo history` and `milo logs` as the user reads them: the run list's columns, and which
//! run `milo logs PHASE` takes its output from.

use crate::util::Test;

const TWO: &str = r#"name = "two"

[[phase]]
name = "build"
run = "echo building"

[[phase]]
name = "test"
depends_on = ["build"]
run = "echo testing; exit ${FAIL:-0}"
"#;

#[test]
fn logs_of_a_phase_the_last_run_did_not_run_come_from_the_newest_run_that_did() {
    let t = Test::with(TWO).args(["run", "--ui", "plain"]);
    t.run().code(0);
    // The last run is `--only build`: it has no `test`.
    let t = t.then(["run", "--ui", "plain", "--only", "build"]);
    t.run().code(0);
    let t = t.then(["logs", "test"]);
    let logs = t.run();
    logs.code(0);
    assert_eq!(logs.stdout, "testing\n", "{}", logs.report());
    logs.stderr_has("the last run (2) did not run `test`; showing its output from run 1");
    // The last run's own phases need no note.
    let t = t.then(["logs", "build"]);
    let logs = t.run();
    logs.code(0);
    assert_eq!(logs.stdout, "building\n", "{}", logs.report());
    assert!(logs.stderr.is_empty(), "{}", logs.report());
}

#[test]
fn logs_of_a_misspelt_phase_suggest_the_closest() {
    let t = Test::with(TWO).args(["run", "--ui", "plain"]);
    t.run().code(0);
    let run = t.then(["logs", "tst"]).run();
    run.code(2)
        .stderr_has("no recorded run has a phase `tst`; did you mean `test`?")
        .stderr_has("`build`, `test`");
    let t = Test::with(TWO).args(["run", "--ui", "plain"]);
    t.run().code(0);
    let run = t.then(["logs", "1", "tst"]).run();
    run.code(2)
        .stderr_has("run 1 has no phase `tst`")
        .stderr_has("did you mean `test`?");
}

#[test]
fn history_aligns_resumed_runs_and_explains_the_mark() {
    let t = Test::with(TWO).env("FAIL", Some("1")).args(["run", "--ui", "plain"]);
    t.run().code(1);
    let t = t.env("FAIL", Some("0")).then(["run", "--ui", "plain", "--resume"]);
    t.run().code(0);
    let t = t.then(["history"]);
    let run = t.run();
    run.code(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines.len() >= 4, "{}", run.report());
    // Every column starts where its header does.
    let column = |line: &str, what: &str| line.find(what).map(|i| line[..i].chars().count());
    let started = column(lines[0], "STARTED").expect("a STARTED column");
    let resumed = lines
        .iter()
        .find(|l| l.contains("completed ↻1"))
        .expect("the resumed run");
    let failed = lines.iter().find(|l| l.contains("failed")).expect("the failed run");
    let date = |l: &str| l.find("20").map(|i| l[..i].chars().count());
    assert_eq!(date(resumed), Some(started), "{}", run.stdout);
    assert_eq!(date(failed), Some(started), "{}", run.stdout);
    run.stdout_has("↻N: resumed run N");
}

#[test]
fn the_milo_directory_ignores_itself_in_git() {
    let t = Test::with(TWO).args(["run", "--ui", "plain"]);
    t.run().code(0);
    let ignore = t.read(".milo/.gitignore");
    assert!(ignore.lines().any(|l| l == "*"), "{ignore}");
    // Never over the user's own.
    std::fs::write(t.path(".milo/.gitignore"), "mine\n").expect("write");
    t.run().code(0);
    assert_eq!(t.read(".milo/.gitignore"), "mine\n");
    // A directory of the user's choosing is left alone.
    let t = Test::with(TWO).args(["run", "--ui", "plain", "--db", "store/h.db"]);
    t.run().code(0);
    assert!(t.path("store/h.db").exists() && !t.path("store/.gitignore").exists());
}

#[test]
fn the_report_counts_agree_with_their_numbers() {
    let toml = "name = \"one\"\n[[phase]]\nname = \"a\"\nrun = \"true\"\n";
    let t = Test::with(toml).args(["run", "--ui", "plain"]);
    t.run().code(0);
    let t = t.then(["report", "-o", "r.html"]);
    t.run().code(0);
    let html = t.read("r.html");
    assert!(html.contains(" · 1 phase · 1 attempt"), "{html}");
    assert!(!html.contains("1 phases") && !html.contains("1 attempts"), "{html}");
}
