//! `milo order`, `phases`, `check`, `graph`, `init`, `completions`, `--help` and `--version`.

use crate::util::Test;

const SITE: &str = r#"
name = "site"

[[phase]]
name = "discover"
description = "Find the pages"
run = "true"

[[phase]]
name = "parse"
depends_on = ["discover"]
run = "true"

[[phase]]
name = "render"
depends_on = ["parse"]
parallel = true
weight = 3
run = "true"
policy = { on_fail = "retry", max_retries = 2, retry_delay = "1s" }

[[phase]]
name = "assets"
depends_on = ["parse"]
parallel = true
timeout = "30s"
run = "cp -r static out"

[[phase]]
name = "write"
depends_on = ["render", "assets"]
run = "true"
policy = { on_fail = "skip" }
"#;

#[test]
fn order_prints_one_phase_per_line() {
    let run = Test::with(SITE).args(["order"]).run();
    run.code(0);
    assert_eq!(run.stdout, "discover\nparse\nassets\nrender\nwrite\n");
}

#[test]
fn order_json_is_an_array_of_names() {
    let run = Test::with(SITE).args(["order", "--json"]).run();
    run.code(0);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v, serde_json::json!(["discover", "parse", "assets", "render", "write"]));
}

#[test]
fn order_reads_another_file() {
    Test::empty()
        .file("p/ci.toml", SITE)
        .args(["order", "-f", "p/ci.toml"])
        .run()
        .code(0)
        .stdout_has("discover\n");
}

#[test]
fn phases_describes_every_phase() {
    let run = Test::with(SITE).args(["phases"]).run();
    run.code(0)
        .stdout_line("discover")
        .stdout_line("  Find the pages")
        .stdout_line("  depends on: -")
        .stdout_line("  depends on: render, assets")
        .stdout_line("  parallel: yes  weight: 3  policy: retry ×2 (fixed from 1s)")
        .stdout_line("  parallel: no  weight: 1  policy: skip")
        .stdout_line("  parallel: no  weight: 1  policy: stop");
}

#[test]
fn phases_json_lists_every_field() {
    let run = Test::with(SITE).args(["phases", "--json"]).run();
    run.code(0);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let list = v.as_array().unwrap();
    let names: Vec<_> = list.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["discover", "parse", "render", "assets", "write"]);
    let render = &list[2];
    assert_eq!(render["depends_on"], serde_json::json!(["parse"]));
    assert_eq!(render["parallel"], true);
    assert_eq!(render["weight"], 3.0);
    assert_eq!(render["policy"]["on_fail"], "retry");
    assert_eq!(render["policy"]["max_retries"], 2);
    assert_eq!(list[3]["timeout"], 30.0);
    assert_eq!(list[3]["command"], "cp -r static out");
    assert_eq!(list[0]["description"], "Find the pages");
}

#[test]
fn check_accepts_a_valid_file() {
    Test::with(SITE)
        .args(["check"])
        .run()
        .code(0)
        .stdout_has("pipeline `site` is valid: 5 phases (2 parallel)");
}

#[test]
fn check_rejects_an_invalid_file() {
    Test::with("name = \"x\"\n[[phase]]\nname = \"a\"\n")
        .args(["check"])
        .run()
        .code(2)
        .stderr_has("phase `a` has no `run`");
}

#[test]
fn check_runs_nothing() {
    let t = Test::with("name = \"x\"\n[[phase]]\nname = \"a\"\nrun = \"touch ran\"\n").args(["check"]);
    t.run().code(0);
    assert!(!t.path("ran").exists());
}

#[test]
fn graph_dot_marks_parallel_phases() {
    let run = Test::with(SITE).args(["graph"]).run();
    run.code(0)
        .stdout_has("digraph \"site\" {")
        .stdout_line("  \"render\" [label=\"render ∥\", style=\"rounded,dashed\"];")
        .stdout_line("  \"assets\" [label=\"assets ∥\", style=\"rounded,dashed\"];")
        .stdout_line("  \"discover\";")
        .stdout_line("  \"parse\" -> \"render\";")
        .stdout_line("  \"assets\" -> \"write\";");
    assert!(run.stdout.trim_end().ends_with('}'));
    let explicit = Test::with(SITE).args(["graph", "--format", "dot"]).run();
    assert_eq!(explicit.stdout, run.stdout);
}

#[test]
fn graph_mermaid_marks_parallel_phases() {
    let run = Test::with(SITE).args(["graph", "--format", "mermaid"]).run();
    run.code(0);
    insta::assert_snapshot!("graph_mermaid", run.stdout);
    assert!(run.stdout.starts_with("flowchart LR\n"));
    assert!(run.stdout.contains("[/\"render ∥\"/]") && run.stdout.contains("[\"discover\"]"));
}

