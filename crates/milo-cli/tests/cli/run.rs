//! Every flag of `milo run`.

use std::path::Path;
use std::time::Duration;

use crate::util::{Test, phase};

const CHAIN: &str = r#"
name = "chain"

[[phase]]
name = "a"
run = "touch a.done"

[[phase]]
name = "b"
depends_on = ["a"]
run = "touch b.done"

[[phase]]
name = "c"
depends_on = ["b"]
run = "touch c.done"

[[phase]]
name = "d"
run = "touch d.done"
"#;

#[test]
fn runs_milo_toml_in_the_current_directory_by_default() {
    let t = Test::with(CHAIN).args(["run", "--ui", "plain"]);
    t.run().code(0).stdout_has("[a] completed").stdout_has("[d] completed");
    for f in ["a.done", "b.done", "c.done", "d.done"] {
        assert!(t.path(f).exists(), "{f} was not created");
    }
}

#[test]
fn file_flag_names_another_file_and_phases_run_in_its_directory() {
    let toml = "name = \"elsewhere\"\n[[phase]]\nname = \"here\"\nrun = \"pwd > where.txt\"\n";
    for flag in ["-f", "--file"] {
        let t = Test::empty()
            .file("sub/ci.toml", toml)
            .args(["run", "--ui", "plain", flag, "sub/ci.toml"]);
        t.run().code(0).stdout_has("milo: running elsewhere");
        let where_ = t.read("sub/where.txt");
        let sub = t.path("sub").canonicalize().unwrap();
        assert_eq!(Path::new(where_.trim()).canonicalize().unwrap(), sub);
        assert!(!t.path("where.txt").exists());
    }
}

const THREE_SLEEPS: &str = r#"
name = "sleeps"

[defaults]
parallel = true

[[phase]]
name = "one"
run = "sleep 0.5"

[[phase]]
name = "two"
run = "sleep 0.5"

[[phase]]
name = "three"
run = "sleep 0.5"
"#;