#[test]
fn init_writes_a_file_that_check_accepts() {
    let t = Test::empty().args(["init"]);
    t.run().code(0).stdout_has("wrote milo.toml");
    let written = t.read("milo.toml");
    assert!(written.starts_with("# milo pipeline"), "{written}");
    Test::empty()
        .file("milo.toml", &written)
        .args(["check"])
        .run()
        .code(0)
        .stdout_has("is valid");
}

#[test]
fn init_starter_runs() {
    let t = Test::empty().args(["init"]);
    t.run().code(0);
    let run = Test::with(&t.read("milo.toml")).args(["run", "--ui", "plain"]).run();
    run.code(0).stdout_has("✓ my-pipeline completed");
}

#[test]
fn init_with_a_file_name() {
    let t = Test::empty().args(["init", "-f", "ci.toml"]);
    t.run().code(0).stdout_has("milo run -f ci.toml");
    assert!(t.path("ci.toml").exists() && !t.path("milo.toml").exists());
}

#[test]
fn init_refuses_to_overwrite() {
    let t = Test::with("# mine\n").args(["init"]);
    t.run()
        .code(2)
        .stderr_has("`milo.toml` already exists; milo init never overwrites a file");
    assert_eq!(t.read("milo.toml"), "# mine\n");
}

#[test]
fn help_on_every_command_has_examples() {
    for cmd in [
        &["--help"][..],
        &["run", "--help"],
        &["order", "--help"],
        &["phases", "--help"],
        &["check", "--help"],
        &["graph", "--help"],
        &["init", "--help"],
        &["completions", "--help"],
        &["help", "run"],
    ] {
        let run = Test::empty().args(cmd.iter().copied()).run();
        run.code(0).stdout_has("Examples:").stdout_has("  milo ");
    }
}

#[test]
fn run_help_documents_every_flag_and_the_exit_statuses() {
    let run = Test::empty().args(["run", "--help"]).run();
    for flag in [
        "--file",
        "--jobs",
        "--fail-fast",
        "--no-capture",
        "--only",
        "--dry-run",
        "--ui",
        "--timeline",
    ] {
        run.stdout_has(flag);
    }
    run.stdout_has("130 interrupted");
}

#[test]
fn version() {
    let run = Test::empty().args(["--version"]).run();
    run.code(0);
    assert_eq!(run.stdout, format!("milo {}\n", env!("CARGO_PKG_VERSION")));
    // Every subcommand, at any depth, says `milo` (clap alone would say `milo-run`).
    for args in [&["run", "--version"][..], &["history", "prune", "--version"]] {
        let run = Test::empty().args(args.iter().copied()).run();
        run.code(0);
        assert_eq!(run.stdout, format!("milo {}\n", env!("CARGO_PKG_VERSION")), "{args:?}");
    }
}

#[test]
fn completions_for_every_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let run = Test::empty().args(["completions", shell]).run();
        run.code(0);
        assert!(
            run.stdout.len() > 100 && run.stdout.contains("milo"),
            "{}",
            run.report()
        );
    }
    Test::empty()
        .args(["completions", "bash"])
        .run()
        .stdout_has("--fail-fast")
        .stdout_has("--dry-run");
}

const COMPLETED: &str = r#"name = "c"

[params.target]
choices = ["debug", "release"]
default = "debug"
help = "Build profile"

[[phase]]
name = "build"
description = "Build it"
run = "true"

[[phase]]
name = "test"
run = "true"
matrix = { py = ["3.11", "3.12"] }
"#;

/// What `COMPLETE=fish milo -- milo WORDS…` completes the last word to (fish's protocol: one
/// candidate per line, `\t` before its help).
fn complete(t: &Test, words: &[&str]) -> Vec<String> {
    let mut args = vec!["--", "milo"];
    args.extend_from_slice(words);
    let run = t.run_args(args);
    run.code(0);
    run.stdout.lines().map(str::to_owned).collect()
}

#[test]
fn shell_completion_knows_the_phases_and_parameters_of_the_file() {
    let t = Test::with(COMPLETED).env("COMPLETE", Some("fish"));
    let script = t.run_args(Vec::<&str>::new());
    script.code(0).stdout_has("complete");
    assert_eq!(
        complete(&t, &["run", "--only", "t"]),
        ["test\tevery instance", "test[py=3.11]", "test[py=3.12]"]
    );
    assert_eq!(complete(&t, &["run", "b"]), ["build\tBuild it"]);
    assert_eq!(complete(&t, &["logs", "bu"]), ["build\tBuild it"]);
    assert_eq!(complete(&t, &["run", "--force=b"]), ["--force=build\tBuild it"]);
    assert_eq!(complete(&t, &["run", "-p", "ta"]), ["target=\tBuild profile"]);
    assert_eq!(complete(&t, &["run", "-p", "target=r"]), ["target=release"]);
    // From a subdirectory, the nearest milo.toml above it; outside any, nothing (no error).
    std::fs::create_dir_all(t.path("a/b")).expect("mkdir");
    let out = assert_cmd::Command::cargo_bin("milo")
        .expect("milo")
        .current_dir(t.path("a/b"))
        .env("COMPLETE", "fish")
        .args(["--", "milo", "run", "b"])
        .output()
        .expect("run milo");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "build\tBuild it\n");
    let none = Test::empty()
        .env("COMPLETE", Some("fish"))
        .run_args(["--", "milo", "run", "b"]);
    none.code(0);
    assert_eq!((none.stdout.as_str(), none.stderr.as_str()), ("", ""));
}