/// (started_at, finished_at) of every phase, sorted by start.
fn intervals(timeline: &serde_json::Value) -> Vec<(f64, f64)> {
    let mut v: Vec<(f64, f64)> = timeline["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["started_at"].as_f64().unwrap(), p["finished_at"].as_f64().unwrap()))
        .collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    v
}

#[test]
fn jobs_1_runs_parallel_phases_one_at_a_time() {
    for flag in ["--jobs", "-j"] {
        let t = Test::with(THREE_SLEEPS).args(["run", "--ui", "plain", flag, "1", "--timeline", "t.json"]);
        let run = t.run();
        run.code(0);
        assert!(run.elapsed >= Duration::from_millis(1400), "{}", run.report());
        let iv = intervals(&t.json("t.json"));
        for w in iv.windows(2) {
            assert!(w[1].0 >= w[0].1, "phases overlapped with --jobs 1: {iv:?}");
        }
    }
}

#[test]
fn jobs_3_runs_parallel_phases_together() {
    let toml = THREE_SLEEPS.replace("sleep 0.5", "sleep 2");
    let t = Test::with(&toml).args(["run", "--ui", "plain", "--jobs", "3", "--timeline", "t.json"]);
    t.run().code(0);
    let iv = intervals(&t.json("t.json"));
    let first_end = iv.iter().map(|i| i.1).fold(f64::INFINITY, f64::min);
    assert!(
        iv.iter().all(|i| i.0 < first_end),
        "all three should have started before any finished: {iv:?}"
    );
}

#[test]
fn jobs_must_be_a_positive_number() {
    Test::with(THREE_SLEEPS)
        .args(["run", "--jobs", "0"])
        .run()
        .code(2)
        .stderr_has("--jobs");
    Test::with(THREE_SLEEPS)
        .args(["run", "--jobs", "many"])
        .run()
        .code(2)
        .stderr_has("invalid value");
}

const FAIL_BESIDE_SLOW: &str = r#"
name = "ff"

[defaults]
parallel = true

[[phase]]
name = "slow"
run = "sleep 3; touch slow.done"

[[phase]]
name = "bad"
run = "sleep 0.3; exit 1"
"#;

#[test]
fn fail_fast_cancels_a_running_sibling() {
    let t = Test::with(FAIL_BESIDE_SLOW).args(["run", "--ui", "plain", "--fail-fast", "--timeline", "t.json"]);
    t.run().code(1).stdout_has("[slow] cancelled");
    let tl = t.json("t.json");
    assert_eq!(phase(&tl, "slow")["status"], "cancelled");
    assert_eq!(phase(&tl, "bad")["status"], "failed");
    assert_eq!(tl["status"], "failed");
    assert!(!t.path("slow.done").exists());
}

#[test]
fn without_fail_fast_a_running_sibling_finishes() {
    let t = Test::with(FAIL_BESIDE_SLOW).args(["run", "--ui", "plain", "--timeline", "t.json"]);
    t.run().code(1);
    let tl = t.json("t.json");
    assert_eq!(phase(&tl, "slow")["status"], "completed");
    assert!(t.path("slow.done").exists());
}

#[test]
fn fail_fast_in_the_file_works_like_the_flag() {
    let toml = FAIL_BESIDE_SLOW.replace("name = \"ff\"", "name = \"ff\"\nfail_fast = true");
    let t = Test::with(&toml).args(["run", "--ui", "plain", "--timeline", "t.json"]);
    t.run().code(1);
    assert_eq!(phase(&t.json("t.json"), "slow")["status"], "cancelled");
}

const CHATTY: &str = r#"
name = "chatty"

[[phase]]
name = "talk"
run = "echo passthrough-line; echo to-stderr >&2"
"#;

#[test]
fn output_is_captured_by_default() {
    let t = Test::with(CHATTY).args(["run", "--ui", "plain", "--timeline", "t.json"]);
    t.run()
        .code(0)
        .stdout_line("[talk] │ passthrough-line")
        .stdout_line("[talk] ! to-stderr");
    assert_eq!(phase(&t.json("t.json"), "talk")["log_count"], 2);
}

#[test]
fn no_capture_lets_output_pass_straight_through() {
    let t = Test::with(CHATTY).args(["run", "--ui", "plain", "--no-capture", "--timeline", "t.json"]);
    let run = t.run();
    run.code(0)
        .stdout_line("passthrough-line")
        .stdout_lacks("[talk] │ passthrough-line")
        .stderr_has("to-stderr");
    assert_eq!(phase(&t.json("t.json"), "talk")["log_count"], 0);
}

#[test]
fn capture_output_false_in_the_file_works_like_no_capture() {
    let toml = CHATTY.replace("name = \"chatty\"", "name = \"chatty\"\ncapture_output = false");
    Test::with(&toml)
        .args(["run", "--ui", "plain"])
        .run()
        .code(0)
        .stdout_line("passthrough-line")
        .stdout_lacks("[talk] │ passthrough-line");
}

#[test]
fn only_runs_the_phase_and_its_dependencies() {
    let t = Test::with(CHAIN).args(["run", "--ui", "plain", "--only", "b", "--timeline", "t.json"]);
    t.run().code(0).stdout_has("milo: running chain (2 phases)");
    assert!(t.path("a.done").exists() && t.path("b.done").exists());
    assert!(!t.path("c.done").exists() && !t.path("d.done").exists());
    let names: Vec<_> = t.json("t.json")["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["a", "b"]);
}

#[test]
fn only_is_repeatable() {
    let t = Test::with(CHAIN).args(["run", "--ui", "plain", "--only", "a", "--only", "d"]);
    t.run().code(0);
    assert!(t.path("a.done").exists() && t.path("d.done").exists());
    assert!(!t.path("b.done").exists() && !t.path("c.done").exists());
}

#[test]
fn only_an_unknown_phase_is_a_usage_error_with_a_suggestion() {
    let t = Test::with(CHAIN).args(["run", "--only", "bb"]);
    let run = t.run();
    run.code(2)
        .stderr_has("there is no phase `bb`")
        .stderr_has("did you mean `b`?");
    assert!(run.stdout.is_empty(), "{}", run.report());
    assert!(!t.path("a.done").exists(), "nothing may run");
}

#[test]
fn phase_names_are_targets_like_only() {
    let t = Test::with(CHAIN).args(["run", "--ui", "plain", "b", "d"]);
    t.run().code(0);
    assert!(t.path("a.done").exists() && t.path("b.done").exists() && t.path("d.done").exists());
    assert!(!t.path("c.done").exists());
    // Mixed with --only.
    let t = Test::with(CHAIN).args(["run", "--ui", "plain", "a", "--only", "d"]);
    t.run().code(0);
    assert!(t.path("a.done").exists() && t.path("d.done").exists() && !t.path("b.done").exists());
}

#[test]
fn an_unknown_target_suggests_the_closest_phase() {
    let toml = "name = \"x\"\n[[phase]]\nname = \"test\"\nrun = \"touch ran\"\n";
    let t = Test::with(toml).args(["run", "tst"]);
    let run = t.run();
    run.code(2)
        .stderr_has("there is no phase `tst` in milo.toml")
        .stderr_has("did you mean `test`?");
    assert!(!run.stderr.contains("--only"), "{}", run.report());
    assert!(!t.path("ran").exists(), "nothing may run");
}

#[test]
fn dry_run_prints_the_order_with_commands_and_runs_nothing() {
    let t = Test::with(CHAIN).args(["run", "--dry-run"]);
    let run = t.run();
    run.code(0)
        .stdout_has("nothing is run")
        .stdout_has("$ touch a.done")
        .stdout_has("after b");
    let pos = |s: &str| run.stdout.find(s).unwrap_or_else(|| panic!("{s}: {}", run.report()));
    assert!(pos("$ touch a.done") < pos("$ touch b.done") && pos("$ touch b.done") < pos("$ touch c.done"));
    for f in ["a.done", "b.done", "c.done", "d.done"] {
        assert!(!t.path(f).exists(), "--dry-run ran a phase: {f} exists");
    }
}

#[test]
fn dry_run_with_only_lists_just_the_selection() {
    let t = Test::with(CHAIN).args(["run", "--dry-run", "--only", "b"]);
    t.run()
        .code(0)
        .stdout_has("would run 2 phases")
        .stdout_has("$ touch b.done")
        .stdout_lacks("c.done")
        .stdout_lacks("d.done");
    assert!(!t.path("a.done").exists());
}

#[test]
fn dry_run_marks_parallel_phases() {
    Test::with(THREE_SLEEPS)
        .args(["run", "--dry-run"])
        .run()
        .code(0)
        .stdout_has("one  [parallel]");
}

#[test]
fn ui_plain_prints_one_line_per_event_and_a_summary() {
    let run = Test::with(CHATTY).args(["run", "--ui", "plain"]).run();
    run.code(0)
        .stdout_line("milo: running chatty (1 phase)")
        .stdout_line("[talk] started")
        .stdout_has("[talk] completed in ")
        .stdout_has("✓ chatty completed in ");
}

#[test]
fn ui_auto_is_plain_when_stderr_is_not_a_terminal() {
    for args in [&["run"][..], &["run", "--ui", "auto"]] {
        Test::with(CHATTY)
            .args(args.iter().copied())
            .run()
            .code(0)
            .stdout_line("[talk] started");
    }
}

#[test]
fn ui_progress_draws_on_stderr_and_leaves_stdout_alone() {
    let run = Test::with(CHAIN).args(["run", "--ui", "progress"]).run();
    run.code(0);
    assert!(run.stdout.is_empty(), "{}", run.report());
    run.stderr_has("✓ a  ")
        .stderr_has("✓ d  ")
        .stderr_has("chain [")
        .stderr_has("✓ chain completed in ");
}

#[test]
fn ui_progress_shows_a_failed_phase_with_its_last_lines() {
    let toml = "name = \"p\"\n[[phase]]\nname = \"boom\"\nrun = \"echo first; echo last-words; exit 7\"\n";
    let run = Test::with(toml).args(["run", "--ui", "progress"]).run();
    run.code(1)
        .stderr_has("✗ boom  ")
        .stderr_has(": command exited with status 7")
        .stderr_has("│ last-words");
}

#[test]
fn ui_rejects_unknown_views() {
    Test::with(CHATTY)
        .args(["run", "--ui", "fancy"])
        .run()
        .code(2)
        .stderr_has("possible values");
}

#[test]
fn timeline_has_the_pipeline_to_timeline_schema() {
    let toml = r#"
name = "tl"

[[phase]]
name = "a"
run = "echo one; echo 42 > $MILO_OUTPUT"

[[phase]]
name = "b"
depends_on = ["a"]
parallel = true
weight = 2.5
description = "the second"
run = "exit 3"
"#;
    let t = Test::with(toml).args(["run", "--ui", "plain", "--timeline", "out/../t.json"]);
    std::fs::create_dir(t.path("out")).unwrap();
    t.run().code(1);
    let tl = t.json("t.json");
    for key in ["pipeline", "status", "elapsed", "progress", "current_phase", "phases"] {
        assert!(tl.get(key).is_some(), "timeline lacks {key}: {tl:#}");
    }
    assert_eq!(tl["pipeline"], "tl");
    assert_eq!(tl["status"], "failed");
    assert!(tl["elapsed"].as_f64().unwrap() > 0.0);
    assert_eq!(tl["progress"].as_f64(), Some(1.0 / 3.5));
    assert!(tl["current_phase"].is_null());
    for p in tl["phases"].as_array().unwrap() {
        for key in [
            "name",
            "status",
            "started_at",
            "elapsed",
            "attempt",
            "error",
            "log_count",
            "depends_on",
            "parallel",
            "weight",
        ] {
            assert!(p.get(key).is_some(), "phase lacks {key}: {p:#}");
        }
    }
    let a = phase(&tl, "a");
    assert_eq!(a["status"], "completed");
    assert_eq!(a["attempt"], 1);
    assert!(a["error"].is_null());
    assert_eq!(a["log_count"], 1);
    assert_eq!(a["depends_on"], serde_json::json!([]));
    assert_eq!(a["parallel"], false);
    assert_eq!(a["weight"], 1.0);
    assert!(a["started_at"].as_f64().is_some() && a["elapsed"].as_f64().is_some());
    let b = phase(&tl, "b");
    assert_eq!(b["status"], "failed");
    assert_eq!(b["error"], "command exited with status 3");
    assert_eq!(b["depends_on"], serde_json::json!(["a"]));
    assert_eq!(b["parallel"], true);
    assert_eq!(b["weight"], 2.5);
}

#[test]
fn timeline_is_written_for_completed_runs_too() {
    let t = Test::with(CHAIN).args(["run", "--ui", "json", "--timeline", "t.json"]);
    t.run().code(0);
    let tl = t.json("t.json");
    assert_eq!(tl["status"], "completed");
    assert_eq!(tl["progress"], 1.0);
    assert_eq!(tl["phases"].as_array().unwrap().len(), 4);
}

#[test]
fn timeline_to_an_unwritable_place_is_an_error() {
    Test::with(CHATTY)
        .args(["run", "--ui", "plain", "--timeline", "no/such/dir/t.json"])
        .run()
        .code(1)
        .stderr_has("could not write the timeline to `no/such/dir/t.json`");
}

#[test]
fn shell_runs_the_command_with_another_shell_and_its_options() {
    let toml = r#"
name = "shells"
[defaults]
shell = "bash -euo pipefail -c"
[[phase]]
name = "bash"
run = 'echo "bash ${BASH_VERSION:+yes}"'
[[phase]]
name = "pipefail"
run = "false | true"
policy = { on_fail = "skip" }
[[phase]]
name = "plain-sh"
shell = ["sh", "-c"]
run = "false | true; echo sh-ok"
"#;
    Test::with(toml)
        .args(["run", "--ui", "plain"])
        .run()
        .code(0)
        .stdout_has("[bash] │ bash yes")
        .stdout_has("[pipefail] skipped")
        .stdout_has("[plain-sh] │ sh-ok");
}

#[test]
fn a_missing_shell_or_an_empty_one_is_a_clear_error() {
    let missing = r#"
name = "shells"
[[phase]]
name = "a"
shell = "no-such-shell-here -c"
run = "true"
"#;
    Test::with(missing)
        .args(["run", "--ui", "plain"])
        .run()
        .code(1)
        .stdout_has("the shell `no-such-shell-here` was not found");
    let empty = r#"
name = "shells"
[[phase]]
name = "a"
shell = "  "
run = "true"
"#;
    Test::with(empty)
        .args(["check"])
        .run()
        .code(2)
        .stderr_has("`shell` in phase `a` names no program");
}