#[test]
fn check_warns_about_retries_without_on_fail_retry() {
    let toml = "name = \"x\"\n\n[[phase]]\nname = \"deploy\"\nrun = \"true\"\npolicy = { max_retries = 3 }\n";
    let run = Test::with(toml).args(["check"]).run();
    run.code(0).stdout_has("is valid");
    let err = run.stderr_redacted();
    assert!(
        err.contains("warning: `policy.max_retries` has no effect in phase `deploy`")
            && err.contains("milo.toml:6:26")
            && err.contains("add `on_fail = \"retry\"`"),
        "{err}"
    );
    insta::assert_snapshot!("check_retries_without_retry", err);
    // `milo run` says it too, and runs.
    let run = Test::with(toml).args(["run", "--ui", "plain"]).run();
    run.code(0)
        .stderr_has("warning: `policy.max_retries` has no effect in phase `deploy`");
    // From [defaults]: once, at the default.
    let toml = "name = \"x\"\n[defaults]\npolicy = { max_retries = 2, retry_delay = \"1s\" }\n\n[[phase]]\nname = \"a\"\nrun = \"true\"\n\n[[phase]]\nname = \"b\"\nrun = \"true\"\n";
    let run = Test::with(toml).args(["check"]).run();
    run.code(0);
    assert_eq!(
        run.stderr.matches("warning: `policy.max_retries`").count(),
        1,
        "{}",
        run.report()
    );
    assert_eq!(
        run.stderr.matches("warning: `policy.retry_delay`").count(),
        1,
        "{}",
        run.report()
    );
    // With on_fail = "retry": nothing to say.
    let toml =
        "name = \"x\"\n\n[[phase]]\nname = \"a\"\nrun = \"true\"\npolicy = { on_fail = \"retry\", max_retries = 3 }\n";
    let run = Test::with(toml).args(["check"]).run();
    run.code(0);
    assert!(run.stderr.is_empty(), "{}", run.report());
}

#[test]
fn check_notes_independent_phases_that_run_one_at_a_time() {
    let toml = "name = \"x\"\n\n[[phase]]\nname = \"a\"\nrun = \"true\"\n\n[[phase]]\nname = \"b\"\nrun = \"true\"\n\n[[phase]]\nname = \"c\"\nrun = \"true\"\ndepends_on = [\"a\", \"b\"]\n";
    let run = Test::with(toml).args(["check"]).run();
    run.code(0)
        .stdout_has("pipeline `x` is valid: 3 phases (0 parallel), 2 levels")
        .stdout_has("will run one at a time")
        .stdout_line("  - a, b")
        .stdout_has("set `parallel = true`");
    let parallel = toml.replace("name = \"x\"\n", "name = \"x\"\n[defaults]\nparallel = true\n");
    let run = Test::with(&parallel).args(["check"]).run();
    run.code(0).stdout_lacks("one at a time");
}

#[test]
fn counts_agree_with_their_numbers() {
    Test::with("name = \"x\"\n[[phase]]\nname = \"a\"\nrun = \"true\"\n")
        .args(["check"])
        .run()
        .code(0)
        .stdout_has("is valid: 1 phase (0 parallel), 1 level\n");
    Test::with("name = \"x\"\n[[phase]]\nname = \"a\"\nrun = \"true\"\n")
        .args(["run", "--dry-run"])
        .run()
        .code(0)
        .stdout_has("x: would run 1 phase (jobs");
}

#[test]
fn dry_run_keeps_the_indentation_of_multi_line_commands() {
    let toml = "name = \"x\"\n[[phase]]\nname = \"a\"\nrun = \"\"\"\nfor f in *; do\n  echo \"$f\"\ndone\n\"\"\"\n";
    Test::with(toml)
        .args(["run", "--dry-run"])
        .run()
        .code(0)
        .stdout_line("       $ for f in *; do")
        .stdout_line("           echo \"$f\"")
        .stdout_line("         done");
}

#[test]
fn init_runs_independent_phases_together_and_says_why() {
    let t = Test::empty().args(["init"]);
    t.run().code(0);
    let written = t.read("milo.toml");
    assert!(
        written.contains("[defaults]\n# A phase runs alone unless it is `parallel` (the default is false)"),
        "{written}"
    );
    assert!(written.contains("\nparallel = true\n"), "{written}");
}
